//! The route check against the configuration dump Istio 1.30 writes for the grpcroute demo (derived from
//! Istio's source field by field: `istio-grpcroute-90-10.md`), and against the dump of a real Envoy that our
//! own control plane configured from the same route file.

use serde_json::{Value, json};

use super::*;
use crate::{cluster::objects, harness::scenario};

/// `gateway/grpcroute.yaml` in `gml-grpcroute`, as Istio writes it with SayHello at 90/10.
fn istio_dump() -> Value {
    serde_json::from_str(include_str!("istio-grpcroute-90-10.json")).unwrap()
}

const HOST: &str = "server.gml-grpcroute.svc.cluster.local";

fn grpcroute_expected(weights: &[(&str, u32)]) -> Vec<Split> {
    let scenario = scenario::get("grpcroute").unwrap();
    let routes = objects::route_objects(&scenario, Some(weights)).unwrap();
    expected(&routes, &objects::mesh_services(&scenario), "server")
}

fn split(pairs: &[(&str, u64)]) -> Split {
    pairs.iter().map(|(s, w)| ((*s).to_owned(), *w)).collect()
}

#[test]
fn the_grpcroute_file_asks_for_the_canary_the_method_and_the_weighted_split() {
    let expected = grpcroute_expected(&[("server-v1", 90), ("server-v2", 10)]);
    assert_eq!(
        expected,
        vec![
            split(&[("server-v2", 1)]),
            split(&[("server-v1", 9), ("server-v2", 1)])
        ]
    );
}

#[test]
fn a_weight_of_zero_is_no_part_of_a_split() {
    let expected = grpcroute_expected(&[("server-v1", 100), ("server-v2", 0)]);
    assert!(
        expected.contains(&split(&[("server-v1", 1)])),
        "{expected:?}"
    );
}

#[test]
fn an_istio_dump_holding_the_applied_weights_passes() {
    let expected = grpcroute_expected(&[("server-v1", 90), ("server-v2", 10)]);
    check(&istio_dump(), HOST, &expected).unwrap();
}

#[test]
fn the_twin_expects_the_splits_in_the_order_istio_programs_them() {
    let expected = grpcroute_expected(&[("server-v1", 90), ("server-v2", 10)]);
    assert_eq!(found(&istio_dump(), HOST), Some(expected));
}

#[test]
fn an_istio_dump_with_older_weights_fails_naming_the_split_it_lacks_and_what_it_has() {
    let expected = grpcroute_expected(&[("server-v1", 50), ("server-v2", 50)]);
    let err = check(&istio_dump(), HOST, &expected).unwrap_err();
    assert_eq!(
        err,
        "the sidecar's routes for server.gml-grpcroute.svc.cluster.local lack server-v1=1 server-v2=1 \
         (it has server-v2=1, server-v1=9 server-v2=1)"
    );
}

#[test]
fn a_sidecar_left_with_the_default_route_fails_as_in_istio_issue_57772() {
    let mut dump = istio_dump();
    let vh =
        &mut dump["configs"][2]["dynamic_route_configs"][0]["route_config"]["virtual_hosts"][2];
    assert_eq!(vh["domains"][0], json!(HOST));
    vh["routes"] = json!([{ "name": "default", "match": { "prefix": "/" },
        "route": { "cluster": "outbound|50051||server.gml-grpcroute.svc.cluster.local" } }]);
    let expected = grpcroute_expected(&[("server-v1", 90), ("server-v2", 10)]);
    let err = check(&dump, HOST, &expected).unwrap_err();
    assert!(err.ends_with("(it has server=1)"), "{err}");
}

#[test]
fn a_dump_without_the_virtual_host_says_so() {
    let err = check(&istio_dump(), "server.elsewhere.svc.cluster.local", &[]).unwrap_err();
    assert_eq!(
        err,
        "the sidecar has no route for server.elsewhere.svc.cluster.local"
    );
}

#[test]
fn cluster_names_read_as_their_service() {
    assert_eq!(
        service_of("outbound|50051||server-v1.gml-x.svc.cluster.local"),
        "server-v1"
    );
    assert_eq!(
        service_of("outbound|50051|v1|server.gml-x.svc.cluster.local"),
        "server"
    );
    assert_eq!(service_of("PassthroughCluster"), "PassthroughCluster");
}

