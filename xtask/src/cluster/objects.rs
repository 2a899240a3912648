//! The Kubernetes objects a scenario applies, built as typed `k8s-openapi` (and `gateway-api`)
//! objects and handed out as [`DynamicObject`]s, ready for server-side apply or for printing.
//!
//! One namespace per scenario (`gml-<scenario>`) holds everything: the servers (a Deployment per
//! version), their Services, the scenario's route objects, the client, and the cluster's own
//! Envoys where a scenario has them. Everything carries the label
//! `app.kubernetes.io/part-of: grpc-mesh-lab`.
//!
//! How each [`Mesh`] is arranged:
//! - `Off`: the client resolves `dns:///server:50051` (a ClusterIP, or every pod when the scenario
//!   is [`Exposure::Headless`]).
//! - `Sidecar`: the same target; Istio injects its sidecar into the client pod only, because that
//!   pod's template opts in (`sidecar.istio.io/inject: "true"`). No namespace label is used, and
//!   the servers never get a sidecar.
//! - `Proxy(n)`: `n` Envoys (Deployment `proxy`) resolve the headless Service `server-pods`;
//!   the Service `server` selects the proxies instead of the servers, so the client is pinned to
//!   one proxy (the seed's lesson).
//! - `StaticSidecar`: an Envoy beside the client with a static configuration (ConfigMap
//!   `client-envoy`) splitting by the route file's weights over the headless Services
//!   `server-<version>-pods`; the client targets `ipv4:127.0.0.1:15001`. A change of weights is
//!   a new ConfigMap and a new pod-template hash ([`static_sidecar`]): the client restarts, as
//!   the seed restarted its pods.
//! - `Ztunnel`, `Waypoint` (Istio's ambient mode, `objects/ambient.rs`): the namespace is enrolled
//!   with `istio.io/dataplane-mode: ambient`, the waypoint is a `Gateway` of class `istio-waypoint`
//!   deployed with the base objects, and the Service `server` carries `istio.io/use-waypoint` only
//!   in the phases that use it. The client (`client-ambient`) targets `dns:///server:50051` with no
//!   sidecar; ztunnel captures it.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use hello_apps::server::config as server_config;
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        core::v1::{
            Capabilities, ContainerPort, EnvVar, EnvVarSource, Namespace, ObjectFieldSelector,
            PodSpec, PodTemplateSpec, ResourceRequirements, SecurityContext, ServiceAccount,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
    },
};
use kube::api::DynamicObject;
use serde::Serialize;

use crate::harness::scenario::{Client, Exposure, Mesh, Scenario};

pub mod ambient;
mod clients;
mod proxies;
mod routes;
mod servers;
#[cfg(test)]
mod tests;

pub use routes::{route_objects, routes};

/// The label that marks everything this harness creates (namespaces above all: only those are
/// ever deleted), and its value.
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
pub const PART_OF: &str = "grpc-mesh-lab";
/// Istio injects its sidecar into the pods that carry this label set to `"true"`.
pub const INJECT_LABEL: &str = "sidecar.istio.io/inject";
/// The pod-template annotation that names the hash of an Envoy's static configuration, so that
/// new content restarts the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "grpc-mesh-lab/config-hash";

/// The images the cluster runs, as full references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    pub server: String,
    pub client: String,
    pub envoy: String,
}

/// The Service every client calls.
pub const SERVER: &str = "server";
/// The headless Service of every server pod that the proxies resolve.
pub const SERVER_PODS: &str = "server-pods";
/// The Deployment (and ServiceAccount) of the proxies in front of the servers.
pub const PROXY: &str = "proxy";
/// The proxies' static Envoy configuration.
pub const PROXY_CONFIG: &str = "proxy-envoy";
/// The static sidecar's Envoy configuration.
pub const CLIENT_ENVOY: &str = "client-envoy";
pub const CLIENT_MESH_ON: &str = "client-mesh-on";
pub const CLIENT_MESH_OFF: &str = "client-mesh-off";
/// The client of the ambient phases (ztunnel, waypoint): no sidecar, captured by ztunnel.
pub const CLIENT_AMBIENT: &str = "client-ambient";
/// The ServiceAccounts of the server and client pods.
const SERVER_ACCOUNT: &str = "server";
const CLIENT_ACCOUNT: &str = "client";
/// Container names, as logs and `kubectl exec` name them.
pub const SERVER_CONTAINER: &str = "hello-server";
pub const CLIENT_CONTAINER: &str = "hello-client";
pub const ENVOY_CONTAINER: &str = "envoy";

