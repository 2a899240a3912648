//! A whole demo on the cluster backend, against the mock API server: the very `demo::run` of the
//! `demo` command, with a two-phase scenario (mesh off with a scale-up, then Istio's sidecar with new
//! weights). The mock plays the cluster: every Deployment is rolled out, pods are listed by label,
//! and each client pod's log is a paced stream of JSON summaries. The test checks what was sent (in
//! order, with bodies) and what was measured from those logs.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::{
    cluster::kube::mock::{self, Mock, Reply},
    demo::{self, Measure},
    scenario::{Exposure, Phase, Retries},
};

const NS: &str = "gml-kindtest";
const PODS: &str = "/api/v1/namespaces/gml-kindtest/pods";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/gml-kindtest/deployments";
const EVERY: Duration = Duration::from_millis(20);

fn scenario() -> Scenario {
    let phase = |name, mesh, actions| Phase {
        name,
        mesh,
        client: Client::default(),
        actions,
        measure: Duration::from_millis(100),
        under_load: false,
        retries: Retries::IstioDefault,
        exposure: None,
    };
    Scenario {
        name: "kindtest",
        title: "test",
        lesson: "test",
        exposure: Exposure::ClusterIp,
        versions: vec![("v1", 2), ("v2", 1)],
        server_env: Vec::new(),
        routes: Some("httproute.yaml"),
        phases: vec![
            phase(
                "off",
                Mesh::Off,
                vec![Action::Scale {
                    version: "v1",
                    replicas: 3,
                }],
            ),
            phase(
                "on",
                Mesh::Sidecar,
                vec![Action::Weights(vec![("server-v1", 90), ("server-v2", 10)])],
            ),
        ],
    }
}

fn summary(t: usize, by_server: &[(&str, u64)]) -> String {
    let rpcs: u64 = by_server.iter().map(|(_, n)| n).sum();
    let by_server: serde_json::Map<String, Value> = by_server
        .iter()
        .map(|(s, n)| ((*s).to_owned(), json!(n)))
        .collect();
    json!({ "type": "summary", "t": t as f64 * 0.02, "rpcs": rpcs, "ok": rpcs, "errors": 0,
        "errors_by_code": {}, "by_server": by_server, "by_version": {},
        "latency_ms": { "p50": 1.0, "p90": 2.0, "p99": 3.0 } })
    .to_string()
}

/// A client's log: a line of its stderr, then a summary every [`EVERY`].
fn client_log(by_server: &[(&str, u64)]) -> Reply {
    let mut lines =
        vec!["2026-11-29T10:00:00Z INFO hello_client: resolving server:50051".to_owned()];
    lines.extend((1..400).map(|t| summary(t, by_server)));
    Reply::Paced(lines, EVERY)
}

fn pods(names: &[&str]) -> Reply {
    let items = names
        .iter()
        .map(|n| json!({ "metadata": { "name": n, "namespace": NS }, "status": { "phase": "Running" } }))
        .collect();
    Reply::Json(200, mock::list("v1", "PodList", items))
}

fn rolled_out() -> Value {
    json!({ "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "any", "namespace": NS, "generation": 1, "resourceVersion": "7" },
        "spec": { "replicas": 1, "selector": {}, "template": {} },
        "status": { "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
            "availableReplicas": 1, "conditions": [
                { "type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable" }] } })
}

fn scale_reply(name: &str, replicas: u32) -> Reply {
    Reply::Json(
        200,
        json!({ "apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": { "name": name, "namespace": NS }, "spec": { "replicas": replicas } }),
    )
}

