//! Measuring only after the sidecar holds the route: summaries written before do not count.

use super::*;

/// A sidecar's config dump whose virtual host for `server` sends to these Services with these weights.
fn dump_with(weights: &[(&str, u32)]) -> String {
    let host = format!("server.{NS}.svc.cluster.local");
    let clusters: Vec<Value> = weights
        .iter()
        .map(|(service, weight)| {
            json!({ "name": format!("outbound|50051||{service}.{NS}.svc.cluster.local"), "weight": weight })
        })
        .collect();
    json!({ "configs": [{ "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
        "dynamic_route_configs": [{ "route_config": { "name": "50051", "virtual_hosts": [{
            "name": format!("{host}:50051"), "domains": [host, "server"],
            "routes": [{ "match": { "prefix": "/" }, "route": { "weighted_clusters": { "clusters": clusters } } }]
        }] } }] }] })
    .to_string()
}

#[tokio::test]
async fn only_summaries_written_after_the_sidecar_holds_the_route_are_measured() {
    const ROUTED_AFTER: u32 = 10;
    let mock = cluster().await;
    // The client's container starts when its Deployment is applied; its log file has every line since.
    let started: Arc<Mutex<Option<SystemTime>>> = Arc::default();
    let on_apply = Arc::clone(&started);
    mock.on(
        "PATCH",
        &format!("{DEPLOYMENTS}/client-mesh-on"),
        Reply::func(move |r: &Recorded| {
            on_apply.lock().unwrap().get_or_insert_with(SystemTime::now);
            Reply::Json(200, r.json())
        }),
    );
    // Before the sidecar has the route, every RPC goes to v1; after, 9 to 1.
    let lines: Vec<String> = (1..400)
        .map(|t| {
            if t < ROUTED_AFTER as usize {
                summary(t, &[("server-v1-a", 10)])
            } else {
                summary(t, &[("server-v1-a", 9), ("server-v2-a", 1)])
            }
        })
        .collect();
    let lines = Arc::new(lines);
    let logged = Arc::clone(&started);
    mock.on(
        "GET",
        &format!("{PODS}/client-mesh-on-1/log"),
        Reply::func(move |_| Reply::Log {
            started: logged.lock().unwrap().expect("the client was applied"),
            every: EVERY,
            lines: Arc::clone(&lines),
        }),
    );
    // The sidecar gets the route a few intervals after the log turned.
    let pushed = Arc::clone(&started);
    let mut kind = backend_with_exec(&mock, move |_command| {
        let since = pushed.lock().unwrap().and_then(|s| s.elapsed().ok());
        Ok(if since.is_some_and(|d| d > EVERY * (ROUTED_AFTER + 3)) {
            dump_with(&[("server-v1", 90), ("server-v2", 10)])
        } else {
            dump_with(&[("server-v1", 1)])
        })
    });
    let mut one_phase = scenario();
    one_phase.phases.remove(0);

    let report = engine::run(&mut kind, &one_phase, Measure::Scenario, "kind")
        .await
        .unwrap();

    let [phase] = &report.phases[..] else {
        panic!("{:?}", report.phases)
    };
    assert_eq!(phase.rpcs, 50, "5 intervals of 10, none from before");
    assert_eq!(phase.by_server["server-v1-a"], 45, "{:?}", phase.by_server);
    assert_eq!(phase.by_server["server-v2-a"], 5, "{:?}", phase.by_server);
    assert!(kind.warnings().is_empty(), "{:?}", kind.warnings());
    let log = mock
        .calls()
        .into_iter()
        .find(|c| c.path.ends_with("/log"))
        .unwrap();
    assert_eq!(log.param("timestamps"), Some("true"));
    kind.teardown().await.unwrap();
}
