//! The translation, field by field, against what Istio 1.30 writes (each test names the Istio
//! function it follows in the module docs of `route`, `cluster`, `listener` and `retry`).

use envoy_types::pb::{
    envoy::{
        config::{
            cluster::v3::cluster,
            core::v3::header_value_option::HeaderAppendAction,
            listener::v3::filter,
            route::v3::{
                Route, RouteAction, VirtualHost, header_matcher, route, route_action, route_match,
            },
        },
        extensions::filters::network::http_connection_manager::v3::{
            HttpConnectionManager, http_connection_manager,
        },
        r#type::matcher::v3::string_matcher,
    },
    google::protobuf::{BoolValue, Duration, UInt32Value, value},
};

use super::*;
use crate::model::{
    Backend, HeaderMatch, HeaderModifier, Match, RetryPolicy, RouteEntry, RouteKind, StringMatch,
};

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

fn entry(kind: RouteKind, matched: Match, backends: Vec<Backend>) -> RouteEntry {
    RouteEntry {
        kind,
        name: "GRPCRoute default/r rule 0 match 0".into(),
        route_name: "default.r.0".into(),
        matched,
        backends,
        request_headers: HeaderModifier::default(),
    }
}

fn say_hello() -> Match {
    Match {
        path: Some(StringMatch::Exact("/hello.v1.Greeter/SayHello".into())),
        ..Match::default()
    }
}

fn grpc(backends: Vec<Backend>) -> RouteEntry {
    entry(RouteKind::Grpc, say_hello(), backends)
}

fn sidecar_with(routes: Vec<ServiceRoutes>, mesh: &MeshConfig) -> Resources {
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
        mesh,
    )
}

fn sidecar(routes: Vec<ServiceRoutes>) -> Resources {
    sidecar_with(routes, &MeshConfig::default())
}

fn host<'a>(r: &'a Resources, service: &str) -> &'a VirtualHost {
    r.routes[0]
        .virtual_hosts
        .iter()
        .find(|v| v.name.starts_with(&format!("{service}.")))
        .unwrap()
}

fn attached_on(port: Option<u16>, entries: Vec<RouteEntry>) -> Vec<ServiceRoutes> {
    vec![ServiceRoutes {
        service: "server".into(),
        namespace: "default".into(),
        port,
        virtual_service: "default~server.default.svc.cluster.local".into(),
        entries,
    }]
}

fn attached(entries: Vec<RouteEntry>) -> Vec<ServiceRoutes> {
    attached_on(None, entries)
}

fn action(route: &Route) -> &RouteAction {
    match &route.action {
        Some(route::Action::Route(a)) => a,
        other => panic!("a route action, not {other:?}"),
    }
}

fn direct_status(route: &Route) -> u32 {
    match &route.action {
        Some(route::Action::DirectResponse(d)) => d.status,
        other => panic!("a direct response, not {other:?}"),
    }
}

fn cluster_of(route: &Route) -> &str {
    match &action(route).cluster_specifier {
        Some(route_action::ClusterSpecifier::Cluster(c)) => c,
        other => panic!("one cluster, not {other:?}"),
    }
}

fn zero() -> Option<Duration> {
    Some(Duration {
        seconds: 0,
        nanos: 0,
    })
}

fn hcm(r: &Resources) -> HttpConnectionManager {
    let Some(filter::ConfigType::TypedConfig(any)) =
        &r.listeners[0].filter_chains[0].filters[0].config_type
    else {
        panic!("a typed filter")
    };
    HttpConnectionManager::decode(any.value.as_slice()).unwrap()
}

