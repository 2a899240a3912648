//! `cargo xtask`: the project's tasks, written in Rust so that they run wherever cargo does.
//!
//! The command line is declared in [`flags`]; each task is a module with one `run`.

mod backend;
mod demo;
mod envoy;
mod experiment;
mod flags;
mod hello;
mod local;
mod measure;
mod process;
mod project;
mod scenario;
mod table;
#[cfg(test)]
mod tidy;

use std::process::ExitCode;

fn main() -> ExitCode {
    let flags = flags::Xtask::from_env_or_exit();
    let result = match flags.subcommand {
        flags::XtaskCmd::Hello(cmd) => hello::run(&cmd),
        flags::XtaskCmd::Demo(cmd) => demo::main(&cmd),
        flags::XtaskCmd::Experiment(cmd) => experiment::main(&cmd),
        flags::XtaskCmd::Envoy => envoy::run(),
    };
    result.map_or_else(report, |()| ExitCode::SUCCESS)
}

/// Prints the error chain on one line; exit code 130 after an interrupt, as shells use, else 1.
fn report(err: anyhow::Error) -> ExitCode {
    eprintln!("xtask: error: {}", format!("{err:#}").replace('\n', " "));
    if err.downcast_ref::<process::Interrupted>().is_some() {
        ExitCode::from(130)
    } else {
        ExitCode::FAILURE
    }
}
