//! The cluster backend: a scenario's objects in its own namespace of the harness's kind cluster
//! (or the context named with `--context`), applied through the Kubernetes API.
//!
//! The vocabulary is the local twin's ([`Backend`]): scaling patches a Deployment's replicas and
//! waits for the rollout; weights re-apply the route objects (or, for the static sidecar, its
//! ConfigMap and the client that mounts it); a phase's exposure re-creates the Service `server`; a
//! phase's retry policy changes Istio's mesh configuration; a kill stops a server container with
//! SIGKILL. The client's JSON summaries are read from its pod's logs, following the Deployment's
//! current pod across restarts, and only those written after the phase's client and routes were in
//! place count. Before a route or retry policy is measured with Istio's sidecar, the route's status
//! and then the sidecar's own configuration dump are checked to hold it.
//!
//! Every request goes through [`ops::Ops`]: [`ops::Live`] acts, [`recorder::Recorder`] writes the
//! steps down for `--dry-run`, so a dry run prints this very walk.
//!
//! In Istio's ambient mode the namespace is enrolled, the waypoint is made ready in `setup`, and the
//! Service `server` is attached to it in the phases that use it (`ambient.rs`, which also checks, before an
//! ambient phase is measured, the route's status, the waypoint's dump and ztunnel's view).
//!
//! By concept: `verify.rs` (a route's status, then the sidecar's configuration dump), `kill.rs` (a
//! SIGKILL on the node, or a delete elsewhere, and the wait for the pod), `client_log.rs` (the client's
//! summaries from its pod's logs), `mesh_config.rs` (Istio's mesh configuration for a retry policy),
//! `route_status.rs` (istiod's verdict on a route), `walk.rs` (the whole demo, live or recorded).

use std::{collections::BTreeMap, time::Duration};

use anyhow::Context as _;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::{mpsc, watch};

use crate::{
    cluster::{envoy_static, objects},
    harness::backend::{Backend, ClientStream},
    harness::scenario::{Action, Client, Exposure, Mesh, Retries, Scenario},
    output::progress,
};

mod ambient;
mod client_log;
mod kill;
pub mod mesh_config;
pub mod ops;
pub mod recorder;
pub mod route_status;
mod verify;
pub mod walk;

use client_log::{AbortOnDrop, follow_client};
use ops::Ops;
pub use verify::{CONFIG_DUMP_COMMAND, ISTIO_PROXY_CONTAINER};

/// How long each kind of wait may take.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// A Deployment's rollout (an image pull on a cold node takes a while), and a killed pod's return.
    pub rollout: Duration,
    /// Until the sidecar holds the applied routes and retry policy.
    pub routes: Duration,
    /// Until istiod has written the status of an applied route.
    pub status: Duration,
    /// Between two reads of something waited for, and between two attempts to follow a client
    /// pod's logs.
    pub retry: Duration,
    /// Until the scenario's namespace (or a re-created Service) is gone.
    pub teardown: Duration,
    /// Until istiod has programmed the waypoint `Gateway` (then its Deployment has `rollout`).
    pub waypoint: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            rollout: Duration::from_secs(300),
            routes: Duration::from_secs(60),
            status: Duration::from_secs(30),
            retry: Duration::from_secs(2),
            teardown: Duration::from_secs(180),
            waypoint: Duration::from_secs(120),
        }
    }
}