#[test]
fn each_service_gets_an_eds_cluster_with_istio_s_limits_balancing_and_timeouts() {
    let r = sidecar(vec![]);
    assert_eq!(r.clusters.len(), 3);
    assert_eq!(r.endpoints.len(), 3);
    assert_eq!(r.listeners.len(), 1, "one listener per port");
    let c = &r.clusters[0];
    assert_eq!(c.name, "outbound|50051||server.default.svc.cluster.local");
    assert_eq!(
        c.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32
        ))
    );
    let eds = c.eds_cluster_config.as_ref().unwrap();
    assert_eq!(eds.service_name, c.name);
    assert_eq!(
        eds.eds_config.as_ref().unwrap().initial_fetch_timeout,
        zero()
    );
    assert_eq!(
        c.connect_timeout,
        Some(Duration {
            seconds: 10,
            nanos: 0
        })
    );
    assert_eq!(c.lb_policy, cluster::LbPolicy::LeastRequest as i32);
    assert!(c.common_lb_config.is_some());
    let thresholds = &c.circuit_breakers.as_ref().unwrap().thresholds;
    assert_eq!(thresholds.len(), 1);
    let max = Some(UInt32Value { value: u32::MAX });
    let t = &thresholds[0];
    assert_eq!(
        (
            &t.max_connections,
            &t.max_pending_requests,
            &t.max_requests,
            &t.max_retries
        ),
        (&max, &max, &max, &max)
    );
    assert!(
        !t.track_remaining,
        "DISABLE_TRACK_REMAINING_CB_METRICS is true"
    );
    assert_eq!(t.retry_budget, None);
    assert!(
        c.typed_extension_protocol_options
            .contains_key("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
    );
    assert_eq!(r.endpoints[0].cluster_name, c.name);
}

#[test]
fn the_route_configuration_ignores_ports_and_names_services_as_a_pod_in_their_namespace_would() {
    let r = sidecar(vec![]);
    let rc = &r.routes[0];
    assert_eq!(rc.name, "50051");
    assert!(rc.ignore_port_in_host_matching);
    assert_eq!(rc.validate_clusters, Some(BoolValue { value: false }));
    assert_eq!(
        rc.max_direct_response_body_size_bytes,
        Some(UInt32Value { value: 1 << 20 })
    );
    let names: Vec<&str> = rc.virtual_hosts.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "server-v1.default.svc.cluster.local:50051",
            "server-v2.default.svc.cluster.local:50051",
            "server.default.svc.cluster.local:50051"
        ],
        "sorted by name, as Istio sorts them"
    );
    let vh = host(&r, "server");
    assert_eq!(
        vh.domains,
        [
            "server.default.svc.cluster.local",
            "server.default.svc.cluster.local.",
            "server",
            "server.default.svc",
            "server.default"
        ]
    );
    assert!(vh.include_request_attempt_count);
}

#[test]
fn a_service_in_another_namespace_is_named_with_its_namespace_and_a_headless_one_also_by_wildcard()
{
    let mut other = service("db");
    other.namespace = "data".into();
    assert_eq!(
        super::route::domains(&other, "default"),
        [
            "db.data.svc.cluster.local",
            "db.data.svc.cluster.local.",
            "db.data",
            "db.data.svc"
        ]
    );
    let mut headless = service("server");
    headless.headless = true;
    assert_eq!(
        super::route::domains(&headless, "default"),
        [
            "server.default.svc.cluster.local",
            "server.default.svc.cluster.local.",
            "server",
            "server.default.svc",
            "server.default",
            "*.server.default.svc.cluster.local",
            "*.server.default.svc.cluster.local.",
            "*.server",
            "*.server.default.svc",
            "*.server.default"
        ]
    );
}

#[test]
fn a_domain_a_second_service_would_share_stays_with_the_first_virtual_host() {
    let mut other = service("server");
    other.port = 50051;
    let twice = [service("server"), other];
    let r = resources(
        &Role::Sidecar {
            ip: "127.0.0.2".parse().unwrap(),
            passthrough: Vec::new(),
        },
        &twice,
        &[],
        &MeshConfig::default(),
    );
    let hosts = &r.routes[0].virtual_hosts;
    assert_eq!(hosts.len(), 1, "a virtual host without domains is left out");
    assert_eq!(hosts[0].domains.len(), 5);
}

