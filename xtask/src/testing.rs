//! Test support shared by the crate's unit tests and its integration tests (feature `testing`): the
//! mock Kubernetes API server, the Gateway API CRDs' schemas, a loopback HTTP server for downloads,
//! and running a command within a deadline.

pub mod crds;
pub mod loopback;
pub mod run;

pub use crate::cluster::kube::mock;
