//! The cluster backend: a scenario's objects in its own namespace of the harness's kind cluster
//! (or the context named with `--context`), applied through the Kubernetes API.
//!
//! The vocabulary is the local twin's ([`Backend`]): scaling patches a Deployment's replicas and
//! waits for the rollout; weights re-apply the route objects (or, for the static sidecar, its
//! ConfigMap and the client that mounts it); the client's JSON summaries are read from its pod's
//! logs, following the Deployment's current pod across restarts. Before a route is measured with
//! Istio's sidecar, the sidecar's own configuration dump is checked to hold it.

use std::{collections::BTreeMap, time::Duration};

use futures::StreamExt as _;
use hello_apps::client::{Summary, SummaryKind};
use tokio::sync::{mpsc, watch};

use crate::{
    backend::{Backend, ClientStream},
    cluster::{envoy_static, kube::Cluster, objects, route_check},
    demo::progress,
    scenario::{Action, Client, Exposure, Mesh, Retries, Scenario},
};

/// The Istio sidecar's container, and how `istioctl proxy-config` reads its Envoy's configuration.
const ISTIO_PROXY_CONTAINER: &str = "istio-proxy";
const CONFIG_DUMP_COMMAND: [&str; 4] = ["pilot-agent", "request", "GET", "config_dump"];

/// How long each kind of wait may take.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// A Deployment's rollout (an image pull on a cold node takes a while).
    pub rollout: Duration,
    /// Until the sidecar holds the applied routes.
    pub routes: Duration,
    /// Between two reads of the sidecar's configuration, and between two attempts to follow a
    /// client pod's logs.
    pub retry: Duration,
    /// Until the scenario's namespace is gone.
    pub teardown: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            rollout: Duration::from_secs(300),
            routes: Duration::from_secs(60),
            retry: Duration::from_secs(2),
            teardown: Duration::from_secs(180),
        }
    }
}

