//! `cargo xtask`: the project's tasks, written in Rust so that they run wherever cargo does.
//!
//! The command line is declared in [`flags`]; each task is a module with one `run`.

mod backend;
mod bench;
#[allow(dead_code)]
mod cluster;
mod demo;
mod down;
mod envoy;
mod experiment;
mod flags;
mod hello;
#[allow(dead_code)]
mod images;
mod kind;
mod local;
mod manifests;
mod measure;
mod plan;
mod process;
mod project;
mod report;
mod scenario;
mod status;
mod table;
#[cfg(test)]
mod tidy;
mod up;
mod versions;

use std::process::ExitCode;

fn main() -> ExitCode {
    let flags = flags::Xtask::from_env_or_exit();
    let result = match flags.subcommand {
        flags::XtaskCmd::Hello(cmd) => hello::run(&cmd),
        flags::XtaskCmd::Demo(cmd) => demo::main(&cmd),
        flags::XtaskCmd::Experiment(cmd) => experiment::main(&cmd),
        flags::XtaskCmd::Envoy => envoy::run(),
        flags::XtaskCmd::Up(cmd) => up::main(&up::Options::from(&cmd, None)),
        flags::XtaskCmd::UpIstio(cmd) => {
            up::main(&up::Options::from(&cmd.up, Some(cmd.istio_version.clone())))
        }
        flags::XtaskCmd::Down(cmd) => down::main(&cmd),
        flags::XtaskCmd::Status(cmd) => status::main(&cmd),
        flags::XtaskCmd::Bench(cmd) => bench::main(&cmd),
        flags::XtaskCmd::Manifests(cmd) => manifests::main(&cmd),
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
