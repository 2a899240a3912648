//! Istio's mesh-wide retry policy, changed for a phase and put back: `meshConfig.defaultHttpRetryPolicy`
//! in the ConfigMap `istio` of `istio-system`, key `mesh`.
//!
//! How istiod reads it, in `release-1.30`: with no mesh file mounted (the istiod Deployment of the
//! `istio-discovery` chart mounts none), `pilot/pkg/bootstrap/mesh.go` `getConfigurationSources` takes
//! the ConfigMap `istio` (`istio-<revision>` for a revision) through `pkg/config/mesh/kubemesh`
//! `NewConfigMapSource`, a filtered informer: a change is seen as soon as the watch delivers it, and
//! `meshwatcher.NewCollection` applies the YAML over `mesh.DefaultMeshConfig()` (an invalid YAML keeps the
//! last good one). On every change `initMeshHandlers` (`bootstrap/server.go`) asks for a full, forced push:
//! no restart. The policy then replaces Istio's default (`route/retry/retry.go`: 2 attempts,
//! `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes`) on every route that
//! sets none (`route/route.go`: `applyHTTPRouteDestination`, `BuildDefaultHTTPOutboundRoute`), which is
//! every route of a Gateway API route without `retry`, and every default route.
//!
//! The ConfigMap belongs to whoever installed Istio. The harness changes only `data.mesh`, with a merge
//! patch, and keeps the text it found in an annotation, so that the end of the demo (or the next demo,
//! after an interrupted one) puts it back exactly.

use std::collections::BTreeSet;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::ConfigMap;
use mesh::model::RetryPolicy;
use serde_json::{Value, json};

use crate::harness::scenario::Retries;

pub const NAMESPACE: &str = "istio-system";
pub const CONFIG_MAP: &str = "istio";
pub const KEY: &str = "mesh";
/// The annotation that keeps the `mesh` text as the harness found it.
pub const ORIGINAL_ANNOTATION: &str = "grpc-mesh-lab/original-mesh";
const POLICY_KEY: &str = "defaultHttpRetryPolicy";

/// Istio's default retry conditions (`retry.go`: `defaultRetryOn`), as the twin's translation has them.
pub use mesh::translate::ISTIO_DEFAULT_RETRY_ON;

/// The mesh-wide policy a phase asks for; `None`: Istio's built-in default (no policy in the mesh config).
pub fn policy(retries: Retries) -> Option<RetryPolicy> {
    match retries {
        Retries::IstioDefault => None,
        Retries::WithReset => Some(RetryPolicy::istio_default_with("reset")),
    }
}

/// The conditions the sidecar's routes carry under this phase's policy.
pub fn retry_on(retries: Retries) -> BTreeSet<String> {
    let text = policy(retries).map_or_else(|| ISTIO_DEFAULT_RETRY_ON.to_owned(), |p| p.retry_on);
    conditions(&text)
}

/// `a, b,c` → {a, b, c}
pub fn conditions(retry_on: &str) -> BTreeSet<String> {
    retry_on
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The `mesh` text of the ConfigMap ("" when it has none).
pub fn mesh_text(config: &ConfigMap) -> &str {
    config
        .data
        .as_ref()
        .and_then(|d| d.get(KEY))
        .map_or("", String::as_str)
}

/// The text as the harness found it, when it changed it and has not put it back.
pub fn original(config: &ConfigMap) -> Option<&str> {
    config
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ORIGINAL_ANNOTATION))
        .map(String::as_str)
}

/// The mesh YAML with this default retry policy (every other setting kept).
pub fn with_policy(mesh: &str, policy: &RetryPolicy) -> anyhow::Result<String> {
    let mut doc: serde_yaml::Value = if mesh.trim().is_empty() {
        serde_yaml::Value::Mapping(serde_yaml::Mapping::new())
    } else {
        serde_yaml::from_str(mesh).context("istio's mesh configuration is not yaml")?
    };
    let map = doc
        .as_mapping_mut()
        .context("istio's mesh configuration is not a yaml mapping")?;
    let mut retry = serde_yaml::Mapping::new();
    retry.insert("attempts".into(), policy.attempts.into());
    retry.insert("retryOn".into(), policy.retry_on.clone().into());
    map.insert(POLICY_KEY.into(), serde_yaml::Value::Mapping(retry));
    serde_yaml::to_string(&doc).context("write istio's mesh configuration")
}

/// The `retryOn` of the mesh text's default retry policy, if it sets one.
pub fn retry_on_in(mesh: &str) -> Option<String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(mesh).ok()?;
    doc.get(POLICY_KEY)?
        .get("retryOn")?
        .as_str()
        .map(str::to_owned)
}

/// The merge patch that sets the mesh text, keeping the text found first in the annotation.
pub fn set_patch(config: &ConfigMap, mesh: &str) -> Value {
    let mut patch = json!({ "data": { KEY: mesh } });
    if original(config).is_none() {
        patch["metadata"] = json!({ "annotations": { ORIGINAL_ANNOTATION: mesh_text(config) } });
    }
    patch
}

/// The merge patch that puts the text found first back and drops the annotation; `None`: nothing to do.
pub fn restore_patch(config: &ConfigMap) -> Option<Value> {
    let original = original(config)?;
    Some(json!({
        "data": { KEY: original },
        "metadata": { "annotations": { ORIGINAL_ANNOTATION: null } }
    }))
}

