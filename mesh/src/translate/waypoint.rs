//! Ambient mode's waypoint for one Service, as Istio 1.30 shapes it
//! (`pilot/pkg/networking/core/listener_waypoint.go`: `buildWaypointInternal`,
//! `buildWaypointInboundHTTPRouteConfig`, `getWaypointDestinationCluster`;
//! `cluster_waypoint.go`: `buildWaypointInboundVIP`).
//!
//! On a cluster, ztunnel sends the Service's connections to the waypoint as HBONE (port 15008,
//! listener `connect_terminate`), which hands them to the internal listener `main_internal`; there
//! one filter chain per Service port, `inbound-vip|<port>|http|<fqdn>`, holds the connection
//! manager with the Service's routes inline (no RDS): one virtual host `inbound|http|<port>` for
//! every domain, since the destination address chose the Service already. A Service without routes
//! gets one route `default` to its own cluster `inbound-vip|<port>|http|<fqdn>`; a backendRef to a
//! Service the waypoint does not own (here `server-v1`, `server-v2`) goes to that Service's
//! `outbound|<port>||<fqdn>` cluster, as from a sidecar. Routes, retries, timeouts and clusters
//! otherwise follow the sidecar's translation: Istio builds both from the same code.
//!
//! The twin has no HBONE: its ztunnel model forwards plain TCP, so `main_internal` is a real
//! listener at the address the model sends to.

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::route::v3::VirtualHost;

use super::{CLUSTER_DOMAIN, Resources, cluster, listener, route};
use crate::model::{MeshConfig, Service, ServiceRoutes};

/// The waypoint's listener for what ztunnel sends it.
pub const LISTENER: &str = "main_internal";

/// Adds the waypoint of `service` to `out`: its listener at `addr`, with the Service's routes
/// inline, and the Service's own `inbound-vip` cluster and endpoints.
pub(super) fn apply(
    addr: SocketAddr,
    service: &str,
    services: &[Service],
    routes: &[ServiceRoutes],
    mesh: &MeshConfig,
    client_namespace: &str,
    out: &mut Resources,
) {
    let Some(svc) = services.iter().find(|s| s.name == service) else {
        return;
    };
    let own = inbound_vip(svc);
    out.clusters.push(cluster::eds_cluster(&own));
    out.endpoints
        .push(cluster::load_assignment(&own, &svc.endpoints));
    let ctx = route::Context {
        services,
        mesh,
        client_namespace,
        port: svc.port,
    };
    let routes = match route::attached(svc, routes) {
        None => vec![route::default_route_to(&ctx, svc, &own)],
        attached => route::virtual_host(&ctx, svc, attached, Vec::new()).routes,
    };
    let host = VirtualHost {
        name: format!("inbound|http|{}", svc.port),
        domains: vec!["*".into()],
        routes,
        include_request_attempt_count: true,
        ..Default::default()
    };
    let config = route::route_configuration(&own, vec![host]);
    out.listeners
        .push(listener::inline_listener(LISTENER, addr, &own, config));
}

/// The waypoint's name for a Service port it owns: its filter chain, route configuration and
/// cluster.
pub fn inbound_vip(svc: &Service) -> String {
    format!(
        "inbound-vip|{}|http|{}.{}.svc.{CLUSTER_DOMAIN}",
        svc.port, svc.name, svc.namespace
    )
}

#[cfg(test)]
mod tests;
