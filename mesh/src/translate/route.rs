//! Route configurations: one per port, a virtual host per Service, and the Envoy routes of its
//! [`ServiceRoutes`], as Istio 1.30 writes a sidecar's outbound routes
//! (`pilot/pkg/networking/core/httproute.go`: `buildSidecarOutboundHTTPRouteConfig`,
//! `BuildSidecarOutboundVirtualHosts`, `generateVirtualHostDomains`, `GenerateAltVirtualHosts`;
//! `route/route.go`: `TranslateRoute`, `TranslateRouteMatch`, `applyHTTPRouteDestination`,
//! `TranslateHeadersOperations`, `BuildDefaultHTTPOutboundRoute`, `GetRouteOperation`).

use std::collections::BTreeMap;

use envoy_types::pb::{
    envoy::{
        config::{
            core::v3::{
                HeaderValue, HeaderValueOption, Metadata, header_value_option::HeaderAppendAction,
            },
            route::v3::{
                Decorator, DirectResponseAction, HeaderMatcher, Route, RouteAction,
                RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster, header_matcher,
                route, route_action, route_match, weighted_cluster::ClusterWeight,
            },
        },
        r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher},
    },
    google::protobuf::{BoolValue, Duration, Struct, UInt32Value, Value, value},
};

use super::{CLUSTER_DOMAIN, cluster_name, retry::route_retry_policy};
use crate::model::{
    Backend, HeaderModifier, MeshConfig, RouteEntry, RouteKind, Service, ServiceRoutes, StringMatch,
};

/// Istio raises Envoy's limit on direct response bodies to 1 MiB (`route.go`:
/// `DefaultMaxDirectResponseBodySizeBytes`).
const MAX_DIRECT_RESPONSE_BODY: u32 = 1024 * 1024;

/// The name of the route of a virtual host that has no mesh route (`route.go`:
/// `DefaultRouteName`).
const DEFAULT_ROUTE: &str = "default";

/// What the translation of one route configuration needs to know.
pub(super) struct Context<'a> {
    pub services: &'a [Service],
    pub mesh: &'a MeshConfig,
    /// The namespace the client runs in: which short names reach a Service.
    pub client_namespace: &'a str,
    /// The listener's port.
    pub port: u16,
}

/// A route configuration as Istio writes a sidecar's: named after the port, clusters not
/// validated, direct responses up to 1 MiB, and the port of the authority ignored when matching
/// virtual hosts (`ignore_port_in_host_matching`, as Istio sets for every sidecar).
pub(super) fn route_configuration(
    name: &str,
    virtual_hosts: Vec<VirtualHost>,
) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_owned(),
        virtual_hosts,
        validate_clusters: Some(BoolValue { value: false }),
        max_direct_response_body_size_bytes: Some(UInt32Value {
            value: MAX_DIRECT_RESPONSE_BODY,
        }),
        ignore_port_in_host_matching: true,
        ..Default::default()
    }
}

/// The virtual hosts of the Services on one port, sorted by name as Istio sorts them; a domain
/// already taken by an earlier virtual host is left out (Envoy refuses a domain twice), and a
/// virtual host left without domains with it.
pub(super) fn virtual_hosts(ctx: &Context<'_>, routes: &[ServiceRoutes]) -> Vec<VirtualHost> {
    let mut hosts: Vec<VirtualHost> = ctx
        .services
        .iter()
        .filter(|s| s.port == ctx.port)
        .map(|s| {
            virtual_host(
                ctx,
                s,
                attached(s, routes),
                domains(s, ctx.client_namespace),
            )
        })
        .collect();
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    let mut taken = std::collections::BTreeSet::new();
    for host in &mut hosts {
        host.domains
            .retain(|domain| taken.insert(domain.to_ascii_lowercase()));
    }
    hosts.retain(|host| !host.domains.is_empty());
    hosts
}

/// The routes attached to `svc` on its port, if any.
pub(super) fn attached<'a>(
    svc: &Service,
    routes: &'a [ServiceRoutes],
) -> Option<&'a ServiceRoutes> {
    routes.iter().find(|r| {
        r.service == svc.name
            && r.namespace == svc.namespace
            && r.port.is_none_or(|p| p == svc.port)
            && !r.entries.is_empty()
    })
}

/// The Service's fully qualified name, `server.default.svc.cluster.local`.
fn fqdn(svc: &Service) -> String {
    format!("{}.{}.svc.{CLUSTER_DOMAIN}", svc.name, svc.namespace)
}

