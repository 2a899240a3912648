//! Istio's ambient mode on the mock: the namespace enrolled, the waypoint `Gateway` the API server accepts
//! and istiod deploys (its Deployment and pod named after it) and programs, the Service attached only in the
//! waypoint phases, and Istio's word checked before each phase is measured (the route's `ResolvedWaypoints`,
//! the waypoint's dump, ztunnel's view); and the failures: no ztunnel, a waypoint never programmed.

use super::*;
use crate::cluster::{objects::ambient, route_check};

const GATEWAYS: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/gml-kindtest/gateways";
const GRPCROUTES: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/gml-kindtest/grpcroutes";
const SERVICES: &str = "/api/v1/namespaces/gml-kindtest/services";
const ZTUNNEL_DS: &str = "/apis/apps/v1/namespaces/istio-system/daemonsets/ztunnel";

/// The built-in ambient scenario, in the tests' namespace, with short phases.
fn ambient_scenario() -> Scenario {
    let mut s = crate::harness::scenario::get("ambient").unwrap();
    s.name = "kindtest";
    for phase in &mut s.phases {
        phase.measure = Duration::from_millis(100);
    }
    s
}

/// What the mock's istiod and ztunnel know, as the API server was told it.
#[derive(Default)]
struct Ambient {
    /// The namespace was applied with `istio.io/dataplane-mode: ambient`.
    enrolled: bool,
    /// The waypoint Gateway as applied.
    gateway: Option<Value>,
    /// The Service `server` carries `istio.io/use-waypoint` now.
    attached: bool,
    /// The GRPCRoute as applied, with its generation.
    route: Option<Value>,
    /// The waypoint's Envoy never gets its routes, and ztunnel never learns of the waypoint.
    stuck: bool,
}

