//! The cluster module against a mock API server ([`super::mock`]): each test checks the requests sent, not
//! only the result. The only waiting is the short deadlines of the tests that expect a timeout. The tests
//! are grouped as the module is: context, write, wait, pods, delete, read.

use std::time::Duration;

use ::kube::api::DynamicObject;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroupList, APIResourceList, APIVersions};
use serde_json::{Value, json};

use super::mock::{self, APIEXTENSIONS_V1, APPS_V1, CORE_V1, GATEWAY_V1};

mod context;
mod delete;
mod pods;
mod read;
mod wait;
mod write;

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(10);

fn object(value: &Value) -> DynamicObject {
    serde_json::from_value(value.clone()).unwrap()
}

fn server_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "server-v1", "namespace": "gml-x", "labels": { "app": "server" } },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "server" } },
            "template": {
                "metadata": { "labels": { "app": "server" } },
                "spec": { "containers": [{ "name": "server", "image": "hello-server:dev" }] }
            }
        }
    })
}

fn namespace(labels: Value) -> Value {
    json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "gml-x", "labels": labels } })
}

fn http_route() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": { "name": "hello", "namespace": "gml-x" },
        "spec": { "parentRefs": [{ "name": "mesh", "kind": "Service", "group": "" }] }
    })
}

/// A Deployment of 2 replicas at generation 2, `ready` of them ready; complete when the controller has seen
/// generation `observed` and says NewReplicaSetAvailable.
fn deployment_status(observed: i64, ready: i32, complete: bool) -> Value {
    let mut d = server_deployment();
    d["metadata"]["generation"] = json!(2);
    d["metadata"]["resourceVersion"] = json!(format!("{}", 100 + observed + i64::from(ready)));
    let reason = if complete {
        "NewReplicaSetAvailable"
    } else {
        "ReplicaSetUpdated"
    };
    d["status"] = json!({
        "observedGeneration": observed,
        "replicas": 2,
        "updatedReplicas": if complete { 2 } else { 1 },
        "readyReplicas": ready,
        "availableReplicas": ready,
        "conditions": [
            { "type": "Available", "status": "True", "reason": "MinimumReplicasAvailable" },
            { "type": "Progressing", "status": "True", "reason": reason }
        ]
    });
    d
}

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/gml-x/deployments";

fn assert_lists_by_name(request: &mock::Recorded, path: &str, name: &str) {
    assert_eq!(request.line(), format!("GET {path}"));
    assert_eq!(
        request.param("fieldSelector"),
        Some(format!("metadata.name={name}").as_str())
    );
    assert!(!request.is_watch());
}

fn version_info() -> Value {
    json!({ "major": "1", "minor": "35", "gitVersion": "v1.35.0", "gitCommit": "abc",
        "gitTreeState": "clean", "buildDate": "2025-12-17T00:00:00Z", "goVersion": "go1.25.5",
        "compiler": "gc", "platform": "linux/amd64" })
}

#[test]
fn canned_discovery_documents_parse_as_the_real_types() {
    let groups = mock::api_group_list(&[&APPS_V1, &APIEXTENSIONS_V1, &GATEWAY_V1]);
    let groups: APIGroupList = serde_json::from_value(groups).unwrap();
    assert_eq!(groups.groups.len(), 3);
    for gv in [CORE_V1, APPS_V1, APIEXTENSIONS_V1, GATEWAY_V1] {
        let list: APIResourceList = serde_json::from_value(mock::api_resource_list(&gv)).unwrap();
        assert_eq!(list.group_version, gv.group_version);
    }
    let versions: APIVersions = serde_json::from_value(
        json!({ "kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [] }),
    )
    .unwrap();
    assert_eq!(versions.versions, ["v1"]);
}

#[test]
fn deadlines_print_in_seconds() {
    assert_eq!(super::seconds(Duration::from_secs(120)), "120s");
    assert_eq!(super::seconds(Duration::from_millis(300)), "0.3s");
}
