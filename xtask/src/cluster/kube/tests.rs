//! The cluster module against a mock API server ([`super::mock`]): each test checks the requests sent, not
//! only the result. The only waiting is the short deadlines of the tests that expect a timeout.

use std::time::Duration;

use ::kube::{api::DynamicObject, config::Kubeconfig};
use futures::TryStreamExt as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroupList, APIResourceList, APIVersions};
use serde_json::{Value, json};

use super::mock::{self, APIEXTENSIONS_V1, APPS_V1, CORE_V1, GATEWAY_V1, Mock, Reply};
use super::{FIELD_MANAGER, connect_with, select_context, select_context_in};

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(10);

// ---- select_context ---------------------------------------------------------------------------------------

fn kubeconfig(current: &str, contexts: &[&str]) -> Kubeconfig {
    let contexts: Vec<Value> = contexts
        .iter()
        .map(|name| json!({ "name": name, "context": { "cluster": name, "user": name } }))
        .collect();
    let yaml = json!({ "apiVersion": "v1", "kind": "Config", "current-context": current, "contexts": contexts });
    Kubeconfig::from_yaml(&yaml.to_string()).unwrap()
}

#[test]
fn select_context_picks_the_kind_context_even_when_another_is_current() {
    let config = kubeconfig("prod-eu", &["prod-eu", "kind-gml", "kind-other"]);
    assert_eq!(select_context(&config, "gml", None).unwrap(), "kind-gml");
}

#[test]
fn select_context_without_the_kind_context_says_how_to_create_it_and_lists_nothing_else() {
    let config = kubeconfig("prod-eu", &["prod-eu", "kind-other"]);
    let err = select_context(&config, "gml", None).unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "kube context kind-gml not found: create the cluster with `cargo xtask up`"
    );
}

#[test]
fn select_context_honours_an_explicit_context() {
    let config = kubeconfig("kind-gml", &["kind-gml", "staging"]);
    assert_eq!(
        select_context(&config, "gml", Some("staging")).unwrap(),
        "staging"
    );
}

#[test]
fn select_context_names_the_kubeconfig_when_the_explicit_context_is_missing() {
    let config = kubeconfig("kind-gml", &["kind-gml"]);
    let err =
        select_context_in(&config, "/home/me/.kube/config", "gml", Some("staging")).unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "kube context staging not found in /home/me/.kube/config"
    );
    // the public function fills in where the kubeconfig is read from (KUBECONFIG or ~/.kube/config)
    let err = select_context(&config, "gml", Some("staging")).unwrap_err();
    assert!(
        format!("{err:#}").starts_with("kube context staging not found in "),
        "{err:#}"
    );
}

/// A kubeconfig whose current context points at a closed port and whose `kind-gml` points at `server`.
fn two_cluster_kubeconfig(server: &str) -> Kubeconfig {
    let entry = |name: &str, url: &str| {
        (
            json!({ "name": name, "cluster": { "server": url } }),
            json!({ "name": name, "context": { "cluster": name, "user": name } }),
            json!({ "name": name, "user": {} }),
        )
    };
    let (prod, kind) = (
        entry("prod-eu", "http://127.0.0.1:1"),
        entry("kind-gml", server),
    );
    let yaml = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "prod-eu",
        "clusters": [prod.0, kind.0], "contexts": [prod.1, kind.1], "users": [prod.2, kind.2],
    });
    Kubeconfig::from_yaml(&yaml.to_string()).unwrap()
}

#[tokio::test]
async fn connect_builds_the_client_for_the_selected_context_not_the_current_one() {
    let mock = Mock::start().await;
    mock.on("GET", "/version", Reply::Json(200, version_info()));

    let cluster = connect_with(
        two_cluster_kubeconfig(mock.url()),
        "kubeconfig",
        "gml",
        None,
    )
    .await
    .unwrap();

    assert_eq!(cluster.context, "kind-gml");
    assert_eq!(cluster.server_version().await.unwrap(), "v1.35.0");
    let lines: Vec<String> = mock.calls().iter().map(mock::Recorded::line).collect();
    assert_eq!(lines, ["GET /version"]);
}

// ---- the mock's discovery documents --------------------------------------------------------------------

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

// ---- apply --------------------------------------------------------------------------------------------------

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