/// The mock as an ambient cluster: istiod writes `ResolvedWaypoints` (resolved only while `server` carries the
/// label), deploys the waypoint (a Deployment and a pod named after the Gateway) and, unless
/// `programs` is false, programs it; ztunnel runs on the client's node.
async fn ambient_cluster(programs: bool) -> (Mock, Arc<Mutex<Ambient>>) {
    let mock = cluster().await;
    let state: Arc<Mutex<Ambient>> = Arc::default();
    let on_ns = Arc::clone(&state);
    mock.on(
        "PATCH",
        &format!("/api/v1/namespaces/{NS}"),
        Reply::func(move |r: &Recorded| {
            let body = r.json();
            on_ns.lock().unwrap().enrolled =
                body["metadata"]["labels"][ambient::DATAPLANE_MODE_LABEL] == ambient::AMBIENT;
            Reply::Json(200, body)
        }),
    );
    let on_service = Arc::clone(&state);
    mock.on(
        "PATCH",
        &format!("{SERVICES}/server"),
        Reply::func(move |r: &Recorded| {
            let body = r.json();
            on_service.lock().unwrap().attached =
                body["metadata"]["labels"][ambient::USE_WAYPOINT_LABEL] == ambient::WAYPOINT;
            Reply::Json(200, body)
        }),
    );
    let on_gateway = Arc::clone(&state);
    mock.on(
        "PATCH",
        &format!("{GATEWAYS}/waypoint"),
        Reply::func(move |r: &Recorded| {
            let mut body = r.json();
            body["metadata"]["generation"] = json!(1);
            on_gateway.lock().unwrap().gateway = Some(body.clone());
            Reply::Json(200, body)
        }),
    );
    let get_gateway = Arc::clone(&state);
    mock.on(
        "GET",
        &format!("{GATEWAYS}/waypoint"),
        Reply::func(move |_| match &get_gateway.lock().unwrap().gateway {
            Some(gateway) => {
                let mut gateway = gateway.clone();
                // conversion.go, `setProgrammedCondition`: programmed once the waypoint's Service has an
                // address; until then `AddressNotAssigned`.
                let (status, reason, message) = if programs {
                    ("True", "Programmed", format!(
                        "Resource programmed, assigned to service(s) waypoint.{NS}.svc.cluster.local:15008"
                    ))
                } else {
                    ("False", "AddressNotAssigned", format!(
                        "Failed to assign to any requested addresses: hostname \"waypoint.{NS}.svc.cluster.local\" not found"
                    ))
                };
                gateway["status"] = json!({ "conditions": [
                    { "type": "Accepted", "status": "True", "observedGeneration": 1, "reason": "Accepted",
                      "message": "Resource accepted" },
                    { "type": "Programmed", "status": status, "observedGeneration": 1, "reason": reason,
                      "message": message }] });
                Reply::Json(200, gateway)
            }
            None => Reply::Json(404, mock::status(404, "NotFound", "gateways.gateway.networking.k8s.io \"waypoint\" not found")),
        }),
    );
    let on_route = Arc::clone(&state);
    mock.on(
        "PATCH",
        &format!("{GRPCROUTES}/server"),
        Reply::func(move |r: &Recorded| {
            let mut body = r.json();
            let mut state = on_route.lock().unwrap();
            let generation = match &state.route {
                Some(old) if old["spec"] == body["spec"] => {
                    old["metadata"]["generation"].as_i64().unwrap()
                }
                Some(old) => old["metadata"]["generation"].as_i64().unwrap() + 1,
                None => 1,
            };
            body["metadata"]["generation"] = json!(generation);
            state.route = Some(body.clone());
            Reply::Json(200, body)
        }),
    );
    let get_route = Arc::clone(&state);
    mock.on(
        "GET",
        &format!("{GRPCROUTES}/server"),
        Reply::func(move |_| {
            let state = get_route.lock().unwrap();
            let Some(route) = &state.route else {
                return Reply::Json(404, mock::status(404, "NotFound", "not found"));
            };
            let mut route = route.clone();
            let generation = route["metadata"]["generation"].as_i64().unwrap();
            let status = route_status::istio_status(&route["spec"]["parentRefs"], generation, &[]);
            route["status"] = route_status::with_waypoints(status, generation, state.attached);
            Reply::Json(200, route)
        }),
    );
    // istiod's deployment controller: the waypoint's Deployment exists once the Gateway does.
    let deployments = Arc::clone(&state);
    mock.on(
        "GET",
        DEPLOYMENTS,
        Reply::func(move |r: &Recorded| {
            let wants_waypoint = r
                .param("fieldSelector")
                .is_some_and(|f| f == format!("metadata.name={}", ambient::WAYPOINT));
            let items = if wants_waypoint && deployments.lock().unwrap().gateway.is_none() {
                vec![]
            } else {
                vec![rolled_out()]
            };
            Reply::Json(200, mock::list("apps/v1", "DeploymentList", items))
        }),
    );
    mock.on_query(
        "GET",
        PODS,
        ("labelSelector", &ambient::waypoint_pods()),
        pod_list(vec![pod(
            "waypoint-7d9f-x2x",
            "istio-proxy",
            "2026-11-29T10:00:00Z",
            0,
            true,
        )]),
    )
    .on_query(
        "GET",
        PODS,
        ("labelSelector", "app=client-ambient"),
        pods(&["client-ambient-1"]),
    )
    .on(
        "GET",
        &format!("{PODS}/client-ambient-1/log"),
        client_log(&[("server-v1-a", 10)]),
    )
    .on(
        "GET",
        ZTUNNEL_DS,
        Reply::Json(
            200,
            json!({ "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": { "name": "ztunnel", "namespace": "istio-system" } }),
        ),
    );
    let mut other = pod(
        "ztunnel-other",
        "istio-proxy",
        "2026-11-29T09:00:00Z",
        0,
        true,
    );
    other["spec"]["nodeName"] = json!("grpc-mesh-lab-worker2");
    mock.on_query(
        "GET",
        "/api/v1/namespaces/istio-system/pods",
        ("labelSelector", "app=ztunnel"),
        pod_list(vec![
            other,
            pod(
                "ztunnel-mine",
                "istio-proxy",
                "2026-11-29T09:00:00Z",
                0,
                true,
            ),
        ]),
    );
    (mock, state)
}

