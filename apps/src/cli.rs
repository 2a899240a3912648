//! What both binaries do with their command line and their errors: one line on stderr, non-zero exit.

use std::process::ExitCode;

use clap::Parser;

/// Exit code for bad input (flags, variables, targets), as clap uses.
pub const EXIT_USAGE: u8 = 2;
/// Exit code for a failure while running.
pub const EXIT_FAILURE: u8 = 1;

/// Parses the command line; help and version print and exit 0, anything else wrong is one line.
pub fn parse<T: Parser>(bin: &str) -> Result<T, ExitCode> {
    T::try_parse().map_err(|err| {
        use clap::error::ErrorKind::*;
        if matches!(
            err.kind(),
            DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
        ) {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        let text = err.to_string();
        let first = text.lines().next().unwrap_or("invalid arguments");
        let first = first.strip_prefix("error: ").unwrap_or(first);
        eprintln!("{bin}: error: {first}");
        ExitCode::from(EXIT_USAGE)
    })
}

/// Prints an error chain on one line (`outer: inner: cause`) and turns it into an exit code.
pub fn report(bin: &str, err: &anyhow::Error, code: u8) -> ExitCode {
    let line = format!("{err:#}").replace('\n', " ");
    eprintln!("{bin}: error: {line}");
    ExitCode::from(code)
}

/// Logs to stderr; `RUST_LOG` chooses what (default: `info`).
pub fn init_logging() {
    use tracing_subscriber::{Layer, layer::SubscriberExt, util::SubscriberInitExt};
    tracing_subscriber::registry()
        .with(stderr_log().with_filter(env_filter()))
        .init();
}

/// Logs to stderr as [`init_logging`] does, and also says in one warning line each kind of
/// request that HTTP/2 refuses before the server sees it (see [`crate::server::refused`]),
/// whatever `RUST_LOG` says.
pub fn init_server_logging() {
    use tracing_subscriber::{Layer, layer::SubscriberExt, util::SubscriberInitExt};
    tracing_subscriber::registry()
        .with(stderr_log().with_filter(env_filter()))
        .with(crate::server::refused::layer())
        .init();
}

fn env_filter() -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

fn stderr_log<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .compact()
}

/// Completes on the first SIGTERM or SIGINT.
pub async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process still dies on the signal, just not gracefully.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
