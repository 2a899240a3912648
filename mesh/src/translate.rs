//! Translates the mesh model (Services, endpoints, route entries) into Envoy resources:
//! listeners, route configurations, clusters and endpoints, the way Istio shapes a sidecar's
//! outbound configuration (one listener per port, virtual hosts per Service, one EDS cluster per
//! Service, Istio's default retry policy).

use std::{collections::BTreeSet, net::SocketAddr};

use envoy_types::pb::{
    envoy::{
        config::{
            cluster::v3::{Cluster, cluster},
            core::v3::{
                Address, AggregatedConfigSource, ConfigSource, HeaderValue, HeaderValueOption,
                Http2ProtocolOptions, SocketAddress, address, config_source,
                header_value_option::HeaderAppendAction, socket_address,
            },
            endpoint::v3::{
                ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
            },
            listener::v3::{Filter, FilterChain, Listener, filter},
            route::v3::{
                DirectResponseAction, HeaderMatcher, RetryPolicy, Route, RouteAction,
                RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster, header_matcher,
                retry_policy, route, route_action, route_match, weighted_cluster::ClusterWeight,
            },
        },
        extensions::{
            filters::{
                http::router::v3::Router,
                network::http_connection_manager::v3::{
                    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
                },
            },
            retry::host::previous_hosts::v3::PreviousHostsPredicate,
            upstreams::http::v3::{HttpProtocolOptions, http_protocol_options},
        },
        r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher},
    },
    google::protobuf::{Any, Duration, UInt32Value},
};
use prost::{Message, Name};

use crate::model::{Backend, HeaderModifier, RouteEntry, Service, ServiceRoutes, StringMatch};

mod passthrough;

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

/// Builds the configuration of one Envoy.
pub fn resources(
    role: &Role,
    services: &[Service],
    routes: &[ServiceRoutes],
    _mesh: &crate::model::MeshConfig,
) -> Resources {
    let mut out = Resources::default();
    for svc in services {
        let name = cluster_name(&svc.name, &svc.namespace, svc.port);
        out.clusters.push(eds_cluster(&name));
        out.endpoints.push(load_assignment(&name, &svc.endpoints));
    }
    match role {
        Role::Sidecar { ip, .. } => {
            let ports: BTreeSet<u16> = services.iter().map(|s| s.port).collect();
            for port in ports {
                let route_name = port.to_string();
                let hosts = services
                    .iter()
                    .filter(|s| s.port == port)
                    .map(|s| {
                        let mut vh = virtual_host(s, services, routes);
                        vh.domains = domains(s);
                        vh
                    })
                    .collect();
                out.routes.push(RouteConfiguration {
                    name: route_name.clone(),
                    virtual_hosts: hosts,
                    ..Default::default()
                });
                out.listeners.push(listener(
                    &format!("{ip}_{port}"),
                    SocketAddr::new(*ip, port),
                    &route_name,
                ));
            }
        }
        Role::Proxy { addr, service } => {
            let route_name = format!("proxy_{}", addr.port());
            let mut hosts = Vec::new();
            if let Some(svc) = services.iter().find(|s| &s.name == service) {
                let mut vh = virtual_host(svc, services, routes);
                vh.domains = vec!["*".into()];
                hosts.push(vh);
            }
            out.routes.push(RouteConfiguration {
                name: route_name.clone(),
                virtual_hosts: hosts,
                ..Default::default()
            });
            out.listeners
                .push(listener(&format!("proxy_{addr}"), *addr, &route_name));
        }
    }
    passthrough::apply(role, services, &mut out);
    out
}

/// The names a client in the same namespace may use for a Service, with and without the port.
fn domains(s: &Service) -> Vec<String> {
    let names = [
        s.name.clone(),
        format!("{}.{}", s.name, s.namespace),
        format!("{}.{}.svc", s.name, s.namespace),
        format!("{}.{}.svc.{CLUSTER_DOMAIN}", s.name, s.namespace),
    ];
    names
        .iter()
        .flat_map(|n| [n.clone(), format!("{n}:{}", s.port)])
        .collect()
}