pub struct Kind<O: Ops> {
    ops: O,
    images: objects::Images,
    deadlines: Deadlines,
    /// Leave the namespace in place at the end (`--keep`).
    keep: bool,
    scenario: Option<Scenario>,
    namespace: String,
    mesh: Mesh,
    /// How the Service `server` is exposed now.
    exposure: Exposure,
    /// The mesh's default retry policy now.
    retries: Retries,
    /// The Service `server` carries `istio.io/use-waypoint` now.
    waypoint_attached: bool,
    /// Istio's mesh configuration was changed (or put back) by this run: the sidecar's retry policy
    /// is checked with its routes.
    mesh_config_changed: bool,
    /// The weights last set, by backend Service name.
    weights: Option<Vec<(&'static str, u32)>>,
    /// The running client: its Deployment's name and workload.
    client: Option<(&'static str, Client)>,
    /// The pod whose logs count, once a rollout of the client has completed.
    current_pod: Option<watch::Sender<Option<String>>>,
    /// Summaries count only if their whole interval is after this time (the phase's client, routes
    /// and retry policy in place).
    counting_from: watch::Sender<Option<Timestamp>>,
    servers: Vec<String>,
    warnings: Vec<String>,
    /// How often the client reports: [`objects::CLIENT_INTERVAL`] (the tests' mock client is quicker).
    interval: Duration,
}

impl<O: Ops> Kind<O> {
    pub fn new(ops: O, images: objects::Images, deadlines: Deadlines, keep: bool) -> Kind<O> {
        Kind {
            ops,
            images,
            deadlines,
            keep,
            scenario: None,
            namespace: String::new(),
            mesh: Mesh::Off,
            exposure: Exposure::ClusterIp,
            retries: Retries::IstioDefault,
            waypoint_attached: false,
            mesh_config_changed: false,
            weights: None,
            client: None,
            current_pod: None,
            counting_from: watch::Sender::new(None),
            servers: Vec::new(),
            warnings: Vec::new(),
            interval: objects::CLIENT_INTERVAL,
        }
    }

    fn scenario(&self) -> &Scenario {
        self.scenario.as_ref().expect("setup runs first")
    }

    async fn rollout(&self, name: &str) -> anyhow::Result<()> {
        progress(&format!(
            "  waiting for deployment {}/{name} (up to {}s)",
            self.namespace,
            self.deadlines.rollout.as_secs()
        ));
        self.ops
            .wait_rollout(&self.namespace, name, self.deadlines.rollout)
            .await
    }

    async fn refresh_servers(&mut self) -> anyhow::Result<()> {
        let mut names: Vec<String> = self
            .ops
            .pods(&self.namespace, &format!("app={}", objects::SERVER))
            .await?
            .into_iter()
            .map(|p| p.name)
            .collect();
        names.sort();
        self.servers = names;
        Ok(())
    }

    /// The pod logs are read from: running first, then the newest, then by name.
    async fn pick_pod(&self, selector: &str) -> anyhow::Result<String> {
        let mut pods = self.ops.pods(&self.namespace, selector).await?;
        pods.sort_by_key(|p| (!p.running, std::cmp::Reverse(p.created), p.name.clone()));
        pods.first()
            .map(|p| p.name.clone())
            .with_context(|| format!("no pod matches {selector} in namespace {}", self.namespace))
    }

    /// After a rollout of the client: its logs are read from the pod the Deployment runs now.
    async fn follow_new_client_pod(&mut self, name: &str) -> anyhow::Result<()> {
        let pod = self.pick_pod(&format!("app={name}")).await?;
        if let Some(current) = &self.current_pod {
            current.send_replace(Some(pod));
        }
        Ok(())
    }

    /// From now on, only summaries written after this moment count (those before it measured a
    /// client, route or policy that is not the phase's).
    fn count_from_now(&self) {
        self.counting_from.send_replace(Some(self.ops.now()));
    }

    /// Applies the client's objects for this mesh and waits for its rollout; returns the Deployment's name.
    async fn deploy_client(&mut self, client: &Client, mesh: Mesh) -> anyhow::Result<&'static str> {
        let scenario = self.scenario().clone();
        let objects = if mesh == Mesh::StaticSidecar {
            objects::static_sidecar(&scenario, client, &self.images, self.weights.as_deref())?
        } else {
            vec![objects::client(&scenario, client, mesh, &self.images)]
        };
        let name = objects::client_name(mesh);
        self.ops.apply("the phase's client", &objects).await?;
        self.rollout(name).await?;
        Ok(name)
    }

    /// Istio's mesh ConfigMap, which a retry policy needs.
    async fn mesh_config_map(&self) -> anyhow::Result<k8s_openapi::api::core::v1::ConfigMap> {
        self.ops
            .config_map(mesh_config::NAMESPACE, mesh_config::CONFIG_MAP)
            .await?
            .with_context(|| {
                format!(
                    "configmap {}/{} not found: istio's mesh configuration is needed for a retry policy (`cargo xtask up-istio`)",
                    mesh_config::NAMESPACE,
                    mesh_config::CONFIG_MAP
                )
            })
    }

    /// Puts Istio's mesh configuration back as the harness found it, if it changed it.
    async fn restore_mesh_config(&mut self) -> anyhow::Result<bool> {
        let Some(config) = self
            .ops
            .config_map(mesh_config::NAMESPACE, mesh_config::CONFIG_MAP)
            .await?
        else {
            return Ok(false);
        };
        let Some(patch) = mesh_config::restore_patch(&config) else {
            return Ok(false);
        };
        self.ops
            .patch_config_map(
                mesh_config::NAMESPACE,
                mesh_config::CONFIG_MAP,
                "mesh put back as found (Istio's default retry policy)",
                &patch,
            )
            .await?;
        self.retries = Retries::IstioDefault;
        Ok(true)
    }
}

impl<O: Ops> Backend for Kind<O> {
    fn interval(&self) -> Duration {
        self.interval
    }