/// A real Envoy 1.40 sidecar of the local twin, fed by our control plane from `gateway/grpcroute.yaml`: its
/// `/config_dump` holds exactly the splits the route asks for, and the check tells a change of weights that
/// did not reach it.
#[test]
fn the_check_reads_a_real_envoy_config_dump() {
    use mesh::twin::{Mesh, ServiceMode, Twin, TwinSpec};
    let root = crate::project::root();
    let envoy = mesh::envoy::find(&root, &mut |line| eprintln!("{line}")).unwrap();
    let work_dir = root
        .join("target/tmp/route-check")
        .join(std::process::id().to_string());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // No server pods: the sidecar's routes do not need any.
        let spec = TwinSpec {
            server_bin: root.join("target/no-server-is-started"),
            envoy_bin: Some(envoy),
            work_dir: work_dir.clone(),
            versions: vec![("v1".into(), 0), ("v2".into(), 0)],
            server_env: Vec::new(),
            mode: ServiceMode::ClusterIp,
        };
        let mut twin = Twin::start(spec).await.unwrap();
        let routes = mesh::gateway::load(&root.join("gateway/grpcroute.yaml")).unwrap();
        twin.set_routes(routes.clone()).await.unwrap();
        twin.set_mesh(Mesh::Sidecar).await.unwrap();
        let weighted = routes
            .with_weights(&[("server-v1", 3), ("server-v2", 1)])
            .unwrap();
        let services = twin.services();
        let host = "server.default.svc.cluster.local";
        let dump = twin.sidecar().unwrap().config_dump().await.unwrap();
        let before = check(&dump, host, &expected(&routes, &services, "server"));
        let not_yet = check(&dump, host, &expected(&weighted, &services, "server"));
        twin.set_routes(weighted.clone()).await.unwrap();
        let dump = twin.sidecar().unwrap().config_dump().await.unwrap();
        let after = check(&dump, host, &expected(&weighted, &services, "server"));
        twin.shutdown().await;
        let _ = std::fs::remove_dir_all(&work_dir);
        before.unwrap();
        assert_eq!(
            not_yet.unwrap_err(),
            "the sidecar's routes for server.default.svc.cluster.local lack server-v1=3 server-v2=1 \
             (it has server-v2=1, server-v1=1)"
        );
        after.unwrap();
    });
}

/// A waypoint's dump: its inbound HTTP routes for `server` inline in a listener, as Istio 1.30 writes them.
fn waypoint_dump(clusters: &[(&str, u64)]) -> Value {
    let clusters: Vec<Value> = clusters
        .iter()
        .map(|(name, weight)| serde_json::json!({ "name": name, "weight": weight }))
        .collect();
    serde_json::json!({ "configs": [{ "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
        "dynamic_listeners": [{ "name": "main_internal", "active_state": { "listener": { "filter_chains": [
            { "filters": [{ "name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "route_config": { "name": "inbound-vip|50051|http|server.gml-x.svc.cluster.local",
                    "virtual_hosts": [{ "name": "inbound|http|50051", "domains": ["*"], "routes": [
                        { "route": { "weighted_clusters": { "clusters": clusters } } }] }] } } }] }] } } }] }] })
}

#[test]
fn a_waypoint_holds_the_split_in_its_inline_route_configuration_with_outbound_or_inbound_vip_clusters()
 {
    let host = "server.gml-x.svc.cluster.local";
    let expected: Split = [("server-v1".to_owned(), 9), ("server-v2".to_owned(), 1)].into();
    let outbound = waypoint_dump(&[
        ("outbound|50051||server-v1.gml-x.svc.cluster.local", 90),
        ("outbound|50051||server-v2.gml-x.svc.cluster.local", 10),
    ]);
    let inbound_vip = waypoint_dump(&[
        (
            "inbound-vip|50051|http|server-v1.gml-x.svc.cluster.local",
            9,
        ),
        (
            "inbound-vip|50051|http|server-v2.gml-x.svc.cluster.local",
            1,
        ),
    ]);
    assert_eq!(
        check_waypoint(&outbound, host, 50051, std::slice::from_ref(&expected)),
        Ok(())
    );
    assert_eq!(
        check_waypoint(&inbound_vip, host, 50051, std::slice::from_ref(&expected)),
        Ok(())
    );
    let half = waypoint_dump(&[
        ("outbound|50051||server-v1.gml-x.svc.cluster.local", 50),
        ("outbound|50051||server-v2.gml-x.svc.cluster.local", 50),
    ]);
    assert_eq!(
        check_waypoint(&half, host, 50051, std::slice::from_ref(&expected)),
        Err("the waypoint's routes for server.gml-x.svc.cluster.local lack server-v1=9 server-v2=1 (it has server-v1=1 server-v2=1)".into())
    );
    assert_eq!(
        check_waypoint(&outbound, "server.gml-y.svc.cluster.local", 50051, &[expected]),
        Err("the waypoint has no route configuration inbound-vip|50051|http|server.gml-y.svc.cluster.local".into())
    );
    assert_eq!(
        found(&outbound, host),
        None,
        "not in RDS, where a sidecar keeps its routes"
    );
}
