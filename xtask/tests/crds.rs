//! The route objects the demos apply pass the schemas of the Gateway API CRDs they are applied
//! to (the pinned release, v1.5.1, standard channel), as the API server checks them.
//!
//! The CRDs are found as `cargo xtask up` finds them (`src/up/fetch.rs`, included here): the file
//! `GATEWAY_API_CRDS` names, else the copy in `.tools/` whose content matches the pinned checksum,
//! else downloaded there from the release (once; the download is checked before it is kept).
//!
//! What this checks, and what it cannot: each object is validated against its version's
//! `openAPIV3Schema` (types, enums, patterns, lengths, ranges, required fields). The schemas'
//! Kubernetes extensions are ignored by the `jsonschema` crate as unknown keywords, so the
//! `x-kubernetes-validations` rules (CEL expressions, such as "a parentRef's kind Service needs
//! group \"\"") are not evaluated here; and fields the schema does not know are accepted, as the
//! API server prunes them rather than refusing them (the route loader refuses them anyway).
//!
//! This file is also included by `xtask/src/cluster/objects.rs`, whose unit tests check the
//! objects its `routes()` renders for every scenario and weight step; its tests run there too.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

// Also compiled as `crate::up::fetch` where `cluster/objects.rs` includes this file.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../src/up/fetch.rs"]
mod fetch;

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in a folder of the workspace")
        .to_path_buf()
}

/// The CustomResourceDefinitions of a Gateway API release.
pub struct Crds {
    crds: Vec<Value>,
}

impl Crds {
    /// Reads the CRDs as `cargo xtask up` finds them; panics saying why when it cannot.
    pub fn load() -> Crds {
        let path = fetch::crds(&project_root(), &|name| std::env::var(name).ok())
            .unwrap_or_else(|e| panic!("no Gateway API CRDs: {e:#}"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let crds: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|doc| {
                Value::deserialize(doc)
                    .unwrap_or_else(|e| panic!("{}: malformed yaml: {e}", path.display()))
            })
            .filter(|doc| doc["kind"] == "CustomResourceDefinition")
            .collect();
        assert!(
            !crds.is_empty(),
            "{}: no CustomResourceDefinition in it",
            path.display()
        );
        Crds { crds }
    }

    /// The `openAPIV3Schema` of the served version of `kind` that `apiVersion` names.
    pub fn schema(&self, api_version: &str, kind: &str) -> Result<&Value, String> {
        let (group, version) = api_version
            .split_once('/')
            .ok_or_else(|| format!("apiVersion {api_version:?} names no group"))?;
        let crd = self
            .crds
            .iter()
            .find(|crd| crd["spec"]["group"] == group && crd["spec"]["names"]["kind"] == kind)
            .ok_or_else(|| format!("no CRD for {kind} in {group}"))?;
        crd["spec"]["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == version && v["served"] == true)
            .map(|v| &v["schema"]["openAPIV3Schema"])
            .filter(|schema| schema.is_object())
            .ok_or_else(|| format!("{kind}: no served version {version} with a schema"))
    }

    /// Validates an object against its CRD's schema; the error lists every violation.
    pub fn check(&self, object: &Value) -> Result<(), String> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let schema = self.schema(api_version, kind)?;
        // A CRD schema is OpenAPI 3.0's dialect of JSON Schema draft 4.
        let validator = jsonschema::draft4::new(schema)
            .map_err(|e| format!("{kind} {api_version}: the schema does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(object)
            .map(|e| format!("{}: {e}", e.instance_path))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("{kind}: {}", errors.join("; ")))
        }
    }
}

/// Every route object of `gateway/`, as the demos apply it: in a demo namespace, as JSON.
fn gateway_routes() -> Vec<Value> {
    let dir = project_root().join("gateway");
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
