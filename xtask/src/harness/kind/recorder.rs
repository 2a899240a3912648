//! The second implementation of [`Ops`]: it does nothing to a cluster, writes each call down as a
//! [`Step`], and answers as a cluster that does what it is asked would: every rollout completes, a
//! stopped container comes back, istiod accepts every route and pushes it, the logs carry a summary a
//! client interval. `demo --dry-run` runs the real backend and the real demo loop over it and prints
//! the steps.
//!
//! Its clock is logical: it moves one client interval each time a followed log gives a line, and
//! nothing else. The backend waits on nothing else (every condition it polls holds at the first
//! read), so a dry run takes no real time and its timestamps are the same on every run.
//!
//! Its answers are placeholders where only a cluster knows (`<node>`, `<id of pod/container>`). Its pods
//! are one per replica, named `<deployment>-pod<n>` in the order they were made: a scale-up adds new ones,
//! a scale-down removes the newest, a change of the pod template or a restart replaces them all, a
//! deleted pod gets a replacement.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use futures::StreamExt as _;
use hello_apps::client::{Summary, SummaryKind};
use k8s_openapi::{
    api::core::v1::ConfigMap,
    jiff::{SignedDuration, Timestamp},
};
use kube::api::DynamicObject;
use serde_json::{Value, json};

use super::{
    CONFIG_DUMP_COMMAND, mesh_config,
    ops::{ContainerInfo, LogLines, Ops, PodInfo},
    route_status,
};
use crate::cluster::{objects, route_check};

/// One thing the backend did, as the dry run prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Something the user should know (a note of the backend, or where a phase starts).
    Note(String),
    /// A read that decides what happens next.
    Read(String),
    BuildImages,
    LoadImages {
        cluster: String,
    },
    /// Server-side apply of these objects (`Kind namespace/name`), in order.
    Apply {
        why: String,
        objects: Vec<String>,
    },
    WaitRollout {
        namespace: String,
        name: String,
        deadline: Duration,
    },
    Scale {
        namespace: String,
        name: String,
        replicas: u32,
    },
    Restart {
        namespace: String,
        name: String,
    },
    DeletePod {
        namespace: String,
        pod: String,
    },
    StopContainer {
        node: String,
        container_id: String,
    },
    DeleteNamespace {
        namespace: String,
        deadline: Duration,
    },
    DeleteService {
        namespace: String,
        name: String,
        deadline: Duration,
    },
    Exec {
        namespace: String,
        pod: String,
        container: String,
        command: String,
    },
    FollowLogs {
        namespace: String,
        pod: String,
        container: String,
    },
    PodGet {
        namespace: String,
        pod: String,
        port: u16,
        path: String,
    },
    PatchConfigMap {
        namespace: String,
        name: String,
        what: String,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |d: &Duration| d.as_secs();
        match self {
            Step::Note(text) => write!(f, "note: {text}"),
            Step::Read(text) => write!(f, "read: {text}"),
            // The same words as `up`'s steps: one description of the images.
            Step::BuildImages => write!(f, "{}", crate::cluster::plan::Step::BuildImages),
            Step::LoadImages { cluster } => write!(
                f,
                "{}",
                crate::cluster::plan::Step::LoadImages {
                    cluster: cluster.clone()
                }
            ),
            Step::Apply { why, objects } => {
                write!(
                    f,
                    "apply ({why}, server-side, field manager grpc-mesh-lab):"
                )?;
                for o in objects {
                    write!(f, "\n    {o}")?;
                }
                Ok(())
            }
            Step::WaitRollout {
                namespace,
                name,
                deadline,
            } => write!(
                f,
                "wait: deployment {namespace}/{name} rolled out (up to {}s)",
                secs(deadline)
            ),
            Step::Scale {
                namespace,
                name,
                replicas,
            } => write!(f, "scale: deployment {namespace}/{name} to {replicas}"),
            Step::Restart { namespace, name } => write!(
                f,
                "restart: deployment {namespace}/{name}, pod by pod (pod template annotation kubectl.kubernetes.io/restartedAt)"
            ),
            Step::DeletePod { namespace, pod } => write!(
                f,
                "delete: pod {namespace}/{pod} with grace period 0 (the kubelet still sends SIGTERM and waits 2s)"
            ),
            Step::StopContainer { node, container_id } => write!(
                f,
                "run: docker exec {node} crictl stop --timeout 0 {container_id} (SIGKILL)"
            ),
            Step::DeleteNamespace {
                namespace,
                deadline,
            } => write!(
                f,
                "delete: namespace {namespace} if it exists, and wait until it is gone (up to {}s)",
                secs(deadline)
            ),
            Step::DeleteService {
                namespace,
                name,
                deadline,
            } => write!(
                f,
                "delete: service {namespace}/{name}, and wait until it is gone (up to {}s)",
                secs(deadline)
            ),
            Step::Exec {
                namespace,
                pod,
                container,
                command,
            } => write!(
                f,
                "exec: `{command}` in {namespace}/{pod} container {container}"
            ),
            Step::FollowLogs {
                namespace,
                pod,
                container,
            } => write!(
                f,
                "follow: the log of {namespace}/{pod} container {container}, with timestamps"
            ),
            Step::PodGet {
                namespace,
                pod,
                port,
                path,
            } => write!(
                f,
                "read: {namespace}/{pod} port {port} /{path} (through the API server's pod proxy)"
            ),
            Step::PatchConfigMap {
                namespace,
                name,
                what,
            } => write!(f, "patch: configmap {namespace}/{name}: {what}"),
        }
    }
}