/// The mock as a cluster where every rollout completes at once.
async fn cluster() -> Mock {
    let mock = Mock::start().await;
    let ns = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": NS,
        "uid": "8f0c1d52-0000-4000-8000-000000000002",
        "labels": { "app.kubernetes.io/part-of": "grpc-mesh-lab" } } });
    mock.on("PATCH", "/api/v1/*", Reply::Echo)
        .on("PATCH", "/apis/*", Reply::Echo)
        .on(
            "GET",
            &format!("/api/v1/namespaces/{NS}"),
            Reply::Json(200, ns.clone()),
        )
        .on(
            "DELETE",
            &format!("/api/v1/namespaces/{NS}"),
            Reply::Json(200, ns),
        )
        .on(
            "GET",
            "/api/v1/namespaces",
            Reply::Json(200, mock::list("v1", "NamespaceList", vec![])),
        )
        .on(
            "GET",
            DEPLOYMENTS,
            Reply::Json(
                200,
                mock::list("apps/v1", "DeploymentList", vec![rolled_out()]),
            ),
        )
        .on(
            "PATCH",
            &format!("{DEPLOYMENTS}/server-v1/scale"),
            scale_reply("server-v1", 3),
        )
        .on(
            "PATCH",
            &format!("{DEPLOYMENTS}/client-mesh-off/scale"),
            scale_reply("client-mesh-off", 0),
        )
        .on_query(
            "GET",
            PODS,
            ("labelSelector", "app=server"),
            pods(&["server-v1-a", "server-v1-b", "server-v1-c", "server-v2-a"]),
        )
        .on_query(
            "GET",
            PODS,
            ("labelSelector", "app=client-mesh-off"),
            pods(&["client-mesh-off-1"]),
        )
        .on_query(
            "GET",
            PODS,
            ("labelSelector", "app=client-mesh-on"),
            pods(&["client-mesh-on-1"]),
        )
        .on(
            "GET",
            &format!("{PODS}/client-mesh-off-1/log"),
            client_log(&[("server-v1-a", 10)]),
        )
        .on(
            "GET",
            &format!("{PODS}/client-mesh-on-1/log"),
            client_log(&[
                ("server-v1-a", 3),
                ("server-v1-b", 3),
                ("server-v1-c", 3),
                ("server-v2-a", 1),
            ]),
        )
        .on(
            "GET",
            &format!("{PODS}/client-mesh-on-1/exec"),
            Reply::Json(
                403,
                mock::status(403, "Forbidden", "exec is not allowed here"),
            ),
        );
    mock
}

fn backend(mock: &Mock) -> Kind {
    let images = objects::Images {
        server: "grpc-mesh-lab/hello-server:0123456789ab".into(),
        client: "grpc-mesh-lab/hello-client:ba9876543210".into(),
        envoy: "grpc-mesh-lab/envoy:5a5a5a5a5a5a".into(),
    };
    let deadlines = Deadlines {
        rollout: Duration::from_secs(10),
        routes: Duration::from_millis(300),
        retry: Duration::from_millis(50),
        teardown: Duration::from_secs(10),
    };
    let mut kind = Kind::new(mock.cluster(), images, deadlines, false);
    kind.interval = EVERY;
    kind
}

/// The writes, as `METHOD path`, in order (GETs are reads).
fn writes(mock: &Mock) -> Vec<String> {
    mock.calls()
        .iter()
        .filter(|c| c.method != "GET")
        .map(mock::Recorded::line)
        .collect()
}

