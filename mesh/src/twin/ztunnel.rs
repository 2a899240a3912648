//! The twin of ztunnel, the per-node L4 proxy of Istio's ambient mode. It captures the client's
//! connections to a Service (the twin's DNS answers the capture address, as the sidecar's
//! interception is modelled too) and:
//! - for a Service without a waypoint, sends each connection to one endpoint it picks when the
//!   connection opens, at random among the ready ones, and keeps it there: balancing per
//!   connection, so a gRPC client is pinned exactly as behind a ClusterIP Service;
//! - for a Service with a waypoint (`istio.io/use-waypoint`), sends every connection to the waypoint,
//!   which balances per request.
//!
//! On a cluster the hops between ztunnels and the waypoint are HBONE (HTTP/2 CONNECT with mTLS);
//! the twin forwards plain TCP, which changes the latency, not where an RPC lands. Traffic to a pod
//! address (a headless Service) is sent to that pod, never to a Service's waypoint.

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