    async fn setup(&mut self, scenario: &Scenario) -> anyhow::Result<()> {
        self.namespace = objects::namespace(scenario.name);
        self.scenario = Some(scenario.clone());
        self.exposure = scenario.exposure;
        // A previous run that was interrupted may have left its clients running (its namespace may
        // still be terminating: the delete then just waits), and Istio's retry policy changed.
        self.ops
            .delete_namespace(&self.namespace, self.deadlines.teardown)
            .await?;
        if scenario.phases.iter().any(|p| p.mesh == Mesh::Sidecar)
            && self.restore_mesh_config().await?
        {
            self.mesh_config_changed = true;
            progress("put back istio's mesh configuration, which an interrupted run had changed");
        }
        let base = objects::base(scenario, &self.images)?;
        progress(&format!(
            "applying {} objects to namespace {} (context {})",
            base.len(),
            self.namespace,
            self.ops.context()
        ));
        self.ops
            .apply(&format!("the {} scenario", scenario.name), &base)
            .await?;
        for (version, _) in &scenario.versions {
            self.rollout(&format!("{}-{version}", objects::SERVER))
                .await?;
        }
        if base
            .iter()
            .any(|o| o.metadata.name.as_deref() == Some(objects::PROXY) && is_deployment(o))
        {
            self.rollout(objects::PROXY).await?;
        }
        self.waypoint_attached = scenario.phases.first().map(|p| p.mesh) == Some(Mesh::Waypoint);
        if objects::ambient::has_waypoint(scenario) {
            self.await_waypoint().await?;
        }
        self.refresh_servers().await
    }

    async fn set_mesh(&mut self, mesh: Mesh) -> anyhow::Result<()> {
        // Each arrangement is its own client Deployment (and the proxies are in the base objects).
        self.mesh = mesh;
        // The waypoint is used only where a phase says so; a sidecar never sends to a Service's waypoint
        // (docs/cluster-assumptions.md, row 100), so a sidecar phase leaves the label as it is.
        let attach = match mesh {
            Mesh::Waypoint => true,
            Mesh::Ztunnel => false,
            _ => self.waypoint_attached,
        };
        if attach != self.waypoint_attached {
            self.attach_waypoint(attach).await?;
        }
        Ok(())
    }