/// The waypoint's dump for the route as applied: its inline route configuration for `server`, with
/// outbound clusters (the versions' Services are not attached to the waypoint); and, for the sidecar phase,
/// the same splits in a sidecar's RDS dump.
fn dumps(state: &Ambient) -> String {
    if state.stuck {
        return json!({ "configs": [] }).to_string();
    }
    let route: mesh::gateway::GrpcRoute =
        serde_json::from_value(state.route.clone().expect("a route applied")).unwrap();
    let scenario = ambient_scenario();
    let splits = route_check::expected(
        &[mesh::gateway::RouteObject::Grpc(route)],
        &objects::mesh_services(&scenario),
        objects::SERVER,
    );
    let host = format!("server.{NS}.svc.cluster.local");
    let routes: Vec<Value> = splits
        .iter()
        .map(|split| {
            let clusters: Vec<Value> = split
                .iter()
                .map(|(s, w)| json!({ "name": format!("outbound|50051||{s}.{NS}.svc.cluster.local"), "weight": w }))
                .collect();
            json!({ "route": { "weighted_clusters": { "clusters": clusters } } })
        })
        .collect();
    json!({ "configs": [
        { "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamic_listeners": [
            { "name": "main_internal", "active_state": { "listener": { "filter_chains": [{ "filters": [
                { "name": "envoy.filters.network.http_connection_manager", "typed_config": { "route_config": {
                    "name": format!("inbound-vip|50051|http|{host}"),
                    "virtual_hosts": [{ "name": "inbound|http|50051", "domains": ["*"], "routes": routes }]
                } } }] }] } } }] },
        { "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamic_route_configs": [
            { "route_config": { "name": "50051", "virtual_hosts": [
                { "name": format!("{host}:50051"), "domains": [host], "routes": routes }] } }] }] })
    .to_string()
}

/// ztunnel's dump: it captures the ambient client and sends `server` to the waypoint while it has the label.
fn ztunnel_dump(state: &Ambient) -> String {
    let mut service = json!({ "name": "server", "namespace": NS,
        "hostname": format!("server.{NS}.svc.cluster.local"), "vips": [], "ports": { "50051": 50051 } });
    if state.attached && !state.stuck {
        service["waypoint"] = json!({ "destination": format!("{NS}/waypoint.{NS}.svc.cluster.local"),
            "hboneMtlsPort": 15008 });
    }
    json!({ "workloads": [{ "name": "client-ambient-1", "namespace": NS,
            "protocol": if state.enrolled { "HBONE" } else { "TCP" } }],
        "services": [service], "policies": [] })
    .to_string()
}

/// Port forwards the backend made, as `namespace/pod:port/path`.
type Forwards = Arc<Mutex<Vec<String>>>;
/// The exec of the ambient backend: the dumps of the mock's state.
type AmbientExec = Box<dyn Fn(&[&str]) -> anyhow::Result<String> + Send + Sync>;

/// The backend on the ambient mock, its exec and port forwards answered from the mock's state.
fn ambient_backend(
    mock: &Mock,
    state: &Arc<Mutex<Ambient>>,
) -> (Kind<ExecBy<AmbientExec>>, Forwards) {
    let forwards: Forwards = Arc::default();
    let for_exec = Arc::clone(state);
    let exec: AmbientExec = Box::new(move |_command| Ok(dumps(&for_exec.lock().unwrap())));
    let mut kind = backend_with_exec(mock, exec);
    let for_forward = Arc::clone(state);
    let seen = Arc::clone(&forwards);
    kind.ops.forward = Some(Arc::new(
        move |ns: &str, pod: &str, port: u16, path: &str| {
            seen.lock()
                .unwrap()
                .push(format!("{ns}/{pod}:{port}/{path}"));
            Ok(ztunnel_dump(&for_forward.lock().unwrap()))
        },
    ));
    kind.deadlines.routes = Duration::from_secs(5);
    kind.deadlines.status = Duration::from_secs(5);
    kind.deadlines.waypoint = Duration::from_secs(5);
    (kind, forwards)
}

