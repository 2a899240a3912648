//! The route objects the demos apply pass the schemas of the Gateway API CRDs they are applied
//! to (the pinned release, v1.5.1, standard channel), as the API server checks them
//! ([`xtask::testing::crds`] finds and reads the CRDs).

use serde_json::{Value, json};
use xtask::testing::crds::Crds;

fn gateway_routes() -> Vec<Value> {
    let dir = xtask::project::root().join("gateway");
    let objects = mesh::gateway::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    objects
        .into_iter()
        .map(|object| {
            let mut value = match object {
                mesh::gateway::RouteObject::Http(route) => serde_json::to_value(route),
                mesh::gateway::RouteObject::Grpc(route) => serde_json::to_value(route),
            }
            .unwrap();
            value["metadata"]["namespace"] = json!("gml-crds");
            value
        })
        .collect()
}

fn route_of_kind(kind: &str) -> Value {
    gateway_routes()
        .into_iter()
        .find(|r| r["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in gateway/"))
}

#[test]
fn every_route_file_passes_the_gateway_api_schemas() {
    let crds = Crds::load();
    let routes = gateway_routes();
    let kinds: Vec<&str> = routes.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert!(
        kinds.contains(&"HTTPRoute") && kinds.contains(&"GRPCRoute"),
        "{kinds:?}"
    );
    for route in &routes {
        if let Err(e) = crds.check(route) {
            panic!("{e}\n{route:#}");
        }
    }
}

#[test]
fn a_weight_above_one_million_is_refused() {
    let crds = Crds::load();
    for kind in ["HTTPRoute", "GRPCRoute"] {
        let mut route = route_of_kind(kind);
        route["spec"]["rules"][0]["backendRefs"][0]["weight"] = json!(2_000_000);
        let err = crds.check(&route).unwrap_err();
        assert!(err.contains("2000000"), "{err}");
    }
}

#[test]
fn a_parent_ref_without_a_name_is_refused() {
    let crds = Crds::load();
    for kind in ["HTTPRoute", "GRPCRoute"] {
        let mut route = route_of_kind(kind);
        route["spec"]["parentRefs"][0]
            .as_object_mut()
            .unwrap()
            .remove("name");
        let err = crds.check(&route).unwrap_err();
        assert!(err.contains("\"name\" is a required property"), "{err}");
    }
}

#[test]
fn a_kind_or_version_the_crds_do_not_serve_is_an_error() {
    let crds = Crds::load();
    let mut route = route_of_kind("HTTPRoute");
    route["apiVersion"] = json!("gateway.networking.k8s.io/v9");
    assert!(
        crds.check(&route)
            .unwrap_err()
            .contains("no served version v9")
    );
    route["kind"] = json!("UDPRoute");
    assert!(
        crds.check(&route)
            .unwrap_err()
            .contains("no CRD for UDPRoute")
    );
}
