//! A kill is a SIGKILL on the node, and the wait is for the pod, not the Deployment; elsewhere than kind, a
//! delete with grace period 0.

use super::*;

const V1_PODS: &str = "app=server,version=v1";

#[tokio::test]
async fn a_kill_on_kind_sigkills_the_oldest_server_container_on_its_node_and_waits_until_it_serves_again()
 {
    let mock = cluster().await;
    // The Deployment's status says "complete" throughout (the default route): a container restart
    // changes nothing the Deployment controller watches.
    let stopped: Arc<Mutex<Option<Instant>>> = Arc::default();
    let seen = Arc::clone(&stopped);
    mock.on_query(
        "GET",
        PODS,
        ("labelSelector", V1_PODS),
        Reply::func(move |_| {
            let since = seen.lock().unwrap().map(|t| t.elapsed());
            let (restarts, ready) = match since {
                // Before the kill, and while the kubelet has not noticed it yet: stale.
                None => (0, true),
                Some(d) if d < Duration::from_millis(100) => (0, true),
                // Restarted in the same pod; its readiness probe has not passed yet.
                Some(d) if d < Duration::from_millis(300) => (1, false),
                Some(_) => (1, true),
            };
            pod_list(vec![
                pod(
                    "server-v1-b",
                    "hello-server",
                    "2026-11-29T10:01:00Z",
                    0,
                    true,
                ),
                pod(
                    "server-v1-a",
                    "hello-server",
                    "2026-11-29T10:00:00Z",
                    restarts,
                    ready,
                ),
            ])
        }),
    );
    let nodes = Nodes::default();
    let on_stop = Arc::clone(&stopped);
    *nodes.effect.lock().unwrap() = Some(Box::new(move || {
        *on_stop.lock().unwrap() = Some(Instant::now());
    }));
    let mut kind = backend_on(mock.cluster(), &nodes);
    kind.namespace = NS.into();

    kind.apply(&Action::Kill { version: "v1" }).await.unwrap();

    let waited = stopped.lock().unwrap().unwrap().elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "returned after {waited:?}, before the container was back and ready"
    );
    assert_eq!(
        nodes.calls(),
        [(
            "grpc-mesh-lab-worker".to_owned(),
            ["crictl", "stop", "--timeout", "0", "server-v1-a-0"]
                .map(str::to_owned)
                .to_vec()
        )],
        "the oldest pod's container, by the id in its status, on the pod's node"
    );
    assert_eq!(
        writes(&mock),
        Vec::<String>::new(),
        "nothing deleted, nothing patched"
    );
    assert!(kind.warnings().is_empty(), "{:?}", kind.warnings());
}

#[tokio::test]
async fn a_kill_elsewhere_than_kind_deletes_the_pod_with_grace_0_says_it_drained_and_waits_for_its_replacement()
 {
    let mock = cluster().await;
    let deleted: Arc<Mutex<Option<Instant>>> = Arc::default();
    let seen = Arc::clone(&deleted);
    mock.on_query(
        "GET",
        PODS,
        ("labelSelector", V1_PODS),
        Reply::func(move |_| {
            let since = seen.lock().unwrap().map(|t| t.elapsed());
            let b = pod(
                "server-v1-b",
                "hello-server",
                "2026-11-29T10:01:00Z",
                0,
                true,
            );
            pod_list(match since {
                None => vec![
                    pod(
                        "server-v1-a",
                        "hello-server",
                        "2026-11-29T10:00:00Z",
                        0,
                        true,
                    ),
                    b,
                ],
                // A grace-0 delete removes the object at once; the ReplicaSet's new pod starts.
                Some(d) => vec![
                    b,
                    pod(
                        "server-v1-c",
                        "hello-server",
                        "2026-11-29T10:05:00Z",
                        0,
                        d >= Duration::from_millis(200),
                    ),
                ],
            })
        }),
    );
    let on_delete = Arc::clone(&deleted);
    mock.on(
        "DELETE",
        &format!("{PODS}/server-v1-a"),
        Reply::func(move |_| {
            *on_delete.lock().unwrap() = Some(Instant::now());
            Reply::Json(200, json!({ "metadata": { "name": "server-v1-a" } }))
        }),
    );
    let nodes = Nodes::default();
    let mut kind = backend_on(Cluster::from_client(mock.client(), "staging"), &nodes);
    kind.namespace = NS.into();

    kind.apply(&Action::Kill { version: "v1" }).await.unwrap();

    assert!(deleted.lock().unwrap().unwrap().elapsed() >= Duration::from_millis(200));
    assert!(nodes.calls().is_empty());
    let delete = mock
        .calls()
        .into_iter()
        .find(|c| c.method == "DELETE")
        .unwrap();
    assert_eq!(delete.json()["gracePeriodSeconds"], json!(0));
    assert_eq!(
        kind.warnings(),
        [
            "kube context staging is not a kind cluster: server-v1-a was deleted with grace period 0 instead of \
          killed; the kubelet still sends SIGTERM and SIGKILLs only after 2s, so the server drained (a graceful \
          stop, not a kill)"
        ]
    );
    assert_eq!(
        kind.servers(),
        ["server-v1-a", "server-v1-b", "server-v1-c", "server-v2-a"].map(str::to_owned),
        "the list of `app=server` (the default route) was read again"
    );
}
