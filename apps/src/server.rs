//! `hello-server`: answers `hello.v1.Greeter` with its own identity, and serves health,
//! reflection and Prometheus metrics.
//!
//! Connections are accepted by our own loop (not `tonic::transport::Server`) so that max
//! connection age is honoured as gRPC defines it (GOAWAY at the age, hard close after the grace)
//! and shutdown refuses new connections at once, then drains with a deadline.

pub mod config;
mod greeter;
mod health;
mod metrics;
pub mod refused;
mod serve;

pub use config::{Config, Flags};
pub use serve::{ServeError, Server};
