//! The cluster backend against the mock API server: a whole demo through the very `engine::run` of the
//! `demo` command, and each behaviour of Kubernetes and Istio the backend relies on, played by the mock
//! as the upstream source shows it (a namespace that terminates, a Service whose `clusterIP` an update may
//! not change, a container the kubelet restarts while the Deployment's status stays "complete", route
//! status from istiod, a mesh ConfigMap istiod pushes from). Each test checks what was sent, in order,
//! and what was measured. This file holds what the tests share (the mock as a cluster, its istiod, a
//! backend on it); the tests are in `tests/`, one file per concern.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use serde_json::{Value, json};

use super::{
    ops::{Live, PodInfo},
    *,
};
use crate::{
    cluster::kube::{
        Cluster,
        mock::{self, Mock, Recorded, Reply},
    },
    harness::engine::{self, Measure},
    harness::scenario::{Exposure, Phase, Retries, RouteSource},
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
        routes: Some(RouteSource::Builtin("httproute.yaml")),
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
        waypoint: Duration::from_millis(300),
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

/// [`Live`] on the mock, except that `exec` is answered by a function: the mock speaks no websocket (the
/// exec requests themselves are tested in `cluster/kube/tests.rs`), so a test that needs a sidecar's config
/// dump gives it here.
struct ExecBy<F> {
    live: Live,
    exec: Arc<F>,
    /// Answers port forwards too (the same reason): `(namespace, pod, port, path)`.
    forward: Option<Arc<Forward>>,
}

/// A port forward's answer, by `(namespace, pod, port, path)`.
type Forward = dyn Fn(&str, &str, u16, &str) -> anyhow::Result<String> + Send + Sync;

impl<F> Clone for ExecBy<F> {
    fn clone(&self) -> Self {
        ExecBy {
            live: self.live.clone(),
            exec: Arc::clone(&self.exec),
            forward: self.forward.clone(),
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
    async fn port_forward_get(
        &self,
        ns: &str,
        pod: &str,
        port: u16,
        path: &str,
    ) -> anyhow::Result<String> {
        match &self.forward {
            Some(forward) => forward(ns, pod, port, path),
            None => self.live.port_forward_get(ns, pod, port, path).await,
        }
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
        forward: None,
    };
    let mut kind = Kind::new(ops, images, deadlines(), false);
    kind.interval = EVERY;
    kind.deadlines.routes = Duration::from_secs(5);
    kind
}

mod ambient;
mod demo;
mod exposure;
mod kill;
mod namespace;
mod retries;
mod status;
mod verify;
