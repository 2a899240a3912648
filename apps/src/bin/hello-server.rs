//! `hello-server`: see `hello_apps::server`.

use std::process::ExitCode;

use hello_apps::{cli, server, settings};

#[tokio::main]
async fn main() -> ExitCode {
    let flags: server::Flags = match cli::parse("hello-server") {
        Ok(flags) => flags,
        Err(code) => return code,
    };
    let config = match server::Config::new(&flags, &settings::process_env) {
        Ok(config) => config,
        Err(err) => return cli::report("hello-server", &err.into(), cli::EXIT_USAGE),
    };
    cli::init_logging();
    tracing::info!(%config, "starting");
    match server::run(config, cli::terminated()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => cli::report("hello-server", &err.into(), cli::EXIT_FAILURE),
    }
}