#[tokio::test]
async fn a_demo_on_the_cluster_applies_scales_switches_clients_measures_their_logs_and_cleans_up() {
    let mock = cluster().await;
    let scenario = scenario();
    let mut kind = backend(&mock);

    let report = demo::run(&mut kind, &scenario, Measure::Scenario, "kind")
        .await
        .unwrap();
    let warnings = kind.warnings();
    kind.teardown().await.unwrap();

    // what was sent
    let patch = |path: &str| format!("PATCH {path}");
    let expected = [
        format!("DELETE /api/v1/namespaces/{NS}"),
        patch(&format!("/api/v1/namespaces/{NS}")),
        patch(&format!("/api/v1/namespaces/{NS}/serviceaccounts/server")),
        patch(&format!("/api/v1/namespaces/{NS}/serviceaccounts/client")),
        patch(&format!("{DEPLOYMENTS}/server-v1")),
        patch(&format!("{DEPLOYMENTS}/server-v2")),
        patch(&format!("/api/v1/namespaces/{NS}/services/server")),
        patch(&format!("/api/v1/namespaces/{NS}/services/server-v1")),
        patch(&format!("/api/v1/namespaces/{NS}/services/server-v2")),
        patch(&format!(
            "/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/server"
        )),
        // phase "off": the scale-up, then the mesh-off client
        patch(&format!("{DEPLOYMENTS}/server-v1/scale")),
        patch(&format!("{DEPLOYMENTS}/client-mesh-off")),
        // phase "on": the weights, the mesh-off client stopped, the mesh-on client
        patch(&format!(
            "/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/server"
        )),
        patch(&format!("{DEPLOYMENTS}/client-mesh-off/scale")),
        patch(&format!("{DEPLOYMENTS}/client-mesh-on")),
        // teardown
        format!("DELETE /api/v1/namespaces/{NS}"),
    ];
    assert_eq!(writes(&mock), expected);

    let calls = mock.calls();
    let applies: Vec<&mock::Recorded> = calls
        .iter()
        .filter(|c| c.method == "PATCH" && !c.path.ends_with("/scale"))
        .collect();
    for apply in &applies {
        assert_eq!(
            apply.content_type.as_deref(),
            Some("application/apply-patch+yaml"),
            "{}",
            apply.line()
        );
        assert_eq!(apply.param("fieldManager"), Some("grpc-mesh-lab"));
        assert_eq!(apply.param("force"), Some("true"));
    }
    let route_weights = |body: &Value| -> Vec<Value> {
        body["spec"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["backendRefs"].as_array().unwrap().clone())
            .map(|b| json!([b["name"], b["weight"]]))
            .collect()
    };
    let routes: Vec<Value> = applies
        .iter()
        .filter(|c| c.path.contains("/httproutes/"))
        .map(|c| c.json())
        .collect();
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[0]["metadata"]["namespace"], json!(NS));
    assert_eq!(
        route_weights(&routes[1]),
        [json!(["server-v1", 90]), json!(["server-v2", 10])]
    );
    let scales: Vec<Value> = calls
        .iter()
        .filter(|c| c.path.ends_with("/scale"))
        .map(|c| c.json())
        .collect();
    assert_eq!(
        scales,
        [
            json!({ "spec": { "replicas": 3 } }),
            json!({ "spec": { "replicas": 0 } })
        ]
    );
    let clients: Vec<Value> = applies
        .iter()
        .filter(|c| c.path.contains("/deployments/client-"))
        .map(|c| c.json())
        .collect();
    let template_labels = |d: &Value| d["spec"]["template"]["metadata"]["labels"].clone();
    assert_eq!(
        template_labels(&clients[0]).get(objects::INJECT_LABEL),
        None
    );
    assert_eq!(
        template_labels(&clients[1])[objects::INJECT_LABEL],
        json!("true")
    );
    let exec = calls
        .iter()
        .find(|c| c.path.ends_with("/client-mesh-on-1/exec"))
        .expect("the sidecar's configuration was asked for");
    assert_eq!(exec.param("container"), Some("istio-proxy"));
    let logs: Vec<&str> = calls
        .iter()
        .filter(|c| c.path.ends_with("/log"))
        .map(|c| c.path.as_str())
        .collect();
    assert!(
        logs.contains(&format!("{PODS}/client-mesh-off-1/log").as_str())
            && logs.contains(&format!("{PODS}/client-mesh-on-1/log").as_str()),
        "{logs:?}"
    );

    // what was measured
    assert_eq!(report.backend, "kind");
    let [off, on] = &report.phases[..] else {
        panic!("two phases: {:?}", report.phases)
    };
    assert_eq!(off.rpcs, 50, "5 intervals of 10 RPCs");
    assert_eq!(
        off.by_server,
        [
            ("server-v1-a".to_owned(), 50),
            ("server-v1-b".to_owned(), 0),
            ("server-v1-c".to_owned(), 0),
            ("server-v2-a".to_owned(), 0)
        ]
        .into()
    );
    assert!(off.jain < 0.3, "{}", off.jain);
    assert!(!off.mesh && on.mesh);
    assert_eq!(
        on.by_server["server-v2-a"] * 9,
        on.by_server["server-v1-a"] * 3
    );
    assert_eq!(
        on.weights,
        Some([("v1".to_owned(), 90), ("v2".to_owned(), 10)].into())
    );

    // the sidecar check could not read the configuration: a warning, and the demo went on
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("client-mesh-on-1: exec `pilot-agent request GET config_dump`"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[0].ends_with("measuring what the client gets anyway"),
        "{}",
        warnings[0]
    );
}