/// The servers' gRPC port (and every Service's): the port of the twin's pods and Services.
pub const GRPC_PORT: u16 = mesh::twin::PORT;
pub const METRICS_PORT: u16 = server_config::DEFAULT_METRICS_PORT;
const GRPC_PORT_NAME: &str = "grpc";
/// The static sidecar's port for the kubelet's startup probe
/// ([`READY_PORT`](super::envoy_static::READY_PORT)).
const READY_PORT_NAME: &str = "envoy-ready";
/// How long the static sidecar may take to become ready (probed once a second): its clusters'
/// first DNS resolution is all it waits for.
const STATIC_SIDECAR_STARTUP_SECONDS: i32 = 60;
const METRICS_PORT_NAME: &str = "metrics";
/// Kubernetes' name for gRPC over HTTP/2 cleartext; Istio then handles the port as gRPC (per
/// request), not as opaque TCP.
const GRPC_APP_PROTOCOL: &str = "grpc";
/// kind's cluster domain (Kubernetes' default, which the twin's names use too): the static Envoys
/// resolve fully qualified names.
pub use mesh::translate::CLUSTER_DOMAIN;

/// The seed's max connection age and grace. The local twin uses shorter ones (see
/// `scenario.rs`) so that its demo takes seconds; on the cluster a scale-up takes longer than
/// that anyway, so the cluster keeps the seed's values. Only scenarios that set a max age get one.
const CLUSTER_MAX_CONNECTION_AGE: &str = "10s";
const CLUSTER_MAX_CONNECTION_AGE_GRACE: &str = "20s";

/// Above the servers' drain timeout (25s), so that a drain ends before SIGKILL.
const SERVER_TERMINATION_GRACE_SECONDS: i64 = 30;
/// How often the client prints a JSON summary (the local twin's report four times a second; on a
/// cluster the logs travel through the API server, and once a second is plenty).
pub const CLIENT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The apps' images are static binaries; they run as the conventional unprivileged `nonroot`.
const APP_UID: i64 = 65532;
/// The `envoy` user of the Envoy images.
const ENVOY_UID: i64 = 101;
const ENVOY_CONFIG_DIR: &str = "/etc/envoy";
const ENVOY_CONFIG_FILE: &str = "envoy.json";
const ENVOY_CONFIG_VOLUME: &str = "envoy-config";
/// Envoy's worker threads: a few are plenty for a demo, and the node's CPU count is not.
const ENVOY_CONCURRENCY: &str = "2";

/// The namespace of a scenario's objects: `gml-<scenario>`.
pub fn namespace(scenario: &str) -> String {
    format!("gml-{scenario}")
}

/// Everything a scenario needs before its first phase, in apply order: the Namespace, the
/// ServiceAccounts, a server Deployment per version (`server-v1`, ... with the scenario's initial
/// replicas), the Services, the route objects (from `gateway/<file>`, in the demo namespace),
/// and the Envoys' ConfigMaps and Deployment when a phase has proxies or a static sidecar. In
/// ambient mode the namespace is enrolled, the waypoint comes last, and the Service `server` is
/// attached to it when the first phase uses it.
pub fn base(scenario: &Scenario, images: &Images) -> anyhow::Result<Vec<DynamicObject>> {
    let attached = scenario.phases.first().map(|p| p.mesh) == Some(Mesh::Waypoint);
    base_with(scenario, images, attached)
}

