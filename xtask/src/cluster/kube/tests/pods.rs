//! Pods: the live ones, a deletion, a followed log, exec.

use std::time::Duration;

use futures::TryStreamExt as _;
use serde_json::{Value, json};

use crate::{
    cluster::kube::mock::{self, Mock, Reply},
    harness::kind::ops::PodInfo,
};

const PODS: &str = "/api/v1/namespaces/gml-x/pods";

fn pod(name: &str, phase: &str) -> Value {
    json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": name, "namespace": "gml-x",
        "labels": { "app": "server" } }, "status": { "phase": phase } })
}

fn pod_list(items: Vec<Value>) -> Reply {
    Reply::Json(200, mock::list("v1", "PodList", items))
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

    let info: Vec<PodInfo> = pods.iter().map(PodInfo::from_pod).collect();
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
async fn a_followed_log_streams_its_lines_until_the_server_ends_the_stream() {
    let mock = Mock::start().await;
    mock.on(
        "GET",
        &format!("{PODS}/server-v1-b/log"),
        Reply::Text(200, "one\ntwo\n".to_owned()),
    );

    let lines = mock
        .cluster()
        .follow_pod_logs("gml-x", "server-v1-b", "server", false)
        .await
        .unwrap();
    let lines: Vec<String> = lines.try_collect().await.unwrap();

    assert_eq!(lines, ["one", "two"]);
    let calls = mock.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].line(), format!("GET {PODS}/server-v1-b/log"));
    assert_eq!(
        calls[0].params(),
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