#[test]
fn without_a_route_a_service_goes_to_itself_with_istio_s_default_route() {
    let r = sidecar(vec![]);
    let vh = host(&r, "server");
    assert_eq!(vh.routes.len(), 1);
    let route = &vh.routes[0];
    assert_eq!(route.name, "default");
    assert_eq!(
        route.r#match.as_ref().unwrap().path_specifier,
        Some(route_match::PathSpecifier::Prefix("/".into()))
    );
    assert_eq!(route.r#match.as_ref().unwrap().case_sensitive, None);
    assert_eq!(
        cluster_of(route),
        "outbound|50051||server.default.svc.cluster.local"
    );
    let a = action(route);
    assert_eq!(a.timeout, zero());
    #[allow(deprecated, reason = "the field Istio sets")]
    let max_grpc_timeout = &a.max_grpc_timeout;
    assert_eq!(*max_grpc_timeout, zero(), "the client's grpc-timeout holds");
    assert_eq!(a.cluster_not_found_response_code, 0, "Envoy's default, 503");
    assert_eq!(a.retry_policy, route_retry_policy(&MeshConfig::default()));
    assert!(
        a.retry_policy
            .as_ref()
            .unwrap()
            .retriable_status_codes
            .is_empty()
    );
    assert_eq!(
        route.decorator.as_ref().unwrap().operation,
        "server.default.svc.cluster.local:50051/*"
    );
}

#[test]
fn attached_routes_end_where_istio_ends_them_and_envoy_answers_404_to_the_rest() {
    let r = sidecar(attached(vec![grpc(vec![backend("server-v1", 1)])]));
    let routes = &host(&r, "server").routes;
    assert_eq!(routes.len(), 1, "no route of our own after the entries");
    let route = &routes[0];
    assert_eq!(route.name, "default.r.0");
    assert_eq!(
        cluster_of(route),
        "outbound|50051||server-v1.default.svc.cluster.local"
    );
    let a = action(route);
    assert_eq!(
        a.cluster_not_found_response_code,
        route_action::ClusterNotFoundResponseCode::InternalServerError as i32
    );
    assert_eq!(a.timeout, zero());
    #[allow(deprecated, reason = "the field Istio sets")]
    let max_grpc_timeout = &a.max_grpc_timeout;
    assert_eq!(*max_grpc_timeout, zero());
    assert_eq!(a.retry_policy, route_retry_policy(&MeshConfig::default()));
    assert_eq!(
        route.decorator.as_ref().unwrap().operation,
        "server-v1.default.svc.cluster.local:50051/hello.v1.Greeter/SayHello"
    );
    let istio = &route.metadata.as_ref().unwrap().filter_metadata["istio"];
    assert_eq!(
        istio.fields["config"].kind,
        Some(value::Kind::StringValue(
            "/apis/networking.istio.io/v1/namespaces/default/virtual-service/default~server.default.svc.cluster.local"
                .into()
        ))
    );
}

#[test]
fn rules_that_send_nowhere_answer_as_istio_does_404_for_an_httproute_without_backends_else_500() {
    let http_none = entry(RouteKind::Http, say_hello(), vec![]);
    let http_zero = entry(RouteKind::Http, say_hello(), vec![backend("server-v1", 0)]);
    let grpc_none = grpc(vec![]);
    let grpc_zero = grpc(vec![backend("server-v1", 0), backend("server-v2", 0)]);
    let r = sidecar(attached(vec![http_none, http_zero, grpc_none, grpc_zero]));
    let statuses: Vec<u32> = host(&r, "server")
        .routes
        .iter()
        .map(direct_status)
        .collect();
    assert_eq!(statuses, [404, 500, 500, 500]);
    let route = &host(&r, "server").routes[0];
    assert_eq!(
        route.metadata.as_ref().map(|m| m.filter_metadata.len()),
        Some(1)
    );
    assert_eq!(
        route.decorator.as_ref().unwrap().operation,
        "default~server.default.svc.cluster.local:50051/hello.v1.Greeter/SayHello"
    );
}

#[test]
fn weight_0_backends_are_left_out_and_one_left_is_a_plain_cluster() {
    let r = sidecar(attached(vec![grpc(vec![
        backend("server-v1", 3),
        backend("server-v2", 0),
    ])]));
    assert_eq!(
        cluster_of(&host(&r, "server").routes[0]),
        "outbound|50051||server-v1.default.svc.cluster.local"
    );
}

#[test]
fn two_weighted_backends_become_weighted_clusters_named_after_the_virtual_service() {
    let r = sidecar(attached(vec![grpc(vec![
        backend("server-v1", 95),
        backend("server-v2", 5),
    ])]));
    let route = &host(&r, "server").routes[0];
    let Some(route_action::ClusterSpecifier::WeightedClusters(w)) =
        &action(route).cluster_specifier
    else {
        panic!()
    };
    let weights: Vec<(&str, u32)> = w
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight.as_ref().unwrap().value))
        .collect();
    assert_eq!(
        weights,
        [
            ("outbound|50051||server-v1.default.svc.cluster.local", 95),
            ("outbound|50051||server-v2.default.svc.cluster.local", 5)
        ]
    );
    assert_eq!(
        route.decorator.as_ref().unwrap().operation,
        "default~server.default.svc.cluster.local:50051/hello.v1.Greeter/SayHello"
    );
}

