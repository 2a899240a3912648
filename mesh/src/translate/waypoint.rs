//! Ambient mode's waypoint: an Envoy that receives one Service's traffic from ztunnel and applies
//! that Service's routes, balancing each request over the endpoints.

use std::net::SocketAddr;

use super::{Resources, listener, route};
use crate::model::{MeshConfig, Service, ServiceRoutes};

/// Adds the waypoint's listener and route configuration for `service` to `out`.
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
    let route_name = route_name(svc);
    let ctx = route::Context {
        services,
        mesh,
        client_namespace,
        port: svc.port,
    };
    let attached = route::attached(svc, routes);
    let host = route::virtual_host(&ctx, svc, attached, vec!["*".into()]);
    out.routes
        .push(route::route_configuration(&route_name, vec![host]));
    out.listeners
        .push(listener::listener(&route_name, addr, &route_name));
}

/// The waypoint's name for a Service port's routes.
fn route_name(svc: &Service) -> String {
    format!(
        "inbound-vip|{}|http|{}.{}.svc.{}",
        svc.port,
        svc.name,
        svc.namespace,
        super::CLUSTER_DOMAIN
    )
}
