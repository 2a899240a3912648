//! Waits with deadlines: a Deployment's rollout, CRDs established.

use serde_json::{Value, json};

use super::{
    DEPLOYMENTS, LONG, SHORT, assert_lists_by_name, deployment_status, http_route, object,
    server_deployment,
};
use crate::cluster::kube::mock::{self, Mock, Reply};

fn deployment_list(items: Vec<Value>) -> Reply {
    Reply::Json(200, mock::list("apps/v1", "DeploymentList", items))
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

const DAEMONSETS: &str = "/apis/apps/v1/namespaces/istio-system/daemonsets";

/// ztunnel's DaemonSet with `updated` and `available` of `desired` pods, the controller at `observed`.
fn daemonset(generation: i64, observed: i64, desired: i32, updated: i32, available: i32) -> Value {
    json!({ "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": { "name": "ztunnel", "namespace": "istio-system", "generation": generation,
            "resourceVersion": "100" },
        "spec": { "selector": { "matchLabels": { "app": "ztunnel" } }, "template": {} },
        "status": { "observedGeneration": observed, "desiredNumberScheduled": desired,
            "currentNumberScheduled": desired, "numberMisscheduled": 0, "numberReady": available,
            "updatedNumberScheduled": updated, "numberAvailable": available } })
}

#[tokio::test]
async fn wait_daemonset_waits_for_an_updated_available_pod_on_every_node_of_the_current_generation()
{
    // Complete: listed once, no watch.
    let mock = Mock::start().await;
    mock.on(
        "GET",
        DAEMONSETS,
        Reply::Json(
            200,
            mock::list("apps/v1", "DaemonSetList", vec![daemonset(2, 2, 3, 3, 3)]),
        ),
    );
    mock.cluster()
        .wait_daemonset("istio-system", "ztunnel", LONG)
        .await
        .unwrap();
    assert_lists_by_name(&mock.calls()[0], DAEMONSETS, "ztunnel");

    // Not complete: a node without an updated pod, the previous generation, or no node at all.
    for (label, unfinished) in [
        ("one node lacks an updated pod", daemonset(2, 2, 3, 2, 3)),
        (
            "the controller has not seen the generation",
            daemonset(3, 2, 3, 3, 3),
        ),
        ("no node wants a pod yet", daemonset(1, 1, 0, 0, 0)),
    ] {
        let mock = Mock::start().await;
        mock.on(
            "GET",
            DAEMONSETS,
            Reply::Json(
                200,
                mock::list("apps/v1", "DaemonSetList", vec![unfinished]),
            ),
        );
        mock.on("WATCH", DAEMONSETS, Reply::Events(vec![]));
        let err = mock
            .cluster()
            .wait_daemonset("istio-system", "ztunnel", SHORT)
            .await
            .expect_err(label)
            .to_string();
        assert!(
            err.starts_with("daemonset istio-system/ztunnel not ready after "),
            "{label}: {err}"
        );
    }
}