fn virtual_host(svc: &Service, services: &[Service], routes: &[ServiceRoutes]) -> VirtualHost {
    let attached = routes.iter().find(|r| {
        r.service == svc.name
            && r.namespace == svc.namespace
            && r.port.is_none_or(|p| p == svc.port)
    });
    let routes = match attached {
        // No route attached: the Service itself, as without a mesh route.
        None => vec![Route {
            name: "default".into(),
            r#match: Some(prefix_match("/")),
            action: Some(route::Action::Route(route_action(
                route_action::ClusterSpecifier::Cluster(cluster_name(
                    &svc.name,
                    &svc.namespace,
                    svc.port,
                )),
            ))),
            ..Default::default()
        }],
        Some(attached) => {
            let mut out: Vec<Route> = attached
                .entries
                .iter()
                .map(|e| entry_route(e, svc, services))
                .collect();
            // Gateway API: a request no rule matches is answered 404, which gRPC clients read as
            // UNIMPLEMENTED.
            out.push(Route {
                name: "no-route-matched".into(),
                r#match: Some(prefix_match("/")),
                action: Some(route::Action::DirectResponse(DirectResponseAction {
                    status: 404,
                    ..Default::default()
                })),
                ..Default::default()
            });
            out
        }
    };
    VirtualHost {
        name: format!("{}.{}:{}", svc.name, svc.namespace, svc.port),
        routes,
        ..Default::default()
    }
}

fn entry_route(entry: &RouteEntry, parent: &Service, services: &[Service]) -> Route {
    let path = match &entry.matched.path {
        None => route_match::PathSpecifier::Prefix("/".into()),
        Some(StringMatch::Exact(p)) => route_match::PathSpecifier::Path(p.clone()),
        Some(StringMatch::PathPrefix(p)) if p == "/" => {
            route_match::PathSpecifier::Prefix("/".into())
        }
        Some(StringMatch::PathPrefix(p)) => {
            route_match::PathSpecifier::PathSeparatedPrefix(p.trim_end_matches('/').to_owned())
        }
        Some(StringMatch::Regex(r)) => route_match::PathSpecifier::SafeRegex(regex(r)),
    };
    let mut m = RouteMatch {
        path_specifier: Some(path),
        ..Default::default()
    };
    if let Some(method) = &entry.matched.method {
        m.headers.push(header_matcher(
            ":method",
            &StringMatch::Exact(method.clone()),
        ));
    }
    for h in &entry.matched.headers {
        m.headers.push(header_matcher(&h.name, &h.value));
    }
    let live: Vec<&Backend> = entry.backends.iter().filter(|b| b.weight > 0).collect();
    let action = if live.is_empty() {
        // Gateway API: no backend to send to is a 500.
        route::Action::DirectResponse(DirectResponseAction {
            status: 500,
            ..Default::default()
        })
    } else {
        let port = |b: &Backend| {
            b.port
                .or_else(|| {
                    services
                        .iter()
                        .find(|s| s.name == b.service && s.namespace == b.namespace)
                        .map(|s| s.port)
                })
                .unwrap_or(parent.port)
        };
        let clusters: Vec<ClusterWeight> = live
            .iter()
            .map(|b| ClusterWeight {
                name: cluster_name(&b.service, &b.namespace, port(b)),
                weight: Some(UInt32Value { value: b.weight }),
                ..Default::default()
            })
            .collect();
        let specifier = if clusters.len() == 1 {
            route_action::ClusterSpecifier::Cluster(clusters[0].name.clone())
        } else {
            route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
                clusters,
                ..Default::default()
            })
        };
        route::Action::Route(route_action(specifier))
    };
    let (to_add, to_remove) = header_changes(&entry.request_headers);
    Route {
        name: entry.name.clone(),
        r#match: Some(m),
        action: Some(action),
        request_headers_to_add: to_add,
        request_headers_to_remove: to_remove,
        ..Default::default()
    }
}

fn header_changes(h: &HeaderModifier) -> (Vec<HeaderValueOption>, Vec<String>) {
    let option = |(k, v): &(String, String), action: HeaderAppendAction| HeaderValueOption {
        header: Some(HeaderValue {
            key: k.clone(),
            value: v.clone(),
            ..Default::default()
        }),
        append_action: action as i32,
        ..Default::default()
    };
    let mut add: Vec<HeaderValueOption> = h
        .set
        .iter()
        .map(|kv| option(kv, HeaderAppendAction::OverwriteIfExistsOrAdd))
        .collect();
    add.extend(
        h.add
            .iter()
            .map(|kv| option(kv, HeaderAppendAction::AppendIfExistsOrAdd)),
    );
    (add, h.remove.clone())
}