/// The names a client in `client_namespace` may use for a Service, without ports (Istio sets
/// `ignore_port_in_host_matching` instead): the fully qualified name, the same with a trailing
/// dot, and the short forms (`server`, `server.default.svc`, `server.default` from the
/// Service's own namespace; `server.default`, `server.default.svc` from another); for a headless
/// Service each also as `*.` wildcard (pod names under it). Istio also lists the Service's
/// cluster IP, which the twin's Services do not have.
pub(super) fn domains(svc: &Service, client_namespace: &str) -> Vec<String> {
    let fqdn = fqdn(svc);
    let with_namespace = format!("{}.{}", svc.name, svc.namespace);
    let mut domains = vec![fqdn.clone(), format!("{fqdn}.")];
    if svc.namespace == client_namespace {
        domains.extend([
            svc.name.clone(),
            format!("{with_namespace}.svc"),
            with_namespace,
        ]);
    } else {
        domains.extend([with_namespace.clone(), format!("{with_namespace}.svc")]);
    }
    if svc.headless {
        let wildcards: Vec<String> = domains.iter().map(|d| format!("*.{d}")).collect();
        domains.extend(wildcards);
    }
    domains
}

/// The virtual host of one Service: its routes, else one route to the Service itself.
pub(super) fn virtual_host(
    ctx: &Context<'_>,
    svc: &Service,
    attached: Option<&ServiceRoutes>,
    domains: Vec<String>,
) -> VirtualHost {
    let routes = match attached {
        None => vec![default_route(ctx, svc)],
        Some(attached) => attached
            .entries
            .iter()
            .map(|e| entry_route(ctx, e, svc, &attached.virtual_service))
            .collect(),
    };
    VirtualHost {
        name: format!("{}:{}", fqdn(svc), svc.port),
        domains,
        routes,
        include_request_attempt_count: true,
        ..Default::default()
    }
}

/// The route of a Service without mesh routes (`BuildDefaultHTTPOutboundRoute`).
fn default_route(ctx: &Context<'_>, svc: &Service) -> Route {
    default_route_to(ctx, svc, &cluster_name(&svc.name, &svc.namespace, svc.port))
}

/// The default route of a Service, to `cluster` (a sidecar's outbound cluster, or a waypoint's
/// `inbound-vip` one).
pub(super) fn default_route_to(ctx: &Context<'_>, svc: &Service, cluster: &str) -> Route {
    let cluster = cluster.to_owned();
    let operation = format!("{}:{}/*", fqdn(svc), svc.port);
    Route {
        name: DEFAULT_ROUTE.into(),
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
            ..Default::default()
        }),
        action: Some(route::Action::Route(forward(
            ctx,
            route_action::ClusterSpecifier::Cluster(cluster),
        ))),
        decorator: Some(Decorator {
            operation,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A route action that forwards, with what Istio puts on every one: no route timeout, the
/// client's `grpc-timeout` obeyed without limit (`max_grpc_timeout: 0s`, `route.go`:
/// `setTimeout`), and the retry policy.
#[allow(
    deprecated,
    reason = "Istio sets max_grpc_timeout, not its replacement, which it says has regressions"
)]
fn forward(ctx: &Context<'_>, specifier: route_action::ClusterSpecifier) -> RouteAction {
    RouteAction {
        cluster_specifier: Some(specifier),
        timeout: Some(zero()),
        max_grpc_timeout: Some(zero()),
        retry_policy: route_retry_policy(ctx.mesh),
        ..Default::default()
    }
}

fn zero() -> Duration {
    Duration {
        seconds: 0,
        nanos: 0,
    }
}

/// The HTTP status Istio answers a rule with when it sends nowhere: 404 for an HTTPRoute rule
/// without backendRefs, 500 for a GRPCRoute rule without them and for all weights 0
/// (`conversion.go`: `convertHTTPRoute`, `convertGRPCRoute`).
pub(super) fn direct_status(entry: &RouteEntry) -> Option<u32> {
    if entry.backends.iter().any(|b| b.weight > 0) {
        None
    } else if entry.backends.is_empty() && entry.kind == RouteKind::Http {
        Some(404)
    } else {
        Some(500)
    }
}

fn entry_route(
    ctx: &Context<'_>,
    entry: &RouteEntry,
    parent: &Service,
    virtual_service: &str,
) -> Route {
    let action = match direct_status(entry) {
        Some(status) => route::Action::DirectResponse(DirectResponseAction {
            status,
            ..Default::default()
        }),
        None => route::Action::Route(backend_action(ctx, entry, parent)),
    };
    let (to_add, to_remove) = header_changes(&entry.request_headers);
    let mut out = Route {
        name: entry.route_name.clone(),
        r#match: Some(route_match(entry)),
        action: Some(action),
        request_headers_to_add: to_add,
        request_headers_to_remove: to_remove,
        metadata: Some(config_metadata(virtual_service)),
        ..Default::default()
    };
    out.decorator = Some(Decorator {
        operation: operation(&out, virtual_service, ctx.port),
        ..Default::default()
    });
    out
}