/// The steps of a dry run, one numbered line each.
pub struct Steps(pub Vec<Step>);

impl fmt::Display for Steps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            writeln!(f, "{:>2}. {step}", i + 1)?;
        }
        Ok(())
    }
}

/// The recorder's clock starts here.
const EPOCH: &str = "2026-01-01T00:00:00Z";
/// The `mesh` text of Istio's ConfigMap as the recorder's cluster has it (a minimal install's, in shape).
const INSTALLED_MESH: &str = "defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n\
                              rootNamespace: istio-system\ntrustDomain: cluster.local\n";

/// A Deployment as applied: its pod template's labels and containers, and its pods (their numbers).
struct Deployed {
    template: Value,
    labels: BTreeMap<String, String>,
    containers: Vec<String>,
    pods: Vec<u32>,
    /// The number of the next pod made.
    next: u32,
}

impl Deployed {
    fn make(&mut self, count: usize) {
        for _ in 0..count {
            self.pods.push(self.next);
            self.next += 1;
        }
    }

    fn scale(&mut self, replicas: usize) {
        if replicas < self.pods.len() {
            self.pods.truncate(replicas);
        } else {
            self.make(replicas - self.pods.len());
        }
    }

    /// A new pod for each (a rollout of a new template).
    fn replace_all(&mut self) {
        let count = self.pods.len();
        self.pods.clear();
        self.make(count);
    }
}

struct State {
    steps: Vec<Step>,
    /// By `namespace/name`.
    deployments: BTreeMap<String, Deployed>,
    services: BTreeMap<String, Value>,
    /// Route objects as last applied, by `namespace/name`.
    routes: BTreeMap<String, Value>,
    mesh: ConfigMap,
    /// Restarts of a pod's containers, by pod.
    restarts: BTreeMap<String, i32>,
}

#[derive(Clone)]
pub struct Recorder {
    context: String,
    kind: Option<String>,
    /// Log lines given so far: the clock.
    ticks: Arc<AtomicU32>,
    epoch: Timestamp,
    state: Arc<Mutex<State>>,
}

impl Recorder {
    /// A recorder for this kube context.
    pub fn new(context: &str) -> Recorder {
        let mut mesh = ConfigMap::default();
        mesh.metadata.name = Some(mesh_config::CONFIG_MAP.into());
        mesh.metadata.namespace = Some(mesh_config::NAMESPACE.into());
        mesh.data = Some([(mesh_config::KEY.to_owned(), INSTALLED_MESH.to_owned())].into());
        Recorder {
            context: context.to_owned(),
            kind: context.strip_prefix("kind-").map(str::to_owned),
            ticks: Arc::default(),
            epoch: EPOCH.parse().expect("a valid timestamp"),
            state: Arc::new(Mutex::new(State {
                steps: Vec::new(),
                deployments: BTreeMap::new(),
                services: BTreeMap::new(),
                routes: BTreeMap::new(),
                mesh,
                restarts: BTreeMap::new(),
            })),
        }
    }

    /// The steps so far.
    pub fn steps(&self) -> Steps {
        Steps(self.state.lock().unwrap().steps.clone())
    }

    /// Writes a step down.
    pub fn record(&self, step: Step) {
        self.state.lock().unwrap().steps.push(step);
    }

