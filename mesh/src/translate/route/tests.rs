//! The route configurations, field by field, against what Istio 1.30 writes (`route.rs` names the
//! Istio functions).

use envoy_types::pb::{
    envoy::{
        config::{
            core::v3::header_value_option::HeaderAppendAction,
            route::v3::{Route, header_matcher, route, route_action, route_match},
        },
        r#type::matcher::v3::string_matcher,
    },
    google::protobuf::{BoolValue, UInt32Value, value},
};

use crate::model::{HeaderMatch, HeaderModifier, Match, MeshConfig, RouteKind, StringMatch};
use crate::translate::{
    Role, resources, route_retry_policy,
    test_support::{
        action, attached, attached_on, backend, cluster_of, entry, grpc, host, say_hello, service,
        sidecar, zero,
    },
};

fn direct_status(route: &Route) -> u32 {
    match &route.action {
        Some(route::Action::DirectResponse(d)) => d.status,
        other => panic!("a direct response, not {other:?}"),
    }
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
        super::domains(&other, "default"),
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
        super::domains(&headless, "default"),
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
