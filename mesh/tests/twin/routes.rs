//! Routes and the mesh config, pushed over xDS to the sidecar while the client runs: weights,
//! methods and headers, rules that match nothing or send nowhere. (A route set the twin is given
//! was validated when it was made: `tests/gateway/` tests the refusals.)

use mesh::{
    gateway,
    twin::{Mesh, ServiceMode, Twin},
};

use super::support::{Client, meshed, rt, spec};
use crate::common::root;

#[test]
fn httproute_weights_pushed_over_xds_split_traffic_without_a_restart() {
    let rt = rt();
    let mut twin = rt
        .block_on(Twin::start(spec(
            "weights",
            &[("v1", 2), ("v2", 2)],
            ServiceMode::ClusterIp,
        )))
        .unwrap();
    rt.block_on(twin.set_mesh(Mesh::Sidecar)).unwrap();
    let routes = gateway::load(&root().join("gateway/httproute.yaml")).unwrap();
    rt.block_on(twin.set_routes(routes.clone())).unwrap();
    assert_eq!(twin.routes(), &routes);
    let client = Client::start(&twin.target(), &[]);
    let all_v1 = client.measure(4);
    assert_eq!(all_v1.by_version.get("v2"), None, "100/0: {all_v1:?}");
    let pid = twin.sidecar().unwrap().pid();
    let routes = twin
        .routes()
        .with_weights(&[("server-v1", 0), ("server-v2", 100)])
        .unwrap();
    rt.block_on(twin.set_routes(routes)).unwrap();
    client.drain();
    let all_v2 = client.measure(4);
    assert_eq!(all_v2.by_version.get("v1"), None, "0/100: {all_v2:?}");
    assert!(all_v2.ok > 0 && all_v2.errors == 0, "{all_v2:?}");
    assert_eq!(twin.sidecar().unwrap().pid(), pid);
    drop(client);
    rt.block_on(twin.shutdown());
}

#[test]
fn grpcroute_sends_each_method_and_the_canary_header_where_the_route_says() {
    let rt = rt();
    let mut twin = rt
        .block_on(Twin::start(spec(
            "grpcroute",
            &[("v1", 1), ("v2", 1)],
            ServiceMode::ClusterIp,
        )))
        .unwrap();
    rt.block_on(twin.set_mesh(Mesh::Sidecar)).unwrap();
    let routes = gateway::load(&root().join("gateway/grpcroute.yaml")).unwrap();
    rt.block_on(twin.set_routes(routes)).unwrap();
    let target = twin.target();
    for (args, version) in [
        (&["--method", "SayHello"][..], "v1"),
        (&["--method", "SayHelloAgain"][..], "v2"),
        (
            &["--method", "SayHello", "--header", "x-canary=true"][..],
            "v2",
        ),
    ] {
        let client = Client::start(&target, args);
        let counts = client.measure(3);
        assert!(counts.ok > 0, "{args:?}: {counts:?}");
        assert_eq!(
            counts.by_version.keys().collect::<Vec<_>>(),
            vec![version],
            "{args:?}: {counts:?}"
        );
    }
    rt.block_on(twin.shutdown());
}

fn routes(yaml: &str) -> gateway::Routes {
    gateway::parse(yaml, "test").unwrap()
}

#[test]
fn a_request_no_rule_matches_gets_unimplemented() {
    let rt = rt();
    let mut twin = rt
        .block_on(Twin::start(spec(
            "nomatch",
            &[("v1", 1)],
            ServiceMode::ClusterIp,
        )))
        .unwrap();
    rt.block_on(twin.set_mesh(Mesh::Sidecar)).unwrap();
    let only_again = "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: again}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: server}]\n  rules:\n  - matches: [{method: {service: hello.v1.Greeter, method: SayHelloAgain}}]\n    backendRefs: [{name: server-v1, port: 50051}]\n";
    rt.block_on(twin.set_routes(routes(only_again))).unwrap();
    let client = Client::start(&twin.target(), &["--method", "SayHello"]);
    let (ok, errors) = client.errors(3);
    assert_eq!(ok, 0, "{errors:?}");
    assert!(
        errors.0.get("Unimplemented").is_some_and(|n| *n > 0),
        "{errors:?}"
    );
    assert_eq!(errors.0.len(), 1, "{errors:?}");
    drop(client);
    rt.block_on(twin.shutdown());
}

/// Istio keeps a backendRef to a Service that does not exist and answers its share with HTTP 500,
/// which a gRPC client reads as UNKNOWN.
#[test]
fn the_share_aimed_at_a_missing_service_gets_unknown_and_a_warning() {
    let rt = rt();
    let mut twin = rt
        .block_on(Twin::start(spec(
            "missing",
            &[("v1", 1)],
            ServiceMode::ClusterIp,
        )))
        .unwrap();
    rt.block_on(twin.set_mesh(Mesh::Sidecar)).unwrap();
    let half_missing = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: half}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: server}]\n  rules:\n  - backendRefs:\n    - {name: server-v1, port: 50051, weight: 50}\n    - {name: server-v9, port: 50051, weight: 50}\n";
    let warnings = rt.block_on(twin.set_routes(routes(half_missing))).unwrap();
    assert!(
        warnings.iter().any(|w| w.to_string().contains("server-v9")),
        "{warnings:?}"
    );
    let client = Client::start(&twin.target(), &[]);
    let (ok, errors) = client.errors(6);
    let failed = errors.0.get("Unknown").copied().unwrap_or(0);
    let share = failed as f64 / (ok + failed) as f64;
    assert!(
        (0.35..0.65).contains(&share),
        "about half fails: ok {ok}, {errors:?}"
    );
    assert_eq!(errors.0.len(), 1, "{errors:?}");
    drop(client);
    rt.block_on(twin.shutdown());
}

#[test]
fn the_mesh_config_is_translated_into_the_sidecar_s_configuration() {
    use mesh::model::{MeshConfig, RetryPolicy};
    let rt = rt();
    let mut twin = meshed(&rt, "mesh-config", 1, ServiceMode::ClusterIp);
    let config = MeshConfig {
        default_http_retry_policy: Some(RetryPolicy {
            attempts: 2,
            retry_on: "connect-failure,refused-stream,unavailable,cancelled,reset".into(),
        }),
    };
    rt.block_on(twin.set_mesh_config(config.clone())).unwrap();
    assert_eq!(twin.mesh_config(), &config);
    let services = twin.services();
    let (routes, _) = gateway::route_table(&[], &services);
    let expected = mesh::translate::resources(
        &mesh::translate::Role::Sidecar {
            ip: "127.0.0.1".parse().unwrap(),
            passthrough: Vec::new(),
        },
        &services,
        &routes,
        &config,
    );
    let snapshot = twin.control_plane().snapshot("sidecar");
    assert_eq!(snapshot.resources.routes, expected.routes);
    let version = snapshot.version;
    rt.block_on(twin.control_plane().wait_acked("sidecar", version))
        .unwrap();
    rt.block_on(twin.shutdown());
}
