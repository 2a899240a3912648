//! `hello-client`: the seed's workload (rounds of concurrent `Hello` RPCs, each reply printed)
//! or an open loop at a fixed rate (`--rate`), over our own gRPC-style load balancer, with
//! per-interval summaries for the harness to read.

mod balancer;
pub mod config;
mod open_loop;
mod resolve;
mod run;
pub mod stats;
pub mod target;

pub use balancer::Policy;
pub use config::{Config, Flags, Method, Output};
pub use run::{Outcome, run};
pub use stats::{Summary, SummaryKind};
pub use target::Target;
