//! `cargo xtask`: the project's tasks, written in Rust so that they run wherever cargo does.
//!
//! The command line is declared in [`flags`]; each command is a module with one `run` entry point
//! (`hello`, `demo`, `experiment`, `envoy`, `up`, `down`, `status`, `manifests`, `bench`). What they
//! share is grouped by what it is: [`harness`] (scenarios, the engine, the backends, measurement),
//! [`cluster`] (versions, downloads, images, objects, the Kubernetes client), [`output`] (progress,
//! table, report).

pub mod bench;
pub mod cluster;
pub mod demo;
pub mod down;
pub mod envoy;
pub mod experiment;
pub mod flags;
pub mod harness;
pub mod hello;
pub mod manifests;
pub mod output;
pub mod process;
pub mod project;
pub mod status;
pub mod up;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tidy;