fn assert_applied(request: &mock::Recorded, path: &str, body: &Value) {
    assert_eq!(request.line(), format!("PATCH {path}"));
    assert_eq!(
        request.params(),
        [("fieldManager", FIELD_MANAGER), ("force", "true")]
    );
    assert_eq!(
        request.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(&request.json(), body);
}

#[tokio::test]
async fn apply_patches_a_namespaced_object_in_its_namespace_as_a_forced_server_side_apply() {
    let mock = Mock::start().await;
    mock.on(
        "PATCH",
        "/apis/apps/v1/namespaces/gml-x/deployments/server-v1",
        Reply::Echo,
    );

    mock.cluster()
        .apply(&[object(&server_deployment())])
        .await
        .unwrap();

    let calls = mock.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_applied(
        &calls[0],
        "/apis/apps/v1/namespaces/gml-x/deployments/server-v1",
        &server_deployment(),
    );
}

#[tokio::test]
async fn apply_patches_a_cluster_scoped_namespace_outside_any_namespace() {
    let mock = Mock::start().await;
    mock.on("PATCH", "/api/v1/namespaces/gml-x", Reply::Echo);
    let ns = namespace(json!({ "app.kubernetes.io/part-of": "grpc-mesh-lab" }));

    mock.cluster().apply(&[object(&ns)]).await.unwrap();

    let calls = mock.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_applied(&calls[0], "/api/v1/namespaces/gml-x", &ns);
}

#[tokio::test]
async fn apply_patches_an_httproute_in_the_gateway_api_group() {
    let mock = Mock::start().await;
    mock.on(
        "PATCH",
        "/apis/gateway.networking.k8s.io/v1/namespaces/gml-x/httproutes/hello",
        Reply::Echo,
    );

    mock.cluster()
        .apply(&[object(&http_route())])
        .await
        .unwrap();

    let calls = mock.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_applied(
        &calls[0],
        "/apis/gateway.networking.k8s.io/v1/namespaces/gml-x/httproutes/hello",
        &http_route(),
    );
}

#[tokio::test]
async fn apply_sends_objects_in_order_and_discovers_once() {
    let mock = Mock::start().await;
    mock.on("PATCH", "/*", Reply::Echo);
    let ns = namespace(json!({ "app.kubernetes.io/part-of": "grpc-mesh-lab" }));
    let cluster = mock.cluster();

    cluster
        .apply(&[object(&ns), object(&server_deployment())])
        .await
        .unwrap();
    cluster.apply(&[object(&http_route())]).await.unwrap();

    let lines: Vec<String> = mock.calls().iter().map(mock::Recorded::line).collect();
    assert_eq!(
        lines,
        [
            "PATCH /api/v1/namespaces/gml-x",
            "PATCH /apis/apps/v1/namespaces/gml-x/deployments/server-v1",
            "PATCH /apis/gateway.networking.k8s.io/v1/namespaces/gml-x/httproutes/hello",
        ]
    );
    assert_eq!(mock.discovery_runs(), 1);
}

#[tokio::test]
async fn apply_discovers_again_when_a_kind_is_unknown_as_right_after_its_crd_was_installed() {
    let mock = Mock::start().await;
    mock.serve_discovery(&[CORE_V1, APPS_V1, APIEXTENSIONS_V1]);
    mock.on("PATCH", "/*", Reply::Echo);
    let cluster = mock.cluster();
    cluster
        .apply(&[object(&server_deployment())])
        .await
        .unwrap();

    mock.serve_discovery(&[CORE_V1, APPS_V1, APIEXTENSIONS_V1, GATEWAY_V1]); // the Gateway API CRDs arrive
    cluster.apply(&[object(&http_route())]).await.unwrap();

    assert_eq!(mock.discovery_runs(), 2);
    let last = mock.calls().pop().unwrap();
    assert_eq!(
        last.line(),
        "PATCH /apis/gateway.networking.k8s.io/v1/namespaces/gml-x/httproutes/hello"
    );
}

#[tokio::test]
async fn apply_of_a_kind_the_cluster_does_not_serve_names_it_after_discovering_again() {
    let mock = Mock::start().await;
    mock.serve_discovery(&[CORE_V1, APPS_V1]);
    mock.on("PATCH", "/*", Reply::Echo);
    let cluster = mock.cluster();
    cluster
        .apply(&[object(&server_deployment())])
        .await
        .unwrap();

    let err = cluster.apply(&[object(&http_route())]).await.unwrap_err();

    assert_eq!(
        format!("{err:#}"),
        "apply HTTPRoute gml-x/hello: the cluster serves no kind HTTPRoute in gateway.networking.k8s.io/v1 \
         (is its crd installed?)"
    );
    assert_eq!(mock.discovery_runs(), 2);
    let lines: Vec<String> = mock.calls().iter().map(mock::Recorded::line).collect();
    assert_eq!(lines, [format!("PATCH {DEPLOYMENTS}/server-v1")]);
}

#[tokio::test]
async fn apply_reports_a_422_in_one_line_naming_the_object_and_sends_nothing_after_it() {
    let mock = Mock::start().await;
    let message = "Deployment.apps \"server-v1\" is invalid: spec.template.spec.containers[0].image: Required value";
    mock.on(
        "PATCH",
        "/apis/apps/v1/namespaces/gml-x/deployments/server-v1",
        Reply::Json(422, mock::status(422, "Invalid", message)),
    );
    mock.on("PATCH", "/apis/gateway.networking.k8s.io/v1/*", Reply::Echo);

    let err = mock
        .cluster()
        .apply(&[object(&server_deployment()), object(&http_route())])
        .await
        .unwrap_err();

    assert_eq!(
        format!("{err:#}"),
        format!("apply Deployment gml-x/server-v1: 422 Invalid: {message}")
    );
    let lines: Vec<String> = mock.calls().iter().map(mock::Recorded::line).collect();
    assert_eq!(
        lines,
        ["PATCH /apis/apps/v1/namespaces/gml-x/deployments/server-v1"]
    );
}

#[tokio::test]
async fn apply_reports_a_500_with_a_plain_text_body_in_one_line_naming_the_object() {
    let mock = Mock::start().await;
    mock.on(
        "PATCH",
        "/api/v1/namespaces/gml-x",
        Reply::Text(500, "etcdserver: request timed out\n".to_owned()),
    );

    let err = mock
        .cluster()
        .apply(&[object(&namespace(json!({})))])
        .await
        .unwrap_err();

    assert_eq!(
        format!("{err:#}"),
        "apply Namespace gml-x: 500 etcdserver: request timed out"
    );
}

#[tokio::test]
async fn apply_refuses_a_namespaced_object_without_a_namespace_and_sends_nothing() {
    let mock = Mock::start().await;
    let mut deployment = server_deployment();
    deployment["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");

    let err = mock
        .cluster()
        .apply(&[object(&deployment)])
        .await
        .unwrap_err();

    assert_eq!(
        format!("{err:#}"),
        "apply Deployment server-v1: namespaced, but has no metadata.namespace"
    );
    assert!(mock.calls().is_empty(), "{:#?}", mock.calls());
}

// ---- wait_rollout ---------------------------------------------------------------------------------------

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

fn deployment_list(items: Vec<Value>) -> Reply {
    Reply::Json(200, mock::list("apps/v1", "DeploymentList", items))
}

fn assert_lists_by_name(request: &mock::Recorded, path: &str, name: &str) {
    assert_eq!(request.line(), format!("GET {path}"));
    assert_eq!(
        request.param("fieldSelector"),
        Some(format!("metadata.name={name}").as_str())
    );
    assert!(!request.is_watch());
}

#[tokio::test]
async fn wait_rollout_completes_when_the_listed_deployment_is_complete() {
    let mock = Mock::start().await;
    mock.on(
        "GET",
        DEPLOYMENTS,
        deployment_list(vec![deployment_status(2, 2, true)]),
    );

    mock.cluster()
        .wait_rollout("gml-x", "server-v1", LONG)
        .await
        .unwrap();

    let calls = mock.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_lists_by_name(&calls[0], DEPLOYMENTS, "server-v1");
}

#[tokio::test]
async fn wait_rollout_completes_when_the_watch_reports_completion() {
    let mock = Mock::start().await;
    mock.on(
        "GET",
        DEPLOYMENTS,
        deployment_list(vec![deployment_status(2, 1, false)]),
    );
    let event = json!({ "type": "MODIFIED", "object": deployment_status(2, 2, true) });
    mock.on("WATCH", DEPLOYMENTS, Reply::Events(vec![event]));

    mock.cluster()
        .wait_rollout("gml-x", "server-v1", LONG)
        .await
        .unwrap();

    let calls = mock.calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_lists_by_name(&calls[0], DEPLOYMENTS, "server-v1");
    assert!(calls[1].is_watch(), "{:#?}", calls[1]);
    assert_eq!(
        calls[1].param("fieldSelector"),
        Some("metadata.name=server-v1")
    );
    assert_eq!(
        calls[1].param("resourceVersion"),
        Some("100"),
        "watches from the list's version"
    );
}

#[tokio::test]
async fn wait_rollout_times_out_with_the_replicas_ready() {
    let mock = Mock::start().await;
    mock.on(
        "GET",
        DEPLOYMENTS,
        deployment_list(vec![deployment_status(2, 1, false)]),
    );
    mock.on("WATCH", DEPLOYMENTS, Reply::Events(vec![]));

    let err = mock
        .cluster()
        .wait_rollout("gml-x", "server-v1", SHORT)
        .await
        .unwrap_err();

    assert_eq!(
        format!("{err:#}"),
        "deployment gml-x/server-v1 not ready after 0.3s: 1/2 replicas ready"
    );
    assert_lists_by_name(&mock.calls()[0], DEPLOYMENTS, "server-v1");
}

#[tokio::test]
async fn wait_rollout_does_not_take_the_previous_generation_for_completion() {
    let mock = Mock::start().await;
    // The status still says the last rollout completed, but the controller has not seen generation 2 yet.
    mock.on(
        "GET",
        DEPLOYMENTS,
        deployment_list(vec![deployment_status(1, 2, true)]),
    );
    mock.on("WATCH", DEPLOYMENTS, Reply::Events(vec![]));

    let err = mock
        .cluster()
        .wait_rollout("gml-x", "server-v1", SHORT)
        .await
        .unwrap_err();

    assert_eq!(
        format!("{err:#}"),
        "deployment gml-x/server-v1 not ready after 0.3s: 2/2 replicas ready"
    );
}

#[tokio::test]
async fn wait_rollout_of_a_missing_deployment_times_out_saying_so() {
    let mock = Mock::start().await;
    mock.on("GET", DEPLOYMENTS, deployment_list(vec![]));
    mock.on("WATCH", DEPLOYMENTS, Reply::Events(vec![]));

    let err = mock
        .cluster()
        .wait_rollout("gml-x", "server-v1", SHORT)
        .await
        .unwrap_err();

    assert_eq!(
        format!("{err:#}"),
        "deployment gml-x/server-v1 not ready after 0.3s: not found"
    );
}

// ---- wait_crds_established ----------------------------------------------------------------------------

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const HTTPROUTES_CRD: &str = "httproutes.gateway.networking.k8s.io";

fn crd(established: bool) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": HTTPROUTES_CRD },
        "spec": {
            "group": "gateway.networking.k8s.io",
            "names": { "kind": "HTTPRoute", "plural": "httproutes" },
            "scope": "Namespaced",
            "versions": [{ "name": "v1", "served": true, "storage": true }]
        },
        "status": { "conditions": [
            { "type": "NamesAccepted", "status": "True" },
            { "type": "Established", "status": if established { "True" } else { "False" } }
        ] }
    })
}

