//! The twin of ztunnel, the per-node L4 proxy of Istio's ambient mode (ztunnel `release-1.30`,
//! `src/proxy/outbound.rs` and `src/state.rs`; rows 110 to 113 of `docs/cluster-assumptions.md`).
//! It captures the client's connections to a Service (the twin's DNS answers the capture address,
//! as ztunnel's redirection takes connections to the Service's virtual IP) and:
//! - for a Service without a waypoint, sends each connection to one ready endpoint picked when the
//!   connection opens, uniformly at random (`load_balance`: random, weighted by a capacity that
//!   defaults to 1, no locality preference unless the Service asks for one), and keeps it there for
//!   the connection's life: a gRPC client is pinned exactly as behind a ClusterIP Service;
//! - with no ready endpoint, closes the connection it has already accepted (no refusal, no retry);
//! - for a Service with a waypoint (`istio.io/use-waypoint`), sends every connection addressed to
//!   the Service to the waypoint, which balances per request; there is no fallback around it.
//!
//! On a cluster the hops are HBONE (HTTP/2 CONNECT with mTLS, to port 15008); the twin forwards
//! plain TCP, which changes the latency, not where an RPC lands. Connections to a pod address (a
//! headless Service) go to that pod, never to a Service's waypoint (a waypoint is for Service
//! traffic unless `istio.io/waypoint-for` says otherwise). The model learns of endpoint changes at
//! once; a cluster's ztunnel hears of them from istiod.

use std::{collections::BTreeMap, net::SocketAddr};

use super::l4::VirtualIp;

/// ztunnel's captures, one per Service.
#[derive(Default)]
pub(super) struct Ztunnel {
    captures: BTreeMap<String, VirtualIp>,
}

impl Ztunnel {
    /// Captures connections to `service` at `listen` (once) and sends each new one to one of
    /// `targets`: the Service's endpoints, or its waypoint alone. Connections already open stay
    /// where they are, as ztunnel leaves them.
    pub(super) async fn program(
        &mut self,
        service: &str,
        listen: SocketAddr,
        targets: Vec<SocketAddr>,
    ) -> std::io::Result<()> {
        match self.captures.get(service) {
            Some(capture) => capture.set_backends(targets),
            None => {
                let capture = VirtualIp::start(listen, targets).await?;
                self.captures.insert(service.to_owned(), capture);
            }
        }
        Ok(())
    }

    /// Where connections to `service` are captured, once it has been programmed.
    pub(super) fn capture(&self, service: &str) -> Option<SocketAddr> {
        self.captures.get(service).map(VirtualIp::addr)
    }
}
