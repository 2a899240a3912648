//! A whole demo through `engine::run` on the mock, a setup the API server refuses, the proxies' counts, a
//! rolling restart.

use super::*;

#[tokio::test]
async fn a_demo_on_the_cluster_applies_scales_switches_clients_measures_their_logs_and_cleans_up() {
    let mock = cluster().await;
    let scenario = scenario();
    let mut kind = backend(&mock);

    let report = engine::run(&mut kind, &scenario, Measure::Scenario, "kind")
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

    let err = engine::run(&mut kind, &scenario, Measure::Scenario, "kind")
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