fn crd_list(items: Vec<Value>) -> Reply {
    Reply::Json(
        200,
        mock::list(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinitionList",
            items,
        ),
    )
}

#[tokio::test]
async fn wait_crds_established_returns_once_established_and_the_next_apply_discovers_again() {
    let mock = Mock::start().await;
    mock.on("GET", CRDS, crd_list(vec![crd(true)]));
    mock.on("PATCH", "/*", Reply::Echo);
    let cluster = mock.cluster();
    cluster
        .apply(&[object(&server_deployment())])
        .await
        .unwrap();

    cluster
        .wait_crds_established(&[HTTPROUTES_CRD], LONG)
        .await
        .unwrap();
    cluster.apply(&[object(&http_route())]).await.unwrap();

    let calls = mock.calls();
    assert_lists_by_name(&calls[1], CRDS, HTTPROUTES_CRD);
    assert_eq!(
        mock.discovery_runs(),
        2,
        "discovery runs again after the crds are established"
    );
}

#[tokio::test]
async fn wait_crds_established_times_out_naming_the_crds_not_established() {
    let mock = Mock::start().await;
    mock.on("GET", CRDS, crd_list(vec![crd(false)]));
    mock.on("WATCH", CRDS, Reply::Events(vec![]));

    let err = mock
        .cluster()
        .wait_crds_established(&[HTTPROUTES_CRD], SHORT)
        .await
        .unwrap_err();

    assert_eq!(
        format!("{err:#}"),
        format!("crds not established after 0.3s: {HTTPROUTES_CRD}")
    );
}

