//! The second implementation of [`Ops`](super::ops::Ops): it does nothing to a cluster, writes
//! each call down as a [`Step`] (`recorder/model.rs`), and answers as a cluster that does what it is
//! asked would (`recorder/calls.rs`): every rollout completes, a stopped container comes back, istiod
//! accepts every route and pushes it, the logs carry a summary a client interval. `demo --dry-run`
//! runs the real backend and the real demo loop over it and prints the steps.
//!
//! Its clock is logical: it moves one client interval each time a followed log gives a line, and
//! nothing else. The backend waits on nothing else (every condition it polls holds at the first
//! read), so a dry run takes no real time and its timestamps are the same on every run.
//!
//! Its Istio, when a namespace is enrolled in ambient mode, plays istiod and ztunnel too: a waypoint
//! `Gateway` is programmed at once and gets its Deployment (one pod), a route's status says whether its
//! Service uses the waypoint, the waypoint's dump holds the applied routes, and ztunnel (one pod, the
//! DaemonSet's on `<node>`) captures every pod of the namespace but those with a sidecar and the waypoint.
//!
//! Its answers are placeholders where only a cluster knows (`<node>`, `<id of pod/container>`). Its pods
//! are one per replica, named `<deployment>-pod<n>` in the order they were made: a scale-up adds new ones,
//! a scale-down removes the newest, a change of the pod template or a restart replaces them all, a
//! deleted pod gets a replacement.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, atomic::AtomicU32},
};

use k8s_openapi::{
    api::core::v1::ConfigMap,
    jiff::{SignedDuration, Timestamp},
};
use serde_json::{Value, json};

use super::{
    mesh_config,
    ops::{ContainerInfo, PodInfo},
};
use crate::cluster::{
    objects::{self, ambient},
    route_check,
};
use crate::harness::kind::ISTIO_PROXY_CONTAINER;

mod calls;
mod model;

pub use model::{Step, Steps};

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
    /// Namespaces and Gateways as last applied, by `name` and `namespace/name`.
    namespaces: BTreeMap<String, Value>,
    gateways: BTreeMap<String, Value>,
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
        // ztunnel's DaemonSet, as one pod.
        let mut deployments = BTreeMap::new();
        let mut ztunnel = Deployed {
            template: Value::Null,
            labels: [("app".to_owned(), ambient::ZTUNNEL.to_owned())].into(),
            containers: vec![ISTIO_PROXY_CONTAINER.to_owned()],
            pods: Vec::new(),
            next: 1,
        };
        ztunnel.make(1);
        deployments.insert(
            format!("{}/{}", ambient::ISTIO_NAMESPACE, ambient::ZTUNNEL),
            ztunnel,
        );
        Recorder {
            context: context.to_owned(),
            kind: context.strip_prefix("kind-").map(str::to_owned),
            ticks: Arc::default(),
            epoch: EPOCH.parse().expect("a valid timestamp"),
            state: Arc::new(Mutex::new(State {
                steps: Vec::new(),
                deployments,
                services: BTreeMap::new(),
                routes: BTreeMap::new(),
                namespaces: BTreeMap::new(),
                gateways: BTreeMap::new(),
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

    /// The configuration dump of a sidecar (or of the waypoint) that got every applied route.
    fn config_dump(&self, namespace: &str, waypoint: bool) -> Value {
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
        if waypoint {
            // Its routes are inline in its listeners (`cluster/route_check.rs`, `found_waypoint`).
            return json!({ "configs": [{ "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
                "dynamic_listeners": [{ "name": "main_internal", "active_state": { "listener": {
                    "filter_chains": [{ "filters": [{ "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": { "route_config": {
                            "name": route_check::waypoint_route_config(&host, objects::GRPC_PORT),
                            "virtual_hosts": [{ "name": format!("inbound|http|{}", objects::GRPC_PORT),
                                "domains": ["*"], "routes": routes }] } } }] }] } } }] }] });
        }
        json!({ "configs": [{ "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
            "dynamic_route_configs": [{ "route_config": { "name": objects::GRPC_PORT.to_string(),
                "virtual_hosts": [{ "name": format!("{host}:{}", objects::GRPC_PORT), "domains": [host],
                    "routes": routes }] } }] }] })
    }
}

impl Recorder {
    /// Whether a namespace was applied enrolled in ambient mode.
    fn ambient(state: &State, namespace: &str) -> bool {
        state.namespaces.get(namespace).is_some_and(|ns| {
            ns["metadata"]["labels"][ambient::DATAPLANE_MODE_LABEL] == ambient::AMBIENT
        })
    }

    /// Whether the Service `namespace/name` was applied with `istio.io/use-waypoint`.
    fn uses_waypoint(state: &State, namespace: &str, name: &str) -> bool {
        state
            .services
            .get(&format!("{namespace}/{name}"))
            .is_some_and(|s| s["metadata"]["labels"][ambient::USE_WAYPOINT_LABEL].is_string())
    }

    /// ztunnel's dump: every pod of an enrolled namespace but those with a sidecar and the waypoint's,
    /// captured; every Service there, with the waypoint where it uses one.
    fn ztunnel_dump(&self) -> Value {
        let namespaces: Vec<String> = {
            let state = self.state.lock().unwrap();
            state
                .namespaces
                .keys()
                .filter(|ns| Recorder::ambient(&state, ns))
                .cloned()
                .collect()
        };
        let mut workloads = Vec::new();
        for ns in &namespaces {
            for pod in self.pods_of(ns, "") {
                let captured = pod.container(ISTIO_PROXY_CONTAINER).is_none();
                workloads.push(json!({ "name": pod.name, "namespace": ns,
                    "protocol": if captured { ambient::HBONE } else { "TCP" } }));
            }
        }
        let state = self.state.lock().unwrap();
        let mut services = Vec::new();
        for ns in &namespaces {
            for (key, service) in &state.services {
                let Some(name) = key.strip_prefix(&format!("{ns}/")) else {
                    continue;
                };
                let mut entry = json!({ "name": name, "namespace": ns,
                    "hostname": format!("{name}.{ns}.svc.{}", objects::CLUSTER_DOMAIN) });
                if Recorder::uses_waypoint(&state, ns, name) {
                    entry["waypoint"] = json!({
                        "destination": format!("{ns}/{}.{ns}.svc.{}", ambient::WAYPOINT, objects::CLUSTER_DOMAIN),
                        "hboneMtlsPort": ambient::HBONE_PORT });
                }
                let _ = service;
                services.push(entry);
            }
        }
        json!({ "workloads": workloads, "services": services, "policies": [] })
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
