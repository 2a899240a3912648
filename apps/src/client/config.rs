//! All of the client's configuration.

use std::time::Duration;

use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};

use super::{Policy, Target};
use crate::settings::{self, EnvLookup, SettingError};

pub const SERVER_ADDRESS: &str = "SERVER_ADDRESS";
pub const DEFAULT_TARGET: &str = "localhost:50051";
pub const DEFAULT_CONCURRENCY: u64 = 10;
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The highest `--rate`, in RPCs per second.
pub const MAX_RATE: u64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    #[value(name = "SayHello")]
    SayHello,
    #[value(name = "SayHelloAgain")]
    SayHelloAgain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Each reply line, and a readable summary every interval.
    Text,
    /// One JSON summary per interval and a final one; no reply lines.
    Json,
}

/// Command-line flags.
#[derive(Debug, clap::Parser)]
#[command(
    name = "hello-client",
    version,
    about = "Sends Hello RPCs, in rounds of concurrent RPCs or at a fixed rate, and reports which servers answered"
)]
pub struct Flags {
    /// gRPC target: dns:///host:port, dns://DNS_SERVER:PORT/host:port, ipv4:addr:port[,...] or host:port [env: SERVER_ADDRESS; default: localhost:50051]
    pub target: Option<String>,
    /// Load-balancing policy
    #[arg(long, value_enum, default_value = "round_robin")]
    pub lb: Policy,
    /// Concurrent RPCs per round
    #[arg(long, default_value = "10")]
    pub concurrency: String,
    /// Open loop instead of rounds: N RPCs per second on a fixed schedule, whatever the replies (1 to 1000000)
    #[arg(long, value_name = "N", conflicts_with_all = ["concurrency", "rounds"])]
    pub rate: Option<String>,
    /// Stop after this many rounds [default: run until stopped]
    #[arg(long)]
    pub rounds: Option<String>,
    /// Stop after this long, e.g. 30s [default: run until stopped]
    #[arg(long)]
    pub duration: Option<String>,
    /// Method to call
    #[arg(long, value_enum, default_value = "SayHello")]
    pub method: Method,
    /// Metadata sent with every RPC, key=value (repeatable)
    #[arg(long = "header", value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// The :authority of every RPC, e.g. to call a gateway by its address with a route's hostname (as grpcurl's -authority) [default: the target's host:port]
    #[arg(long, value_name = "HOST[:PORT]")]
    pub authority: Option<String>,
    /// Client identity in requests [default: POD_NAME, then NAME, then the host name]
    #[arg(long)]
    pub client_id: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
    /// Time between summaries
    #[arg(long, default_value = "1s")]
    pub interval: String,
    /// Deadline of each RPC
    #[arg(long, default_value = "10s")]
    pub timeout: String,
    /// Exit 1 when any RPC failed
    #[arg(long)]
    pub fail_on_error: bool,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub target: Target,
    pub lb: Policy,
    pub concurrency: usize,
    /// RPCs per second of the open loop; `None` for the seed's rounds of `concurrency`.
    pub rate: Option<u64>,
    pub rounds: Option<u64>,
    pub duration: Option<Duration>,
    pub method: Method,
    pub headers: MetadataMap,
    /// The HTTP/2 `:authority` of every RPC: `--authority`, else the target's.
    pub authority: http::uri::Authority,
    pub client_id: String,
    pub output: Output,
    pub interval: Duration,
    pub timeout: Duration,
    pub fail_on_error: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Setting(#[from] SettingError),
    #[error(transparent)]
    Target(#[from] super::target::TargetError),
}

impl Config {
    pub fn new(flags: &Flags, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        let target = flags
            .target
            .clone()
            .or_else(|| env(SERVER_ADDRESS).filter(|v| !v.is_empty()))
            .unwrap_or_else(|| DEFAULT_TARGET.to_owned());
        let flag = |value: &str, name: &str, parse: fn(&str) -> Result<u64, String>| {
            parse(value).map_err(|reason| SettingError {
                name: name.into(),
                value: value.into(),
                reason,
            })
        };
        let dur = |value: &str, name: &str| {
            settings::duration(value).map_err(|reason| SettingError {
                name: name.into(),
                value: value.into(),
                reason,
            })
        };
        let interval = dur(&flags.interval, "--interval")?;
        if interval.is_zero() {
            return Err(SettingError {
                name: "--interval".into(),
                value: flags.interval.clone(),
                reason: "must be longer than 0s".into(),
            }
            .into());
        }
        let timeout = dur(&flags.timeout, "--timeout")?;
        if timeout.is_zero() {
            return Err(SettingError {
                name: "--timeout".into(),
                value: flags.timeout.clone(),
                reason: "must be longer than 0s".into(),
            }
            .into());
        }
        let target = Target::parse(&target)?;
        let authority = match &flags.authority {
            Some(given) => authority(given).map_err(|reason| SettingError {
                name: "--authority".into(),
                value: given.clone(),
                reason,
            })?,
            None => authority(&target.authority()).map_err(|reason| SettingError {
                name: "target".into(),
                value: target.to_string(),
                reason,
            })?,
        };
        Ok(Config {
            target,
            authority,
            lb: flags.lb,
            concurrency: usize::try_from(flag(
                &flags.concurrency,
                "--concurrency",
                settings::positive,
            )?)
            .unwrap_or(usize::MAX),
            rate: flags
                .rate
                .as_deref()
                .map(|r| flag(r, "--rate", rate))
                .transpose()?,
            rounds: flags
                .rounds
                .as_deref()
                .map(|r| flag(r, "--rounds", settings::positive))
                .transpose()?,
            duration: flags
                .duration
                .as_deref()
                .map(|d| dur(d, "--duration"))
                .transpose()?,
            method: flags.method,
            headers: headers(&flags.headers)?,
            client_id: match &flags.client_id {
                Some(id) if !id.is_empty() => id.clone(),
                _ => settings::pod_name(env),
            },
            output: flags.output,
            interval,
            timeout,
            fail_on_error: flags.fail_on_error,
        })
    }
}

/// Parses an HTTP/2 authority: a host, or `host:port`, without scheme, path or user.
fn authority(s: &str) -> Result<http::uri::Authority, String> {
    let bad = || "expected a host or host:port, such as hello.example.com".to_owned();
    if s.is_empty() || s.contains('@') || s.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    s.parse::<http::uri::Authority>().map_err(|_| bad())
}

/// Parses a rate: a whole number from 1 to [`MAX_RATE`].
fn rate(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=MAX_RATE).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from 1 to {MAX_RATE}")),
    }
}

