//! The Hello server and client that every experiment runs unchanged.
//!
//! Only their environment changes between experiments: flags, environment variables and what the
//! target name resolves to. Both binaries are thin: `src/bin/*.rs` parse the command line and call
//! [`server::run`] or [`client::run`].

pub mod cli;
pub mod client;
pub mod server;
pub mod settings;
