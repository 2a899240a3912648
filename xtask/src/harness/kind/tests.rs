//! The cluster backend against the mock API server: a whole demo through the very `engine::run` of the
//! `demo` command, and each behaviour of Kubernetes and Istio the backend relies on, played by the mock
//! as the upstream source shows it (a namespace that terminates, a Service whose `clusterIP` an update may
//! not change, a container the kubelet restarts while the Deployment's status stays "complete", route
//! status from istiod, a mesh ConfigMap istiod pushes from). Each test checks what was sent, in order,
//! and what was measured.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use serde_json::{Value, json};

use super::{ops::Live, *};
use crate::{
    cluster::kube::{
        Cluster,
        mock::{self, Mock, Recorded, Reply},
    },
    harness::engine::{self, Measure},
    harness::scenario::{Exposure, Phase, Retries},
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

/// A running pod on a kind worker: `restarts` of its container `container`, and whether it is ready.
fn pod(name: &str, container: &str, created: &str, restarts: i32, ready: bool) -> Value {
    let ready_text = if ready { "True" } else { "False" };
    json!({ "metadata": { "name": name, "namespace": NS, "creationTimestamp": created },
        "spec": { "nodeName": "grpc-mesh-lab-worker", "containers": [] },
        "status": { "phase": "Running", "conditions": [{ "type": "Ready", "status": ready_text }],
            "containerStatuses": [{ "name": container, "ready": ready, "restartCount": restarts,
                "image": "x", "imageID": "y", "containerID": format!("containerd://{name}-{restarts}") }] } })
}

fn pod_list(items: Vec<Value>) -> Reply {
    Reply::Json(200, mock::list("v1", "PodList", items))
}

fn pods(names: &[&str]) -> Reply {
    pod_list(
        names
            .iter()
            .map(|n| pod(n, "hello-server", "2026-11-29T10:00:00Z", 0, true))
            .collect(),
    )
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
    istio_routes(&mock, IstioRoutes::default());
    mock
}

/// A command run on a node: `(node, argv)`.
type NodeCall = (String, Vec<String>);
/// What running a command on a node does to the mock.
type Effect = Box<dyn Fn() + Send + Sync>;

/// What the tests' kind nodes were asked to run, and what running it does to the mock.
#[derive(Clone, Default)]
struct Nodes {
    calls: Arc<Mutex<Vec<NodeCall>>>,
    effect: Arc<Mutex<Option<Effect>>>,
}

impl Nodes {
    fn runner(&self) -> ops::NodeRunner {
        let nodes = self.clone();
        Arc::new(move |node, argv| {
            nodes.calls.lock().unwrap().push((node, argv));
            if let Some(effect) = nodes.effect.lock().unwrap().as_ref() {
                effect();
            }
            Box::pin(async { Ok(()) })
        })
    }

    fn calls(&self) -> Vec<NodeCall> {
        self.calls.lock().unwrap().clone()
    }
}

fn deadlines() -> Deadlines {
    Deadlines {
        rollout: Duration::from_secs(10),
        routes: Duration::from_millis(300),
        status: Duration::from_millis(300),
        retry: Duration::from_millis(20),
        teardown: Duration::from_secs(10),
    }
}

fn backend_on(cluster: Cluster, nodes: &Nodes) -> Kind<Live> {
    let images = objects::Images {
        server: "grpc-mesh-lab/hello-server:0123456789ab".into(),
        client: "grpc-mesh-lab/hello-client:ba9876543210".into(),
        envoy: "grpc-mesh-lab/envoy:5a5a5a5a5a5a".into(),
    };
    let mut kind = Kind::new(
        Live::new(cluster, nodes.runner()),
        images,
        deadlines(),
        false,
    );
    kind.interval = EVERY;
    kind
}

/// The backend on the mock, as the kind context `kind-mock`.
fn backend(mock: &Mock) -> Kind<Live> {
    backend_on(mock.cluster(), &Nodes::default())
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

// ---- istiod's route status ----------------------------------------------------------------------------------

/// How the mock's istiod treats the route objects applied to it.
#[derive(Clone, Default)]
struct IstioRoutes {
    /// Istio refuses the routes so.
    refusals: Vec<route_status::Refusal>,
    /// istiod writes no status at all.
    silent: bool,
}

/// Route objects as the API server keeps them (`metadata.generation` bumped on every change of spec),
/// with the status istiod writes for the generation it saw (`conditions.go`, `createRouteStatus`).
fn istio_routes(mock: &Mock, istio: IstioRoutes) {
    let stored: Arc<Mutex<BTreeMap<String, Value>>> = Arc::default();
    for plural in ["httproutes", "grpcroutes"] {
        let path = format!("/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/{plural}/*");
        let on_patch = Arc::clone(&stored);
        mock.on(
            "PATCH",
            &path,
            Reply::func(move |r: &Recorded| {
                let name = r.path.rsplit('/').next().unwrap().to_owned();
                let mut body = r.json();
                let mut routes = on_patch.lock().unwrap();
                let generation = match routes.get(&name) {
                    Some(old) if old["spec"] == body["spec"] => {
                        old["metadata"]["generation"].as_i64().unwrap()
                    }
                    Some(old) => old["metadata"]["generation"].as_i64().unwrap() + 1,
                    None => 1,
                };
                body["metadata"]["generation"] = json!(generation);
                routes.insert(name, body.clone());
                Reply::Json(200, body)
            }),
        );
        let on_get = Arc::clone(&stored);
        let istio = istio.clone();
        mock.on(
            "GET",
            &path,
            Reply::func(move |r: &Recorded| {
                let name = r.path.rsplit('/').next().unwrap();
                match on_get.lock().unwrap().get(name) {
                    Some(route) => {
                        let mut route = route.clone();
                        if !istio.silent {
                            let generation = route["metadata"]["generation"].as_i64().unwrap();
                            route["status"] = route_status::istio_status(
                                &route["spec"]["parentRefs"],
                                generation,
                                &istio.refusals,
                            );
                        }
                        Reply::Json(200, route)
                    }
                    None => Reply::Json(404, mock::status(404, "NotFound", "not found")),
                }
            }),
        );
    }
}

#[tokio::test]
async fn a_route_istio_refuses_fails_the_demo_in_istio_s_words_before_any_config_dump_is_read() {
    let mock = cluster().await;
    istio_routes(
        &mock,
        IstioRoutes {
            refusals: vec![route_status::Refusal {
                condition: "ResolvedRefs",
                reason: "BackendNotFound".into(),
                message: format!("backend(server-v3.{NS}.svc.cluster.local) not found"),
            }],
            silent: false,
        },
    );
    let mut kind = backend(&mock);

    let err = engine::run(&mut kind, &scenario(), Measure::Scenario, "kind")
        .await
        .unwrap_err();

    assert_eq!(
        format!("{err:#}"),
        format!(
            "HTTPRoute {NS}/server: istio.io/gateway-controller refused it: ResolvedRefs BackendNotFound: \
             backend(server-v3.{NS}.svc.cluster.local) not found"
        )
    );
    assert!(
        mock.calls().iter().all(|c| !c.path.ends_with("/exec")),
        "no config dump was read"
    );
    kind.teardown().await.unwrap();
}

#[tokio::test]
async fn a_route_without_status_is_a_warning_naming_it_and_the_sidecar_is_checked_anyway() {
    let mock = cluster().await;
    istio_routes(
        &mock,
        IstioRoutes {
            silent: true,
            ..IstioRoutes::default()
        },
    );
    let mut kind = backend(&mock);

    engine::run(&mut kind, &scenario(), Measure::Scenario, "kind")
        .await
        .unwrap();

    let warnings = kind.warnings();
    assert_eq!(
        warnings[0],
        format!(
            "HTTPRoute {NS}/server: no status from istio.io/gateway-controller for generation 2 after 0s; \
             checking the sidecar anyway"
        ),
        "generation 2: the weights of phase \"on\" changed the spec"
    );
    assert!(
        warnings[1].contains("exec `pilot-agent request GET config_dump`"),
        "{warnings:?}"
    );
    kind.teardown().await.unwrap();
}

// ---- measuring only after the route is in the sidecar ---------------------------------------------------------

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

/// [`Live`] on the mock, except that `exec` is answered by a function: the mock speaks no websocket (the
/// exec requests themselves are tested in `cluster/kube/tests.rs`), so a test that needs a sidecar's config
/// dump gives it here.
struct ExecBy<F> {
    live: Live,
    exec: Arc<F>,
}

impl<F> Clone for ExecBy<F> {
    fn clone(&self) -> Self {
        ExecBy {
            live: self.live.clone(),
            exec: Arc::clone(&self.exec),
        }
    }
}

impl<F: Fn(&[&str]) -> anyhow::Result<String> + Send + Sync + 'static> ops::Ops for ExecBy<F> {
    fn context(&self) -> &str {
        self.live.context()
    }
    fn kind_cluster(&self) -> Option<&str> {
        self.live.kind_cluster()
    }
    fn now(&self) -> k8s_openapi::jiff::Timestamp {
        self.live.now()
    }
    fn note(&self, text: &str) {
        self.live.note(text);
    }
    async fn server_version(&self) -> anyhow::Result<String> {
        self.live.server_version().await
    }
    async fn deployment_image(&self, ns: &str, name: &str) -> anyhow::Result<Option<String>> {
        self.live.deployment_image(ns, name).await
    }
    async fn build_images(&self) -> anyhow::Result<objects::Images> {
        self.live.build_images().await
    }
    async fn load_images(&self, cluster: &str) -> anyhow::Result<()> {
        self.live.load_images(cluster).await
    }
    async fn apply(&self, why: &str, objects: &[kube::api::DynamicObject]) -> anyhow::Result<()> {
        self.live.apply(why, objects).await
    }
    async fn wait_rollout(&self, ns: &str, name: &str, deadline: Duration) -> anyhow::Result<()> {
        self.live.wait_rollout(ns, name, deadline).await
    }
    async fn scale(&self, ns: &str, name: &str, replicas: u32) -> anyhow::Result<()> {
        self.live.scale(ns, name, replicas).await
    }
    async fn restart(&self, ns: &str, name: &str) -> anyhow::Result<()> {
        self.live.restart(ns, name).await
    }
    async fn pods(&self, ns: &str, selector: &str) -> anyhow::Result<Vec<PodInfo>> {
        self.live.pods(ns, selector).await
    }
    async fn delete_pod(&self, ns: &str, pod: &str) -> anyhow::Result<()> {
        self.live.delete_pod(ns, pod).await
    }
    async fn stop_container(&self, node: &str, id: &str) -> anyhow::Result<()> {
        self.live.stop_container(node, id).await
    }
    async fn delete_namespace(&self, ns: &str, deadline: Duration) -> anyhow::Result<()> {
        self.live.delete_namespace(ns, deadline).await
    }
    async fn delete_service(&self, ns: &str, name: &str, deadline: Duration) -> anyhow::Result<()> {
        self.live.delete_service(ns, name, deadline).await
    }
    async fn get(
        &self,
        why: &str,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
    ) -> anyhow::Result<Option<Value>> {
        self.live.get(why, api_version, kind, ns, name).await
    }
    async fn exec(
        &self,
        _ns: &str,
        _pod: &str,
        _container: &str,
        command: &[&str],
    ) -> anyhow::Result<String> {
        (self.exec)(command)
    }
    async fn follow_logs(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
    ) -> anyhow::Result<ops::LogLines> {
        self.live.follow_logs(ns, pod, container).await
    }
    async fn pod_http_get(
        &self,
        ns: &str,
        pod: &str,
        port: u16,
        path: &str,
    ) -> anyhow::Result<String> {
        self.live.pod_http_get(ns, pod, port, path).await
    }
    async fn config_map(
        &self,
        ns: &str,
        name: &str,
    ) -> anyhow::Result<Option<k8s_openapi::api::core::v1::ConfigMap>> {
        self.live.config_map(ns, name).await
    }
    async fn patch_config_map(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        patch: &Value,
    ) -> anyhow::Result<()> {
        self.live.patch_config_map(ns, name, what, patch).await
    }
}

fn backend_with_exec<F>(mock: &Mock, exec: F) -> Kind<ExecBy<F>>
where
    F: Fn(&[&str]) -> anyhow::Result<String> + Send + Sync + 'static,
{
    let images = backend(mock).images.clone();
    let ops = ExecBy {
        live: Live::new(mock.cluster(), Nodes::default().runner()),
        exec: Arc::new(exec),
    };
    let mut kind = Kind::new(ops, images, deadlines(), false);
    kind.interval = EVERY;
    kind.deadlines.routes = Duration::from_secs(5);
    kind
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

// ---- a kill is a SIGKILL, and the wait is for the pod, not the Deployment ---------------------------------------

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

// ---- a namespace an interrupted run left terminating -------------------------------------------------------------

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

// ---- a phase's exposure re-creates the Service ------------------------------------------------------------------

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

// ---- a phase's retry policy is Istio's mesh configuration ----------------------------------------------------

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