// ---- scale and restart ------------------------------------------------------------------------------------

#[tokio::test]
async fn scale_merge_patches_the_scale_subresource() {
    let mock = Mock::start().await;
    let scale = json!({ "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": { "name": "server-v1", "namespace": "gml-x" }, "spec": { "replicas": 3 }, "status": { "replicas": 2 } });
    mock.on(
        "PATCH",
        &format!("{DEPLOYMENTS}/server-v1/scale"),
        Reply::Json(200, scale),
    );

    mock.cluster().scale("gml-x", "server-v1", 3).await.unwrap();

    let calls = mock.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(
        calls[0].line(),
        format!("PATCH {DEPLOYMENTS}/server-v1/scale")
    );
    assert_eq!(calls[0].params(), [("fieldManager", FIELD_MANAGER)]);
    assert_eq!(
        calls[0].content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(calls[0].json(), json!({ "spec": { "replicas": 3 } }));
}

#[tokio::test]
async fn scale_of_a_missing_deployment_is_one_line_naming_it() {
    let mock = Mock::start().await;

    let err = mock.cluster().scale("gml-x", "nope", 3).await.unwrap_err();

    let text = format!("{err:#}");
    assert!(
        text.starts_with("scale deployment gml-x/nope to 3: 404 NotFound: "),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
}

#[tokio::test]
async fn restart_sets_the_restarted_at_annotation_of_the_pod_template() {
    let mock = Mock::start().await;
    mock.on(
        "PATCH",
        &format!("{DEPLOYMENTS}/server-v1"),
        Reply::Json(200, deployment_status(2, 2, true)),
    );

    mock.cluster().restart("gml-x", "server-v1").await.unwrap();

    let calls = mock.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].line(), format!("PATCH {DEPLOYMENTS}/server-v1"));
    assert_eq!(calls[0].params(), [("fieldManager", FIELD_MANAGER)]);
    assert_eq!(
        calls[0].content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    let at = calls[0].json()["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].clone();
    let at = at.as_str().unwrap();
    assert!(
        at.parse::<k8s_openapi::jiff::Timestamp>().is_ok() && at.ends_with('Z'),
        "{at}"
    );
}

// ---- pods, logs, exec --------------------------------------------------------------------------------------

const PODS: &str = "/api/v1/namespaces/gml-x/pods";

fn pod(name: &str, phase: &str) -> Value {
    json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": name, "namespace": "gml-x",
        "labels": { "app": "server" } }, "status": { "phase": phase } })
}