    async fn set_exposure(&mut self, exposure: Exposure) -> anyhow::Result<()> {
        if exposure == self.exposure {
            return Ok(());
        }
        let scenario = self.scenario().clone();
        let service =
            objects::server_service_attached(&scenario, exposure, self.waypoint_attached)?;
        progress(&format!(
            "  re-creating service {}/{} as {}",
            self.namespace,
            objects::SERVER,
            match exposure {
                Exposure::Headless => "headless",
                Exposure::ClusterIp => "a ClusterIP service",
            }
        ));
        // `clusterIP` may not change in an update, and an update without it keeps the old one: the
        // Service goes, then comes back. The clients keep their target, `server`.
        self.ops
            .delete_service(&self.namespace, objects::SERVER, self.deadlines.teardown)
            .await?;
        self.ops
            .apply(
                &format!("the service {} of this phase", objects::SERVER),
                &[service],
            )
            .await?;
        self.exposure = exposure;
        if self.client.is_some() {
            self.verify().await?;
            self.count_from_now();
        }
        Ok(())
    }

    async fn set_retries(&mut self, retries: Retries) -> anyhow::Result<()> {
        if retries == self.retries {
            return Ok(());
        }
        match mesh_config::policy(retries) {
            Some(policy) => {
                let config = self.mesh_config_map().await?;
                let mesh = mesh_config::with_policy(mesh_config::mesh_text(&config), &policy)?;
                progress(&format!(
                    "  setting istio's default retry policy: {} attempts on {}",
                    policy.attempts, policy.retry_on
                ));
                self.ops
                    .patch_config_map(
                        mesh_config::NAMESPACE,
                        mesh_config::CONFIG_MAP,
                        &format!(
                            "mesh defaultHttpRetryPolicy {{attempts: {}, retryOn: {}}}",
                            policy.attempts, policy.retry_on
                        ),
                        &mesh_config::set_patch(&config, &mesh),
                    )
                    .await?;
            }
            None => {
                progress("  putting istio's default retry policy back");
                self.restore_mesh_config().await?;
            }
        }
        self.retries = retries;
        self.mesh_config_changed = true;
        // A sidecar client already running must have the new policy before the phase goes on.
        if self.sidecar_pod().is_some() {
            self.verify_sidecar().await?;
            self.count_from_now();
        }
        Ok(())
    }

