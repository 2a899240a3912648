//! The local twin of the mesh.
//!
//! For now it holds the twin DNS ([`dns`]): a small authoritative DNS server that answers
//! Kubernetes-like Service names (`server`, `server.default.svc.cluster.local`) with the
//! addresses of the processes that stand in for them, so that a gRPC client resolving with a
//! real DNS resolver finds the twin instead of a cluster.

pub mod dns;
pub mod envoy;
pub mod gateway;
pub mod model;
pub mod process;
pub mod translate;
pub mod twin;
pub mod xds;