fn pod_list(items: Vec<Value>) -> Reply {
    Reply::Json(200, mock::list("v1", "PodList", items))
}

#[tokio::test]
async fn pod_names_lists_by_label_selector_sorted() {
    let mock = Mock::start().await;
    mock.on(
        "GET",
        PODS,
        pod_list(vec![
            pod("server-v1-b", "Running"),
            pod("server-v1-a", "Pending"),
        ]),
    );

    let names = mock
        .cluster()
        .pod_names("gml-x", "app=server")
        .await
        .unwrap();

    assert_eq!(names, ["server-v1-a", "server-v1-b"]);
    let calls = mock.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].line(), format!("GET {PODS}"));
    assert_eq!(calls[0].param("labelSelector"), Some("app=server"));
}

#[tokio::test]
async fn a_pod_is_deleted_with_grace_period_0() {
    let mock = Mock::start().await;
    mock.on(
        "DELETE",
        &format!("{PODS}/server-v1-c"),
        Reply::Json(200, pod("server-v1-c", "Running")),
    );

    mock.cluster()
        .delete_pod("gml-x", "server-v1-c")
        .await
        .unwrap();

    let calls = mock.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].line(), format!("DELETE {PODS}/server-v1-c"));
    assert_eq!(calls[0].json()["gracePeriodSeconds"], json!(0));
}

#[tokio::test]
async fn pods_leave_out_the_terminating_ones_and_keep_their_node_containers_and_readiness() {
    let mock = Mock::start().await;
    let mut leaving = pod("server-v1-a", "Running");
    leaving["metadata"]["deletionTimestamp"] = json!("2026-11-29T10:05:00Z");
    let mut running = pod("server-v1-b", "Running");
    running["spec"] = json!({ "nodeName": "grpc-mesh-lab-worker2", "containers": [] });
    running["status"]["conditions"] = json!([{ "type": "Ready", "status": "True" }]);
    running["status"]["containerStatuses"] = json!([{ "name": "hello-server", "ready": true,
        "restartCount": 1, "image": "x", "imageID": "y", "containerID": "containerd://4f2a" }]);
    mock.on("GET", PODS, pod_list(vec![leaving, running]));

    let pods = mock
        .cluster()
        .pods("gml-x", "app=server,version=v1")
        .await
        .unwrap();

    let info: Vec<crate::harness::kind::ops::PodInfo> = pods
        .iter()
        .map(crate::harness::kind::ops::PodInfo::from_pod)
        .collect();
    assert_eq!(info.len(), 1, "{info:#?}");
    assert_eq!(info[0].name, "server-v1-b");
    assert_eq!(info[0].node.as_deref(), Some("grpc-mesh-lab-worker2"));
    assert!(info[0].running && info[0].ready);
    let c = info[0].container("hello-server").unwrap();
    assert_eq!(
        (c.id.as_deref(), c.restart_count, c.ready),
        (Some("containerd://4f2a"), 1, true)
    );
    assert_eq!(
        mock.calls()[0].param("labelSelector"),
        Some("app=server,version=v1")
    );
}

#[tokio::test]
async fn follow_logs_streams_the_lines_of_the_first_running_pod_until_the_server_ends_the_stream() {
    let mock = Mock::start().await;
    mock.on(
        "GET",
        PODS,
        pod_list(vec![
            pod("server-v1-a", "Pending"),
            pod("server-v1-b", "Running"),
        ]),
    );
    mock.on(
        "GET",
        &format!("{PODS}/server-v1-b/log"),
        Reply::Text(200, "one\ntwo\n".to_owned()),
    );

    let lines = mock
        .cluster()
        .follow_logs("gml-x", "app=server", "server")
        .await
        .unwrap();
    let lines: Vec<String> = lines.try_collect().await.unwrap();

    assert_eq!(lines, ["one", "two"]);
    let calls = mock.calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(calls[0].param("labelSelector"), Some("app=server"));
    assert_eq!(calls[1].line(), format!("GET {PODS}/server-v1-b/log"));
    assert_eq!(
        calls[1].params(),
        [("container", "server"), ("follow", "true")]
    );
}

