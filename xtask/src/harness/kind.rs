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
//! How the sidecar's configuration is read in Istio 1.30: its Envoy admin listens on
//! `127.0.0.1:15000` only (`tools/packaging/common/envoy_bootstrap.json`, `admin.address` is
//! `{{ .localhost }}`), so neither the pod IP nor the API server's pod proxy reaches it, and a request
//! to the pod IP on 15000 is captured by the sidecar's inbound redirect anyway (the injection template
//! excludes only 15090, 15021 and the status port from it). `istioctl proxy-config` in 1.30 port-forwards
//! to 15000 (`pkg/kube/client.go`, `EnvoyDoWithPort`). The harness instead execs
//! `pilot-agent request GET config_dump` in the `istio-proxy` container
//! (`pilot/cmd/pilot-agent/app/request.go`: a GET on `localhost:15000`, allowed ports 15000, 15021,
//! 15020 and 15004, output printed as Envoy sent it): the same JSON, over the exec the harness already
//! uses, with no local port.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use hello_apps::client::{Summary, SummaryKind};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio::sync::{mpsc, watch};

use crate::{
    cluster::{envoy_static, objects, route_check},
    harness::backend::{Backend, ClientStream},
    harness::scenario::{Action, Client, Exposure, Mesh, Retries, Scenario},
    output::progress,
};

pub mod mesh_config;
pub mod ops;
pub mod recorder;
pub mod route_status;
pub mod walk;

use ops::{Ops, PodInfo};