#[tokio::test]
async fn a_setup_that_the_api_server_refuses_stops_at_the_refused_object() {
    let mock = cluster().await;
    mock.on(
        "PATCH",
        &format!("{DEPLOYMENTS}/server-v1"),
        Reply::Json(
            422,
            mock::status(
                422,
                "Invalid",
                "Deployment.apps \"server-v1\" is invalid: spec.replicas: must be >= 0",
            ),
        ),
    );
    let scenario = scenario();
    let mut kind = backend(&mock);

    let err = demo::run(&mut kind, &scenario, Measure::Scenario, "kind")
        .await
        .unwrap_err();

    assert_eq!(
        format!("{err:#}"),
        format!(
            "apply Deployment {NS}/server-v1: 422 Invalid: Deployment.apps \"server-v1\" is invalid: spec.replicas: must be >= 0"
        )
    );
    let writes = writes(&mock);
    assert_eq!(
        writes.last().unwrap(),
        &format!("PATCH {DEPLOYMENTS}/server-v1"),
        "nothing after the refused object: {writes:?}"
    );
    kind.teardown().await.unwrap();
    assert_eq!(
        self::writes(&mock).last().unwrap(),
        &format!("DELETE /api/v1/namespaces/{NS}"),
        "the partial setup is deleted"
    );
}

#[test]
fn a_proxys_requests_are_its_listeners_downstream_requests_not_the_admins() {
    let stats = "cluster.server-pods.upstream_rq_total: 40\n\
                 http.admin.downstream_rq_total: 7\n\
                 http.grpc.downstream_rq_total: 40\n\
                 http.grpc.downstream_rq_2xx: 40\n";
    assert_eq!(downstream_requests(stats), 40);
}

#[tokio::test]
async fn a_rolling_restart_on_the_cluster_patches_the_pod_template_and_waits_for_the_rollout() {
    let mock = cluster().await;
    mock.on(
        "PATCH",
        &format!("{DEPLOYMENTS}/server-v1"),
        Reply::Json(200, rolled_out()),
    );
    let mut kind = backend(&mock);
    kind.namespace = NS.into();

    kind.apply(&Action::RollingRestart { version: "v1" })
        .await
        .unwrap();

    let calls = mock.calls();
    let patch = calls
        .iter()
        .find(|c| c.method == "PATCH")
        .expect("a patch of the deployment");
    assert_eq!(patch.line(), format!("PATCH {DEPLOYMENTS}/server-v1"));
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert!(
        patch.json()["spec"]["template"]["metadata"]["annotations"]
            ["kubectl.kubernetes.io/restartedAt"]
            .is_string(),
        "{}",
        patch.body
    );
    assert!(
        calls
            .iter()
            .any(|c| c.line() == format!("GET {DEPLOYMENTS}")
                && c.param("fieldSelector") == Some("metadata.name=server-v1")),
        "the rollout was waited for: {calls:#?}"
    );
    assert_eq!(kind.servers().len(), 4, "the server pods were listed again");
}

#[tokio::test]
async fn a_kill_on_the_cluster_deletes_the_oldest_server_pod_with_no_grace_period() {
    let mock = cluster().await;
    mock.on_query(
        "GET",
        PODS,
        ("labelSelector", "app=server,version=v1"),
        pods(&["server-v1-a", "server-v1-b"]),
    )
    .on(
        "DELETE",
        &format!("{PODS}/server-v1-a"),
        Reply::Json(200, json!({ "metadata": { "name": "server-v1-a" } })),
    );
    let mut kind = backend(&mock);
    kind.namespace = NS.into();

    kind.apply(&Action::Kill { version: "v1" }).await.unwrap();

    let writes = writes(&mock);
    assert_eq!(writes, [format!("DELETE {PODS}/server-v1-a")]);
    let delete = mock
        .calls()
        .into_iter()
        .find(|c| c.method == "DELETE")
        .unwrap();
    assert_eq!(delete.json()["gracePeriodSeconds"], json!(0));
}