#[tokio::test]
async fn a_followed_log_with_timestamps_asks_for_them_and_each_line_carries_its_time() {
    let mock = Mock::start().await;
    mock.on(
        "GET",
        &format!("{PODS}/client-1/log"),
        Reply::Paced(
            vec!["{\"type\":\"summary\"}".to_owned()],
            Duration::from_millis(1),
        ),
    );

    let lines = mock
        .cluster()
        .follow_pod_logs("gml-x", "client-1", "hello-client", true)
        .await
        .unwrap();
    let first = Box::pin(lines).try_next().await.unwrap().unwrap();

    let (time, rest) = first.split_once(' ').unwrap();
    assert_eq!(rest, "{\"type\":\"summary\"}");
    let time: k8s_openapi::jiff::Timestamp = time.parse().unwrap();
    let age = k8s_openapi::jiff::Timestamp::now().duration_since(time);
    assert!(age.as_secs() < 5, "{first}");
    assert_eq!(mock.calls()[0].param("timestamps"), Some("true"));
}

#[tokio::test]
async fn follow_logs_without_a_matching_pod_says_so() {
    let mock = Mock::start().await;
    mock.on("GET", PODS, pod_list(vec![]));

    let err = mock
        .cluster()
        .follow_logs("gml-x", "app=server", "server")
        .await
        .err()
        .unwrap();

    assert_eq!(
        format!("{err:#}"),
        "no pod matches app=server in namespace gml-x"
    );
}

#[tokio::test]
async fn exec_asks_for_a_websocket_with_the_command_and_reports_a_refusal_in_one_line() {
    let mock = Mock::start().await;
    mock.on(
        "GET",
        &format!("{PODS}/server-v1-a/exec"),
        Reply::Json(
            403,
            mock::status(403, "Forbidden", "pods \"server-v1-a\" is forbidden"),
        ),
    );

    let err = mock
        .cluster()
        .exec(
            "gml-x",
            "server-v1-a",
            "istio-proxy",
            &["pilot-agent", "request", "GET", "config_dump"],
        )
        .await
        .unwrap_err();

    let text = format!("{err:#}");
    assert!(
        text.starts_with("exec `pilot-agent request GET config_dump` in gml-x/server-v1-a container istio-proxy: "),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
    let calls = mock.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].line(), format!("GET {PODS}/server-v1-a/exec"));
    let command: Vec<&str> = calls[0]
        .query
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(command, ["pilot-agent", "request", "GET", "config_dump"]);
    assert_eq!(calls[0].param("container"), Some("istio-proxy"));
    assert_eq!(calls[0].param("stdout"), Some("true"));
}

// ---- delete_namespace --------------------------------------------------------------------------------------

const NAMESPACES: &str = "/api/v1/namespaces";

fn ours() -> Value {
    let mut ns = namespace(json!({ "app.kubernetes.io/part-of": "grpc-mesh-lab" }));
    ns["metadata"]["uid"] = json!("8f0c1d52-0000-4000-8000-000000000001");
    ns
}

#[tokio::test]
async fn delete_namespace_refuses_a_namespace_without_our_label_after_one_get() {
    let mock = Mock::start().await;
    mock.on(
        "GET",
        &format!("{NAMESPACES}/gml-x"),
        Reply::Json(200, namespace(json!({ "team": "payments" }))),
    );

    let err = mock
        .cluster()
        .delete_namespace("gml-x", LONG)
        .await
        .unwrap_err();

    assert_eq!(
        format!("{err:#}"),
        "refusing to delete namespace gml-x: it lacks the label app.kubernetes.io/part-of=grpc-mesh-lab"
    );
    let lines: Vec<String> = mock.calls().iter().map(mock::Recorded::line).collect();
    assert_eq!(lines, [format!("GET {NAMESPACES}/gml-x")]);
}

#[tokio::test]
async fn delete_namespace_deletes_ours_and_waits_until_it_is_gone() {
    let mock = Mock::start().await;
    let mut terminating = ours();
    terminating["status"] = json!({ "phase": "Terminating" });
    mock.on(
        "GET",
        &format!("{NAMESPACES}/gml-x"),
        Reply::Json(200, ours()),
    );
    mock.on(
        "DELETE",
        &format!("{NAMESPACES}/gml-x"),
        Reply::Json(200, terminating),
    );
    mock.on(
        "GET",
        NAMESPACES,
        Reply::Json(200, mock::list("v1", "NamespaceList", vec![])),
    );

    mock.cluster()
        .delete_namespace("gml-x", LONG)
        .await
        .unwrap();

    let calls = mock.calls();
    let lines: Vec<String> = calls.iter().map(mock::Recorded::line).collect();
    assert_eq!(
        lines,
        [
            format!("GET {NAMESPACES}/gml-x"),
            format!("DELETE {NAMESPACES}/gml-x"),
            format!("GET {NAMESPACES}"),
        ]
    );
    assert_lists_by_name(&calls[2], NAMESPACES, "gml-x");
}