fn base_with(
    scenario: &Scenario,
    images: &Images,
    waypoint_attached: bool,
) -> anyhow::Result<Vec<DynamicObject>> {
    let ns = namespace(scenario.name);
    let enrolled: &[(&str, &str)] = if ambient::is_ambient(scenario) {
        &[(ambient::DATAPLANE_MODE_LABEL, ambient::AMBIENT)]
    } else {
        &[]
    };
    let mut objects = vec![to_dynamic(&Namespace {
        metadata: ObjectMeta {
            name: Some(ns.clone()),
            labels: Some(labels(enrolled)),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    })];
    let mut accounts = vec![SERVER_ACCOUNT, CLIENT_ACCOUNT];
    if initial_proxies(scenario).is_some() {
        accounts.push(PROXY);
    }
    for account in accounts {
        objects.push(to_dynamic(&ServiceAccount {
            metadata: meta(account, &ns, labels(&[])),
            ..ServiceAccount::default()
        }));
    }
    for (version, replicas) in &scenario.versions {
        objects.push(to_dynamic(&servers::server_deployment(
            scenario, version, *replicas, images,
        )));
    }
    let mut services = servers::services(scenario);
    if waypoint_attached {
        attach_waypoint(&mut services[0]);
    }
    objects.extend(services.iter().map(to_dynamic));
    objects.extend(routes(scenario, None)?);
    if let Some(replicas) = initial_proxies(scenario) {
        let (config, deployment) = proxies::proxies(&ns, replicas, images);
        objects.push(to_dynamic(&config));
        objects.push(to_dynamic(&deployment));
    }
    if has_static_sidecar(scenario) {
        let (config, _) = proxies::client_envoy_config(scenario, None)?;
        objects.push(to_dynamic(&config));
    }
    if ambient::has_waypoint(scenario) {
        objects.push(ambient::waypoint(scenario));
    }
    Ok(objects)
}

/// The client Deployment for a phase: `client-mesh-on`, or `client-mesh-off` for [`Mesh::Off`];
/// one replica running the phase's workload. For [`Mesh::StaticSidecar`] it carries the Envoy
/// too but no configuration hash: after a change of weights apply [`static_sidecar`] instead.
pub fn client(scenario: &Scenario, client: &Client, mesh: Mesh, images: &Images) -> DynamicObject {
    to_dynamic(&clients::client_deployment(
        scenario, client, mesh, images, None,
    ))
}

/// For a scenario with a static sidecar: its ConfigMap `client-envoy` with these weights (the
/// route file's when `None`), then the client Deployment whose pod template names the
/// configuration's hash. Applying both after a change of weights restarts the client with the
/// new configuration, as the seed restarted its pods.
pub fn static_sidecar(
    scenario: &Scenario,
    client: &Client,
    images: &Images,
    weights: Option<&[(&str, u32)]>,
) -> anyhow::Result<Vec<DynamicObject>> {
    let (config, hash) = proxies::client_envoy_config(scenario, weights)?;
    let deployment =
        clients::client_deployment(scenario, client, Mesh::StaticSidecar, images, Some(&hash));
    Ok(vec![to_dynamic(&config), to_dynamic(&deployment)])
}

/// What `cargo xtask manifests` prints for a scenario: [`base`], then the client of each phase
/// (the first of each name: a later phase's workload replaces it when the demo runs). A scenario
/// with a waypoint shows the Service `server` attached to it, as its waypoint phases have it.
pub fn manifests(scenario: &Scenario, images: &Images) -> anyhow::Result<Vec<DynamicObject>> {
    let mut objects = base_with(scenario, images, ambient::has_waypoint(scenario))?;
    let mut names = Vec::new();
    for phase in &scenario.phases {
        let name = client_name(phase.mesh);
        if !names.contains(&name) {
            names.push(name);
            objects.push(client(scenario, &phase.client, phase.mesh, images));
        }
    }
    Ok(objects)
}

/// All objects as one multi-document YAML stream, documents separated by `---`.
pub fn to_yaml(objects: &[DynamicObject]) -> anyhow::Result<String> {
    let docs = objects
        .iter()
        .map(|object| {
            serde_yaml::to_string(object).with_context(|| {
                format!(
                    "cannot write {} {} as yaml",
                    object.types.as_ref().map_or("object", |t| t.kind.as_str()),
                    object.metadata.name.as_deref().unwrap_or("<no name>")
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(docs.join("---\n"))
}

/// The client Deployment of an arrangement: `client-mesh-on`, `client-mesh-off`, or
/// `client-ambient` for ztunnel with or without the waypoint.
pub fn client_name(mesh: Mesh) -> &'static str {
    if mesh.is_ambient() {
        CLIENT_AMBIENT
    } else if mesh.is_on() {
        CLIENT_MESH_ON
    } else {
        CLIENT_MESH_OFF
    }
}

/// The Service `server` with this exposure, for a phase that exposes it otherwise than the scenario
/// does. Kubernetes never changes a Service between headless and ClusterIP in place: `clusterIP` may
/// not change once set (`ValidateServiceUpdate`), and an update without it keeps the old one
/// (`patchAllocatedValues`). So the old Service is deleted first, and this one created.
pub fn server_service(scenario: &Scenario, exposure: Exposure) -> anyhow::Result<DynamicObject> {
    server_service_attached(scenario, exposure, false)
}

/// The Service `server` with this exposure, attached to the scenario's waypoint
/// (`istio.io/use-waypoint: waypoint`) or not. A server-side apply of the one without the label
/// removes it (the field manager's own label, left out, is pruned).
pub fn server_service_attached(
    scenario: &Scenario,
    exposure: Exposure,
    waypoint: bool,
) -> anyhow::Result<DynamicObject> {
    if initial_proxies(scenario).is_some() {
        bail!(
            "scenario {}: the service server points at the proxies; it has no other exposure",
            scenario.name
        );
    }
    let mut service = servers::server_service_typed(scenario, exposure);
    if waypoint {
        attach_waypoint(&mut service);
    }
    Ok(to_dynamic(&service))
}

/// Labels a Service with the waypoint it uses.
fn attach_waypoint(service: &mut k8s_openapi::api::core::v1::Service) {
    service
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(
            ambient::USE_WAYPOINT_LABEL.to_owned(),
            ambient::WAYPOINT.to_owned(),
        );
}

/// The scenario's Services as the mesh model names them (no endpoints): what the route objects'
/// references resolve against.
pub fn mesh_services(scenario: &Scenario) -> Vec<mesh::model::Service> {
    servers::services(scenario)
        .iter()
        .map(|s| mesh::model::Service {
            name: s.metadata.name.clone().unwrap_or_default(),
            namespace: namespace(scenario.name),
            port: GRPC_PORT,
            endpoints: Vec::new(),
            headless: s.spec.as_ref().and_then(|spec| spec.cluster_ip.as_deref()) == Some("None"),
        })
        .collect()
}

/// The number of proxies of the first phase that has some, if any does.
fn initial_proxies(scenario: &Scenario) -> Option<u32> {
    scenario.phases.iter().find_map(|phase| match phase.mesh {
        Mesh::Proxy(n) => Some(n),
        _ => None,
    })
}

fn has_static_sidecar(scenario: &Scenario) -> bool {
    scenario
        .phases
        .iter()
        .any(|phase| phase.mesh == Mesh::StaticSidecar)
}

/// Converts a typed object: its JSON is a Kubernetes object (apiVersion, kind, metadata, ...).
fn to_dynamic<T: Serialize>(object: &T) -> DynamicObject {
    serde_json::to_value(object)
        .and_then(serde_json::from_value)
        .expect("a typed Kubernetes object converts to a DynamicObject")
}

/// `part-of` plus these labels.
fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    std::iter::once((PART_OF_LABEL, PART_OF))
        .chain(pairs.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn meta(name: &str, ns: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(ns.to_owned()),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

fn selector(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    }
}

/// `POD_NAME`, from the downward API: the identity servers put in replies and clients in requests.
fn pod_name_env() -> EnvVar {
    EnvVar {
        name: server_config::POD_NAME.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.name".to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn restricted(uid: i64) -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

fn requests(cpu: &str, memory: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(
            [
                ("cpu".to_owned(), Quantity(cpu.to_owned())),
                ("memory".to_owned(), Quantity(memory.to_owned())),
            ]
            .into(),
        ),
        ..ResourceRequirements::default()
    }
}

fn port(name: &str, number: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: i32::from(number),
        ..ContainerPort::default()
    }
}

/// A pod template: its labels (which include the Deployment's selector), annotations and spec.
struct Pod {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    spec: PodSpec,
}

fn deployment(
    name: &str,
    ns: &str,
    replicas: u32,
    select: &[(&str, &str)],
    pod: Pod,
) -> Deployment {
    Deployment {
        metadata: meta(name, ns, labels(select)),
        spec: Some(DeploymentSpec {
            replicas: Some(i32::try_from(replicas).unwrap_or(i32::MAX)),
            selector: LabelSelector {
                match_labels: Some(selector(select)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod.labels),
                    annotations: (!pod.annotations.is_empty()).then_some(pod.annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    // Kubernetes would add variables per Service (SERVER_PORT=tcp://...): the
                    // apps' environment is exactly what we set.
                    enable_service_links: Some(false),
                    ..pod.spec
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}