#[test]
fn a_backend_without_a_port_goes_to_its_service_s_port_else_the_parent_s() {
    let mut missing = backend("server-v9", 1);
    missing.port = None;
    let mut known = backend("server-v1", 1);
    known.port = None;
    let mut v1 = service("server-v1");
    v1.port = 9000;
    let services = [service("server"), v1];
    let role = Role::Sidecar {
        ip: "127.0.0.2".parse().unwrap(),
        passthrough: Vec::new(),
    };
    let routes = attached(vec![grpc(vec![missing]), grpc(vec![known])]);
    let r = resources(&role, &services, &routes, &MeshConfig::default());
    let rc = r.routes.iter().find(|rc| rc.name == "50051").unwrap();
    let routes = &rc.virtual_hosts[0].routes;
    assert_eq!(
        cluster_of(&routes[0]),
        "outbound|50051||server-v9.default.svc.cluster.local"
    );
    assert_eq!(
        cluster_of(&routes[1]),
        "outbound|9000||server-v1.default.svc.cluster.local"
    );
}

#[test]
fn each_port_gets_its_listener_and_route_configuration_with_the_services_on_it() {
    let mut metrics = service("metrics");
    metrics.port = 9090;
    let services = [service("server"), metrics];
    let role = Role::Sidecar {
        ip: "127.0.0.2".parse().unwrap(),
        passthrough: Vec::new(),
    };
    let r = resources(&role, &services, &[], &MeshConfig::default());
    let listeners: Vec<&str> = r.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(listeners, ["127.0.0.2_9090", "127.0.0.2_50051"]);
    let hosts: Vec<(&str, Vec<&str>)> = r
        .routes
        .iter()
        .map(|rc| {
            (
                rc.name.as_str(),
                rc.virtual_hosts.iter().map(|v| v.name.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        hosts,
        [
            ("9090", vec!["metrics.default.svc.cluster.local:9090"]),
            ("50051", vec!["server.default.svc.cluster.local:50051"])
        ]
    );
}

#[test]
fn routes_attached_to_a_namesake_in_another_namespace_are_not_this_service_s() {
    let mut elsewhere = attached(vec![grpc(vec![backend("server-v2", 1)])]);
    elsewhere[0].namespace = "other".into();
    let r = sidecar(elsewhere);
    assert_eq!(host(&r, "server").routes[0].name, "default");
}

#[test]
fn request_header_changes_set_then_add_remove_and_rewrite_the_host() {
    let mut e = grpc(vec![backend("server-v1", 1)]);
    e.request_headers = HeaderModifier {
        set: vec![("x-set".into(), "1".into())],
        add: vec![("x-add".into(), "2".into())],
        remove: vec!["x-gone".into()],
        host_rewrite: Some("elsewhere".into()),
    };
    let r = sidecar(attached(vec![e]));
    let route = &host(&r, "server").routes[0];
    let added: Vec<(&str, &str, i32)> = route
        .request_headers_to_add
        .iter()
        .map(|o| {
            let h = o.header.as_ref().unwrap();
            (h.key.as_str(), h.value.as_str(), o.append_action)
        })
        .collect();
    assert_eq!(
        added,
        [
            (
                "x-set",
                "1",
                HeaderAppendAction::OverwriteIfExistsOrAdd as i32
            ),
            ("x-add", "2", HeaderAppendAction::AppendIfExistsOrAdd as i32)
        ]
    );
    assert_eq!(route.request_headers_to_remove, ["x-gone"]);
    assert_eq!(
        action(route).host_rewrite_specifier,
        Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(
            "elsewhere".into()
        ))
    );
}

#[test]
fn matches_become_istio_s_path_specifiers_then_headers_then_the_method() {
    let prefix = |p: &str| Match {
        path: Some(StringMatch::PathPrefix(p.into())),
        ..Match::default()
    };
    let with_headers = Match {
        path: Some(StringMatch::Regex("/[^/]+/SayHello".into())),
        method: Some("POST".into()),
        headers: vec![
            HeaderMatch {
                name: "X-A".into(),
                value: StringMatch::Exact("1".into()),
            },
            HeaderMatch {
                name: "x-b".into(),
                value: StringMatch::Regex("t.*".into()),
            },
        ],
    };
    let entries = vec![
        entry(
            RouteKind::Grpc,
            prefix("/hello.v1.Greeter/"),
            vec![backend("server-v1", 1)],
        ),
        entry(RouteKind::Http, with_headers, vec![backend("server-v1", 1)]),
        entry(RouteKind::Http, prefix("/"), vec![backend("server-v1", 1)]),
        entry(
            RouteKind::Grpc,
            Match::default(),
            vec![backend("server-v1", 1)],
        ),
    ];
    let r = sidecar(attached(entries));
    let matches: Vec<_> = host(&r, "server")
        .routes
        .iter()
        .map(|r| r.r#match.clone().unwrap())
        .collect();
    assert_eq!(
        matches[0].path_specifier,
        Some(route_match::PathSpecifier::PathSeparatedPrefix(
            "/hello.v1.Greeter".into()
        ))
    );
    assert_eq!(matches[0].case_sensitive, Some(BoolValue { value: true }));
    let Some(route_match::PathSpecifier::SafeRegex(re)) = &matches[1].path_specifier else {
        panic!()
    };
    assert_eq!(re.regex, "/[^/]+/SayHello");
    let headers: Vec<(&str, string_matcher::MatchPattern)> = matches[1]
        .headers
        .iter()
        .map(|h| {
            let Some(header_matcher::HeaderMatchSpecifier::StringMatch(m)) =
                &h.header_match_specifier
            else {
                panic!()
            };
            (h.name.as_str(), m.match_pattern.clone().unwrap())
        })
        .collect();
    assert_eq!(
        headers[0],
        ("X-A", string_matcher::MatchPattern::Exact("1".into()))
    );
    assert_eq!(headers[1].0, "x-b");
    assert!(
        matches!(&headers[1].1, string_matcher::MatchPattern::SafeRegex(r) if r.regex == "t.*")
    );
    assert_eq!(
        headers[2],
        (
            ":method",
            string_matcher::MatchPattern::Exact("POST".into())
        )
    );
    assert_eq!(
        matches[2].path_specifier,
        Some(route_match::PathSpecifier::Prefix("/".into()))
    );
    assert_eq!(matches[2].case_sensitive, Some(BoolValue { value: true }));
    assert_eq!(
        matches[3].path_specifier,
        Some(route_match::PathSpecifier::Prefix("/".into()))
    );
    assert_eq!(matches[3].case_sensitive, None, "a rule without matches");
    let operations: Vec<&str> = host(&r, "server")
        .routes
        .iter()
        .map(|r| r.decorator.as_ref().unwrap().operation.as_str())
        .collect();
    let v1 = "server-v1.default.svc.cluster.local:50051";
    assert_eq!(
        operations,
        [
            format!("{v1}/*"),
            format!("{v1}/[^/]+/SayHello"),
            format!("{v1}/*"),
            format!("{v1}/*")
        ]
    );
}

#[test]
fn the_mesh_s_default_retry_policy_goes_on_every_forwarding_route() {
    let mesh = MeshConfig {
        default_http_retry_policy: Some(RetryPolicy::istio_default_with("reset")),
    };
    let r = sidecar_with(attached(vec![grpc(vec![backend("server-v1", 1)])]), &mesh);
    let expected = route_retry_policy(&mesh);
    assert!(expected.as_ref().unwrap().retry_on.ends_with(",reset"));
    assert_eq!(action(&host(&r, "server").routes[0]).retry_policy, expected);
    assert_eq!(
        action(&host(&r, "server-v1").routes[0]).retry_policy,
        expected
    );
    let off = MeshConfig {
        default_http_retry_policy: Some(RetryPolicy {
            attempts: 0,
            retry_on: String::new(),
        }),
    };
    let r = sidecar_with(vec![], &off);
    assert_eq!(action(&host(&r, "server").routes[0]).retry_policy, None);
}

#[test]
fn routes_attached_to_the_service_s_port_are_used_and_those_of_another_port_are_not() {
    let on_port = sidecar(attached_on(
        Some(50051),
        vec![grpc(vec![backend("server-v2", 1)])],
    ));
    assert_eq!(
        cluster_of(&host(&on_port, "server").routes[0]),
        "outbound|50051||server-v2.default.svc.cluster.local"
    );
    let elsewhere = sidecar(attached_on(
        Some(8080),
        vec![grpc(vec![backend("server-v2", 1)])],
    ));
    assert_eq!(host(&elsewhere, "server").routes[0].name, "default");
    let empty = sidecar(attached(vec![]));
    assert_eq!(host(&empty, "server").routes[0].name, "default");
}

#[test]
fn the_listener_runs_istio_s_connection_manager_and_upstream_filter_chain() {
    let r = sidecar(vec![]);
    assert_eq!(r.listeners[0].name, "127.0.0.2_50051");
    let hcm = hcm(&r);
    let filters: Vec<&str> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        filters,
        [
            "envoy.filters.http.grpc_stats",
            "envoy.filters.http.fault",
            "envoy.filters.http.cors",
            "envoy.filters.http.router"
        ]
    );
    assert_eq!(hcm.stream_idle_timeout, zero());
    assert_eq!(hcm.normalize_path, Some(BoolValue { value: true }));
    assert_eq!(
        hcm.path_with_escaped_slashes_action,
        http_connection_manager::PathWithEscapedSlashesAction::KeepUnchanged as i32
    );
    assert_eq!(hcm.use_remote_address, Some(BoolValue { value: false }));
    assert_eq!(hcm.upgrade_configs.len(), 1);
    assert_eq!(hcm.upgrade_configs[0].upgrade_type, "websocket");
    assert_eq!(hcm.stat_prefix, "127_0_0_2_50051");
    let Some(http_connection_manager::RouteSpecifier::Rds(rds)) = &hcm.route_specifier else {
        panic!("rds")
    };
    assert_eq!(rds.route_config_name, "50051");
    assert_eq!(
        rds.config_source.as_ref().unwrap().initial_fetch_timeout,
        zero()
    );
}

#[test]
fn a_proxy_routes_everything_it_receives_to_its_service() {
    let services = [service("server"), service("server-v1")];
    let addr: SocketAddr = "127.0.0.3:50051".parse().unwrap();
    let role = Role::Proxy {
        addr,
        service: "server".into(),
    };
    let r = resources(&role, &services, &[], &MeshConfig::default());
    assert_eq!(r.listeners.len(), 1);
    assert_eq!(r.listeners[0].name, "proxy_127.0.0.3:50051");
    assert_eq!(r.routes[0].name, "proxy_50051");
    assert_eq!(r.routes[0].virtual_hosts.len(), 1);
    assert_eq!(r.routes[0].virtual_hosts[0].domains, ["*"]);
    let routes = attached(vec![grpc(vec![backend("server-v1", 1)])]);
    let r = resources(&role, &services, &routes, &MeshConfig::default());
    assert_eq!(
        cluster_of(&r.routes[0].virtual_hosts[0].routes[0]),
        "outbound|50051||server-v1.default.svc.cluster.local"
    );
    let unknown = Role::Proxy {
        addr,
        service: "nothing".into(),
    };
    let r = resources(&unknown, &services, &[], &MeshConfig::default());
    assert!(r.routes[0].virtual_hosts.is_empty());
}

#[test]
fn resources_of_one_type_are_listed_by_name() {
    let r = sidecar(vec![]);
    let names = |t: &str| -> Vec<String> { r.of_type(t).into_iter().map(|(n, _)| n).collect() };
    assert_eq!(names(LISTENER_TYPE), ["127.0.0.2_50051"]);
    assert_eq!(names(ROUTE_TYPE), ["50051"]);
    assert_eq!(names(CLUSTER_TYPE).len(), 3);
    assert_eq!(names(ENDPOINT_TYPE), names(CLUSTER_TYPE));
    assert!(r.of_type("type.googleapis.com/unknown").is_empty());
    let (_, any) = &r.of_type(ROUTE_TYPE)[0];
    assert_eq!(any.type_url, ROUTE_TYPE);
}
