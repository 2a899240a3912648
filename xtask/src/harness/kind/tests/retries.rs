//! A phase's retry policy is Istio's mesh configuration: set, checked in the sidecar, put back.

use super::*;

/// The `mesh` text `istioctl install` left (shape only).
const INSTALLED_MESH: &str = "defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\nrootNamespace: istio-system\n";
const ISTIO_CM: &str = "/api/v1/namespaces/istio-system/configmaps/istio";

/// Istio's ConfigMap `istio` as the API server keeps it (merge patches applied), and the time of the
/// last change, after which istiod pushes.
fn mesh_config_map(
    mock: &Mock,
    annotations: Value,
) -> (Arc<Mutex<Value>>, Arc<Mutex<Option<Instant>>>) {
    let config = Arc::new(Mutex::new(json!({ "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "istio", "namespace": "istio-system", "annotations": annotations },
        "data": { "mesh": INSTALLED_MESH } })));
    let changed: Arc<Mutex<Option<Instant>>> = Arc::default();
    let on_get = Arc::clone(&config);
    mock.on(
        "GET",
        ISTIO_CM,
        Reply::func(move |_| Reply::Json(200, on_get.lock().unwrap().clone())),
    );
    let (on_patch, at) = (Arc::clone(&config), Arc::clone(&changed));
    mock.on(
        "PATCH",
        ISTIO_CM,
        Reply::func(move |r: &Recorded| {
            let mut config = on_patch.lock().unwrap();
            recorder::merge_patch(&mut config, &r.json());
            *at.lock().unwrap() = Some(Instant::now());
            Reply::Json(200, config.clone())
        }),
    );
    (config, changed)
}

#[tokio::test]
async fn a_retry_phase_sets_istio_s_policy_waits_until_the_sidecar_has_it_and_puts_the_installed_text_back()
 {
    let mock = cluster().await;
    let (config, changed) = mesh_config_map(&mock, json!({}));
    // istiod pushes the new policy 100ms after the ConfigMap changed (a watch, no restart).
    let (pushed_from, at) = (Arc::clone(&config), Arc::clone(&changed));
    let mut kind =
        backend_with_exec(&mock, move |_| {
            let settled = at
                .lock()
                .unwrap()
                .is_none_or(|t| t.elapsed() > Duration::from_millis(100));
            let mesh = pushed_from.lock().unwrap()["data"]["mesh"]
                .as_str()
                .unwrap()
                .to_owned();
            let retry_on = mesh_config::retry_on_in(&mesh)
                .filter(|_| settled)
                .unwrap_or_else(|| mesh_config::ISTIO_DEFAULT_RETRY_ON.into());
            let host = format!("server.{NS}.svc.cluster.local");
            Ok(json!({ "configs": [{ "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
            "dynamic_route_configs": [{ "route_config": { "virtual_hosts": [{ "domains": [host],
                "routes": [{ "route": { "cluster": format!("outbound|50051||{host}"),
                    "retry_policy": { "retry_on": retry_on } } }] }] } }] }] })
        .to_string())
        });
    let mut s = scenario();
    s.routes = None;
    s.phases = vec![
        Phase {
            name: "istio's retries",
            mesh: Mesh::Sidecar,
            actions: vec![],
            ..s.phases[0].clone()
        },
        Phase {
            name: "retry on reset",
            mesh: Mesh::Sidecar,
            actions: vec![],
            retries: Retries::WithReset,
            ..s.phases[0].clone()
        },
    ];

    let report = engine::run(&mut kind, &s, Measure::Scenario, "kind")
        .await
        .unwrap();
    let warnings = kind.warnings();
    kind.teardown().await.unwrap();

    assert_eq!(report.phases.len(), 2);
    assert!(
        warnings.is_empty(),
        "the sidecar got the policy: {warnings:?}"
    );
    let patches: Vec<Value> = mock
        .calls()
        .iter()
        .filter(|c| c.method == "PATCH" && c.path == ISTIO_CM)
        .map(Recorded::json)
        .collect();
    assert_eq!(patches.len(), 2, "set, then put back: {patches:#?}");
    let set = patches[0]["data"]["mesh"].as_str().unwrap();
    assert_eq!(
        mesh_config::retry_on_in(set).unwrap(),
        format!("{},reset", mesh_config::ISTIO_DEFAULT_RETRY_ON)
    );
    assert!(set.contains("discoveryAddress"), "the rest kept: {set}");
    assert_eq!(
        patches[0]["metadata"]["annotations"][mesh_config::ORIGINAL_ANNOTATION],
        INSTALLED_MESH
    );
    let after = config.lock().unwrap().clone();
    assert_eq!(
        after["data"]["mesh"], INSTALLED_MESH,
        "exactly as installed"
    );
    assert_eq!(
        after["metadata"]["annotations"],
        json!({}),
        "no annotation left"
    );
}

#[tokio::test]
async fn a_retry_policy_an_interrupted_run_left_is_put_back_before_a_sidecar_demo_starts() {
    let mock = cluster().await;
    let (config, _) = mesh_config_map(
        &mock,
        json!({ mesh_config::ORIGINAL_ANNOTATION: "trustDomain: cluster.local\n" }),
    );
    let mut kind = backend(&mock);

    kind.setup(&scenario()).await.unwrap();

    let after = config.lock().unwrap().clone();
    assert_eq!(after["data"]["mesh"], "trustDomain: cluster.local\n");
    assert_eq!(after["metadata"]["annotations"], json!({}));
    assert!(
        kind.mesh_config_changed,
        "the sidecar's policy is checked from now on"
    );
}
