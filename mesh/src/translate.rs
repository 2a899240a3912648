//! Translates the mesh model (Services, endpoints, route entries) into Envoy resources:
//! listeners, route configurations, clusters and endpoints, the way Istio 1.30 shapes a sidecar's
//! outbound configuration: one HTTP listener per port with the connection manager and upstream
//! filters Istio writes ([`listener`]), a route configuration per port with a virtual host per
//! Service ([`route`]), one EDS cluster per Service port with Istio's circuit breakers
//! ([`cluster`]), and Istio's retry policy or the mesh's default one ([`retry`]).

mod cluster;
mod listener;
mod retry;
mod route;

use std::{collections::BTreeSet, net::SocketAddr};

use envoy_types::pb::{
    envoy::{
        config::{
            cluster::v3::Cluster,
            core::v3::{
                Address, AggregatedConfigSource, ConfigSource, Http2ProtocolOptions, SocketAddress,
                address, config_source, socket_address,
            },
            endpoint::v3::ClusterLoadAssignment,
            listener::v3::Listener,
            route::v3::RouteConfiguration,
        },
        extensions::upstreams::http::v3::{HttpProtocolOptions, http_protocol_options},
    },
    google::protobuf::Any,
};
use prost::{Message, Name};

pub use cluster::CONNECT_TIMEOUT_SECONDS;
pub use retry::{ISTIO_DEFAULT_ATTEMPTS, ISTIO_DEFAULT_RETRY_ON, route_retry_policy};

use crate::model::{MeshConfig, Service, ServiceRoutes};

mod passthrough;
mod waypoint;

pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINT_TYPE: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/// The Kubernetes cluster domain, as in `server.default.svc.cluster.local`.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// What one Envoy is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A client's sidecar: an outbound listener per Service port on `ip`, routing by the
    /// `:authority` the client sent (`server:50051`), as Istio's sidecar does after its iptables
    /// interception.
    Sidecar {
        ip: std::net::IpAddr,
        /// Where the client's connections to a headless Service's pods are intercepted: each
        /// listener address stands for one pod address (the connection's original destination).
        passthrough: Vec<Passthrough>,
    },
    /// A proxy in front of one Service (the seed's server-side Envoy): whatever arrives at `addr`
    /// goes to `service`'s routes.
    Proxy { addr: SocketAddr, service: String },
    /// Ambient mode's waypoint for one Service: what ztunnel sends it at `addr` is that Service's
    /// traffic, routed by the Service's routes and balanced per request over the endpoints.
    Waypoint { addr: SocketAddr, service: String },
}

/// One intercepted pod address of a headless Service: connections to `listen` are the client's
/// connections to `original_dst`, as iptables would redirect them to the sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passthrough {
    pub listen: SocketAddr,
    pub original_dst: SocketAddr,
}

/// The complete configuration of one Envoy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
    pub clusters: Vec<Cluster>,
    pub endpoints: Vec<ClusterLoadAssignment>,
}

impl Resources {
    /// The resources of one xDS type, as `(name, Any)`.
    pub fn of_type(&self, type_url: &str) -> Vec<(String, Any)> {
        match type_url {
            LISTENER_TYPE => self
                .listeners
                .iter()
                .map(|r| (r.name.clone(), any(r)))
                .collect(),
            ROUTE_TYPE => self
                .routes
                .iter()
                .map(|r| (r.name.clone(), any(r)))
                .collect(),
            CLUSTER_TYPE => self
                .clusters
                .iter()
                .map(|r| (r.name.clone(), any(r)))
                .collect(),
            ENDPOINT_TYPE => self
                .endpoints
                .iter()
                .map(|r| (r.cluster_name.clone(), any(r)))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Packs a message as `Any`.
pub fn any<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

/// Istio's name for the outbound cluster of a Service port.
pub fn cluster_name(service: &str, namespace: &str, port: u16) -> String {
    format!("outbound|{port}||{service}.{namespace}.svc.{CLUSTER_DOMAIN}")
}

/// The namespace the twin's client runs in, as seen by [`resources`].
pub const CLIENT_NAMESPACE: &str = crate::gateway::DEFAULT_NAMESPACE;

/// Builds the configuration of one Envoy, for a client in namespace [`CLIENT_NAMESPACE`].
///
/// `mesh` is what istiod reads from its mesh configuration (`MeshConfig::default()`: Istio's
/// defaults).
pub fn resources(
    role: &Role,
    services: &[Service],
    routes: &[ServiceRoutes],
    mesh: &MeshConfig,
) -> Resources {
    resources_in(CLIENT_NAMESPACE, role, services, routes, mesh)
}

/// [`resources`] for a client in `client_namespace` (it decides which short names reach a
/// Service).
pub fn resources_in(
    client_namespace: &str,
    role: &Role,
    services: &[Service],
    routes: &[ServiceRoutes],
    mesh: &MeshConfig,
) -> Resources {
    let mut out = Resources::default();
    for svc in services {
        let name = cluster_name(&svc.name, &svc.namespace, svc.port);
        out.clusters.push(cluster::eds_cluster(&name));
        out.endpoints
            .push(cluster::load_assignment(&name, &svc.endpoints));
    }
    match role {
        Role::Sidecar { ip, .. } => {
            let ports: BTreeSet<u16> = services.iter().map(|s| s.port).collect();
            for port in ports {
                let ctx = route::Context {
                    services,
                    mesh,
                    client_namespace,
                    port,
                };
                let route_name = port.to_string();
                out.routes.push(route::route_configuration(
                    &route_name,
                    route::virtual_hosts(&ctx, routes),
                ));
                out.listeners.push(listener::listener(
                    &format!("{ip}_{port}"),
                    SocketAddr::new(*ip, port),
                    &route_name,
                ));
            }
        }
        Role::Waypoint { addr, service } => {
            waypoint::apply(
                *addr,
                service,
                services,
                routes,
                mesh,
                client_namespace,
                &mut out,
            );
        }
        Role::Proxy { addr, service } => {
            let route_name = format!("proxy_{}", addr.port());
            let mut hosts = Vec::new();
            if let Some(svc) = services.iter().find(|s| &s.name == service) {
                let ctx = route::Context {
                    services,
                    mesh,
                    client_namespace,
                    port: svc.port,
                };
                let attached = route::attached(svc, routes);
                hosts.push(route::virtual_host(&ctx, svc, attached, vec!["*".into()]));
            }
            out.routes
                .push(route::route_configuration(&route_name, hosts));
            out.listeners.push(listener::listener(
                &format!("proxy_{addr}"),
                *addr,
                &route_name,
            ));
        }
    }
    passthrough::apply(role, services, &mut out);
    out
}

/// Configuration delivered over the ADS stream.
pub fn ads_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: envoy_types::pb::envoy::config::core::v3::ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

pub fn socket_address(addr: SocketAddr) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: addr.ip().to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                addr.port(),
            ))),
            ..Default::default()
        })),
    }
}

/// Upstream HTTP/2 (gRPC) options, as a cluster's typed extension protocol options.
pub fn http2_options() -> std::collections::HashMap<String, Any> {
    let opts = HttpProtocolOptions {
        upstream_protocol_options: Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
            http_protocol_options::ExplicitHttpConfig {
                protocol_config: Some(http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                    Http2ProtocolOptions::default(),
                )),
            },
        )),
        ..Default::default()
    };
    [(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_owned(),
        any(&opts),
    )]
    .into()
}

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
