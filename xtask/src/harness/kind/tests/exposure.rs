//! A phase's exposure re-creates the Service `server`, whose `clusterIP` an update may not change.

use super::*;

/// The Service `server` as the API server answers a GET or DELETE of it: the object, or a 404.
fn found_or_404(service: Option<Value>) -> Reply {
    match service {
        Some(s) => Reply::Json(200, s),
        None => Reply::Json(
            404,
            mock::status(404, "NotFound", "services \"server\" not found"),
        ),
    }
}

/// The Service `server` as the API server keeps it: an update may not change `clusterIP` between
/// `None` and an address (`ValidateServiceUpdate`: "may not change once set"), and an update that leaves
/// it out keeps the old one (`patchAllocatedValues`); a create without one gets an address.
fn service_registry(mock: &Mock) -> Arc<Mutex<Option<Value>>> {
    let current: Arc<Mutex<Option<Value>>> = Arc::default();
    let path = format!("/api/v1/namespaces/{NS}/services/server");
    let on_patch = Arc::clone(&current);
    mock.on(
        "PATCH",
        &path,
        Reply::func(move |r: &Recorded| {
            let mut body = r.json();
            let mut current = on_patch.lock().unwrap();
            let asked = body["spec"]["clusterIP"].as_str().map(str::to_owned);
            let ip = match (current.as_ref(), asked) {
                (None, Some(ip)) => ip,
                (None, None) => "10.96.17.4".to_owned(),
                (Some(old), None) => old["spec"]["clusterIP"].as_str().unwrap().to_owned(),
                (Some(old), Some(ip)) if old["spec"]["clusterIP"] == ip.as_str() => ip,
                (Some(_), Some(ip)) => {
                    return Reply::Json(
                        422,
                        mock::status(
                            422,
                            "Invalid",
                            &format!(
                                "Service \"server\" is invalid: spec.clusterIPs[0]: Invalid value: []string{{\"{ip}\"}}: \
                                 may not change once set"
                            ),
                        ),
                    );
                }
            };
            body["spec"]["clusterIP"] = json!(ip);
            body["metadata"]["uid"] = json!("8f0c1d52-0000-4000-8000-000000000017");
            *current = Some(body.clone());
            Reply::Json(200, body)
        }),
    );
    let on_get = Arc::clone(&current);
    mock.on(
        "GET",
        &path,
        Reply::func(move |_| found_or_404(on_get.lock().unwrap().clone())),
    );
    let on_delete = Arc::clone(&current);
    mock.on(
        "DELETE",
        &path,
        Reply::func(move |_| found_or_404(on_delete.lock().unwrap().take())),
    );
    let on_list = Arc::clone(&current);
    mock.on(
        "GET",
        &format!("/api/v1/namespaces/{NS}/services"),
        Reply::func(move |_| {
            let items = on_list.lock().unwrap().clone().into_iter().collect();
            Reply::Json(200, mock::list("v1", "ServiceList", items))
        }),
    );
    current
}

#[tokio::test]
async fn the_mock_s_services_keep_their_cluster_ip_through_updates_as_the_api_server_does() {
    let mock = cluster().await;
    let service = service_registry(&mock);
    let mut s = scenario();
    let cluster = mock.cluster();
    s.exposure = Exposure::Headless;
    cluster
        .apply(&[objects::server_service(&s, Exposure::Headless).unwrap()])
        .await
        .unwrap();

    // Applying the ClusterIP form over the headless one: no error, and still headless.
    cluster
        .apply(&[objects::server_service(&s, Exposure::ClusterIp).unwrap()])
        .await
        .unwrap();
    assert_eq!(
        service.lock().unwrap().as_ref().unwrap()["spec"]["clusterIP"],
        "None"
    );

    // And the other way round: refused.
    *service.lock().unwrap() = None;
    cluster
        .apply(&[objects::server_service(&s, Exposure::ClusterIp).unwrap()])
        .await
        .unwrap();
    let err = cluster
        .apply(&[objects::server_service(&s, Exposure::Headless).unwrap()])
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").ends_with("may not change once set"),
        "{err:#}"
    );
}

#[tokio::test]
async fn a_phase_that_exposes_the_service_otherwise_deletes_it_waits_and_creates_it_again() {
    let mock = cluster().await;
    let service = service_registry(&mock);
    let mut s = scenario();
    s.routes = None;
    s.exposure = Exposure::Headless;
    s.phases = vec![
        Phase {
            actions: vec![],
            ..s.phases[0].clone()
        },
        Phase {
            name: "through the ClusterIP",
            actions: vec![],
            exposure: Some(Exposure::ClusterIp),
            ..s.phases[0].clone()
        },
    ];
    let mut kind = backend(&mock);

    engine::run(&mut kind, &s, Measure::Scenario, "kind")
        .await
        .unwrap();

    let service_writes: Vec<String> = writes(&mock)
        .into_iter()
        .filter(|w| w.ends_with("/services/server"))
        .collect();
    let path = format!("/api/v1/namespaces/{NS}/services/server");
    assert_eq!(
        service_writes,
        [
            format!("PATCH {path}"),
            format!("DELETE {path}"),
            format!("PATCH {path}")
        ]
    );
    let now = service.lock().unwrap().clone().unwrap();
    assert_eq!(
        now["spec"]["clusterIP"], "10.96.17.4",
        "an address, not None"
    );
    assert_eq!(
        now["spec"]["selector"],
        json!({ "app": "server" }),
        "the same Service, only its clusterIP differs"
    );
    let deleted_at = mock
        .calls()
        .iter()
        .position(|c| c.method == "DELETE" && c.path == path)
        .unwrap();
    assert!(
        mock.calls()[deleted_at..]
            .iter()
            .any(|c| c.path.ends_with("/services")
                && c.param("fieldSelector") == Some("metadata.name=server")),
        "the delete was waited for"
    );
    kind.teardown().await.unwrap();
}
