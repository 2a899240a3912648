//! What the translation's unit tests share: Services, backends and route entries like the demos',
//! a sidecar's resources built from them, and the way into a virtual host's routes.

use envoy_types::pb::{
    envoy::config::route::v3::{Route, RouteAction, VirtualHost, route, route_action},
    google::protobuf::Duration,
};

use super::{Resources, Role, resources};
use crate::model::{
    Backend, HeaderModifier, Match, MeshConfig, RouteEntry, RouteKind, Service, ServiceRoutes,
    StringMatch,
};

pub(super) fn service(name: &str) -> Service {
    Service {
        name: name.into(),
        namespace: "default".into(),
        port: 50051,
        endpoints: vec!["127.0.0.1:1".parse().unwrap()],
        headless: false,
    }
}

pub(super) fn backend(name: &str, weight: u32) -> Backend {
    Backend {
        service: name.into(),
        namespace: "default".into(),
        port: Some(50051),
        weight,
    }
}

pub(super) fn entry(kind: RouteKind, matched: Match, backends: Vec<Backend>) -> RouteEntry {
    RouteEntry {
        kind,
        name: "GRPCRoute default/r rule 0 match 0".into(),
        route_name: "default.r.0".into(),
        matched,
        backends,
        request_headers: HeaderModifier::default(),
    }
}

pub(super) fn say_hello() -> Match {
    Match {
        path: Some(StringMatch::Exact("/hello.v1.Greeter/SayHello".into())),
        ..Match::default()
    }
}

pub(super) fn grpc(backends: Vec<Backend>) -> RouteEntry {
    entry(RouteKind::Grpc, say_hello(), backends)
}

pub(super) fn sidecar_with(routes: Vec<ServiceRoutes>, mesh: &MeshConfig) -> Resources {
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

pub(super) fn sidecar(routes: Vec<ServiceRoutes>) -> Resources {
    sidecar_with(routes, &MeshConfig::default())
}

pub(super) fn host<'a>(r: &'a Resources, service: &str) -> &'a VirtualHost {
    r.routes[0]
        .virtual_hosts
        .iter()
        .find(|v| v.name.starts_with(&format!("{service}.")))
        .unwrap()
}

pub(super) fn attached_on(port: Option<u16>, entries: Vec<RouteEntry>) -> Vec<ServiceRoutes> {
    vec![ServiceRoutes {
        service: "server".into(),
        namespace: "default".into(),
        port,
        virtual_service: "default~server.default.svc.cluster.local".into(),
        entries,
    }]
}

pub(super) fn attached(entries: Vec<RouteEntry>) -> Vec<ServiceRoutes> {
    attached_on(None, entries)
}

pub(super) fn action(route: &Route) -> &RouteAction {
    match &route.action {
        Some(route::Action::Route(a)) => a,
        other => panic!("a route action, not {other:?}"),
    }
}

pub(super) fn cluster_of(route: &Route) -> &str {
    match &action(route).cluster_specifier {
        Some(route_action::ClusterSpecifier::Cluster(c)) => c,
        other => panic!("one cluster, not {other:?}"),
    }
}

pub(super) fn zero() -> Option<Duration> {
    Some(Duration {
        seconds: 0,
        nanos: 0,
    })
}
