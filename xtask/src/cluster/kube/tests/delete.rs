//! Tearing down: our namespaces only, a Service; each waited for until it is gone.

use std::time::Duration;

use serde_json::{Value, json};

use super::{LONG, SHORT, assert_lists_by_name, namespace};
use crate::cluster::{
    kube::mock::{self, Mock, Reply},
    objects::{PART_OF, PART_OF_LABEL},
};

const NAMESPACES: &str = "/api/v1/namespaces";

fn ours() -> Value {
    let mut ns = namespace(json!({ PART_OF_LABEL: PART_OF }));
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
