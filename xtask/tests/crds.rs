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

/// What `cargo xtask manifests ambient` prints, as JSON objects.
fn ambient_manifests() -> Vec<Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["manifests", "ambient"])
        .current_dir(xtask::project::root())
        .output()
        .expect("run xtask");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            use serde::Deserialize;
            let yaml = serde_yaml::Value::deserialize(doc).unwrap();
            serde_json::to_value(yaml).unwrap()
        })
        .collect()
}

#[test]
fn the_ambient_manifests_enroll_the_namespace_attach_the_waypoint_and_pass_the_gateway_api_schemas()
{
    let crds = Crds::load();
    let objects = ambient_manifests();
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in the manifests"))
    };
    assert_eq!(
        find("Namespace", "gml-ambient")["metadata"]["labels"]["istio.io/dataplane-mode"],
        "ambient"
    );
    assert_eq!(
        find("Service", "server")["metadata"]["labels"]["istio.io/use-waypoint"],
        "waypoint"
    );
    let gateway = find("Gateway", "waypoint");
    assert_eq!(gateway["spec"]["gatewayClassName"], "istio-waypoint");
    assert_eq!(
        gateway["spec"]["listeners"],
        json!([{ "name": "mesh", "port": 15008, "protocol": "HBONE" }])
    );
    let ambient_client = find("Deployment", "client-ambient");
    assert!(
        ambient_client["spec"]["template"]["metadata"]["labels"]
            .get("sidecar.istio.io/inject")
            .is_none(),
        "no sidecar in the ambient client"
    );
    let gateway_api: Vec<&Value> = objects
        .iter()
        .filter(|o| {
            o["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("gateway.networking.k8s.io/"))
        })
        .collect();
    let kinds: Vec<&str> = gateway_api
        .iter()
        .filter_map(|o| o["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["GRPCRoute", "Gateway"]);
    for object in gateway_api {
        if let Err(e) = crds.check(object) {
            panic!("{e}\n{object:#}");
        }
    }
}

#[test]
fn a_waypoint_gateway_without_listeners_is_refused_by_the_schema() {
    // The check above can fail: the Gateway schema requires at least one listener.
    let crds = Crds::load();
    let mut gateway = ambient_manifests()
        .into_iter()
        .find(|o| o["kind"] == "Gateway")
        .unwrap();
    gateway["spec"]["listeners"] = json!([]);
    assert!(crds.check(&gateway).is_err(), "{gateway:#}");
}