/// The Istio sidecar's container.
pub const ISTIO_PROXY_CONTAINER: &str = "istio-proxy";
/// Envoy's configuration dump, read inside the sidecar (see the module documentation).
pub const CONFIG_DUMP_COMMAND: [&str; 4] = ["pilot-agent", "request", "GET", "config_dump"];

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
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            rollout: Duration::from_secs(300),
            routes: Duration::from_secs(60),
            status: Duration::from_secs(30),
            retry: Duration::from_secs(2),
            teardown: Duration::from_secs(180),
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

    /// The pod of the running client when it has Istio's sidecar.
    fn sidecar_pod(&self) -> Option<String> {
        if self.mesh != Mesh::Sidecar {
            return None;
        }
        // Only the sidecar's own client has a sidecar; a mesh-off client still running is replaced
        // later, and checked then.
        let (name, _) = self.client.as_ref()?;
        if *name != objects::client_name(Mesh::Sidecar) {
            return None;
        }
        self.current_pod.as_ref().and_then(|c| c.borrow().clone())
    }

    /// Trust, but verify: with Istio's sidecar, first reads the status istiod wrote on each route
    /// object (a refusal fails at once, in Istio's words), then waits until the sidecar's Envoy holds
    /// every split the route objects ask for and, once this run changed the mesh configuration, the
    /// phase's retry conditions. A sidecar that does not within the deadline is a warning, not an
    /// error: the measurement then shows what the client really got.
    async fn verify_sidecar(&mut self) -> anyhow::Result<()> {
        let Some(pod) = self.sidecar_pod() else {
            return Ok(());
        };
        let scenario = self.scenario().clone();
        let has_routes = scenario.routes.is_some();
        if !has_routes && !self.mesh_config_changed {
            return Ok(());
        }
        let routes = objects::route_objects(&scenario, self.weights.as_deref())?;
        if has_routes {
            self.check_route_status(&routes).await?;
        }
        let expected =
            route_check::expected(&routes, &objects::mesh_services(&scenario), objects::SERVER);
        let retry_on = self
            .mesh_config_changed
            .then(|| mesh_config::retry_on(self.retries));
        let host = format!(
            "{}.{}.svc.{}",
            objects::SERVER,
            self.namespace,
            objects::CLUSTER_DOMAIN
        );
        progress(&format!(
            "  checking that {pod}'s sidecar holds the {}",
            match (has_routes, &retry_on) {
                (true, Some(_)) => "routes and the retry policy",
                (true, None) => "routes",
                (false, _) => "retry policy",
            }
        ));
        let deadline = tokio::time::Instant::now() + self.deadlines.routes;
        loop {
            let verdict = match self
                .ops
                .exec(
                    &self.namespace,
                    &pod,
                    ISTIO_PROXY_CONTAINER,
                    &CONFIG_DUMP_COMMAND,
                )
                .await
            {
                Ok(text) => match serde_json::from_str(&text) {
                    Ok(dump) => {
                        let routes_held = if has_routes {
                            route_check::check(&dump, &host, &expected)
                        } else {
                            Ok(())
                        };
                        routes_held.and_then(|()| match &retry_on {
                            Some(conditions) => mesh_config::check_dump(&dump, &host, conditions),
                            None => Ok(()),
                        })
                    }
                    Err(err) => Err(format!("its config dump is not json ({err})")),
                },
                Err(err) => Err(format!("{err:#}")),
            };
            match verdict {
                Ok(()) => {
                    progress("  the sidecar holds them");
                    return Ok(());
                }
                Err(why) if tokio::time::Instant::now() >= deadline => {
                    self.warnings.push(format!(
                        "{pod}: {why} after {}s; measuring what the client gets anyway",
                        self.deadlines.routes.as_secs()
                    ));
                    return Ok(());
                }
                Err(_) => tokio::time::sleep(self.deadlines.retry).await,
            }
        }
    }

    /// Reads `.status.parents[]` of each route object until istiod has written it for the applied
    /// generation: a refusal is an error in Istio's words; no status within the deadline is a warning
    /// naming the route.
    async fn check_route_status(
        &mut self,
        routes: &[mesh::gateway::RouteObject],
    ) -> anyhow::Result<()> {
        for route in routes {
            let (kind, name) = match route {
                mesh::gateway::RouteObject::Http(r) => ("HTTPRoute", r.metadata.name.clone()),
                mesh::gateway::RouteObject::Grpc(r) => ("GRPCRoute", r.metadata.name.clone()),
            };
            let name = name.unwrap_or_default();
            let what = format!("{kind} {}/{name}", self.namespace);
            let deadline = tokio::time::Instant::now() + self.deadlines.status;
            loop {
                let found = self
                    .ops
                    .get(
                        &format!("{what}'s status from {}", route_status::ISTIO_CONTROLLER),
                        "gateway.networking.k8s.io/v1",
                        kind,
                        &self.namespace,
                        &name,
                    )
                    .await?
                    .with_context(|| format!("{what} is not there"))?;
                match route_status::verdict(&found) {
                    route_status::Verdict::Accepted => break,
                    route_status::Verdict::Refused(why) => {
                        bail!(
                            "{what}: {} refused it: {why}",
                            route_status::ISTIO_CONTROLLER
                        )
                    }
                    route_status::Verdict::Pending if tokio::time::Instant::now() >= deadline => {
                        self.warnings.push(format!(
                            "{what}: no status from {} for generation {} after {}s; checking the sidecar anyway",
                            route_status::ISTIO_CONTROLLER,
                            found["metadata"]["generation"].as_i64().unwrap_or(0),
                            self.deadlines.status.as_secs()
                        ));
                        break;
                    }
                    route_status::Verdict::Pending => {
                        tokio::time::sleep(self.deadlines.retry).await;
                    }
                }
            }
        }
        Ok(())
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

    /// Kills the oldest running pod of a version for real: on kind, its server container gets SIGKILL
    /// on its node (`crictl stop --timeout 0`), the kubelet restarts it in the same pod, and the wait is
    /// for that pod's container to have restarted and be ready again. Elsewhere the pod is deleted with
    /// grace period 0, which is a 2s graceful stop (a warning says so), and the wait is for a
    /// replacement pod to be ready. Neither waits on the Deployment's status: a container restart does
    /// not change it, so it can still read "complete" while the pod is down.
    async fn kill(&mut self, version: &str) -> anyhow::Result<()> {
        let selector = format!("app={},version={version}", objects::SERVER);
        let mut pods = self.ops.pods(&self.namespace, &selector).await?;
        let before = pods.iter().filter(|p| p.ready).count();
        pods.retain(|p| p.running);
        pods.sort_by_key(|p| (p.created, p.name.clone()));
        let victim = pods.first().cloned().with_context(|| {
            format!(
                "no running pod matches {selector} in namespace {}",
                self.namespace
            )
        })?;
        let container = victim.container(objects::SERVER_CONTAINER);
        match (self.ops.kind_cluster(), &victim.node, container) {
            (Some(_), Some(node), Some(c)) => {
                let id = c.id.as_deref().with_context(|| {
                    format!(
                        "pod {}/{} has no container id for {}",
                        self.namespace,
                        victim.name,
                        objects::SERVER_CONTAINER
                    )
                })?;
                let id = id.split_once("://").map_or(id, |(_, id)| id);
                let restarts = c.restart_count;
                self.ops.stop_container(node, id).await?;
                progress(&format!(
                    "  killed {} of {} (SIGKILL on node {node})",
                    objects::SERVER_CONTAINER,
                    victim.name
                ));
                self.wait_restarted(&selector, &victim.name, restarts)
                    .await?;
            }
            (kind, _, _) => {
                let why = match kind {
                    Some(_) => format!(
                        "pod {} has no node or no {} container",
                        victim.name,
                        objects::SERVER_CONTAINER
                    ),
                    None => format!("kube context {} is not a kind cluster", self.ops.context()),
                };
                self.warnings.push(format!(
                    "{why}: {} was deleted with grace period 0 instead of killed; the kubelet still sends SIGTERM and SIGKILLs only after 2s, so the server drained (a graceful stop, not a kill)",
                    victim.name
                ));
                self.ops.delete_pod(&self.namespace, &victim.name).await?;
                progress(&format!("  deleted {} with grace period 0", victim.name));
                self.wait_replaced(&selector, &victim.name, before).await?;
            }
        }
        self.refresh_servers().await
    }

    /// Until the pod's server container has restarted (its restart count above `restarts`) and the pod
    /// is ready again.
    async fn wait_restarted(&self, selector: &str, pod: &str, restarts: i32) -> anyhow::Result<()> {
        progress(&format!(
            "  waiting for {pod} to serve again (up to {}s)",
            self.deadlines.rollout.as_secs()
        ));
        let back = |p: &PodInfo| {
            p.ready
                && p.container(objects::SERVER_CONTAINER)
                    .is_some_and(|c| c.restart_count > restarts && c.ready)
        };
        let found = self
            .poll_pods(selector, |pods| {
                pods.iter().find(|p| p.name == pod).is_some_and(back)
            })
            .await?;
        if let Err(pods) = found {
            let state = pods.iter().find(|p| p.name == pod).map_or_else(
                || "gone".to_owned(),
                |p| {
                    let count = p
                        .container(objects::SERVER_CONTAINER)
                        .map_or(0, |c| c.restart_count);
                    format!("restart count {count}, ready {}", p.ready)
                },
            );
            bail!(
                "pod {}/{pod}: {} not serving again after {}s ({state})",
                self.namespace,
                objects::SERVER_CONTAINER,
                self.deadlines.rollout.as_secs()
            );
        }
        Ok(())
    }

    /// Until the deleted pod is gone and as many pods as were ready before are ready again.
    async fn wait_replaced(&self, selector: &str, pod: &str, ready: usize) -> anyhow::Result<()> {
        progress(&format!(
            "  waiting for a pod to replace {pod} (up to {}s)",
            self.deadlines.rollout.as_secs()
        ));
        let found = self
            .poll_pods(selector, |pods| {
                pods.iter().all(|p| p.name != pod)
                    && pods.iter().filter(|p| p.ready).count() >= ready
            })
            .await?;
        if let Err(pods) = found {
            bail!(
                "no pod replaced {}/{pod} after {}s ({} of {ready} ready)",
                self.namespace,
                self.deadlines.rollout.as_secs(),
                pods.iter().filter(|p| p.ready && p.name != pod).count()
            );
        }
        Ok(())
    }

    /// Lists the pods until `done` holds (`Ok`) or the rollout deadline passes (`Err` with the last list).
    async fn poll_pods(
        &self,
        selector: &str,
        done: impl Fn(&[PodInfo]) -> bool,
    ) -> anyhow::Result<Result<(), Vec<PodInfo>>> {
        let deadline = tokio::time::Instant::now() + self.deadlines.rollout;
        loop {
            let pods = self.ops.pods(&self.namespace, selector).await?;
            if done(&pods) {
                return Ok(Ok(()));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Err(pods));
            }
            tokio::time::sleep(self.deadlines.retry).await;
        }
    }
}