#[tokio::test]
async fn delete_namespace_times_out_while_it_is_still_terminating() {
    let mock = Mock::start().await;
    mock.on(
        "GET",
        &format!("{NAMESPACES}/gml-x"),
        Reply::Json(200, ours()),
    );
    mock.on(
        "DELETE",
        &format!("{NAMESPACES}/gml-x"),
        Reply::Json(200, ours()),
    );
    mock.on(
        "GET",
        NAMESPACES,
        Reply::Json(200, mock::list("v1", "NamespaceList", vec![ours()])),
    );
    mock.on("WATCH", NAMESPACES, Reply::Events(vec![]));

    let err = mock
        .cluster()
        .delete_namespace("gml-x", SHORT)
        .await
        .unwrap_err();

    assert_eq!(
        format!("{err:#}"),
        "namespace gml-x still terminating after 0.3s"
    );
}

#[tokio::test]
async fn delete_namespace_of_a_namespace_that_is_gone_already_does_nothing_more() {
    let mock = Mock::start().await; // no route: the GET is a 404

    mock.cluster()
        .delete_namespace("gml-x", LONG)
        .await
        .unwrap();

    let lines: Vec<String> = mock.calls().iter().map(mock::Recorded::line).collect();
    assert_eq!(lines, [format!("GET {NAMESPACES}/gml-x")]);
}

/// A namespace an interrupted run left terminating: `deletionTimestamp` set, phase `Terminating`, the
/// `kubernetes` finalizer still in `spec.finalizers`.
fn terminating() -> Value {
    let mut ns = ours();
    ns["metadata"]["deletionTimestamp"] = json!("2026-11-29T10:00:00Z");
    ns["metadata"]["resourceVersion"] = json!("4711");
    ns["spec"] = json!({ "finalizers": ["kubernetes"] });
    ns["status"] = json!({ "phase": "Terminating" });
    ns
}

#[tokio::test]
async fn delete_namespace_of_a_terminating_namespace_takes_the_200_kubernetes_answers_and_waits() {
    // Since kubernetes/kubernetes#84122 (1.17) a DELETE of a namespace whose spec.finalizers are pending
    // returns the namespace (pkg/registry/core/namespace/storage/storage.go, REST.Delete).
    let mock = Mock::start().await;
    mock.on(
        "GET",
        &format!("{NAMESPACES}/gml-x"),
        Reply::Json(200, terminating()),
    );
    mock.on(
        "DELETE",
        &format!("{NAMESPACES}/gml-x"),
        Reply::Json(200, terminating()),
    );
    mock.on(
        "GET",
        NAMESPACES,
        Reply::Json(200, mock::list("v1", "NamespaceList", vec![terminating()])),
    );
    mock.on(
        "WATCH",
        NAMESPACES,
        Reply::Paced(
            vec![json!({ "type": "DELETED", "object": terminating() }).to_string()],
            Duration::from_millis(100),
        ),
    );

    mock.cluster()
        .delete_namespace("gml-x", LONG)
        .await
        .unwrap();

    let lines: Vec<String> = mock.calls().iter().map(mock::Recorded::line).collect();
    assert_eq!(
        lines,
        [
            format!("GET {NAMESPACES}/gml-x"),
            format!("DELETE {NAMESPACES}/gml-x"),
            format!("GET {NAMESPACES}"),
            format!("GET {NAMESPACES}"),
        ],
        "the second GET is the watch"
    );
    assert!(mock.calls()[3].is_watch());
}

#[tokio::test]
async fn delete_namespace_takes_a_409_of_a_server_before_1_17_as_a_deletion_under_way() {
    let mock = Mock::start().await;
    mock.on(
        "GET",
        &format!("{NAMESPACES}/gml-x"),
        Reply::Json(200, terminating()),
    );
    mock.on(
        "DELETE",
        &format!("{NAMESPACES}/gml-x"),
        Reply::Json(
            409,
            mock::status(
                409,
                "Conflict",
                "Operation cannot be fulfilled on namespaces \"gml-x\": The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.",
            ),
        ),
    );
    mock.on(
        "GET",
        NAMESPACES,
        Reply::Json(200, mock::list("v1", "NamespaceList", vec![])),
    );

    mock.cluster()
        .delete_namespace("gml-x", LONG)
        .await
        .unwrap();
}

// ---- delete_service ---------------------------------------------------------------------------------------

const SERVICES: &str = "/api/v1/namespaces/gml-x/services";

fn headless_service() -> Value {
    json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "server", "namespace": "gml-x",
        "uid": "8f0c1d52-0000-4000-8000-000000000003" },
        "spec": { "clusterIP": "None", "clusterIPs": ["None"], "ports": [{ "port": 50051 }] } })
}

