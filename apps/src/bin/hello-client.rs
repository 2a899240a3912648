//! `hello-client`: see `hello_apps::client`.

use std::process::ExitCode;

use hello_apps::{cli, client, settings};

#[tokio::main]
async fn main() -> ExitCode {
    let flags: client::Flags = match cli::parse("hello-client") {
        Ok(flags) => flags,
        Err(code) => return code,
    };
    let config = match client::Config::new(&flags, &settings::process_env) {
        Ok(config) => config,
        Err(err) => return cli::report("hello-client", &err.into(), cli::EXIT_USAGE),
    };
    cli::init_logging();
    let fail_on_error = config.fail_on_error;
    match client::run(config, cli::terminated()).await {
        Ok(outcome) if fail_on_error && outcome.errors > 0 => {
            eprintln!(
                "hello-client: error: {} of {} RPCs failed",
                outcome.errors, outcome.rpcs
            );
            ExitCode::from(cli::EXIT_FAILURE)
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => cli::report("hello-client", &err.into(), cli::EXIT_FAILURE),
    }
}
