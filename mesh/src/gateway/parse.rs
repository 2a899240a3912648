//! Reading route objects from YAML: files, directories, multi-document text.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use gateway_api::grpcroutes::GrpcRoute;
use gateway_api::httproutes::HttpRoute;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::{GatewayError, one_line};
use super::object::{DEFAULT_NAMESPACE, RouteObject};
use super::routes::Routes;
use super::validate::validate;

const HTTP_ROUTE: &str = "HTTPRoute";
const GRPC_ROUTE: &str = "GRPCRoute";
/// The versions served by the standard-channel CRDs (and GRPCRoute's former one).
const HTTP_ROUTE_VERSIONS: &[&str] = &[
    "gateway.networking.k8s.io/v1",
    "gateway.networking.k8s.io/v1beta1",
];
/// The standard channel of Gateway API v1.5.1 serves GRPCRoute as `v1` only: a `v1alpha2` route would
/// run on the twin and be refused by the cluster (docs/cluster-assumptions.md, row 64).
const GRPC_ROUTE_VERSIONS: &[&str] = &["gateway.networking.k8s.io/v1"];

/// An object and where it was read.
struct Sourced {
    object: RouteObject,
    origin: String,
    document: usize,
}

pub(super) fn load(path: &Path) -> Result<Routes, GatewayError> {
    let read_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GatewayError::Read { path, source }
    };
    let files = if fs::metadata(path).map_err(read_error(path))?.is_dir() {
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in fs::read_dir(path).map_err(read_error(path))? {
            let file = entry.map_err(read_error(path))?.path();
            if is_yaml(&file) && file.is_file() {
                files.push(file);
            }
        }
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut sourced = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).map_err(read_error(file))?;
        read_documents(&text, &file.display().to_string(), &mut sourced)?;
    }
    finish(sourced)
}

pub(super) fn parse(text: &str, origin: &str) -> Result<Routes, GatewayError> {
    let mut sourced = Vec::new();
    read_documents(text, origin, &mut sourced)?;
    finish(sourced)
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// Refuses duplicates (naming where each copy was read), then validates everything.
fn finish(sourced: Vec<Sourced>) -> Result<Routes, GatewayError> {
    let mut seen: HashMap<(&str, String, String), &Sourced> = HashMap::new();
    for item in &sourced {
        let key = (
            item.object.kind(),
            item.object.namespace(),
            item.object.name(),
        );
        if let Some(first) = seen.insert(key, item) {
            let places = if first.origin == item.origin {
                format!(
                    "{} documents {} and {}",
                    item.origin, first.document, item.document
                )
            } else {
                format!("{}, {}", first.origin, item.origin)
            };
            return Err(GatewayError::Duplicate {
                object: item.object.label(),
                places,
            });
        }
    }
    let objects: Vec<RouteObject> = sourced.into_iter().map(|item| item.object).collect();
    validate(&objects)?;
    Ok(Routes::checked(objects))
}

fn read_documents(text: &str, origin: &str, out: &mut Vec<Sourced>) -> Result<(), GatewayError> {
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let number = index + 1;
        let value = Value::deserialize(document).map_err(|error| GatewayError::MalformedYaml {
            origin: origin.to_owned(),
            document: number,
            message: one_line(&error.to_string()),
        })?;
        // Empty documents (a leading `---`, comments only) hold nothing.
        if value.is_null() {
            continue;
        }
        let object = read_object(value, origin, number)?;
        out.push(Sourced {
            object,
            origin: origin.to_owned(),
            document: number,
        });
    }
    Ok(())
}