#[tokio::test]
async fn delete_service_deletes_it_and_waits_until_it_is_gone() {
    let mock = Mock::start().await;
    mock.on(
        "GET",
        &format!("{SERVICES}/server"),
        Reply::Json(200, headless_service()),
    );
    mock.on(
        "DELETE",
        &format!("{SERVICES}/server"),
        Reply::Json(200, headless_service()),
    );
    mock.on(
        "GET",
        SERVICES,
        Reply::Json(200, mock::list("v1", "ServiceList", vec![])),
    );

    mock.cluster()
        .delete_service("gml-x", "server", LONG)
        .await
        .unwrap();

    let calls = mock.calls();
    let lines: Vec<String> = calls.iter().map(mock::Recorded::line).collect();
    assert_eq!(
        lines,
        [
            format!("GET {SERVICES}/server"),
            format!("DELETE {SERVICES}/server"),
            format!("GET {SERVICES}"),
        ]
    );
    assert_lists_by_name(&calls[2], SERVICES, "server");
}

#[tokio::test]
async fn delete_service_that_stays_times_out_naming_it() {
    let mock = Mock::start().await;
    mock.on(
        "GET",
        &format!("{SERVICES}/server"),
        Reply::Json(200, headless_service()),
    );
    mock.on(
        "DELETE",
        &format!("{SERVICES}/server"),
        Reply::Json(200, headless_service()),
    );
    mock.on(
        "GET",
        SERVICES,
        Reply::Json(
            200,
            mock::list("v1", "ServiceList", vec![headless_service()]),
        ),
    );
    mock.on("WATCH", SERVICES, Reply::Events(vec![]));

    let err = mock
        .cluster()
        .delete_service("gml-x", "server", SHORT)
        .await
        .unwrap_err();

    assert_eq!(
        format!("{err:#}"),
        "service gml-x/server still there after 0.3s"
    );
}

// ---- get_json, config maps ----------------------------------------------------------------------------------

#[tokio::test]
async fn get_json_reads_a_route_with_its_status_through_discovery() {
    let mock = Mock::start().await;
    let mut route = http_route();
    route["status"] = json!({ "parents": [] });
    mock.on(
        "GET",
        "/apis/gateway.networking.k8s.io/v1/namespaces/gml-x/httproutes/hello",
        Reply::Json(200, route.clone()),
    );

    let found = mock
        .cluster()
        .get_json(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            "gml-x",
            "hello",
        )
        .await
        .unwrap()
        .unwrap();
    let missing = mock
        .cluster()
        .get_json(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            "gml-x",
            "other",
        )
        .await
        .unwrap();

    assert_eq!(found["status"], json!({ "parents": [] }));
    assert_eq!(found["metadata"]["name"], "hello");
    assert_eq!(missing, None);
}

#[tokio::test]
async fn a_config_map_is_read_and_merge_patched_under_our_field_manager() {
    let mock = Mock::start().await;
    let cm = json!({ "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "istio", "namespace": "istio-system" }, "data": { "mesh": "a: 1\n" } });
    mock.on(
        "GET",
        "/api/v1/namespaces/istio-system/configmaps/istio",
        Reply::Json(200, cm.clone()),
    );
    mock.on(
        "PATCH",
        "/api/v1/namespaces/istio-system/configmaps/istio",
        Reply::Json(200, cm),
    );

    let cluster = mock.cluster();
    let found = cluster
        .config_map("istio-system", "istio")
        .await
        .unwrap()
        .unwrap();
    cluster
        .patch_config_map(
            "istio-system",
            "istio",
            &json!({ "data": { "mesh": "a: 2\n" } }),
        )
        .await
        .unwrap();

    assert_eq!(found.data.unwrap()["mesh"], "a: 1\n");
    let patch = &mock.calls()[1];
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(patch.param("fieldManager"), Some(FIELD_MANAGER));
    assert_eq!(patch.json(), json!({ "data": { "mesh": "a: 2\n" } }));
}

// ---- server_version ------------------------------------------------------------------------------------------

#[tokio::test]
async fn server_version_is_the_git_version() {
    let mock = Mock::start().await;
    mock.on("GET", "/version", Reply::Json(200, version_info()));

    assert_eq!(mock.cluster().server_version().await.unwrap(), "v1.35.0");
    let lines: Vec<String> = mock.calls().iter().map(mock::Recorded::line).collect();
    assert_eq!(lines, ["GET /version"]);
}

fn version_info() -> Value {
    json!({ "major": "1", "minor": "35", "gitVersion": "v1.35.0", "gitCommit": "abc",
        "gitTreeState": "clean", "buildDate": "2025-12-17T00:00:00Z", "goVersion": "go1.25.5",
        "compiler": "gc", "platform": "linux/amd64" })
}

#[test]
fn deadlines_print_in_seconds() {
    assert_eq!(super::seconds(Duration::from_secs(120)), "120s");
    assert_eq!(super::seconds(Duration::from_millis(300)), "0.3s");
}
