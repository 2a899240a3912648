//! The whole command line of `cargo xtask`, in one place.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::project::Profile;

/// Exit code for a bad command line, as clap uses.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "The grpc-mesh-lab tasks",
    disable_version_flag = true
)]
pub struct Xtask {
    #[command(subcommand)]
    pub subcommand: XtaskCmd,
}

#[derive(Debug, Subcommand)]
pub enum XtaskCmd {
    /// Runs N hello-servers behind one DNS name on this machine and sends them RPCs: how gRPC
    /// balances before any mesh exists
    Hello(Hello),
}

#[derive(Debug, Args)]
pub struct Hello {
    /// How many servers ("pods") the name `server` resolves to
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=50))]
    pub servers: u8,
    /// Rounds of RPCs the client sends, 10 concurrent RPCs in each
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// The client's load-balancing policy
    #[arg(long, value_enum, default_value_t = Lb::RoundRobin)]
    pub lb: Lb,
    /// How long each server waits before answering, e.g. 200ms
    #[arg(long, default_value = "0s", value_parser = duration)]
    pub response_delay: Duration,
    /// Build and run the apps' debug binaries (quicker to build; the tests use it)
    #[arg(long)]
    pub debug: bool,
}

impl Hello {
    pub fn profile(&self) -> Profile {
        if self.debug {
            Profile::Debug
        } else {
            Profile::Release
        }
    }
}

/// The load-balancing policies of hello-client, spelled as its `--lb` spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Lb {
    /// A connection to every address, RPCs in strict rotation
    RoundRobin,
    /// One connection, to the first address that accepts it
    PickFirst,
}

impl Lb {
    pub fn as_str(self) -> &'static str {
        match self {
            Lb::RoundRobin => "round_robin",
            Lb::PickFirst => "pick_first",
        }
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|_| "expected a duration such as 0s, 200ms or 1s".to_owned())
}

impl Xtask {
    /// Parses the command line. Help prints and exits 0; anything wrong is one line on stderr
    /// and exit code 2.
    pub fn from_env_or_exit() -> Xtask {
        Xtask::try_parse().unwrap_or_else(|err| {
            use clap::error::ErrorKind::*;
            if matches!(
                err.kind(),
                DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                err.exit();
            }
            eprintln!("xtask: error: {}", one_line(&err));
            std::process::exit(EXIT_USAGE.into())
        })
    }
}

/// A clap error on one line: its message and the possible values if it lists them, without
/// the `error: ` prefix, the tips and the usage.
pub fn one_line(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let line = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more"))
        .collect::<Vec<_>>()
        .join(" ");
    match line.strip_prefix("error: ") {
        Some(rest) => rest.to_owned(),
        None if line.is_empty() => "invalid arguments".to_owned(),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    fn parse(args: &[&str]) -> Result<Xtask, clap::Error> {
        Xtask::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
    }

    fn hello(args: &[&str]) -> Hello {
        match parse(&[&["hello"], args].concat()).unwrap().subcommand {
            XtaskCmd::Hello(hello) => hello,
        }
    }

    #[test]
    fn the_flags_are_a_valid_command_line() {
        Xtask::command().debug_assert();
    }

    #[test]
    fn hello_defaults_to_three_servers_five_rounds_round_robin_release() {
        let h = hello(&[]);
        assert_eq!(
            (h.servers, h.rounds, h.lb, h.response_delay, h.profile()),
            (3, 5, Lb::RoundRobin, Duration::ZERO, Profile::Release)
        );
    }

    #[test]
    fn hello_reads_every_flag() {
        let h = hello(&[
            "--servers",
            "50",
            "--rounds",
            "2",
            "--lb",
            "pick_first",
            "--response-delay",
            "250ms",
            "--debug",
        ]);
        assert_eq!(
            (h.servers, h.rounds, h.lb, h.response_delay, h.profile()),
            (
                50,
                2,
                Lb::PickFirst,
                Duration::from_millis(250),
                Profile::Debug
            )
        );
    }

    #[test]
    fn flag_errors_are_one_line_that_names_the_flag() {
        for (args, flag) in [
            (&["hello", "--servers", "0"][..], "--servers"),
            (&["hello", "--servers", "51"][..], "--servers"),
            (&["hello", "--rounds", "0"][..], "--rounds"),
            (&["hello", "--rounds", "many"][..], "--rounds"),
            (&["hello", "--lb", "random"][..], "--lb"),
            (
                &["hello", "--response-delay", "soon"][..],
                "--response-delay",
            ),
            (&["hello", "--nope"][..], "--nope"),
        ] {
            let err = parse(args).unwrap_err();
            let line = one_line(&err);
            assert!(!line.contains('\n'), "{args:?}: {line}");
            assert!(!line.starts_with("error:"), "{args:?}: {line}");
            assert!(line.contains(flag), "{args:?}: {line}");
        }
        let err = parse(&["hello", "--lb", "random"]).unwrap_err();
        assert_eq!(
            one_line(&err),
            "invalid value 'random' for '--lb <LB>' [possible values: round_robin, pick_first]"
        );
    }

    #[test]
    fn every_lb_policy_is_spelled_as_hello_client_spells_it() {
        for lb in Lb::value_variants() {
            let name = lb.to_possible_value().unwrap();
            assert_eq!(name.get_name(), lb.as_str());
        }
    }
}