fn read_object(value: Value, origin: &str, document: usize) -> Result<RouteObject, GatewayError> {
    let Value::Object(map) = &value else {
        return Err(GatewayError::NotAnObject {
            origin: origin.to_owned(),
            document,
        });
    };
    let kind = match map.get("kind") {
        None | Some(Value::Null) => {
            return Err(GatewayError::MissingKind {
                origin: origin.to_owned(),
                document,
            });
        }
        Some(Value::String(kind)) => kind.as_str(),
        Some(other) => {
            return Err(GatewayError::UnknownKind {
                origin: origin.to_owned(),
                document,
                kind: other.to_string(),
            });
        }
    };
    let (kind, versions) = match kind {
        HTTP_ROUTE => (HTTP_ROUTE, HTTP_ROUTE_VERSIONS),
        GRPC_ROUTE => (GRPC_ROUTE, GRPC_ROUTE_VERSIONS),
        other => {
            return Err(GatewayError::UnknownKind {
                origin: origin.to_owned(),
                document,
                kind: other.to_owned(),
            });
        }
    };
    let api_version = map.get("apiVersion");
    if !api_version
        .and_then(Value::as_str)
        .is_some_and(|v| versions.contains(&v))
    {
        return Err(GatewayError::UnknownApiVersion {
            origin: origin.to_owned(),
            document,
            kind,
            api_version: api_version.map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            expected: if kind == HTTP_ROUTE {
                "gateway.networking.k8s.io/v1 or v1beta1"
            } else {
                "gateway.networking.k8s.io/v1"
            },
        });
    }
    let label = raw_label(kind, map);
    let object = if kind == HTTP_ROUTE {
        RouteObject::Http(typed::<HttpRoute>(&value, origin, document, &label)?)
    } else {
        RouteObject::Grpc(typed::<GrpcRoute>(&value, origin, document, &label)?)
    };
    // Typed objects drop fields they do not know; the API server (with strict field validation,
    // kubectl's default) refuses them instead, and a typo must not silently widen a route.
    let known = match &object {
        RouteObject::Http(route) => serde_json::to_value(route),
        RouteObject::Grpc(route) => serde_json::to_value(route),
    };
    if let Ok(known) = known
        && let Some(field) = first_unknown_field(&value, &known, "")
    {
        return Err(GatewayError::UnknownField {
            origin: origin.to_owned(),
            document,
            object: label,
            field,
        });
    }
    if object.name().is_empty() {
        return Err(GatewayError::MissingName {
            origin: origin.to_owned(),
            document,
            kind,
        });
    }
    Ok(object)
}

fn typed<T: DeserializeOwned>(
    value: &Value,
    origin: &str,
    document: usize,
    label: &str,
) -> Result<T, GatewayError> {
    serde_path_to_error::deserialize(value.clone()).map_err(|error| {
        let field = error.path().to_string();
        GatewayError::Schema {
            origin: origin.to_owned(),
            document,
            object: label.to_owned(),
            field: if field == "." { String::new() } else { field },
            message: one_line(&error.inner().to_string()),
        }
    })
}

/// `HTTPRoute default/a` from the raw object, as far as it names itself.
fn raw_label(kind: &str, map: &Map<String, Value>) -> String {
    let metadata = map.get("metadata");
    let field = |name: &str| {
        metadata
            .and_then(|m| m.get(name))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    match field("name") {
        Some(name) => format!(
            "{kind} {}/{name}",
            field("namespace").unwrap_or(DEFAULT_NAMESPACE)
        ),
        None => kind.to_owned(),
    }
}

/// The path of the first field of `original` that did not survive a round trip through the
/// typed object (`null` values aside: they mean "absent").
fn first_unknown_field(original: &Value, known: &Value, path: &str) -> Option<String> {
    match (original, known) {
        (Value::Object(original), Value::Object(known)) => {
            for (key, value) in original {
                if value.is_null() {
                    continue;
                }
                let field = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match known.get(key) {
                    None => return Some(field),
                    Some(known) => {
                        if let Some(found) = first_unknown_field(value, known, &field) {
                            return Some(found);
                        }
                    }
                }
            }
            None
        }
        (Value::Array(original), Value::Array(known)) => original
            .iter()
            .zip(known)
            .enumerate()
            .find_map(|(i, (value, known))| {
                first_unknown_field(value, known, &format!("{path}[{i}]"))
            }),
        _ => None,
    }
}
