//! The local twin of the mesh, and the control plane that configures its Envoys.
//!
//! [`twin`] plays a cluster on loopback addresses: pods ([`process`] supervises every child process),
//! cluster DNS ([`dns`]), kube-proxy's per-connection virtual IPs, and real Envoys ([`envoy`]) fed
//! over ADS ([`xds`]) with what [`translate`] makes of the Gateway API routes [`gateway`] loaded and
//! validated, as Istio's sidecar would hold them ([`model`] is what is translated).

pub mod dns;
pub mod envoy;
pub mod gateway;
pub mod model;
pub mod process;
pub mod translate;
pub mod twin;
pub mod xds;