/// The bodies of the PATCHes to `path`, in order.
fn patches(mock: &Mock, path: &str) -> Vec<Value> {
    mock.calls()
        .iter()
        .filter(|c| c.method == "PATCH" && c.path == path)
        .map(Recorded::json)
        .collect()
}

#[tokio::test]
async fn an_ambient_demo_enrolls_the_namespace_programs_the_waypoint_attaches_it_only_where_a_phase_uses_it_and_checks_istio_first()
 {
    let (mock, state) = ambient_cluster(true).await;
    let (mut kind, forwards) = ambient_backend(&mock, &state);
    let scenario = ambient_scenario();

    let report = engine::run(&mut kind, &scenario, Measure::Scenario, "kind")
        .await
        .unwrap();
    kind.teardown().await.unwrap();

    // Every phase measured, and nothing Istio said disagreed with what the phase asks.
    assert_eq!(report.phases.len(), 5);
    for phase in &report.phases {
        assert!(
            phase.warnings.is_empty(),
            "{}: {:?}",
            phase.name,
            phase.warnings
        );
        assert!(phase.rpcs > 0, "{}", phase.name);
    }
    // The namespace is enrolled; the servers carry no label of their own.
    let ns = &patches(&mock, &format!("/api/v1/namespaces/{NS}"))[0];
    assert_eq!(
        ns["metadata"]["labels"][ambient::DATAPLANE_MODE_LABEL],
        "ambient"
    );
    // The waypoint as istioctl writes it.
    let gateway = &patches(&mock, &format!("{GATEWAYS}/waypoint"))[0];
    assert_eq!(gateway["spec"]["gatewayClassName"], "istio-waypoint");
    assert_eq!(
        gateway["spec"]["listeners"],
        json!([{ "name": "mesh", "port": 15008, "protocol": "HBONE" }])
    );
    // `server`: applied without the label, attached for the first waypoint phase, left so for the rest.
    let labels: Vec<Value> = patches(&mock, &format!("{SERVICES}/server"))
        .iter()
        .map(|s| s["metadata"]["labels"][ambient::USE_WAYPOINT_LABEL].clone())
        .collect();
    assert_eq!(labels, [Value::Null, json!("waypoint")]);
    // The ambient client has no sidecar; the sidecar phase's client asks for one.
    let ambient_client = &patches(&mock, &format!("{DEPLOYMENTS}/client-ambient"))[0];
    assert!(
        ambient_client["spec"]["template"]["metadata"]["labels"]
            .get(objects::INJECT_LABEL)
            .is_none(),
        "{ambient_client}"
    );
    let sidecar_client = &patches(&mock, &format!("{DEPLOYMENTS}/client-mesh-on"))[0];
    assert_eq!(
        sidecar_client["spec"]["template"]["metadata"]["labels"][objects::INJECT_LABEL],
        "true"
    );
    // The waypoint was programmed before any client started.
    let calls: Vec<String> = mock.calls().iter().map(Recorded::line).collect();
    let programmed = calls
        .iter()
        .position(|c| c == &format!("GET {GATEWAYS}/waypoint"))
        .expect("the gateway's status is read");
    let first_client = calls
        .iter()
        .position(|c| c == &format!("PATCH {DEPLOYMENTS}/client-ambient"))
        .unwrap();
    assert!(programmed < first_client, "{calls:#?}");
    // The label goes on before the waypoint phase's client restarts.
    let attached = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| *c == &format!("PATCH {SERVICES}/server"))
        .map(|(i, _)| i)
        .nth(1)
        .unwrap();
    let restarted = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| *c == &format!("PATCH {DEPLOYMENTS}/client-ambient"))
        .map(|(i, _)| i)
        .nth(2)
        .expect("applied, applied again, restarted");
    assert!(attached < restarted, "{calls:#?}");
    // ztunnel was read through a port forward to its admin: once when the label went on, before the
    // client restarted (the plan shows the order), and on the client's node in each ambient phase.
    let forwards = forwards.lock().unwrap().clone();
    assert_eq!(forwards.len(), 5, "{forwards:?}");
    assert!(
        forwards
            .iter()
            .all(|f| f == "istio-system/ztunnel-mine:15000/config_dump"),
        "{forwards:?}"
    );
}

