//! What the Gateway API tests share: the demos' Services, backends and route files, YAML for a
//! route on the Service `server`, and the way from objects to the entries of that Service.

use std::path::{Path, PathBuf};

use mesh::{
    gateway::{self, RouteObject, Routes, Warning},
    model::{Backend, RouteEntry, Service, StringMatch},
};

pub(super) const PORT: u16 = 50051;

pub(super) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(super) fn gateway_file(name: &str) -> PathBuf {
    repo().join("gateway").join(name)
}

pub(super) fn service(name: &str) -> Service {
    Service {
        name: name.to_owned(),
        namespace: "default".to_owned(),
        port: PORT,
        endpoints: Vec::new(),
        headless: false,
    }
}

/// The Services of the demos.
pub(super) fn services() -> Vec<Service> {
    ["server", "server-v1", "server-v2"]
        .into_iter()
        .map(service)
        .collect()
}

pub(super) fn backend(name: &str, weight: u32) -> Backend {
    Backend {
        service: name.to_owned(),
        namespace: "default".to_owned(),
        port: Some(PORT),
        weight,
    }
}

pub(super) fn exact(value: &str) -> StringMatch {
    StringMatch::Exact(value.to_owned())
}

pub(super) fn regex(value: &str) -> StringMatch {
    StringMatch::Regex(value.to_owned())
}

/// A GRPCRoute attached to the Service `server`; `rules` is YAML at the indentation of a list
/// under `rules:` (flow style keeps it short).
pub(super) fn grpc_route(name: &str, extra_metadata: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata:\n  name: {name}\n{extra_metadata}spec:\n  parentRefs:\n  - {{group: \"\", kind: Service, name: server}}\n  rules:\n{rules}"
    )
}

pub(super) fn http_route(name: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: {name}\nspec:\n  parentRefs:\n  - {{group: \"\", kind: Service, name: server}}\n  rules:\n{rules}"
    )
}

pub(super) fn canary(rules: &str) -> String {
    grpc_route("canary", "", rules)
}

/// The error `parse` gives, as displayed; it must be one line.
pub(super) fn error_of(yaml: &str) -> String {
    let error = gateway::parse(yaml, "test.yaml").expect_err("the objects should be refused");
    let text = error.to_string();
    assert!(!text.contains('\n'), "not one line: {text}");
    text
}

pub(super) fn parse_ok(yaml: &str) -> Routes {
    gateway::parse(yaml, "test.yaml").unwrap_or_else(|e| panic!("{e}"))
}

/// The entries for the Service `server` on every port, and the warnings.
pub(super) fn entries_of(objects: &[RouteObject]) -> (Vec<RouteEntry>, Vec<Warning>) {
    let (table, warnings) = gateway::route_table(objects, &services());
    assert_eq!(table.len(), 1, "{table:#?}");
    assert_eq!(
        (
            table[0].service.as_str(),
            table[0].namespace.as_str(),
            table[0].port,
            table[0].virtual_service.as_str()
        ),
        (
            "server",
            "default",
            None,
            "default~server.default.svc.cluster.local"
        )
    );
    (table.into_iter().next().unwrap().entries, warnings)
}

pub(super) fn names(entries: &[RouteEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.name.as_str()).collect()
}
