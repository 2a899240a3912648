//! Istio's ambient mode on the twin: ztunnel alone carries each connection to one pod it picks when
//! the connection opens (so a gRPC client is pinned and the routes are not applied); with a
//! waypoint attached to the Service, an Envoy balances each RPC and applies the routes. The client
//! and its target are the same as without a mesh.

use std::collections::BTreeSet;

use mesh::{
    gateway,
    twin::{Mesh, ServiceMode, Twin},
};

use super::support::{Client, assert_balanced, rt, spec};
use crate::common::root;

fn grpcroute() -> gateway::Routes {
    gateway::load(&root().join("gateway/grpcroute.yaml")).unwrap()
}

#[test]
fn ztunnel_alone_pins_each_connection_to_one_pod_and_ignores_the_routes() {
    let rt = rt();
    let mut twin = rt
        .block_on(Twin::start(spec(
            "ztunnel",
            &[("v1", 2), ("v2", 2)],
            ServiceMode::ClusterIp,
        )))
        .unwrap();
    let target = twin.target();
    rt.block_on(twin.set_mesh(Mesh::Ztunnel)).unwrap();
    rt.block_on(twin.set_routes(grpcroute())).unwrap();
    assert!(twin.sidecar().is_none() && twin.waypoint().is_none());
    assert_eq!(twin.target(), target, "the client's target is unchanged");
    // SayHello is routed to v1 only; ztunnel does not read requests, so a new connection lands on
    // any of the four pods. Twelve clients all on v1 would happen once in 4096 runs.
    let mut pods = BTreeSet::new();
    for _ in 0..12 {
        let client = Client::start(&target, &["--method", "SayHello"]);
        let counts = client.measure(2);
        assert_eq!(counts.errors, 0, "{counts:?}");
        assert_eq!(
            counts.by_server.len(),
            1,
            "one connection, one pod: {counts:?}"
        );
        pods.extend(counts.by_server.into_keys());
    }
    assert!(
        pods.iter().any(|p| p.starts_with("server-v2")),
        "the GRPCRoute is not applied at L4: {pods:?}"
    );
    assert!(pods.len() > 1, "each connection picks its pod: {pods:?}");
    rt.block_on(twin.shutdown());
}

#[test]
fn a_waypoint_balances_each_rpc_and_applies_the_grpcroute_and_its_weights() {
    let rt = rt();
    let mut twin = rt
        .block_on(Twin::start(spec(
            "waypoint",
            &[("v1", 2), ("v2", 2)],
            ServiceMode::ClusterIp,
        )))
        .unwrap();
    let target = twin.target();
    rt.block_on(twin.set_routes(grpcroute())).unwrap();
    rt.block_on(twin.set_mesh(Mesh::Waypoint)).unwrap();
    assert!(twin.sidecar().is_none(), "no sidecar in ambient mode");
    assert!(twin.waypoint().is_some());
    assert_eq!(twin.target(), target, "the client's target is unchanged");

    let client = Client::start(&target, &["--method", "SayHello"]);
    let v1_only = client.measure(4);
    assert_eq!(
        v1_only.by_version.keys().collect::<Vec<_>>(),
        vec!["v1"],
        "{v1_only:?}"
    );
    assert_balanced(&v1_only, 2);

    let pid = twin.waypoint().unwrap().pid();
    let routes = twin
        .routes()
        .with_weights(&[("server-v1", 50), ("server-v2", 50)])
        .unwrap();
    rt.block_on(twin.set_routes(routes)).unwrap();
    client.drain();
    let split = client.measure(6);
    assert_balanced(&split, 4);
    assert_eq!(twin.waypoint().unwrap().pid(), pid, "pushed, not restarted");
    drop(client);

    let again = Client::start(&target, &["--method", "SayHelloAgain"]);
    let v2_only = again.measure(2);
    assert_eq!(
        v2_only.by_version.keys().collect::<Vec<_>>(),
        vec!["v2"],
        "{v2_only:?}"
    );
    drop(again);
    rt.block_on(twin.shutdown());
}

#[test]
fn a_waypoint_sends_to_new_pods_and_leaving_it_stops_its_envoy() {
    let rt = rt();
    let mut twin = rt
        .block_on(Twin::start(spec(
            "waypoint-scale",
            &[("v1", 2)],
            ServiceMode::ClusterIp,
        )))
        .unwrap();
    rt.block_on(twin.set_mesh(Mesh::Waypoint)).unwrap();
    let client = Client::start(&twin.target(), &[]);
    assert_balanced(&client.measure(4), 2);
    rt.block_on(twin.scale("v1", 4)).unwrap();
    client.drain();
    client.drain();
    assert_balanced(&client.measure(6), 4);
    drop(client);

    let pid = twin.waypoint().unwrap().pid();
    rt.block_on(twin.set_mesh(Mesh::Ztunnel)).unwrap();
    assert!(twin.waypoint().is_none());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the waypoint's Envoy is gone"
    );
    let pinned = Client::start(&twin.target(), &[]).measure(2);
    assert_eq!(pinned.by_server.len(), 1, "{pinned:?}");
    rt.block_on(twin.shutdown());
}

/// ztunnel has already accepted the client's connection when it finds no ready endpoint: it closes
/// it (no refusal, no retry), which a gRPC client reports as UNAVAILABLE.
#[test]
fn with_no_ready_pod_ztunnel_closes_each_connection_and_the_client_sees_unavailable() {
    let rt = rt();
    let mut twin = rt
        .block_on(Twin::start(spec(
            "ztunnel-empty",
            &[("v1", 1)],
            ServiceMode::ClusterIp,
        )))
        .unwrap();
    rt.block_on(twin.set_mesh(Mesh::Ztunnel)).unwrap();
    rt.block_on(twin.scale("v1", 0)).unwrap();
    let client = Client::start(&twin.target(), &[]);
    let (ok, errors) = client.errors(3);
    assert_eq!(ok, 0, "{errors:?}");
    assert_eq!(
        errors.0.keys().collect::<Vec<_>>(),
        ["Unavailable"],
        "{errors:?}"
    );
    drop(client);
    rt.block_on(twin.shutdown());
}
