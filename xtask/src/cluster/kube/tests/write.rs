//! Server-side apply, and the merge patches: scale, restart, a ConfigMap.

use serde_json::{Value, json};

use super::{DEPLOYMENTS, deployment_status, http_route, namespace, object, server_deployment};
use crate::cluster::{
    kube::{
        FIELD_MANAGER,
        mock::{self, APIEXTENSIONS_V1, APPS_V1, CORE_V1, GATEWAY_V1, Mock, Reply},
    },
    objects::{PART_OF, PART_OF_LABEL},
};

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
    let ns = namespace(json!({ PART_OF_LABEL: PART_OF }));

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
    let ns = namespace(json!({ PART_OF_LABEL: PART_OF }));
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
