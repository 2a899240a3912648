//! The `cargo xtask` binary: parses the command line and runs the command.

use std::process::ExitCode;

use xtask::{
    bench, demo, down, envoy, experiment, flags, hello, manifests, process::Interrupted, status, up,
};

fn main() -> ExitCode {
    let flags = flags::Xtask::from_env_or_exit();
    let result = match flags.subcommand {
        flags::XtaskCmd::Hello(cmd) => hello::run(&cmd),
        flags::XtaskCmd::Demo(cmd) => demo::run(&cmd),
        flags::XtaskCmd::Experiment(cmd) => experiment::run(&cmd),
        flags::XtaskCmd::Envoy => envoy::run(),
        flags::XtaskCmd::Up(cmd) => up::run(&cmd),
        flags::XtaskCmd::UpIstio(cmd) => up::run_istio(&cmd),
        flags::XtaskCmd::Down(cmd) => down::run(&cmd),
        flags::XtaskCmd::Status(cmd) => status::run(&cmd),
        flags::XtaskCmd::Bench(cmd) => bench::run(&cmd),
        flags::XtaskCmd::Manifests(cmd) => manifests::run(&cmd),
    };
    result.map_or_else(report, |()| ExitCode::SUCCESS)
}

/// Prints the error chain on one line; exit code 130 after an interrupt, as shells use, else 1.
fn report(err: anyhow::Error) -> ExitCode {
    eprintln!("xtask: error: {}", format!("{err:#}").replace('\n', " "));
    if err.downcast_ref::<Interrupted>().is_some() {
        ExitCode::from(130)
    } else {
        ExitCode::FAILURE
    }
}