fn header_matcher(name: &str, value: &StringMatch) -> HeaderMatcher {
    let matcher = match value {
        StringMatch::Exact(v) => string_matcher::MatchPattern::Exact(v.clone()),
        StringMatch::PathPrefix(v) => string_matcher::MatchPattern::Prefix(v.clone()),
        StringMatch::Regex(r) => string_matcher::MatchPattern::SafeRegex(regex(r)),
    };
    HeaderMatcher {
        name: name.to_owned(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
            StringMatcher {
                match_pattern: Some(matcher),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

fn regex(r: &str) -> RegexMatcher {
    RegexMatcher {
        regex: r.to_owned(),
        ..Default::default()
    }
}

fn prefix_match(p: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::Prefix(p.into())),
        ..Default::default()
    }
}

/// A route action with Istio's defaults: no route timeout, the default retry policy.
fn route_action(specifier: route_action::ClusterSpecifier) -> RouteAction {
    RouteAction {
        cluster_specifier: Some(specifier),
        timeout: Some(Duration {
            seconds: 0,
            nanos: 0,
        }),
        retry_policy: Some(istio_default_retry()),
        ..Default::default()
    }
}

/// Istio's default retry policy (pilot's `retry.DefaultPolicy`): 2 retries on connect failure,
/// refused stream, UNAVAILABLE, CANCELLED and HTTP 503, preferring hosts not tried before.
pub fn istio_default_retry() -> RetryPolicy {
    RetryPolicy {
        retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
            .into(),
        num_retries: Some(UInt32Value { value: 2 }),
        retriable_status_codes: vec![503],
        host_selection_retry_max_attempts: 5,
        retry_host_predicate: vec![retry_policy::RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".into(),
            config_type: Some(retry_policy::retry_host_predicate::ConfigType::TypedConfig(
                any(&PreviousHostsPredicate::default()),
            )),
        }],
        ..Default::default()
    }
}

fn listener(name: &str, addr: SocketAddr, route_name: &str) -> Listener {
    let hcm = HttpConnectionManager {
        // Dots and colons would split the stat name into segments.
        stat_prefix: name.replace(['.', ':'], "_"),
        codec_type: http_connection_manager::CodecType::Auto as i32,
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            route_config_name: route_name.to_owned(),
            config_source: Some(ads_source()),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(
                any(&Router::default()),
            )),
            ..Default::default()
        }],
        ..Default::default()
    };
    Listener {
        name: name.to_owned(),
        address: Some(socket_address(addr)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(any(&hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
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

fn eds_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ads_source()),
            service_name: String::new(),
        }),
        connect_timeout: Some(Duration {
            seconds: 10,
            nanos: 0,
        }),
        // Istio's default load-balancing policy.
        lb_policy: cluster::LbPolicy::LeastRequest as i32,
        typed_extension_protocol_options: http2_options(),
        ..Default::default()
    }
}

