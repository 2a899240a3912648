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

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use hello_apps::server::config as server_config;
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy},
        core::v1::{
            Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar,
            EnvVarSource, GRPCAction, HTTPGetAction, Namespace, ObjectFieldSelector, PodSpec,
            PodTemplateSpec, Probe, ResourceRequirements, SecurityContext, Service, ServiceAccount,
            ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use kube::api::DynamicObject;
use mesh::gateway::{self, RouteObject};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::envoy_static::{self, Upstream};
use crate::harness::scenario::{Client, Exposure, Mesh, Scenario};

/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "grpc-mesh-lab";
/// The value of [`PART_OF_LABEL`] on everything we create.
pub const PART_OF: &str = "grpc-mesh-lab";
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
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
/// The ServiceAccounts of the server and client pods.
const SERVER_ACCOUNT: &str = "server";
const CLIENT_ACCOUNT: &str = "client";
/// Container names, as logs and `kubectl exec` name them.
pub const SERVER_CONTAINER: &str = "hello-server";
pub const CLIENT_CONTAINER: &str = "hello-client";
pub const ENVOY_CONTAINER: &str = "envoy";

/// The servers' gRPC port (and every Service's).
pub const GRPC_PORT: u16 = 50051;
pub const METRICS_PORT: u16 = server_config::DEFAULT_METRICS_PORT;
const GRPC_PORT_NAME: &str = "grpc";
/// The static sidecar's port for the kubelet's startup probe ([`envoy_static::READY_PORT`]).
const READY_PORT_NAME: &str = "envoy-ready";
/// How long the static sidecar may take to become ready (probed once a second): its clusters'
/// first DNS resolution is all it waits for.
const STATIC_SIDECAR_STARTUP_SECONDS: i32 = 60;
const METRICS_PORT_NAME: &str = "metrics";
/// Kubernetes' name for gRPC over HTTP/2 cleartext; Istio then handles the port as gRPC (per
/// request), not as opaque TCP.
const GRPC_APP_PROTOCOL: &str = "grpc";
/// kind's cluster domain: the static Envoys resolve fully qualified names.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

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
/// and the Envoys' ConfigMaps and Deployment when a phase has proxies or a static sidecar.
pub fn base(scenario: &Scenario, images: &Images) -> anyhow::Result<Vec<DynamicObject>> {
    let ns = namespace(scenario.name);
    let mut objects = vec![to_dynamic(&Namespace {
        metadata: ObjectMeta {
            name: Some(ns.clone()),
            labels: Some(labels(&[])),
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
        objects.push(to_dynamic(&server_deployment(
            scenario, version, *replicas, images,
        )));
    }
    objects.extend(services(scenario).iter().map(to_dynamic));
    objects.extend(routes(scenario, None)?);
    if let Some(replicas) = initial_proxies(scenario) {
        let (config, hash) = envoy_config_map(
            PROXY_CONFIG,
            &ns,
            &envoy_static::proxy(&upstream(SERVER_PODS, &ns, GRPC_PORT)),
        );
        objects.push(to_dynamic(&config));
        objects.push(to_dynamic(&proxy_deployment(&ns, replicas, &hash, images)));
    }
    if has_static_sidecar(scenario) {
        let (config, _) = client_envoy_config(scenario, None)?;
        objects.push(to_dynamic(&config));
    }
    Ok(objects)
}

/// The client Deployment for a phase: `client-mesh-on`, or `client-mesh-off` for [`Mesh::Off`];
/// one replica running the phase's workload. For [`Mesh::StaticSidecar`] it carries the Envoy
/// too but no configuration hash: after a change of weights apply [`static_sidecar`] instead.
pub fn client(scenario: &Scenario, client: &Client, mesh: Mesh, images: &Images) -> DynamicObject {
    to_dynamic(&client_deployment(scenario, client, mesh, images, None))
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
    let (config, hash) = client_envoy_config(scenario, weights)?;
    let deployment = client_deployment(scenario, client, Mesh::StaticSidecar, images, Some(&hash));
    Ok(vec![to_dynamic(&config), to_dynamic(&deployment)])
}

/// The scenario's route objects (none without a route file) in the demo namespace, with these
/// weights applied by backend Service name (for [`Action::Weights`](crate::harness::scenario::Action)).
pub fn routes(
    scenario: &Scenario,
    weights: Option<&[(&str, u32)]>,
) -> anyhow::Result<Vec<DynamicObject>> {
    Ok(route_objects(scenario, weights)?
        .iter()
        .map(|object| match object {
            RouteObject::Http(route) => to_dynamic(route),
            RouteObject::Grpc(route) => to_dynamic(route),
        })
        .collect())
}

/// What `cargo xtask manifests` prints for a scenario: [`base`], then the client of each phase
/// (the first of each name: a later phase's workload replaces it when the demo runs).
pub fn manifests(scenario: &Scenario, images: &Images) -> anyhow::Result<Vec<DynamicObject>> {
    let mut objects = base(scenario, images)?;
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

/// The client Deployment of an arrangement: `client-mesh-on` or `client-mesh-off`.
pub fn client_name(mesh: Mesh) -> &'static str {
    if mesh.is_on() {
        CLIENT_MESH_ON
    } else {
        CLIENT_MESH_OFF
    }
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

/// The server's environment: its identity and version, then the scenario's `server_env` with
/// the cluster's max connection age in place of the local twin's.
fn server_env(scenario: &Scenario, version: &str) -> Vec<EnvVar> {
    let mut vars = vec![pod_name_env(), env(server_config::VERSION, version)];
    for &(name, value) in &scenario.server_env {
        // The explicit substitution: the scenario carries the local twin's ages.
        let value = match name {
            server_config::MAX_CONNECTION_AGE => CLUSTER_MAX_CONNECTION_AGE,
            server_config::MAX_CONNECTION_AGE_GRACE => CLUSTER_MAX_CONNECTION_AGE_GRACE,
            _ => value,
        };
        vars.push(env(name, value));
    }
    vars
}

fn server_deployment(
    scenario: &Scenario,
    version: &str,
    replicas: u32,
    images: &Images,
) -> Deployment {
    let select = [("app", SERVER), ("version", version)];
    let container = Container {
        name: SERVER_CONTAINER.to_owned(),
        image: Some(images.server.clone()),
        ports: Some(vec![
            port(GRPC_PORT_NAME, GRPC_PORT),
            port(METRICS_PORT_NAME, METRICS_PORT),
        ]),
        env: Some(server_env(scenario, version)),
        // The server serves grpc.health.v1 and reports NOT_SERVING while it drains.
        readiness_probe: Some(Probe {
            grpc: Some(GRPCAction {
                port: i32::from(GRPC_PORT),
                service: None,
            }),
            period_seconds: Some(2),
            ..Probe::default()
        }),
        security_context: Some(restricted(APP_UID)),
        resources: Some(requests("10m", "16Mi")),
        ..Container::default()
    };
    deployment(
        &format!("{SERVER}-{version}"),
        &namespace(scenario.name),
        replicas,
        &select,
        Pod {
            labels: labels(&select),
            annotations: BTreeMap::new(),
            spec: PodSpec {
                service_account_name: Some(SERVER_ACCOUNT.to_owned()),
                automount_service_account_token: Some(false),
                termination_grace_period_seconds: Some(SERVER_TERMINATION_GRACE_SECONDS),
                containers: vec![container],
                ..PodSpec::default()
            },
        },
    )
}

/// A gRPC Service on port 50051; headless ones (`clusterIP: None`) resolve to every ready pod.
fn service(name: &str, ns: &str, select: &[(&str, &str)], headless: bool) -> Service {
    Service {
        metadata: meta(name, ns, labels(&[])),
        spec: Some(ServiceSpec {
            selector: Some(selector(select)),
            cluster_ip: headless.then(|| "None".to_owned()),
            ports: Some(vec![ServicePort {
                name: Some(GRPC_PORT_NAME.to_owned()),
                port: i32::from(GRPC_PORT),
                target_port: Some(IntOrString::String(GRPC_PORT_NAME.to_owned())),
                app_protocol: Some(GRPC_APP_PROTOCOL.to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The Service `server` every client calls: the servers exposed as `exposure` says, or, in proxy
/// mode, the proxies (always a ClusterIP: the lesson is that the client is pinned to one of them).
fn server_service_typed(scenario: &Scenario, exposure: Exposure) -> Service {
    let ns = namespace(scenario.name);
    if initial_proxies(scenario).is_some() {
        service(SERVER, &ns, &[("app", PROXY)], false)
    } else {
        service(
            SERVER,
            &ns,
            &[("app", SERVER)],
            exposure == Exposure::Headless,
        )
    }
}

/// The Service `server` with this exposure, for a phase that exposes it otherwise than the scenario
/// does. Kubernetes never changes a Service between headless and ClusterIP in place: `clusterIP` may
/// not change once set (`ValidateServiceUpdate`), and an update without it keeps the old one
/// (`patchAllocatedValues`). So the old Service is deleted first, and this one created.
pub fn server_service(scenario: &Scenario, exposure: Exposure) -> anyhow::Result<DynamicObject> {
    if initial_proxies(scenario).is_some() {
        bail!(
            "scenario {}: the service server points at the proxies; it has no other exposure",
            scenario.name
        );
    }
    Ok(to_dynamic(&server_service_typed(scenario, exposure)))
}

fn services(scenario: &Scenario) -> Vec<Service> {
    let ns = namespace(scenario.name);
    let proxies = initial_proxies(scenario).is_some();
    let mut services = vec![server_service_typed(scenario, scenario.exposure)];
    for (version, _) in &scenario.versions {
        let name = format!("{SERVER}-{version}");
        let select = [("app", SERVER), ("version", version)];
        services.push(service(&name, &ns, &select, false));
    }
    if proxies {
        services.push(service(SERVER_PODS, &ns, &[("app", SERVER)], true));
    }
    if has_static_sidecar(scenario) {
        for (version, _) in &scenario.versions {
            let name = format!("{SERVER}-{version}-pods");
            let select = [("app", SERVER), ("version", version)];
            services.push(service(&name, &ns, &select, true));
        }
    }
    services
}

/// The scenario's Services as the mesh model names them (no endpoints): what the route objects'
/// references resolve against.
pub fn mesh_services(scenario: &Scenario) -> Vec<mesh::model::Service> {
    services(scenario)
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

/// What a static Envoy resolves for a headless Service of the namespace.
fn upstream(service: &str, ns: &str, port: u16) -> Upstream {
    Upstream {
        name: service.to_owned(),
        host: format!("{service}.{ns}.svc.{CLUSTER_DOMAIN}"),
        port,
    }
}

/// A ConfigMap holding an Envoy bootstrap, and the SHA-256 (hex) of that content.
fn envoy_config_map(name: &str, ns: &str, bootstrap: &Value) -> (ConfigMap, String) {
    let text = format!("{bootstrap:#}\n");
    let hash: String = Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let config = ConfigMap {
        metadata: meta(name, ns, labels(&[])),
        data: Some([(ENVOY_CONFIG_FILE.to_owned(), text)].into()),
        ..ConfigMap::default()
    };
    (config, hash)
}

/// An Envoy container reading its bootstrap from the volume [`ENVOY_CONFIG_VOLUME`].
fn envoy_container(images: &Images) -> Container {
    Container {
        name: ENVOY_CONTAINER.to_owned(),
        image: Some(images.envoy.clone()),
        command: Some(vec!["envoy".to_owned()]),
        args: Some(
            [
                "-c",
                &format!("{ENVOY_CONFIG_DIR}/{ENVOY_CONFIG_FILE}"),
                "--concurrency",
                ENVOY_CONCURRENCY,
                "--log-level",
                "warn",
                // A new configuration is a new pod, never a hot restart.
                "--disable-hot-restart",
            ]
            .map(str::to_owned)
            .into(),
        ),
        volume_mounts: Some(vec![VolumeMount {
            name: ENVOY_CONFIG_VOLUME.to_owned(),
            mount_path: ENVOY_CONFIG_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        security_context: Some(restricted(ENVOY_UID)),
        resources: Some(requests("50m", "64Mi")),
        ..Container::default()
    }
}

fn envoy_volume(config_map: &str) -> Volume {
    Volume {
        name: ENVOY_CONFIG_VOLUME.to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.to_owned(),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn proxy_deployment(ns: &str, replicas: u32, config_hash: &str, images: &Images) -> Deployment {
    let select = [("app", PROXY)];
    let container = Container {
        ports: Some(vec![port(GRPC_PORT_NAME, envoy_static::PROXY_PORT)]),
        // Envoy opens its listener once its clusters have resolved.
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String(GRPC_PORT_NAME.to_owned()),
                ..TCPSocketAction::default()
            }),
            period_seconds: Some(2),
            ..Probe::default()
        }),
        ..envoy_container(images)
    };
    deployment(
        PROXY,
        ns,
        replicas,
        &select,
        Pod {
            labels: labels(&select),
            annotations: [(CONFIG_HASH_ANNOTATION.to_owned(), config_hash.to_owned())].into(),
            spec: PodSpec {
                service_account_name: Some(PROXY.to_owned()),
                automount_service_account_token: Some(false),
                containers: vec![container],
                volumes: Some(vec![envoy_volume(PROXY_CONFIG)]),
                ..PodSpec::default()
            },
        },
    )
}

/// The scenario's route objects, typed, in the demo namespace and labelled, with `weights`.
/// The scenario's route objects (none without a route file), in the demo namespace, with these
/// weights applied by backend Service name.
pub fn route_objects(
    scenario: &Scenario,
    weights: Option<&[(&str, u32)]>,
) -> anyhow::Result<Vec<RouteObject>> {
    let Some(source) = &scenario.routes else {
        return Ok(Vec::new());
    };
    let mut routes = source.load()?;
    if let Some(weights) = weights {
        routes = routes.with_weights(weights)?;
    }
    let mut objects = routes.into_objects();
    let ns = namespace(scenario.name);
    for object in &mut objects {
        let metadata = match object {
            RouteObject::Http(route) => &mut route.metadata,
            RouteObject::Grpc(route) => &mut route.metadata,
        };
        metadata.namespace = Some(ns.clone());
        metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(PART_OF_LABEL.to_owned(), PART_OF.to_owned());
    }
    Ok(objects)
}

/// The static sidecar's ConfigMap for these weights, and the hash of its content.
fn client_envoy_config(
    scenario: &Scenario,
    weights: Option<&[(&str, u32)]>,
) -> anyhow::Result<(ConfigMap, String)> {
    let ns = namespace(scenario.name);
    let routes = route_objects(scenario, weights)?;
    let upstreams = sidecar_upstreams(scenario, &routes).with_context(|| {
        format!(
            "scenario {}: no static sidecar configuration",
            scenario.name
        )
    })?;
    Ok(envoy_config_map(
        CLIENT_ENVOY,
        &ns,
        &envoy_static::sidecar(&upstreams),
    ))
}

/// The weighted backends of the route file, as the static sidecar can express them: one
/// `HTTPRoute` with one rule, no matches and no filters, whose backends are the scenario's
/// `server-<version>` Services (each reached through its headless `server-<version>-pods`).
fn sidecar_upstreams(
    scenario: &Scenario,
    routes: &[RouteObject],
) -> anyhow::Result<Vec<(Upstream, u32)>> {
    let unsupported = "a static sidecar expresses one HTTPRoute with one rule, without matches \
                       or filters, splitting by weight";
    let [RouteObject::Http(route)] = routes else {
        bail!(
            "{unsupported}: the route file has {} object(s)",
            routes.len()
        );
    };
    let [rule] = route.spec.rules.as_deref().unwrap_or_default() else {
        bail!(
            "{unsupported}: HTTPRoute {} has several rules",
            route_name(route)
        );
    };
    if rule.matches.as_ref().is_some_and(|m| !m.is_empty())
        || rule.filters.as_ref().is_some_and(|f| !f.is_empty())
    {
        bail!(
            "{unsupported}: HTTPRoute {} has matches or filters",
            route_name(route)
        );
    }
    let ns = namespace(scenario.name);
    let mut upstreams = Vec::new();
    for backend in rule.backend_refs.iter().flatten() {
        let known = scenario
            .versions
            .iter()
            .any(|(v, _)| backend.name == format!("{SERVER}-{v}"));
        if !known {
            bail!(
                "backend {} of HTTPRoute {} is none of the scenario's server-<version> Services",
                backend.name,
                route_name(route)
            );
        }
        let port = backend
            .port
            .and_then(|p| u16::try_from(p).ok())
            .with_context(|| format!("backend {} has no valid port", backend.name))?;
        // Gateway API: an unset weight is 1; the loader refuses negative ones.
        let weight = u32::try_from(backend.weight.unwrap_or(1)).unwrap_or(0);
        let mut target = upstream(&format!("{}-pods", backend.name), &ns, port);
        target.name.clone_from(&backend.name);
        upstreams.push((target, weight));
    }
    if upstreams.iter().all(|(_, weight)| *weight == 0) {
        bail!(
            "every backend of HTTPRoute {} has weight 0 (Envoy needs some traffic to send somewhere)",
            route_name(route)
        );
    }
    Ok(upstreams)
}

fn route_name(route: &gateway::HttpRoute) -> &str {
    route.metadata.name.as_deref().unwrap_or("<no name>")
}

/// The phase's client: its target depends only on the mesh, its workload on [`Client`].
fn client_deployment(
    scenario: &Scenario,
    client: &Client,
    mesh: Mesh,
    images: &Images,
    config_hash: Option<&str>,
) -> Deployment {
    let name = client_name(mesh);
    let target = match mesh {
        Mesh::StaticSidecar => format!("ipv4:127.0.0.1:{}", envoy_static::SIDECAR_PORT),
        Mesh::Off | Mesh::Sidecar | Mesh::Proxy(_) => format!("dns:///{SERVER}:{GRPC_PORT}"),
    };
    let mut args = vec![target];
    args.extend(
        [
            "--output",
            "json",
            "--interval",
            &humantime::format_duration(CLIENT_INTERVAL).to_string(),
            "--lb",
            client.lb,
            "--method",
            client.method,
            "--concurrency",
            &client.concurrency.to_string(),
        ]
        .map(str::to_owned),
    );
    for (key, value) in &client.headers {
        args.extend(["--header".to_owned(), format!("{key}={value}")]);
    }
    let container = Container {
        name: CLIENT_CONTAINER.to_owned(),
        image: Some(images.client.clone()),
        args: Some(args),
        env: Some(vec![pod_name_env()]),
        security_context: Some(restricted(APP_UID)),
        resources: Some(requests("10m", "16Mi")),
        ..Container::default()
    };
    let select = [("app", name)];
    let mut template_labels = labels(&select);
    let mut annotations = BTreeMap::new();
    let mut spec = PodSpec {
        service_account_name: Some(CLIENT_ACCOUNT.to_owned()),
        containers: vec![container],
        ..PodSpec::default()
    };
    match mesh {
        Mesh::Sidecar => {
            // Istio injects only pods that opt in.
            template_labels.insert(INJECT_LABEL.to_owned(), "true".to_owned());
            // The client's first RPCs must find the sidecar ready (implied with native sidecars).
            annotations.insert(
                "proxy.istio.io/config".to_owned(),
                r#"{"holdApplicationUntilProxyStarts": true}"#.to_owned(),
            );
        }
        Mesh::StaticSidecar => {
            // A native sidecar (an init container that keeps running): it starts before the
            // client and stops after it, so no RPC finds it missing.
            // Its startup probe holds the client until Envoy is initialized and listens: without
            // one the kubelet starts the next container as soon as the sidecar's process runs.
            spec.init_containers = Some(vec![Container {
                restart_policy: Some("Always".to_owned()),
                ports: Some(vec![port(READY_PORT_NAME, envoy_static::READY_PORT)]),
                startup_probe: Some(Probe {
                    http_get: Some(HTTPGetAction {
                        path: Some(envoy_static::READY_PATH.to_owned()),
                        port: IntOrString::String(READY_PORT_NAME.to_owned()),
                        ..HTTPGetAction::default()
                    }),
                    period_seconds: Some(1),
                    failure_threshold: Some(STATIC_SIDECAR_STARTUP_SECONDS),
                    ..Probe::default()
                }),
                ..envoy_container(images)
            }]);
            spec.volumes = Some(vec![envoy_volume(CLIENT_ENVOY)]);
            if let Some(hash) = config_hash {
                annotations.insert(CONFIG_HASH_ANNOTATION.to_owned(), hash.to_owned());
            }
        }
        Mesh::Off | Mesh::Proxy(_) => {}
    }
    let mut deployment = deployment(
        name,
        &namespace(scenario.name),
        1,
        &select,
        Pod {
            labels: template_labels,
            annotations,
            spec,
        },
    );
    // One client at a time: the old one stops before the new one starts, so that no two
    // clients' RPCs are ever counted together.
    if let Some(spec) = &mut deployment.spec {
        spec.strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".to_owned()),
            ..DeploymentStrategy::default()
        });
    }
    deployment
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::scenario::{self, Action};

    fn images() -> Images {
        Images {
            server: "registry.test/hello-server:golden".into(),
            client: "registry.test/hello-client:golden".into(),
            envoy: "registry.test/envoy:golden".into(),
        }
    }

    fn get(name: &str) -> Scenario {
        scenario::get(name).unwrap()
    }

    fn json(object: &DynamicObject) -> Value {
        serde_json::to_value(object).unwrap()
    }

    fn find<'a>(objects: &'a [DynamicObject], kind: &str, name: &str) -> &'a DynamicObject {
        objects
            .iter()
            .find(|o| {
                o.types.as_ref().is_some_and(|t| t.kind == kind)
                    && o.metadata.name.as_deref() == Some(name)
            })
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    }

    fn kind(object: &DynamicObject) -> &str {
        object.types.as_ref().map_or("", |t| t.kind.as_str())
    }

    fn container<'a>(deployment: &'a Value, name: &str) -> &'a Value {
        let spec = &deployment["spec"]["template"]["spec"];
        spec["containers"]
            .as_array()
            .into_iter()
            .chain(spec["initContainers"].as_array())
            .flatten()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no container {name}"))
    }

    /// Every client each scenario runs, one per phase.
    fn clients(scenario: &Scenario) -> Vec<DynamicObject> {
        scenario
            .phases
            .iter()
            .map(|p| client(scenario, &p.client, p.mesh, &images()))
            .collect()
    }

    fn everything(scenario: &Scenario) -> Vec<DynamicObject> {
        let mut objects = base(scenario, &images()).unwrap();
        objects.extend(clients(scenario));
        if has_static_sidecar(scenario) {
            objects.extend(static_sidecar(scenario, &Client::default(), &images(), None).unwrap());
        }
        objects
    }

    #[test]
    fn every_scenario_renders_in_apply_order() {
        for s in scenario::all() {
            let objects = base(&s, &images()).unwrap_or_else(|e| panic!("{}: {e:#}", s.name));
            let kinds: Vec<&str> = objects.iter().map(kind).collect();
            assert_eq!(kinds[0], "Namespace", "{}", s.name);
            let last = |k: &str| kinds.iter().rposition(|x| *x == k);
            let first = |k: &str| kinds.iter().position(|x| *x == k);
            assert!(
                last("ServiceAccount") < first("Deployment"),
                "{}: {kinds:?}",
                s.name
            );
            let first_service = first("Service").unwrap();
            assert!(
                objects[..first_service]
                    .iter()
                    .filter(|o| kind(o) == "Deployment")
                    .all(|o| o.metadata.name.as_deref().unwrap().starts_with("server-v")),
                "{}: {kinds:?}",
                s.name
            );
            for (version, replicas) in &s.versions {
                let d = json(find(&objects, "Deployment", &format!("server-{version}")));
                assert_eq!(d["spec"]["replicas"], *replicas, "{}", s.name);
            }
            assert_eq!(clients(&s).len(), s.phases.len());
        }
    }

    #[test]
    fn the_mesh_on_client_and_only_it_asks_istio_for_a_sidecar() {
        let s = get("compare");
        for mesh in [
            Mesh::Off,
            Mesh::Sidecar,
            Mesh::StaticSidecar,
            Mesh::Proxy(2),
        ] {
            let d = json(&client(&s, &Client::default(), mesh, &images()));
            let label = &d["spec"]["template"]["metadata"]["labels"][INJECT_LABEL];
            if mesh == Mesh::Sidecar {
                assert_eq!(label, "true");
            } else {
                assert!(label.is_null(), "{mesh:?}: {label}");
            }
            let name = if mesh == Mesh::Off {
                "client-mesh-off"
            } else {
                "client-mesh-on"
            };
            assert_eq!(d["metadata"]["name"], name);
        }
        for s in scenario::all() {
            for o in base(&s, &images()).unwrap() {
                let text = serde_json::to_string(&o).unwrap();
                assert!(!text.contains(INJECT_LABEL), "{}: {text}", s.name);
                assert!(!text.contains("istio-injection"), "{}: {text}", s.name);
            }
        }
    }

    #[test]
    fn the_client_runs_the_phase_workload_against_its_target() {
        let s = get("grpcroute");
        let workload = Client {
            method: "SayHelloAgain",
            headers: vec![("x-canary", "true")],
            concurrency: 7,
            ..Client::default()
        };
        let d = json(&client(&s, &workload, Mesh::Sidecar, &images()));
        let c = container(&d, "hello-client");
        assert_eq!(
            c["args"],
            serde_json::json!([
                "dns:///server:50051",
                "--output",
                "json",
                "--interval",
                "1s",
                "--lb",
                "round_robin",
                "--method",
                "SayHelloAgain",
                "--concurrency",
                "7",
                "--header",
                "x-canary=true"
            ])
        );
        assert_eq!(c["image"], "registry.test/hello-client:golden");
        assert_eq!(c["env"][0]["name"], "POD_NAME");
        assert_eq!(
            c["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.name"
        );
        assert_eq!(d["spec"]["replicas"], 1);
        let off = json(&client(&s, &workload, Mesh::Off, &images()));
        assert_eq!(
            container(&off, "hello-client")["args"][0],
            "dns:///server:50051"
        );
    }

    #[test]
    fn the_server_names_its_pod_and_is_ready_when_its_grpc_health_says_so() {
        let s = get("canary");
        let objects = base(&s, &images()).unwrap();
        for version in ["v1", "v2"] {
            let d = json(find(&objects, "Deployment", &format!("server-{version}")));
            let c = container(&d, "hello-server");
            assert_eq!(c["image"], "registry.test/hello-server:golden");
            let env = c["env"].as_array().unwrap();
            let var = |name: &str| env.iter().find(|e| e["name"] == name).unwrap();
            assert_eq!(
                var("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
                "metadata.name"
            );
            assert_eq!(var("VERSION")["value"], version);
            assert_eq!(var("RESPONSE_DELAY")["value"], "5ms");
            assert_eq!(c["readinessProbe"]["grpc"]["port"], 50051);
            assert_eq!(
                c["ports"],
                serde_json::json!([
                    { "name": "grpc", "containerPort": 50051 },
                    { "name": "metrics", "containerPort": 9090 }
                ])
            );
            let pod = &d["spec"]["template"];
            assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 30);
            assert_eq!(pod["metadata"]["labels"]["app"], "server");
            assert_eq!(pod["metadata"]["labels"]["version"], version);
        }
    }

    #[test]
    fn every_container_runs_unprivileged_on_a_read_only_root() {
        for s in scenario::all() {
            for o in everything(&s) {
                if kind(&o) != "Deployment" {
                    continue;
                }
                let d = json(&o);
                let spec = &d["spec"]["template"]["spec"];
                for c in spec["containers"]
                    .as_array()
                    .into_iter()
                    .chain(spec["initContainers"].as_array())
                    .flatten()
                {
                    let sc = &c["securityContext"];
                    assert_eq!(sc["runAsNonRoot"], true, "{}: {c}", s.name);
                    assert_eq!(sc["readOnlyRootFilesystem"], true, "{}: {c}", s.name);
                    assert_eq!(sc["allowPrivilegeEscalation"], false, "{}: {c}", s.name);
                    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
                    assert!(c["resources"]["requests"]["memory"].is_string());
                }
            }
        }
    }

    #[test]
    fn every_service_is_grpc_on_port_50051() {
        for s in scenario::all() {
            for o in base(&s, &images()).unwrap() {
                if kind(&o) != "Service" {
                    continue;
                }
                let d = json(&o);
                let ports = d["spec"]["ports"].as_array().unwrap();
                assert_eq!(ports.len(), 1);
                assert_eq!(ports[0]["name"], "grpc", "{}: {d}", s.name);
                assert_eq!(ports[0]["port"], 50051);
                assert_eq!(ports[0]["appProtocol"], "grpc", "{}: {d}", s.name);
            }
            let objects = base(&s, &images()).unwrap();
            for (version, _) in &s.versions {
                let d = json(find(&objects, "Service", &format!("server-{version}")));
                assert_eq!(
                    d["spec"]["selector"],
                    serde_json::json!({ "app": "server", "version": version })
                );
            }
        }
    }

    #[test]
    fn headless_scenarios_make_server_headless_and_the_others_do_not() {
        for s in scenario::all() {
            let objects = base(&s, &images()).unwrap();
            let server = json(find(&objects, "Service", "server"));
            let headless = server["spec"]["clusterIP"] == "None";
            assert_eq!(headless, s.exposure == Exposure::Headless, "{}", s.name);
        }
        assert_eq!(get("headless").exposure, Exposure::Headless);
        assert_eq!(get("maxage").exposure, Exposure::Headless);
    }

    #[test]
    fn in_proxy_mode_server_points_at_the_proxies_which_resolve_every_pod() {
        let s = get("server-proxy");
        let objects = base(&s, &images()).unwrap();
        let server = json(find(&objects, "Service", "server"));
        assert_eq!(
            server["spec"]["selector"],
            serde_json::json!({ "app": "proxy" })
        );
        assert!(server["spec"]["clusterIP"].is_null());
        let pods = json(find(&objects, "Service", "server-pods"));
        assert_eq!(
            pods["spec"]["selector"],
            serde_json::json!({ "app": "server" })
        );
        assert_eq!(pods["spec"]["clusterIP"], "None");
        let proxy = json(find(&objects, "Deployment", "proxy"));
        assert_eq!(proxy["spec"]["replicas"], 1);
        assert_eq!(
            proxy["spec"]["template"]["metadata"]["labels"]["app"],
            "proxy"
        );
        let envoy = container(&proxy, "envoy");
        assert_eq!(envoy["image"], "registry.test/envoy:golden");
        assert_eq!(envoy["ports"][0]["containerPort"], 50051);
        let config = json(find(&objects, "ConfigMap", "proxy-envoy"));
        let bootstrap: Value =
            serde_json::from_str(config["data"]["envoy.json"].as_str().unwrap()).unwrap();
        let cluster = &bootstrap["static_resources"]["clusters"][0];
        assert_eq!(cluster["type"], "STRICT_DNS");
        assert_eq!(
            cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
                ["address"],
            "server-pods.gml-server-proxy.svc.cluster.local"
        );
        assert!(
            objects
                .iter()
                .all(|o| o.metadata.name.as_deref() != Some("client-envoy"))
        );
        // Without proxies, `server` selects the servers and nothing is called proxy.
        let objects = base(&get("clusterip"), &images()).unwrap();
        let server = json(find(&objects, "Service", "server"));
        assert_eq!(
            server["spec"]["selector"],
            serde_json::json!({ "app": "server" })
        );
        assert!(
            objects
                .iter()
                .all(|o| !o.metadata.name.as_deref().unwrap().contains("proxy"))
        );
    }

    #[test]
    fn the_static_sidecar_client_talks_to_its_envoy_which_splits_by_the_route_weights() {
        let s = get("canary");
        let objects = base(&s, &images()).unwrap();
        for version in ["v1", "v2"] {
            let d = json(find(&objects, "Service", &format!("server-{version}-pods")));
            assert_eq!(d["spec"]["clusterIP"], "None");
        }
        let config = json(find(&objects, "ConfigMap", "client-envoy"));
        let bootstrap: Value =
            serde_json::from_str(config["data"]["envoy.json"].as_str().unwrap()).unwrap();
        let listener = &bootstrap["static_resources"]["listeners"][0];
        assert_eq!(
            listener["address"]["socket_address"],
            serde_json::json!({ "address": "127.0.0.1", "port_value": 15001 })
        );
        let route = &listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"]
            [0]["routes"][0]["route"];
        // The route file's weights: 100/0.
        assert_eq!(
            route["weighted_clusters"]["clusters"],
            serde_json::json!([
                { "name": "server-v1", "weight": 100 },
                { "name": "server-v2", "weight": 0 }
            ])
        );

        let d = json(&client(
            &s,
            &Client::default(),
            Mesh::StaticSidecar,
            &images(),
        ));
        assert_eq!(
            container(&d, "hello-client")["args"][0],
            "ipv4:127.0.0.1:15001"
        );
        let envoy = container(&d, "envoy");
        assert_eq!(envoy["restartPolicy"], "Always");
        assert_eq!(
            d["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"],
            "client-envoy"
        );
    }

    #[test]
    fn the_static_sidecar_holds_the_client_until_its_envoy_answers_the_ready_probe_on_the_pod_address()
     {
        let s = get("canary");
        let d = json(&static_sidecar(&s, &Client::default(), &images(), None).unwrap()[1]);
        let envoy = container(&d, "envoy");
        let probe = &envoy["startupProbe"]["httpGet"];
        assert_eq!(probe["path"], "/ready");
        assert_eq!(probe["port"], READY_PORT_NAME);
        assert!(probe["host"].is_null(), "the kubelet probes the pod IP");
        let ports = envoy["ports"].as_array().unwrap();
        assert_eq!(
            ports[0],
            serde_json::json!({ "name": READY_PORT_NAME, "containerPort": 15021 })
        );
        assert!(envoy["startupProbe"]["failureThreshold"].as_i64().unwrap() >= 30);
        // The port the probe names is the ready listener of the sidecar's own bootstrap, on every address.
        let objects = base(&s, &images()).unwrap();
        let config = json(find(&objects, "ConfigMap", "client-envoy"));
        let bootstrap: Value =
            serde_json::from_str(config["data"]["envoy.json"].as_str().unwrap()).unwrap();
        let ready = bootstrap["static_resources"]["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == "ready")
            .expect("a ready listener");
        assert_eq!(
            ready["address"]["socket_address"],
            serde_json::json!({ "address": "0.0.0.0", "port_value": 15021 })
        );
    }

    #[test]
    fn the_server_service_of_another_exposure_is_the_same_service_with_another_cluster_ip() {
        let s = get("kill");
        let headless = json(&server_service(&s, Exposure::Headless).unwrap());
        let cluster_ip = json(&server_service(&s, Exposure::ClusterIp).unwrap());
        assert_eq!(headless["spec"]["clusterIP"], "None");
        assert!(
            cluster_ip["spec"]["clusterIP"].is_null(),
            "allocated by the API server"
        );
        assert_eq!(headless["metadata"], cluster_ip["metadata"]);
        assert_eq!(headless["spec"]["selector"], cluster_ip["spec"]["selector"]);
        assert_eq!(headless["spec"]["ports"], cluster_ip["spec"]["ports"]);
        let base = base(&s, &images()).unwrap();
        assert_eq!(
            json(find(&base, "Service", "server")),
            headless,
            "the scenario's own"
        );
        let err = server_service(&get("server-proxy"), Exposure::Headless).unwrap_err();
        assert!(err.to_string().contains("points at the proxies"), "{err}");
        let model = mesh_services(&s);
        assert!(model.iter().find(|m| m.name == "server").unwrap().headless);
        assert!(
            !model
                .iter()
                .find(|m| m.name == "server-v1")
                .unwrap()
                .headless
        );
    }

    #[test]
    fn new_static_sidecar_weights_change_the_config_and_the_pod_template_hash() {
        let s = get("canary");
        let render = |weights: &[(&str, u32)]| {
            let objects = static_sidecar(&s, &Client::default(), &images(), Some(weights)).unwrap();
            assert_eq!(objects.len(), 2);
            assert_eq!(kind(&objects[0]), "ConfigMap");
            let d = json(&objects[1]);
            let hash = d["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
                .as_str()
                .unwrap()
                .to_owned();
            let text = json(&objects[0])["data"]["envoy.json"]
                .as_str()
                .unwrap()
                .to_owned();
            (text, hash)
        };
        let (a, hash_a) = render(&[("server-v1", 99), ("server-v2", 1)]);
        let (b, hash_b) = render(&[("server-v1", 50), ("server-v2", 50)]);
        assert_ne!(a, b);
        assert_ne!(hash_a, hash_b);
        assert_eq!(hash_a.len(), 64);
        assert!(a.contains("\"weight\": 99"), "{a}");
        assert_eq!(render(&[("server-v1", 99), ("server-v2", 1)]).1, hash_a);
        let err = static_sidecar(&s, &Client::default(), &images(), Some(&[("server-v1", 0)]))
            .unwrap_err();
        assert!(format!("{err:#}").contains("weight 0"), "{err:#}");
    }

    #[test]
    fn a_static_sidecar_refuses_routes_it_cannot_express() {
        // The GRPCRoute matches by method and header: not a plain weighted split.
        let s = Scenario {
            phases: vec![],
            ..get("grpcroute")
        };
        let err = client_envoy_config(&s, None).unwrap_err();
        assert!(format!("{err:#}").contains("a static sidecar expresses one HTTPRoute"));
    }

    #[test]
    fn on_the_cluster_servers_get_the_seed_s_max_connection_age() {
        let s = get("maxage");
        let local: BTreeMap<_, _> = s.server_env.iter().copied().collect();
        assert_ne!(
            local["MAX_CONNECTION_AGE"], "10s",
            "the local twin's age is shorter"
        );
        let objects = base(&s, &images()).unwrap();
        let d = json(find(&objects, "Deployment", "server-v1"));
        let env = container(&d, "hello-server")["env"]
            .as_array()
            .unwrap()
            .clone();
        let value = |name: &str| env.iter().find(|e| e["name"] == name).unwrap()["value"].clone();
        assert_eq!(value("MAX_CONNECTION_AGE"), "10s");
        assert_eq!(value("MAX_CONNECTION_AGE_GRACE"), "20s");
        assert_eq!(value("RESPONSE_DELAY"), "5ms");
        // A scenario without a max age gets none.
        let objects = base(&get("headless"), &images()).unwrap();
        let text = serde_json::to_string(find(&objects, "Deployment", "server-v1")).unwrap();
        assert!(!text.contains("MAX_CONNECTION_AGE"));
    }

    #[test]
    fn routes_carry_the_weights_they_are_given() {
        let backend_weights = |objects: &[DynamicObject]| -> Vec<(String, Value)> {
            objects
                .iter()
                .flat_map(|o| json(o)["spec"]["rules"].as_array().unwrap().clone())
                .flat_map(|rule| rule["backendRefs"].as_array().unwrap().clone())
                .map(|b| (b["name"].as_str().unwrap().to_owned(), b["weight"].clone()))
                .collect()
        };
        let s = get("httproute");
        let file = routes(&s, None).unwrap();
        assert_eq!(
            backend_weights(&file),
            [
                ("server-v1".into(), 100.into()),
                ("server-v2".into(), 0.into())
            ]
        );
        let stepped = routes(&s, Some(&[("server-v1", 95), ("server-v2", 5)])).unwrap();
        assert_eq!(
            backend_weights(&stepped),
            [
                ("server-v1".into(), 95.into()),
                ("server-v2".into(), 5.into())
            ]
        );
        assert!(routes(&s, Some(&[("server-v3", 1)])).is_err());
        assert!(routes(&get("clusterip"), None).unwrap().is_empty());
    }

    /// Every route object a demo applies (before its first phase, then at each weight step)
    /// passes the Gateway API CRDs' schemas (see `tests/crds.rs`).
    #[test]
    fn the_routes_of_every_scenario_and_weight_step_pass_the_gateway_api_schemas() {
        let schemas = crate::testing::crds::Crds::load();
        let mut checked = 0;
        for s in scenario::all() {
            let mut steps: Vec<Option<&[(&str, u32)]>> = vec![None];
            for phase in &s.phases {
                for action in &phase.actions {
                    if let Action::Weights(w) = action {
                        steps.push(Some(w));
                    }
                }
            }
            for weights in steps {
                for o in routes(&s, weights).unwrap() {
                    let value = json(&o);
                    if let Err(e) = schemas.check(&value) {
                        panic!("{} {weights:?}: {e}\n{value:#}", s.name);
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked >= 10, "only {checked} route objects checked");
    }

    #[test]
    fn everything_carries_the_part_of_label_and_the_demo_namespace() {
        for s in scenario::all() {
            let ns = namespace(s.name);
            for o in everything(&s) {
                let what = format!("{}: {} {:?}", s.name, kind(&o), o.metadata.name);
                let labels = o.metadata.labels.as_ref().expect(&what);
                assert_eq!(labels[PART_OF_LABEL], PART_OF, "{what}");
                if kind(&o) == "Namespace" {
                    assert_eq!(o.metadata.name.as_deref(), Some(ns.as_str()));
                    assert!(o.metadata.namespace.is_none());
                } else {
                    assert_eq!(o.metadata.namespace.as_deref(), Some(ns.as_str()), "{what}");
                }
                if kind(&o) == "Deployment" {
                    let d = json(&o);
                    let pod = &d["spec"]["template"]["metadata"]["labels"];
                    assert_eq!(pod[PART_OF_LABEL], PART_OF, "{what}");
                    let selector = d["spec"]["selector"]["matchLabels"].as_object().unwrap();
                    for (k, v) in selector {
                        assert_eq!(&pod[k], v, "{what}: the selector must select the pods");
                    }
                }
            }
        }
    }

    #[test]
    fn yaml_output_parses_back_to_the_same_objects() {
        use serde::Deserialize;
        for s in scenario::all() {
            let objects = everything(&s);
            let text = to_yaml(&objects).unwrap();
            let parsed: Vec<DynamicObject> = serde_yaml::Deserializer::from_str(&text)
                .map(|doc| DynamicObject::deserialize(doc).unwrap())
                .collect();
            assert_eq!(parsed.len(), objects.len(), "{}", s.name);
            assert_eq!(parsed, objects, "{}", s.name);
        }
        assert_eq!(to_yaml(&[]).unwrap(), "");
    }

    /// The manifests of the `httproute` scenario, checked in so that a change of any object
    /// shows in review. Regenerate with
    /// `UPDATE_GOLDEN=1 cargo test -p xtask cluster::objects`.
    #[test]
    fn the_httproute_manifests_match_the_golden_file() {
        let path = crate::project::root().join("xtask/tests/golden/manifests-httproute.yaml");
        let actual = to_yaml(&manifests(&get("httproute"), &images()).unwrap()).unwrap();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; create it with UPDATE_GOLDEN=1 cargo test -p xtask cluster::objects",
                path.display()
            )
        });
        assert!(
            actual == expected,
            "{} is out of date; if the change is intended, regenerate it with \
             UPDATE_GOLDEN=1 cargo test -p xtask cluster::objects and review the diff",
            path.display()
        );
    }
}