    /// The pods of the Deployments in `namespace` whose pod labels match `selector` (`k=v,...`).
    fn pods_of(&self, namespace: &str, selector: &str) -> Vec<PodInfo> {
        let wanted: Vec<(&str, &str)> = selector
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .collect();
        let state = self.state.lock().unwrap();
        let prefix = format!("{namespace}/");
        state
            .deployments
            .iter()
            .filter_map(|(key, d)| Some((key.strip_prefix(&prefix)?, d)))
            .filter(|(_, d)| {
                wanted
                    .iter()
                    .all(|(k, v)| d.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .flat_map(|(name, d)| d.pods.iter().map(move |n| (name, d, *n)))
            .map(|(name, d, n)| {
                let pod = format!("{name}-pod{n}");
                let restarts = state.restarts.get(&pod).copied().unwrap_or(0);
                let made = SignedDuration::from_secs(i64::from(n));
                PodInfo {
                    name: pod.clone(),
                    node: Some("<node>".into()),
                    created: Some(self.epoch.checked_add(made).unwrap_or(self.epoch)),
                    running: true,
                    ready: true,
                    containers: d
                        .containers
                        .iter()
                        .map(|c| ContainerInfo {
                            name: c.clone(),
                            id: Some(format!("containerd://<id of {pod}/{c}>")),
                            restart_count: restarts,
                            ready: true,
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// The sidecar's configuration dump as a sidecar that got every applied route would have it.
    fn config_dump(&self, namespace: &str) -> Value {
        let state = self.state.lock().unwrap();
        let in_ns = |key: &String| key.starts_with(&format!("{namespace}/"));
        let services: Vec<mesh::model::Service> = state
            .services
            .iter()
            .filter(|(key, _)| in_ns(key))
            .map(|(_, s)| mesh::model::Service {
                name: s["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                namespace: namespace.to_owned(),
                port: objects::GRPC_PORT,
                endpoints: Vec::new(),
                headless: s["spec"]["clusterIP"] == "None",
            })
            .collect();
        let routes: Vec<mesh::gateway::RouteObject> = state
            .routes
            .iter()
            .filter(|(key, _)| in_ns(key))
            .filter_map(|(_, r)| match r["kind"].as_str() {
                Some("HTTPRoute") => serde_json::from_value(r.clone())
                    .ok()
                    .map(mesh::gateway::RouteObject::Http),
                Some("GRPCRoute") => serde_json::from_value(r.clone())
                    .ok()
                    .map(mesh::gateway::RouteObject::Grpc),
                _ => None,
            })
            .collect();
        let splits = route_check::expected(&routes, &services, objects::SERVER);
        let retry_on = mesh_config::retry_on_in(mesh_config::mesh_text(&state.mesh))
            .unwrap_or_else(|| mesh_config::ISTIO_DEFAULT_RETRY_ON.to_owned());
        let cluster = |service: &str| {
            format!(
                "outbound|{}||{service}.{namespace}.svc.{}",
                objects::GRPC_PORT,
                objects::CLUSTER_DOMAIN
            )
        };
        let retry =
            json!({ "retry_on": retry_on, "num_retries": mesh::translate::ISTIO_DEFAULT_ATTEMPTS });
        let routes: Vec<Value> = if splits.is_empty() {
            vec![json!({ "route": { "cluster": cluster(objects::SERVER), "retry_policy": retry } })]
        } else {
            splits
                .iter()
                .map(|split| {
                    let clusters: Vec<Value> = split
                        .iter()
                        .map(|(service, weight)| json!({ "name": cluster(service), "weight": weight }))
                        .collect();
                    json!({ "route": { "weighted_clusters": { "clusters": clusters }, "retry_policy": retry } })
                })
                .collect()
        };
        let host = format!(
            "{}.{namespace}.svc.{}",
            objects::SERVER,
            objects::CLUSTER_DOMAIN
        );
        json!({ "configs": [{ "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
            "dynamic_route_configs": [{ "route_config": { "name": objects::GRPC_PORT.to_string(),
                "virtual_hosts": [{ "name": format!("{host}:{}", objects::GRPC_PORT), "domains": [host],
                    "routes": routes }] } }] }] })
    }
}

/// RFC 7386: `patch` merged into `target` (a `null` removes the key).
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            let map = target.as_object_mut().expect("an object");
            for (key, value) in fields {
                if value.is_null() {
                    map.remove(key);
                } else {
                    merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        other => *target = other.clone(),
    }
}

impl Ops for Recorder {
    fn context(&self) -> &str {
        &self.context
    }

    fn kind_cluster(&self) -> Option<&str> {
        self.kind.as_deref()
    }

    fn now(&self) -> Timestamp {
        let elapsed = objects::CLIENT_INTERVAL * self.ticks.load(Ordering::SeqCst);
        let elapsed = SignedDuration::try_from(elapsed).unwrap_or(SignedDuration::ZERO);
        self.epoch.checked_add(elapsed).unwrap_or(self.epoch)
    }

    fn note(&self, text: &str) {
        self.record(Step::Note(text.to_owned()));
    }

    async fn server_version(&self) -> anyhow::Result<String> {
        self.record(Step::Read(format!(
            "the API server's version (kube context {})",
            self.context
        )));
        Ok("<version>".into())
    }

    async fn deployment_image(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<Option<String>> {
        self.record(Step::Read(format!(
            "deployment {namespace}/{name}, which must exist"
        )));
        Ok(Some("<image>".into()))
    }

    async fn build_images(&self) -> anyhow::Result<objects::Images> {
        self.record(Step::BuildImages);
        Ok(crate::cluster::images::placeholders().objects())
    }

    async fn load_images(&self, kind_cluster: &str) -> anyhow::Result<()> {
        self.record(Step::LoadImages {
            cluster: kind_cluster.to_owned(),
        });
        Ok(())
    }

    async fn apply(&self, why: &str, objects: &[DynamicObject]) -> anyhow::Result<()> {
        self.record(Step::Apply {
            why: why.to_owned(),
            objects: objects.iter().map(crate::cluster::plan::label).collect(),
        });
        let mut state = self.state.lock().unwrap();
        for object in objects {
            let value = serde_json::to_value(object)?;
            let key = format!(
                "{}/{}",
                object.metadata.namespace.as_deref().unwrap_or_default(),
                object.metadata.name.as_deref().unwrap_or_default()
            );
            match value["kind"].as_str() {
                Some("Deployment") => {
                    let template = value["spec"]["template"].clone();
                    let labels = serde_json::from_value(template["metadata"]["labels"].clone())
                        .unwrap_or_default();
                    let spec = &template["spec"];
                    let containers = ["initContainers", "containers"]
                        .into_iter()
                        .flat_map(|k| spec[k].as_array().cloned().unwrap_or_default())
                        .filter_map(|c| c["name"].as_str().map(str::to_owned))
                        .collect();
                    let replicas = value["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
                    let deployed = state.deployments.entry(key).or_insert_with(|| Deployed {
                        template: Value::Null,
                        labels: BTreeMap::new(),
                        containers: Vec::new(),
                        pods: Vec::new(),
                        next: 1,
                    });
                    if deployed.template != Value::Null && deployed.template != template {
                        deployed.replace_all();
                    }
                    deployed.template = template;
                    deployed.labels = labels;
                    deployed.containers = containers;
                    deployed.scale(replicas);
                }
                Some("Service") => {
                    state.services.insert(key, value);
                }
                Some("HTTPRoute" | "GRPCRoute") => {
                    state.routes.insert(key, value);
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn wait_rollout(
        &self,
        namespace: &str,
        name: &str,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        self.record(Step::WaitRollout {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            deadline,
        });
        Ok(())
    }

    async fn scale(&self, namespace: &str, name: &str, replicas: u32) -> anyhow::Result<()> {
        self.record(Step::Scale {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            replicas,
        });
        if let Some(d) = self
            .state
            .lock()
            .unwrap()
            .deployments
            .get_mut(&format!("{namespace}/{name}"))
        {
            d.scale(replicas as usize);
        }
        Ok(())
    }

    async fn restart(&self, namespace: &str, name: &str) -> anyhow::Result<()> {
        self.record(Step::Restart {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        });
        if let Some(d) = self
            .state
            .lock()
            .unwrap()
            .deployments
            .get_mut(&format!("{namespace}/{name}"))
        {
            d.replace_all();
        }
        Ok(())
    }

    async fn pods(&self, namespace: &str, selector: &str) -> anyhow::Result<Vec<PodInfo>> {
        self.record(Step::Read(format!("pods {selector} in {namespace}")));
        Ok(self.pods_of(namespace, selector))
    }

    async fn delete_pod(&self, namespace: &str, pod: &str) -> anyhow::Result<()> {
        self.record(Step::DeletePod {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
        });
        // Its ReplicaSet makes a new one.
        let mut state = self.state.lock().unwrap();
        let prefix = format!("{namespace}/");
        for (key, d) in &mut state.deployments {
            let Some(name) = key.strip_prefix(&prefix) else {
                continue;
            };
            if let Some(i) = d.pods.iter().position(|n| format!("{name}-pod{n}") == pod) {
                d.pods.remove(i);
                d.make(1);
            }
        }
        Ok(())
    }

    async fn stop_container(&self, node: &str, container_id: &str) -> anyhow::Result<()> {
        self.record(Step::StopContainer {
            node: node.to_owned(),
            container_id: container_id.to_owned(),
        });
        // The kubelet restarts the container in the same pod (the id names the pod, see `pods_of`).
        if let Some((pod, _container)) = container_id
            .strip_prefix("<id of ")
            .and_then(|rest| rest.strip_suffix('>'))
            .and_then(|rest| rest.split_once('/'))
        {
            *self
                .state
                .lock()
                .unwrap()
                .restarts
                .entry(pod.to_owned())
                .or_default() += 1;
        }
        Ok(())
    }

    async fn delete_namespace(&self, namespace: &str, deadline: Duration) -> anyhow::Result<()> {
        self.record(Step::DeleteNamespace {
            namespace: namespace.to_owned(),
            deadline,
        });
        let mut state = self.state.lock().unwrap();
        let prefix = format!("{namespace}/");
        state.deployments.retain(|key, _| !key.starts_with(&prefix));
        state.services.retain(|key, _| !key.starts_with(&prefix));
        state.routes.retain(|key, _| !key.starts_with(&prefix));
        Ok(())
    }

    async fn delete_service(
        &self,
        namespace: &str,
        name: &str,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        self.record(Step::DeleteService {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            deadline,
        });
        self.state
            .lock()
            .unwrap()
            .services
            .remove(&format!("{namespace}/{name}"));
        Ok(())
    }

    async fn get(
        &self,
        why: &str,
        _api_version: &str,
        _kind: &str,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<Option<Value>> {
        self.record(Step::Read(why.to_owned()));
        let state = self.state.lock().unwrap();
        Ok(state
            .routes
            .get(&format!("{namespace}/{name}"))
            .map(|route| {
                let mut route = route.clone();
                route["metadata"]["generation"] = json!(1);
                route["status"] = route_status::istio_status(&route["spec"]["parentRefs"], 1, &[]);
                route
            }))
    }

    async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: &[&str],
    ) -> anyhow::Result<String> {
        self.record(Step::Exec {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            container: container.to_owned(),
            command: command.join(" "),
        });
        if command == CONFIG_DUMP_COMMAND {
            Ok(self.config_dump(namespace).to_string())
        } else {
            Ok(String::new())
        }
    }

    async fn follow_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> anyhow::Result<LogLines> {
        self.record(Step::FollowLogs {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            container: container.to_owned(),
        });
        let clock = self.clone();
        let every = objects::CLIENT_INTERVAL;
        let lines = futures::stream::unfold(1u32, move |n| {
            let clock = clock.clone();
            async move {
                // One line per turn of the scheduler, so that the reader of the summaries keeps up.
                tokio::task::yield_now().await;
                clock.ticks.fetch_add(1, Ordering::SeqCst);
                let mut summary = Summary::empty(SummaryKind::Summary);
                summary.t = f64::from(n) * every.as_secs_f64();
                let line = serde_json::to_string(&summary)
                    .map(|json| format!("{:.9} {json}", clock.now()))
                    .map_err(anyhow::Error::from);
                Some((line, n + 1))
            }
        });
        Ok(lines.boxed())
    }

    async fn pod_http_get(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        path: &str,
    ) -> anyhow::Result<String> {
        self.record(Step::PodGet {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            port,
            path: path.to_owned(),
        });
        Ok(String::new())
    }

    async fn config_map(&self, namespace: &str, name: &str) -> anyhow::Result<Option<ConfigMap>> {
        self.record(Step::Read(format!("configmap {namespace}/{name}")));
        let state = self.state.lock().unwrap();
        Ok(
            (namespace == mesh_config::NAMESPACE && name == mesh_config::CONFIG_MAP)
                .then(|| state.mesh.clone()),
        )
    }

    async fn patch_config_map(
        &self,
        namespace: &str,
        name: &str,
        what: &str,
        patch: &Value,
    ) -> anyhow::Result<()> {
        self.record(Step::PatchConfigMap {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            what: what.to_owned(),
        });
        if namespace == mesh_config::NAMESPACE && name == mesh_config::CONFIG_MAP {
            let mut state = self.state.lock().unwrap();
            let mut value = serde_json::to_value(&state.mesh)?;
            merge_patch(&mut value, patch);
            state.mesh = serde_json::from_value(value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_patch_sets_nested_fields_and_removes_those_set_to_null() {
        let mut target = json!({ "data": { "mesh": "a" }, "metadata": { "annotations": { "x": "1", "y": "2" } } });
        merge_patch(
            &mut target,
            &json!({ "data": { "mesh": "b" }, "metadata": { "annotations": { "x": null, "z": "3" } } }),
        );
        assert_eq!(
            target,
            json!({ "data": { "mesh": "b" }, "metadata": { "annotations": { "y": "2", "z": "3" } } })
        );
    }
}