    async fn apply(&mut self, action: &Action) -> anyhow::Result<()> {
        match action {
            Action::Scale { version, replicas } => {
                let name = format!("{}-{version}", objects::SERVER);
                self.ops.scale(&self.namespace, &name, *replicas).await?;
                self.rollout(&name).await?;
                self.refresh_servers().await?;
            }
            Action::RollingRestart { version } => {
                let name = format!("{}-{version}", objects::SERVER);
                self.ops.restart(&self.namespace, &name).await?;
                self.rollout(&name).await?;
                self.refresh_servers().await?;
            }
            Action::Kill { version } => self.kill(version).await?,
            Action::ScaleProxies(n) => {
                self.ops.scale(&self.namespace, objects::PROXY, *n).await?;
                self.rollout(objects::PROXY).await?;
            }
            Action::Weights(weights) => {
                self.weights = Some(weights.clone());
                let running = self.client.clone();
                match (self.mesh, running) {
                    // The static sidecar's weights are in its ConfigMap: the client restarts with it.
                    (Mesh::StaticSidecar, Some((_, client))) => {
                        let name = self.deploy_client(&client, Mesh::StaticSidecar).await?;
                        self.follow_new_client_pod(name).await?;
                        self.count_from_now();
                    }
                    // Applied when the client starts.
                    (Mesh::StaticSidecar, None) => {}
                    (_, running) => {
                        let scenario = self.scenario().clone();
                        let routes = objects::routes(&scenario, Some(weights))?;
                        self.ops
                            .apply("the route with new weights", &routes)
                            .await?;
                        if running.is_some() {
                            self.verify().await?;
                            self.count_from_now();
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn start_client(&mut self, client: &Client, mesh: Mesh) -> anyhow::Result<ClientStream> {
        let name = objects::client_name(mesh);
        // The demo asks for a new client with the very Deployment already running (the Service
        // changed under it): applying the same spec starts no pod, so the old one would keep its
        // connections. A new client is a new pod, as on the twin a new process.
        let again = matches!(&self.client, Some((running, c)) if *running == name && c == client);
        // One client at a time: the other arrangement's client stops first.
        if let Some((running, _)) = self.client.take()
            && running != name
        {
            self.ops.scale(&self.namespace, running, 0).await?;
            self.rollout(running).await?;
        }
        progress(&format!("  starting the client {name}"));
        self.deploy_client(client, mesh).await?;
        if again {
            progress(&format!(
                "  a new pod of {name}, so the client connects afresh"
            ));
            self.ops.restart(&self.namespace, name).await?;
            self.rollout(name).await?;
        }
        self.client = Some((name, client.clone()));
        let (current, receiver) = watch::channel(None);
        self.current_pod = Some(current);
        self.follow_new_client_pod(name).await?;
        self.verify().await?;
        self.count_from_now();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(follow_client(
            self.ops.clone(),
            self.namespace.clone(),
            receiver,
            self.counting_from.subscribe(),
            self.interval,
            tx,
            self.deadlines.retry,
        ));
        Ok(ClientStream {
            summaries: rx,
            _guard: Box::new(AbortOnDrop(task)),
        })
    }

    fn servers(&self) -> Vec<String> {
        self.servers.clone()
    }

    async fn proxy_counts(&self) -> anyhow::Result<Option<BTreeMap<String, u64>>> {
        if !matches!(self.mesh, Mesh::Proxy(_)) {
            return Ok(None);
        }
        let pods = self
            .ops
            .pods(&self.namespace, &format!("app={}", objects::PROXY))
            .await?;
        let mut counts = BTreeMap::new();
        for pod in pods {
            let stats = self
                .ops
                .pod_http_get(
                    &self.namespace,
                    &pod.name,
                    envoy_static::ADMIN_PORT,
                    "stats?filter=downstream_rq_total",
                )
                .await?;
            counts.insert(pod.name, downstream_requests(&stats));
        }
        Ok(Some(counts))
    }

    async fn tick(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    async fn teardown(mut self) -> anyhow::Result<()> {
        // Istio's mesh configuration is the cluster's, not the namespace's: it goes back even with --keep.
        let restored = if self.mesh_config_changed {
            self.restore_mesh_config().await.map(drop)
        } else {
            Ok(())
        };
        let deleted = if self.keep || self.namespace.is_empty() {
            if !self.namespace.is_empty() {
                progress(&format!(
                    "keeping namespace {} (delete it with `kubectl delete namespace {}`)",
                    self.namespace, self.namespace
                ));
            }
            Ok(())
        } else {
            progress(&format!("deleting namespace {}", self.namespace));
            self.ops
                .delete_namespace(&self.namespace, self.deadlines.teardown)
                .await
        };
        match (restored, deleted) {
            (Ok(()), result) => result,
            (Err(err), Ok(())) => Err(err.context("istio's retry policy was not put back")),
            (Err(err), Err(also)) => {
                eprintln!("warning: {also:#}");
                Err(err.context("istio's retry policy was not put back"))
            }
        }
    }
}

fn is_deployment(object: &kube::api::DynamicObject) -> bool {
    object
        .types
        .as_ref()
        .is_some_and(|t| t.kind == "Deployment")
}

/// The requests a proxy's listeners took, from its `/stats` text: the sum of the
/// `http.<prefix>.downstream_rq_total` counters (not the admin's own).
fn downstream_requests(stats: &str) -> u64 {
    stats
        .lines()
        .filter_map(|line| line.split_once(": "))
        .filter(|(name, _)| {
            name.starts_with("http.")
                && name.ends_with(".downstream_rq_total")
                && !name.starts_with("http.admin.")
        })
        .filter_map(|(_, value)| value.trim().parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests;