/// Forwards to the backends with a weight above 0: one cluster, or weighted clusters. A backend
/// that names no existing Service (or a port it does not have) names a cluster that does not
/// exist, which Envoy answers with 500, as Istio asks for Gateway API routes
/// (`cluster_not_found_response_code: INTERNAL_SERVER_ERROR`).
fn backend_action(ctx: &Context<'_>, entry: &RouteEntry, parent: &Service) -> RouteAction {
    let port = |b: &Backend| {
        b.port
            .or_else(|| {
                ctx.services
                    .iter()
                    .find(|s| s.name == b.service && s.namespace == b.namespace)
                    .map(|s| s.port)
            })
            .unwrap_or(parent.port)
    };
    let live: Vec<&Backend> = entry.backends.iter().filter(|b| b.weight > 0).collect();
    let specifier = match live.as_slice() {
        [one] => route_action::ClusterSpecifier::Cluster(cluster_name(
            &one.service,
            &one.namespace,
            port(one),
        )),
        _ => route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: live
                .iter()
                .map(|b| ClusterWeight {
                    name: cluster_name(&b.service, &b.namespace, port(b)),
                    weight: Some(UInt32Value { value: b.weight }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    };
    let mut action = forward(ctx, specifier);
    action.cluster_not_found_response_code =
        route_action::ClusterNotFoundResponseCode::InternalServerError as i32;
    if let Some(host) = &entry.request_headers.host_rewrite {
        action.host_rewrite_specifier = Some(
            route_action::HostRewriteSpecifier::HostRewriteLiteral(host.clone()),
        );
    }
    action
}

/// `TranslateRouteMatch` with Gateway API semantics: a prefix other than `/` as a
/// `path_separated_prefix` without its trailing `/`, header matchers in name order, then the
/// method as a `:method` header matcher; `case_sensitive` spelled out for a route that matches
/// something.
fn route_match(entry: &RouteEntry) -> RouteMatch {
    let m = &entry.matched;
    let path = match &m.path {
        None => route_match::PathSpecifier::Prefix("/".into()),
        Some(StringMatch::Exact(p)) => route_match::PathSpecifier::Path(p.clone()),
        Some(StringMatch::PathPrefix(p)) if p == "/" => {
            route_match::PathSpecifier::Prefix("/".into())
        }
        Some(StringMatch::PathPrefix(p)) => route_match::PathSpecifier::PathSeparatedPrefix(
            p.strip_suffix('/').unwrap_or(p).to_owned(),
        ),
        Some(StringMatch::Regex(r)) => route_match::PathSpecifier::SafeRegex(regex(r)),
    };
    let mut headers: Vec<HeaderMatcher> = m
        .headers
        .iter()
        .map(|h| header_matcher(&h.name, &h.value))
        .collect();
    if let Some(method) = &m.method {
        headers.push(header_matcher(
            ":method",
            &StringMatch::Exact(method.clone()),
        ));
    }
    let matches_something = m.path.is_some() || !headers.is_empty();
    RouteMatch {
        path_specifier: Some(path),
        headers,
        case_sensitive: matches_something.then_some(BoolValue { value: true }),
        ..Default::default()
    }
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

/// Header changes: `set` entries overwrite, then `add` entries append.
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

/// Istio's name of a route for tracing (`GetRouteOperation`): the destination `host:port` when
/// there is one cluster, else the VirtualService and listener port; then the path.
fn operation(route: &Route, virtual_service: &str, port: u16) -> String {
    let path = match route
        .r#match
        .as_ref()
        .and_then(|m| m.path_specifier.as_ref())
    {
        Some(route_match::PathSpecifier::Prefix(p)) => format!("{p}*"),
        Some(route_match::PathSpecifier::Path(p)) => p.clone(),
        Some(route_match::PathSpecifier::SafeRegex(r)) => r.regex.clone(),
        _ => "/*".to_owned(),
    };
    let cluster = match &route.action {
        Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(c)),
            ..
        })) => Some(c.as_str()),
        _ => None,
    };
    // outbound|<port>|<subset>|<host>
    match cluster.map(|c| c.split('|').collect::<Vec<_>>()).as_deref() {
        Some([_, port, _, host]) => format!("{host}:{port}{path}"),
        _ => format!("{virtual_service}:{port}{path}"),
    }
}

/// The metadata Istio puts on a route: the VirtualService it came from (`util.go`:
/// `BuildConfigInfoMetadata`). The VirtualService's namespace is the first part of its name.
fn config_metadata(virtual_service: &str) -> Metadata {
    let namespace = virtual_service.split('~').next().unwrap_or_default();
    let config = format!(
        "/apis/networking.istio.io/v1/namespaces/{namespace}/virtual-service/{virtual_service}"
    );
    let istio = Struct {
        fields: BTreeMap::from([(
            "config".to_owned(),
            Value {
                kind: Some(value::Kind::StringValue(config)),
            },
        )])
        .into_iter()
        .collect(),
    };
    Metadata {
        filter_metadata: [("istio".to_owned(), istio)].into_iter().collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