fn headers(pairs: &[String]) -> Result<MetadataMap, SettingError> {
    let mut map = MetadataMap::new();
    for pair in pairs {
        let bad = |reason: &str| SettingError {
            name: "--header".into(),
            value: pair.clone(),
            reason: reason.into(),
        };
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| bad("expected key=value"))?;
        let key = key.trim().to_ascii_lowercase();
        if key.ends_with("-bin") {
            return Err(bad("binary (-bin) metadata is not supported"));
        }
        let key =
            MetadataKey::from_bytes(key.as_bytes()).map_err(|_| bad("not a valid metadata key"))?;
        let value =
            MetadataValue::try_from(value.trim()).map_err(|_| bad("not a valid metadata value"))?;
        map.append(key, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn config(args: &[&str], env: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        let env: Vec<_> = env.to_vec();
        let lookup = move |name: &str| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        let flags =
            Flags::try_parse_from(std::iter::once("hello-client").chain(args.iter().copied()))
                .unwrap();
        Config::new(&flags, &lookup)
    }

    #[test]
    fn the_authority_is_the_flag_s_else_the_target_s_host_and_port() {
        let a = |args: &[&str]| config(args, &[]).unwrap().authority.to_string();
        assert_eq!(a(&["dns:///server:50051"]), "server:50051");
        assert_eq!(a(&["ipv4:127.0.0.1:1,127.0.0.2:2"]), "127.0.0.1:1");
        assert_eq!(
            a(&["ipv4:127.0.0.1:1", "--authority", "hello.example.com"]),
            "hello.example.com"
        );
        assert_eq!(
            a(&["server:1", "--authority", "hello.example.com:443"]),
            "hello.example.com:443"
        );
    }

    #[test]
    fn the_target_comes_from_the_argument_then_server_address_then_the_default() {
        let t = |c: Config| c.target.to_string();
        assert_eq!(
            t(config(&["dns:///a:1"], &[("SERVER_ADDRESS", "b:2")]).unwrap()),
            "dns:///a:1"
        );
        assert_eq!(
            t(config(&[], &[("SERVER_ADDRESS", "b:2")]).unwrap()),
            "dns:///b:2"
        );
        assert_eq!(t(config(&[], &[]).unwrap()), "dns:///localhost:50051");
    }

    #[test]
    fn the_flags_are_a_valid_command_line() {
        use clap::CommandFactory;
        Flags::command().debug_assert();
    }

    #[test]
    fn the_rate_is_absent_by_default_and_read_from_the_flag() {
        assert_eq!(config(&[], &[]).unwrap().rate, None);
        assert_eq!(config(&["--rate", "200"], &[]).unwrap().rate, Some(200));
        assert_eq!(
            config(&["--rate", "1000000"], &[]).unwrap().rate,
            Some(MAX_RATE)
        );
    }

    #[test]
    fn the_rate_conflicts_with_concurrency_and_rounds_but_not_with_their_defaults() {
        let parse = |args: &[&str]| {
            Flags::try_parse_from(std::iter::once("hello-client").chain(args.iter().copied()))
        };
        assert!(parse(&["--rate", "10", "--duration", "2s"]).is_ok());
        for other in [["--concurrency", "5"], ["--rounds", "3"]] {
            let err = parse(&["--rate", "10", other[0], other[1]]).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{other:?}"
            );
        }
    }

    #[test]
    fn headers_become_metadata() {
        let c = config(
            &["--header", "x-canary=true", "--header", "X-Team = a"],
            &[],
        )
        .unwrap();
        assert_eq!(c.headers.get("x-canary").unwrap(), "true");
        assert_eq!(c.headers.get("x-team").unwrap(), "a");
    }

    #[test]
    fn bad_numbers_durations_and_headers_name_the_flag() {
        for (args, text) in [
            (&["--concurrency", "0"][..], r#"invalid --concurrency "0""#),
            (&["--rounds", "many"][..], r#"invalid --rounds "many""#),
            (
                &["--rate", "0"][..],
                r#"invalid --rate "0": expected a whole number from 1 to 1000000"#,
            ),
            (
                &["--rate", "1000001"][..],
                r#"invalid --rate "1000001": expected a whole number from 1 to 1000000"#,
            ),
            (&["--rate", "abc"][..], r#"invalid --rate "abc""#),
            (
                &["--duration", "forever"][..],
                r#"invalid --duration "forever""#,
            ),
            (
                &["--interval", "0s"][..],
                r#"invalid --interval "0s": must be longer than 0s"#,
            ),
            (
                &["--header", "novalue"][..],
                r#"invalid --header "novalue": expected key=value"#,
            ),
            (
                &["--header", "bad key=1"][..],
                r#"invalid --header "bad key=1": not a valid metadata key"#,
            ),
        ] {
            let err = config(args, &[]).unwrap_err().to_string();
            assert!(err.starts_with(text), "{args:?}: {err}");
        }
    }
}
