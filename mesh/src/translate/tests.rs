//! What `resources` puts together for each role: a listener and a route configuration per port,
//! a proxy's one listener, and the resources listed by xDS type. Each part is tested beside its
//! module (`route/tests.rs`, `cluster/tests.rs`, `listener/tests.rs`, `retry/tests.rs`,
//! `passthrough/tests.rs`), against what Istio 1.30 writes.

use super::test_support::{attached, backend, cluster_of, grpc, service, sidecar};
use super::*;

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
