//! Services: a ClusterIP Service behind its virtual IP, a headless one through our DNS, either behind
//! the sidecar, scaled up and switched from one type to the other while the sidecar runs.

use mesh::twin::{Mesh, ServiceMode, Twin};

use super::support::{Client, assert_balanced, meshed, rt, spec};

#[test]
fn a_cluster_ip_service_pins_a_round_robin_client_to_one_pod() {
    let rt = rt();
    let twin = rt
        .block_on(Twin::start(spec(
            "clusterip",
            &[("v1", 3)],
            ServiceMode::ClusterIp,
        )))
        .unwrap();
    let client = Client::start(&twin.target(), &[]);
    let counts = client.measure(5);
    assert!(counts.ok > 0);
    assert_eq!(
        counts.by_server.len(),
        1,
        "one connection through the virtual ip, one pod: {counts:?}"
    );
    drop(client);
    rt.block_on(twin.shutdown());
}

#[test]
fn a_headless_service_balances_but_a_scale_up_goes_unnoticed() {
    let rt = rt();
    let mut twin = rt
        .block_on(Twin::start(spec(
            "headless",
            &[("v1", 3)],
            ServiceMode::Headless,
        )))
        .unwrap();
    let client = Client::start(&twin.target(), &[]);
    let before = client.measure(5);
    assert_eq!(before.by_server.len(), 3, "{before:?}");
    rt.block_on(twin.scale("v1", 5)).unwrap();
    client.drain();
    let after = client.measure(5);
    assert!(after.ok > 0);
    assert!(
        !after.by_server.contains_key("server-v1-3")
            && !after.by_server.contains_key("server-v1-4"),
        "{after:?}"
    );
    drop(client);
    rt.block_on(twin.shutdown());
}

#[test]
fn a_sidecar_balances_per_rpc_and_sends_to_new_pods_at_once() {
    let rt = rt();
    let mut twin = rt
        .block_on(Twin::start(spec(
            "sidecar",
            &[("v1", 3)],
            ServiceMode::ClusterIp,
        )))
        .unwrap();
    rt.block_on(twin.set_mesh(Mesh::Sidecar)).unwrap();
    let client = Client::start(&twin.target(), &[]);
    let before = client.measure(5);
    assert_eq!(before.errors, 0, "{before:?}");
    for i in 0..3 {
        let share = before.share(&format!("server-v1-{i}"));
        assert!(
            (0.2..0.47).contains(&share),
            "pod {i} got {share:.2}: {before:?}"
        );
    }
    let pid = twin.sidecar().unwrap().pid();
    rt.block_on(twin.scale("v1", 5)).unwrap();
    client.drain();
    let after = client.measure(5);
    assert_eq!(
        after.by_server.len(),
        5,
        "new pods get traffic without the client reconnecting: {after:?}"
    );
    assert_eq!(
        twin.sidecar().unwrap().pid(),
        pid,
        "the sidecar was not restarted"
    );
    drop(client);
    rt.block_on(twin.shutdown());
}

#[test]
fn a_headless_service_behind_a_sidecar_keeps_a_pick_first_client_on_one_pod() {
    let rt = rt();
    let twin = meshed(&rt, "headless-pick-first", 3, ServiceMode::Headless);
    let client = Client::start(&twin.target(), &["--lb", "pick_first"]);
    let counts = client.measure(5);
    assert!(counts.ok > 0 && counts.errors == 0, "{counts:?}");
    assert_eq!(
        counts.by_server.len(),
        1,
        "the sidecar passes each connection through to the pod the client chose: {counts:?}"
    );
    let stats = rt.block_on(twin.sidecar().unwrap().stats()).unwrap();
    let through_sidecar: u64 = stats
        .iter()
        .filter(|(k, _)| {
            k.starts_with("cluster.outbound|50051||server.") && k.ends_with(".upstream_rq_total")
        })
        .map(|(_, v)| v)
        .sum();
    assert!(
        through_sidecar > 0,
        "the requests went through the sidecar's cluster of server"
    );
    drop(client);
    rt.block_on(twin.shutdown());
}

#[test]
fn a_cluster_ip_service_behind_a_sidecar_balances_a_pick_first_client() {
    let rt = rt();
    let twin = meshed(&rt, "clusterip-pick-first", 3, ServiceMode::ClusterIp);
    let client = Client::start(&twin.target(), &["--lb", "pick_first"]);
    assert_balanced(&client.measure(5), 3);
    drop(client);
    rt.block_on(twin.shutdown());
}

#[test]
fn a_headless_service_behind_a_sidecar_follows_the_round_robin_client_s_own_spread() {
    let rt = rt();
    let mut twin = meshed(&rt, "headless-round-robin", 3, ServiceMode::Headless);
    let client = Client::start(&twin.target(), &[]);
    assert_balanced(&client.measure(5), 3);
    // The client chose its three pods when it resolved; the sidecar does not add the new ones.
    rt.block_on(twin.scale("v1", 5)).unwrap();
    client.drain();
    let after = client.measure(5);
    assert!(after.ok > 0 && after.errors == 0, "{after:?}");
    assert_eq!(after.by_server.len(), 3, "new pods get nothing: {after:?}");
    drop(client);
    rt.block_on(twin.shutdown());
}

#[test]
fn the_service_type_changes_while_the_sidecar_runs() {
    let rt = rt();
    let mut twin = meshed(&rt, "set-mode", 3, ServiceMode::Headless);
    let pid = twin.sidecar().unwrap().pid();
    let pinned = Client::start(&twin.target(), &["--lb", "pick_first"]);
    assert_eq!(pinned.measure(3).by_server.len(), 1);
    drop(pinned);
    rt.block_on(twin.set_mode(ServiceMode::ClusterIp)).unwrap();
    assert_eq!(twin.mode(), ServiceMode::ClusterIp);
    assert!(!twin.services()[0].headless);
    let listeners = |twin: &Twin| {
        twin.control_plane()
            .snapshot("sidecar")
            .resources
            .listeners
            .len()
    };
    assert_eq!(listeners(&twin), 1, "the intercepting listeners are gone");
    let balanced = Client::start(&twin.target(), &["--lb", "pick_first"]);
    assert_balanced(&balanced.measure(5), 3);
    drop(balanced);
    rt.block_on(twin.set_mode(ServiceMode::Headless)).unwrap();
    assert!(twin.services()[0].headless);
    assert!(listeners(&twin) > 1);
    let pinned = Client::start(&twin.target(), &["--lb", "pick_first"]);
    let counts = pinned.measure(3);
    assert_eq!(counts.by_server.len(), 1, "{counts:?}");
    assert_eq!(counts.errors, 0, "{counts:?}");
    assert_eq!(
        twin.sidecar().unwrap().pid(),
        pid,
        "the sidecar was not restarted"
    );
    drop(pinned);
    rt.block_on(twin.shutdown());
}