/// Does the sidecar's configuration dump carry these retry conditions on every route of the virtual host
/// serving `host`? The error says what it has instead, in one line.
pub fn check_dump(dump: &Value, host: &str, expected: &BTreeSet<String>) -> Result<(), String> {
    let with_port = format!("{host}:");
    let serves = |vh: &&Value| {
        vh["domains"].as_array().is_some_and(|domains| {
            domains
                .iter()
                .filter_map(Value::as_str)
                .any(|d| d == host || d.starts_with(&with_port))
        })
    };
    let routes: Vec<&Value> = crate::cluster::route_check::route_configs(dump)
        .flat_map(|config| config["virtual_hosts"].as_array().into_iter().flatten())
        .filter(serves)
        .flat_map(|vh| vh["routes"].as_array().into_iter().flatten())
        .collect();
    if routes.is_empty() {
        return Err(format!("the sidecar has no route for {host}"));
    }
    let show = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(",");
    for route in routes {
        let found = conditions(
            route["route"]["retry_policy"]["retry_on"]
                .as_str()
                .unwrap_or_default(),
        );
        if &found != expected {
            return Err(format!(
                "the sidecar's routes for {host} retry on {} (expected {})",
                if found.is_empty() {
                    "nothing".to_owned()
                } else {
                    show(&found)
                },
                show(expected)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `mesh` text of an `istioctl install` of the minimal profile (shape only).
    const INSTALLED: &str = "defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n\
                             defaultProviders:\n  metrics:\n  - prometheus\nrootNamespace: istio-system\n\
                             trustDomain: cluster.local\n";

    fn config(mesh: &str, annotation: Option<&str>) -> ConfigMap {
        let mut c = ConfigMap {
            data: Some([(KEY.to_owned(), mesh.to_owned())].into()),
            ..ConfigMap::default()
        };
        if let Some(a) = annotation {
            c.metadata.annotations = Some([(ORIGINAL_ANNOTATION.to_owned(), a.to_owned())].into());
        }
        c
    }

    #[test]
    fn the_retry_phase_adds_reset_to_istio_s_default_conditions_and_keeps_its_attempts() {
        assert_eq!(policy(Retries::IstioDefault), None);
        let p = policy(Retries::WithReset).unwrap();
        assert_eq!(p.attempts, 2);
        assert_eq!(
            retry_on(Retries::WithReset),
            conditions(&format!("{ISTIO_DEFAULT_RETRY_ON},reset"))
        );
        assert!(!retry_on(Retries::IstioDefault).contains("reset"));
    }

    #[test]
    fn setting_the_policy_keeps_every_other_setting_and_reads_back() {
        let text = with_policy(INSTALLED, &policy(Retries::WithReset).unwrap()).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(doc["trustDomain"], "cluster.local");
        assert_eq!(
            doc["defaultConfig"]["discoveryAddress"],
            "istiod.istio-system.svc:15012"
        );
        assert_eq!(doc["defaultHttpRetryPolicy"]["attempts"], 2);
        assert!(retry_on_in(&text).unwrap().ends_with(",reset"));
        assert_eq!(retry_on_in(INSTALLED), None);
    }

    #[test]
    fn the_text_found_first_is_kept_once_and_put_back_exactly() {
        let found = config(INSTALLED, None);
        let first = set_patch(&found, "changed: 1\n");
        assert_eq!(
            first["metadata"]["annotations"][ORIGINAL_ANNOTATION],
            INSTALLED
        );
        let changed = config("changed: 1\n", Some(INSTALLED));
        let again = set_patch(&changed, "changed: 2\n");
        assert!(
            again.get("metadata").is_none(),
            "the original is not overwritten"
        );
        let restore = restore_patch(&changed).unwrap();
        assert_eq!(restore["data"][KEY], INSTALLED);
        assert!(restore["metadata"]["annotations"][ORIGINAL_ANNOTATION].is_null());
        assert_eq!(restore_patch(&found), None, "nothing of ours to put back");
    }

    fn dump(host: &str, retry_on: &str) -> Value {
        json!({ "configs": [{ "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
            "dynamic_route_configs": [{ "route_config": { "name": "50051", "virtual_hosts": [
                { "name": format!("{host}:50051"), "domains": [host, "server"],
                  "routes": [{ "route": { "cluster": format!("outbound|50051||{host}"),
                      "retry_policy": { "retry_on": retry_on, "num_retries": 2 } } }] },
                { "name": "allow_any", "domains": ["*"], "routes": [{ "route": { "cluster": "PassthroughCluster" } }] }
            ] } }] }] })
    }

    #[test]
    fn the_dump_check_finds_the_service_s_routes_and_compares_their_conditions_as_sets() {
        let host = "server.gml-kill.svc.cluster.local";
        let reset = format!("reset,{ISTIO_DEFAULT_RETRY_ON}");
        assert_eq!(
            check_dump(&dump(host, &reset), host, &retry_on(Retries::WithReset)),
            Ok(())
        );
        let err = check_dump(
            &dump(host, ISTIO_DEFAULT_RETRY_ON),
            host,
            &retry_on(Retries::WithReset),
        )
        .unwrap_err();
        assert!(err.contains("retry on cancelled,connect-failure"), "{err}");
        assert!(err.contains("(expected cancelled,"), "{err}");
        assert_eq!(
            check_dump(
                &dump(host, ISTIO_DEFAULT_RETRY_ON),
                "other.gml-kill.svc.cluster.local",
                &BTreeSet::new()
            ),
            Err("the sidecar has no route for other.gml-kill.svc.cluster.local".into())
        );
    }
}