fn load_assignment(cluster: &str, endpoints: &[SocketAddr]) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: cluster.to_owned(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: endpoints
                .iter()
                .map(|addr| LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(socket_address(*addr)),
                        ..Default::default()
                    })),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Match, MeshConfig, RouteKind};

    fn service(name: &str) -> Service {
        Service {
            name: name.into(),
            namespace: "default".into(),
            port: 50051,
            endpoints: vec!["127.0.0.1:1".parse().unwrap()],
            headless: false,
        }
    }

    fn backend(name: &str, weight: u32) -> Backend {
        Backend {
            service: name.into(),
            namespace: "default".into(),
            port: Some(50051),
            weight,
        }
    }

    fn entry(backends: Vec<Backend>, headers: HeaderModifier) -> RouteEntry {
        RouteEntry {
            kind: RouteKind::Grpc,
            name: "GRPCRoute default/r rule 0 match 0".into(),
            matched: Match {
                path: Some(StringMatch::Exact("/hello.v1.Greeter/SayHello".into())),
                ..Match::default()
            },
            backends,
            request_headers: headers,
        }
    }

    fn sidecar(routes: Vec<ServiceRoutes>) -> Resources {
        let services = [
            service("server"),
            service("server-v1"),
            service("server-v2"),
        ];
        resources(
            &Role::Sidecar {
                ip: "127.0.0.2".parse().unwrap(),
                passthrough: Vec::new(),
            },
            &services,
            &routes,
            &MeshConfig::default(),
        )
    }

    fn host<'a>(r: &'a Resources, service: &str) -> &'a VirtualHost {
        r.routes[0]
            .virtual_hosts
            .iter()
            .find(|v| v.name.starts_with(&format!("{service}.")))
            .unwrap()
    }

    fn attached(entries: Vec<RouteEntry>) -> Vec<ServiceRoutes> {
        vec![ServiceRoutes {
            service: "server".into(),
            namespace: "default".into(),
            port: None,
            entries,
        }]
    }

    #[test]
    fn each_service_gets_an_eds_cluster_and_a_virtual_host_under_its_kubernetes_names() {
        let r = sidecar(vec![]);
        assert_eq!(r.clusters.len(), 3);
        assert_eq!(r.endpoints.len(), 3);
        assert_eq!(r.listeners.len(), 1, "one listener per port");
        let vh = host(&r, "server");
        for domain in [
            "server",
            "server:50051",
            "server.default.svc.cluster.local:50051",
        ] {
            assert!(
                vh.domains.iter().any(|d| d == domain),
                "{domain} in {:?}",
                vh.domains
            );
        }
    }

    #[test]
    fn without_a_route_a_service_goes_to_itself_with_istio_s_retry_policy() {
        let r = sidecar(vec![]);
        let vh = host(&r, "server");
        assert_eq!(vh.routes.len(), 1);
        let Some(route::Action::Route(action)) = &vh.routes[0].action else {
            panic!("a route action")
        };
        assert_eq!(
            action.cluster_specifier,
            Some(route_action::ClusterSpecifier::Cluster(cluster_name(
                "server", "default", 50051
            )))
        );
        let retry = action.retry_policy.as_ref().unwrap();
        assert_eq!(retry.num_retries, Some(UInt32Value { value: 2 }));
        assert!(retry.retry_on.contains("unavailable"));
    }

    #[test]
    fn attached_routes_end_in_a_404_which_grpc_reads_as_unimplemented() {
        let r = sidecar(attached(vec![entry(
            vec![backend("server-v1", 1)],
            HeaderModifier::default(),
        )]));
        let routes = &host(&r, "server").routes;
        assert_eq!(routes.len(), 2);
        let Some(route::Action::DirectResponse(d)) = &routes[1].action else {
            panic!("a direct response")
        };
        assert_eq!(d.status, 404);
    }

    #[test]
    fn weight_0_backends_are_dropped_and_all_zero_answers_500() {
        let r = sidecar(attached(vec![
            entry(
                vec![backend("server-v1", 3), backend("server-v2", 0)],
                HeaderModifier::default(),
            ),
            entry(vec![backend("server-v1", 0)], HeaderModifier::default()),
        ]));
        let routes = &host(&r, "server").routes;
        let Some(route::Action::Route(a)) = &routes[0].action else {
            panic!()
        };
        assert_eq!(
            a.cluster_specifier,
            Some(route_action::ClusterSpecifier::Cluster(cluster_name(
                "server-v1",
                "default",
                50051
            )))
        );
        let Some(route::Action::DirectResponse(d)) = &routes[1].action else {
            panic!()
        };
        assert_eq!(d.status, 500);
    }

    #[test]
    fn two_weighted_backends_become_weighted_clusters() {
        let r = sidecar(attached(vec![entry(
            vec![backend("server-v1", 95), backend("server-v2", 5)],
            HeaderModifier::default(),
        )]));
        let Some(route::Action::Route(a)) = &host(&r, "server").routes[0].action else {
            panic!()
        };
        let Some(route_action::ClusterSpecifier::WeightedClusters(w)) = &a.cluster_specifier else {
            panic!()
        };
        let weights: Vec<u32> = w
            .clusters
            .iter()
            .map(|c| c.weight.as_ref().unwrap().value)
            .collect();
        assert_eq!(weights, [95, 5]);
    }

    #[test]
    fn request_header_modifier_sets_adds_and_removes() {
        let headers = HeaderModifier {
            set: vec![("x-set".into(), "1".into())],
            add: vec![("x-add".into(), "2".into())],
            remove: vec!["x-gone".into()],
        };
        let r = sidecar(attached(vec![entry(
            vec![backend("server-v1", 1)],
            headers,
        )]));
        let route = &host(&r, "server").routes[0];
        let added: Vec<(String, i32)> = route
            .request_headers_to_add
            .iter()
            .map(|o| (o.header.as_ref().unwrap().key.clone(), o.append_action))
            .collect();
        assert_eq!(
            added,
            [
                (
                    "x-set".to_owned(),
                    HeaderAppendAction::OverwriteIfExistsOrAdd as i32
                ),
                (
                    "x-add".to_owned(),
                    HeaderAppendAction::AppendIfExistsOrAdd as i32
                )
            ]
        );
        assert_eq!(route.request_headers_to_remove, ["x-gone"]);
    }

    #[test]
    fn a_proxy_routes_everything_it_receives_to_its_service() {
        let services = [service("server")];
        let addr: SocketAddr = "127.0.0.3:50051".parse().unwrap();
        let r = resources(
            &Role::Proxy {
                addr,
                service: "server".into(),
            },
            &services,
            &[],
            &MeshConfig::default(),
        );
        assert_eq!(r.listeners.len(), 1);
        assert_eq!(r.routes[0].virtual_hosts[0].domains, ["*"]);
    }
}
