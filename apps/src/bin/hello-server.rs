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
    // Bind before logging anything, so that a taken port is the only line on stderr.
    let server = match server::Server::bind(config.clone()).await {
        Ok(server) => server,
        Err(err) => return cli::report("hello-server", &err.into(), cli::EXIT_FAILURE),
    };
    cli::init_server_logging();
    tracing::info!(%config, "starting");
    tracing::info!(addr = %server.local_addr(), metrics = ?server.metrics_addr(), "listening");
    match server.run(cli::terminated()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => cli::report("hello-server", &err.into(), cli::EXIT_FAILURE),
    }
}
