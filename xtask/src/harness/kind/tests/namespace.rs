//! A namespace an interrupted run left terminating: creates are refused until it is gone, and setup waits.

use super::*;

/// The scenario's namespace as an interrupted run left it: terminating for `lasts`, then gone. While it
/// terminates, a DELETE answers it (200, as since 1.17) and every create in it is refused by the
/// NamespaceLifecycle admission plugin (403, cause `NamespaceTerminating`); once gone, creates succeed.
fn terminating_namespace(mock: &Mock, lasts: Duration) -> Arc<Mutex<Vec<String>>> {
    let gone_at = Instant::now() + lasts;
    let terminating = move || Instant::now() < gone_at;
    let object = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": NS,
        "uid": "8f0c1d52-0000-4000-8000-000000000009", "deletionTimestamp": "2026-11-29T10:00:00Z",
        "resourceVersion": "4711",
        "labels": { "app.kubernetes.io/part-of": "grpc-mesh-lab" } },
        "spec": { "finalizers": ["kubernetes"] }, "status": { "phase": "Terminating" } });
    let namespace = format!("/api/v1/namespaces/{NS}");
    let (get, delete) = (object.clone(), object.clone());
    mock.on(
        "GET",
        &namespace,
        Reply::func(move |_| {
            if terminating() {
                Reply::Json(200, get.clone())
            } else {
                Reply::Json(
                    404,
                    mock::status(404, "NotFound", &format!("namespaces \"{NS}\" not found")),
                )
            }
        }),
    )
    .on("DELETE", &namespace, Reply::Json(200, delete));
    let listed = object.clone();
    mock.on(
        "GET",
        "/api/v1/namespaces",
        Reply::func(move |_| {
            let items = if terminating() {
                vec![listed.clone()]
            } else {
                vec![]
            };
            Reply::Json(200, mock::list("v1", "NamespaceList", items))
        }),
    );
    let gone = object.clone();
    mock.on(
        "WATCH",
        "/api/v1/namespaces",
        Reply::func(move |_| {
            let left = gone_at.saturating_duration_since(Instant::now());
            Reply::Paced(
                vec![json!({ "type": "DELETED", "object": gone }).to_string()],
                left,
            )
        }),
    );
    let refused: Arc<Mutex<Vec<String>>> = Arc::default();
    for prefix in [format!("/api/v1/namespaces/{NS}/*"), "/apis/*".to_owned()] {
        let refused = Arc::clone(&refused);
        mock.on(
            "PATCH",
            &prefix,
            Reply::func(move |r: &Recorded| {
                if !terminating() || !r.path.contains(&format!("/namespaces/{NS}/")) {
                    return Reply::Echo;
                }
                refused.lock().unwrap().push(r.line());
                let mut parts = r.path.rsplit('/');
                let (name, resource) = (parts.next().unwrap(), parts.next().unwrap());
                let mut status = mock::status(
                    403,
                    "Forbidden",
                    &format!(
                        "{resource} \"{name}\" is forbidden: unable to create new content in namespace {NS} \
                         because it is being terminated"
                    ),
                );
                status["details"] = json!({ "name": name, "kind": resource, "causes": [{
                    "reason": "NamespaceTerminating", "message": format!("namespace {NS} is being terminated"),
                    "field": "metadata.namespace" }] });
                Reply::Json(403, status)
            }),
        );
    }
    refused
}

#[tokio::test]
async fn a_namespace_still_terminating_from_an_interrupted_run_refuses_creates_and_setup_waits_until_it_is_gone()
 {
    let mock = cluster().await;
    let refused = terminating_namespace(&mock, Duration::from_millis(400));
    let account = objects::base(&scenario(), &backend(&mock).images).unwrap()[1].clone();

    // What an apply meets while the namespace terminates.
    let err = mock.cluster().apply(&[account]).await.unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        format!(
            "apply ServiceAccount {NS}/server: 403 Forbidden: serviceaccounts \"server\" is forbidden: unable to \
             create new content in namespace {NS} because it is being terminated"
        )
    );
    refused.lock().unwrap().clear();

    let started = Instant::now();
    let mut kind = backend(&mock);
    kind.setup(&scenario()).await.unwrap();

    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        *refused.lock().unwrap(),
        Vec::<String>::new(),
        "nothing created in it"
    );
    let writes = writes(&mock);
    assert_eq!(writes[1], format!("DELETE /api/v1/namespaces/{NS}"));
    assert_eq!(
        writes[2],
        format!("PATCH /api/v1/namespaces/{NS}"),
        "then the new namespace"
    );
}