/// Stops following the client's logs when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One line of a followed log: its timestamp (the kubelet's prefix) and the rest.
fn split_timestamp(line: &str) -> Option<(Timestamp, &str)> {
    let (time, rest) = line.split_once(' ')?;
    Some((time.parse().ok()?, rest))
}

/// Follows the logs of the client pod named in `current`, forwarding its summaries in order. A summary
/// counts only if its whole interval (`window` before its timestamp) is after `counting_from`. When the
/// stream ends (the pod stopped, or the API server closed it), follows the current pod again; a pod
/// followed again resumes after the last summary it gave.
async fn follow_client<O: Ops>(
    ops: O,
    namespace: String,
    mut current: watch::Receiver<Option<String>>,
    counting_from: watch::Receiver<Option<Timestamp>>,
    window: Duration,
    tx: mpsc::UnboundedSender<Summary>,
    retry: Duration,
) {
    let window = SignedDuration::try_from(window).unwrap_or(SignedDuration::MAX);
    let mut last_t: BTreeMap<String, f64> = BTreeMap::new();
    'follow: loop {
        let Some(pod) = current.borrow_and_update().clone() else {
            if current.changed().await.is_err() {
                return;
            }
            continue;
        };
        match ops
            .follow_logs(&namespace, &pod, objects::CLIENT_CONTAINER)
            .await
        {
            Ok(mut lines) => loop {
                // A change of pod first (and the same order every time, so a dry run's steps are too).
                tokio::select! {
                    biased;
                    changed = current.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        // Another pod: follow it at once.
                        continue 'follow;
                    }
                    line = lines.next() => {
                        let Some(Ok(line)) = line else { break };
                        let Some((written, text)) = split_timestamp(&line) else { continue };
                        // The container's log holds its stderr too: only summaries count.
                        let Ok(summary) = serde_json::from_str::<Summary>(text) else { continue };
                        let last = last_t.entry(pod.clone()).or_insert(f64::NEG_INFINITY);
                        if summary.kind != SummaryKind::Summary || summary.t <= *last {
                            continue;
                        }
                        *last = summary.t;
                        let counts = counting_from
                            .borrow()
                            .is_none_or(|from| written.duration_since(from) >= window);
                        if counts && tx.send(summary).is_err() {
                            return;
                        }
                    }
                }
            },
            Err(err) => eprintln!("warning: {err:#}; trying again"),
        }
        if tx.is_closed() {
            return;
        }
        // The stream ended or could not start: the pod may be restarting.
        tokio::time::sleep(retry).await;
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
        self.refresh_servers().await
    }

    async fn set_mesh(&mut self, mesh: Mesh) -> anyhow::Result<()> {
        // Each arrangement is its own client Deployment (and the proxies are in the base objects).
        self.mesh = mesh;
        Ok(())
    }

    async fn set_exposure(&mut self, exposure: Exposure) -> anyhow::Result<()> {
        if exposure == self.exposure {
            return Ok(());
        }
        let scenario = self.scenario().clone();
        let service = objects::server_service(&scenario, exposure)?;
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
            self.verify_sidecar().await?;
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
                            self.verify_sidecar().await?;
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
        self.verify_sidecar().await?;
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