pub struct Kind {
    cluster: Cluster,
    images: objects::Images,
    deadlines: Deadlines,
    /// Leave the namespace in place at the end (`--keep`).
    keep: bool,
    scenario: Option<Scenario>,
    namespace: String,
    mesh: Mesh,
    /// The weights last set, by backend Service name.
    weights: Option<Vec<(&'static str, u32)>>,
    /// The running client: its Deployment's name and workload.
    client: Option<(&'static str, Client)>,
    /// The pod whose logs count, once a rollout of the client has completed.
    current_pod: Option<watch::Sender<Option<String>>>,
    servers: Vec<String>,
    warnings: Vec<String>,
    /// How often the client reports: [`objects::CLIENT_INTERVAL`] (the tests' mock client is quicker).
    interval: Duration,
}

impl Kind {
    pub fn new(
        cluster: Cluster,
        images: objects::Images,
        deadlines: Deadlines,
        keep: bool,
    ) -> Kind {
        Kind {
            cluster,
            images,
            deadlines,
            keep,
            scenario: None,
            namespace: String::new(),
            mesh: Mesh::Off,
            weights: None,
            client: None,
            current_pod: None,
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
        self.cluster
            .wait_rollout(&self.namespace, name, self.deadlines.rollout)
            .await
    }

    async fn refresh_servers(&mut self) -> anyhow::Result<()> {
        self.servers = self
            .cluster
            .pod_names(&self.namespace, &format!("app={}", objects::SERVER))
            .await?;
        Ok(())
    }

    /// After a rollout of the client: its logs are read from the pod the Deployment runs now.
    async fn follow_new_client_pod(&mut self, name: &str) -> anyhow::Result<()> {
        let pod = self
            .cluster
            .pick_pod(&self.namespace, &format!("app={name}"))
            .await?;
        if let Some(current) = &self.current_pod {
            current.send_replace(Some(pod));
        }
        Ok(())
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
        self.cluster.apply(&objects).await?;
        self.rollout(name).await?;
        Ok(name)
    }

    /// Trust, but verify: with Istio's sidecar and a route file, waits until the sidecar's Envoy holds
    /// every split the route objects ask for. A sidecar that does not within the deadline is a warning, not
    /// an error: the measurement then shows what the client really got.
    async fn verify_sidecar(&mut self) -> anyhow::Result<()> {
        let scenario = self.scenario().clone();
        if self.mesh != Mesh::Sidecar || scenario.routes.is_none() {
            return Ok(());
        }
        // Only the sidecar's own client has a sidecar; a mesh-off client still running is replaced
        // later, and checked then.
        let Some((name, _)) = &self.client else {
            return Ok(());
        };
        if *name != objects::client_name(Mesh::Sidecar) {
            return Ok(());
        }
        // The pod whose logs are read: the one that runs the client now.
        let Some(pod) = self.current_pod.as_ref().and_then(|c| c.borrow().clone()) else {
            return Ok(());
        };
        let routes = objects::route_objects(&scenario, self.weights.as_deref())?;
        let expected =
            route_check::expected(&routes, &objects::mesh_services(&scenario), objects::SERVER);
        let host = format!(
            "{}.{}.svc.{}",
            objects::SERVER,
            self.namespace,
            objects::CLUSTER_DOMAIN
        );
        progress(&format!("  checking that {pod}'s sidecar holds the routes"));
        let deadline = tokio::time::Instant::now() + self.deadlines.routes;
        loop {
            let verdict = match self
                .cluster
                .exec(
                    &self.namespace,
                    &pod,
                    ISTIO_PROXY_CONTAINER,
                    &CONFIG_DUMP_COMMAND,
                )
                .await
            {
                Ok(text) => match serde_json::from_str(&text) {
                    Ok(dump) => route_check::check(&dump, &host, &expected),
                    Err(err) => Err(format!("its config dump is not json ({err})")),
                },
                Err(err) => Err(format!("{err:#}")),
            };
            match verdict {
                Ok(()) => {
                    progress("  the sidecar holds every split of the routes");
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
}

/// Stops following the client's logs when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Follows the logs of the client pod named in `current`, forwarding its summaries in order. When the
/// stream ends (the pod stopped, or the API server closed it), follows the current pod again; a pod
/// followed again resumes after the last summary it gave.
async fn follow_client(
    cluster: Cluster,
    namespace: String,
    mut current: watch::Receiver<Option<String>>,
    tx: mpsc::UnboundedSender<Summary>,
    retry: Duration,
) {
    let mut last_t: BTreeMap<String, f64> = BTreeMap::new();
    loop {
        let Some(pod) = current.borrow_and_update().clone() else {
            if current.changed().await.is_err() {
                return;
            }
            continue;
        };
        match cluster
            .follow_pod_logs(&namespace, &pod, objects::CLIENT_CONTAINER)
            .await
        {
            Ok(lines) => {
                let mut lines = std::pin::pin!(lines);
                loop {
                    tokio::select! {
                        line = lines.next() => {
                            let Some(Ok(line)) = line else { break };
                            // The container's log holds its stderr too: only summaries count.
                            let Ok(summary) = serde_json::from_str::<Summary>(&line) else { continue };
                            let last = last_t.entry(pod.clone()).or_insert(f64::NEG_INFINITY);
                            if summary.kind != SummaryKind::Summary || summary.t <= *last {
                                continue;
                            }
                            *last = summary.t;
                            if tx.send(summary).is_err() {
                                return;
                            }
                        }
                        changed = current.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            break;
                        }
                    }
                }
            }
            Err(err) => eprintln!("warning: {err:#}; trying again"),
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(retry).await;
    }
}

impl Backend for Kind {
    fn interval(&self) -> Duration {
        self.interval
    }

    async fn setup(&mut self, scenario: &Scenario) -> anyhow::Result<()> {
        self.namespace = objects::namespace(scenario.name);
        self.scenario = Some(scenario.clone());
        // A previous run that was interrupted may have left its clients running.
        self.cluster
            .delete_namespace(&self.namespace, self.deadlines.teardown)
            .await?;
        let base = objects::base(scenario, &self.images)?;
        progress(&format!(
            "applying {} objects to namespace {} (context {})",
            base.len(),
            self.namespace,
            self.cluster.context
        ));
        self.cluster.apply(&base).await?;
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
        anyhow::ensure!(
            exposure == self.scenario().exposure,
            "this backend cannot change how the service is exposed yet"
        );
        Ok(())
    }

    async fn set_retries(&mut self, retries: Retries) -> anyhow::Result<()> {
        anyhow::ensure!(
            retries == Retries::IstioDefault,
            "this backend cannot change the mesh's retry policy yet"
        );
        Ok(())
    }

    async fn apply(&mut self, action: &Action) -> anyhow::Result<()> {
        match action {
            Action::Scale { version, replicas } => {
                let name = format!("{}-{version}", objects::SERVER);
                self.cluster
                    .scale(&self.namespace, &name, *replicas)
                    .await?;
                self.rollout(&name).await?;
                self.refresh_servers().await?;
            }
            Action::RollingRestart { version } => {
                let name = format!("{}-{version}", objects::SERVER);
                self.cluster.restart(&self.namespace, &name).await?;
                self.rollout(&name).await?;
                self.refresh_servers().await?;
            }
            Action::Kill { version } => {
                let selector = format!("app={},version={version}", objects::SERVER);
                let killed = self
                    .cluster
                    .kill_oldest_pod(&self.namespace, &selector)
                    .await?;
                progress(&format!("  killed {killed}"));
                self.rollout(&format!("{}-{version}", objects::SERVER))
                    .await?;
                self.refresh_servers().await?;
            }
            Action::ScaleProxies(n) => {
                self.cluster
                    .scale(&self.namespace, objects::PROXY, *n)
                    .await?;
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
                    }
                    // Applied when the client starts.
                    (Mesh::StaticSidecar, None) => {}
                    _ => {
                        let scenario = self.scenario().clone();
                        let routes = objects::routes(&scenario, Some(weights))?;
                        self.cluster.apply(&routes).await?;
                        self.verify_sidecar().await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn start_client(&mut self, client: &Client, mesh: Mesh) -> anyhow::Result<ClientStream> {
        let name = objects::client_name(mesh);
        // One client at a time: the other arrangement's client stops first.
        if let Some((running, _)) = self.client.take()
            && running != name
        {
            self.cluster.scale(&self.namespace, running, 0).await?;
            self.rollout(running).await?;
        }
        progress(&format!("  starting the client {name}"));
        self.deploy_client(client, mesh).await?;
        self.client = Some((name, client.clone()));
        let (current, receiver) = watch::channel(None);
        self.current_pod = Some(current);
        self.follow_new_client_pod(name).await?;
        self.verify_sidecar().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(follow_client(
            self.cluster.clone(),
            self.namespace.clone(),
            receiver,
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
            .cluster
            .pod_names(&self.namespace, &format!("app={}", objects::PROXY))
            .await?;
        let mut counts = BTreeMap::new();
        for pod in pods {
            let stats = self
                .cluster
                .pod_http_get(
                    &self.namespace,
                    &pod,
                    envoy_static::ADMIN_PORT,
                    "stats?filter=downstream_rq_total",
                )
                .await?;
            counts.insert(pod, downstream_requests(&stats));
        }
        Ok(Some(counts))
    }

    async fn tick(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    async fn teardown(self) -> anyhow::Result<()> {
        if self.keep || self.namespace.is_empty() {
            if !self.namespace.is_empty() {
                progress(&format!(
                    "keeping namespace {} (delete it with `kubectl delete namespace {}`)",
                    self.namespace, self.namespace
                ));
            }
            return Ok(());
        }
        progress(&format!("deleting namespace {}", self.namespace));
        self.cluster
            .delete_namespace(&self.namespace, self.deadlines.teardown)
            .await
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