#[tokio::test]
async fn a_waypoint_istio_never_programs_fails_the_setup_naming_it_with_istio_s_words_within_the_deadline()
 {
    let (mock, state) = ambient_cluster(false).await;
    let (mut kind, _) = ambient_backend(&mock, &state);
    kind.deadlines.waypoint = Duration::from_millis(300);
    let started = Instant::now();

    let err = engine::run(&mut kind, &ambient_scenario(), Measure::Scenario, "kind")
        .await
        .unwrap_err();

    let message = format!("{err:#}");
    assert!(
        message.starts_with("gateway gml-kindtest/waypoint (the waypoint) not programmed by istio after 0s: Programmed False AddressNotAssigned: Failed to assign to any requested addresses"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        !mock
            .calls()
            .iter()
            .any(|c| c.path.contains("client-ambient")),
        "no client starts"
    );
}

#[tokio::test]
async fn a_waypoint_that_lacks_the_weights_and_a_ztunnel_that_pins_are_warnings_naming_them() {
    let (mock, state) = ambient_cluster(true).await;
    let (mut kind, _) = ambient_backend(&mock, &state);
    state.lock().unwrap().stuck = true;
    kind.deadlines.routes = Duration::from_millis(200);
    let mut scenario = ambient_scenario();
    scenario.phases.truncate(2);

    let report = engine::run(&mut kind, &scenario, Measure::Scenario, "kind")
        .await
        .unwrap();

    assert!(
        report.phases[0].warnings.is_empty(),
        "{:?}",
        report.phases[0].warnings
    );
    let warnings = &report.phases[1].warnings;
    assert!(
        warnings.iter().any(|w| w.starts_with(&format!(
            "waypoint-7d9f-x2x: the waypoint has no route configuration inbound-vip|50051|http|server.{NS}.svc.cluster.local after 0s"
        ))),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.starts_with(&format!(
            "ztunnel ztunnel-mine: ztunnel still sends server.{NS}.svc.cluster.local to its pods, not to a waypoint after 0s"
        ))),
        "{warnings:?}"
    );
}

#[tokio::test]
async fn an_ambient_demo_without_ztunnel_is_refused_in_one_line_before_anything_is_built() {
    let mock = cluster().await;
    mock.on(
        "GET",
        "/apis/apps/v1/namespaces/istio-system/deployments/istiod",
        Reply::Json(
            200,
            json!({ "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "istiod", "namespace": "istio-system" },
            "spec": { "selector": {}, "template": { "spec": { "containers": [
                { "name": "discovery", "image": "docker.io/istio/pilot:1.30.5" }] } } } }),
        ),
    );
    let ops = Live::new(mock.cluster(), Nodes::default().runner());

    let err = walk::check_istio(&ops, &ambient_scenario())
        .await
        .unwrap_err();

    assert_eq!(
        format!("{err:#}"),
        "istio's ambient mode is not installed in kube context kind-mock (no daemonset istio-system/ztunnel): run `cargo xtask up-istio --ambient` first"
    );
    assert!(
        mock.calls()
            .iter()
            .any(|c| c.line() == format!("GET {ZTUNNEL_DS}")),
        "the daemonset was asked for"
    );
    // The same check passes once ztunnel is there.
    mock.on(
        "GET",
        ZTUNNEL_DS,
        Reply::Json(
            200,
            json!({ "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": { "name": "ztunnel", "namespace": "istio-system" } }),
        ),
    );
    walk::check_istio(&ops, &ambient_scenario()).await.unwrap();
}
