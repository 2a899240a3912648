//! The local backend: the mesh twin (`mesh::twin`) with real processes and a real Envoy.

use std::{collections::BTreeMap, path::PathBuf, process::Stdio};

use anyhow::Context;
use mesh::{
    gateway::Routes,
    model::{MeshConfig, RetryPolicy},
    process::{Output, Process},
    twin::{Twin, TwinSpec},
};
use tokio::{io::AsyncBufReadExt, sync::mpsc};

use crate::{
    harness::backend::{Backend, ClientStream},
    harness::scenario::{Action, Client, Exposure, Mesh, Retries, RouteSource, Scenario},
};
use crate::{
    harness::{
        engine::{self, Measure},
        measure::Report,
    },
    output::progress,
};

/// What identifies a version of a route file or directory: modification times and sizes.
type Stamp = Vec<(PathBuf, Option<std::time::SystemTime>, u64)>;

/// The user's route file (`experiment --routes`), watched for edits while the scenario runs.
struct RouteFile {
    source: RouteSource,
    /// What it looked like when it was last read.
    stamp: Stamp,
}

impl RouteFile {
    /// Looks at the file before it is read, so that an edit made while it is read is seen later.
    fn watch(source: &RouteSource) -> RouteFile {
        RouteFile {
            source: source.clone(),
            stamp: stamp(&source.path()),
        }
    }

    /// The routes as they are now, if the file changed since it was last read.
    fn changed(&mut self) -> Option<Result<Routes, mesh::gateway::GatewayError>> {
        let now = stamp(&self.source.path());
        if now == self.stamp {
            return None;
        }
        self.stamp = now;
        Some(self.source.load())
    }
}

fn stamp(path: &std::path::Path) -> Stamp {
    let entry = |p: PathBuf| {
        let meta = std::fs::metadata(&p).ok();
        let modified = meta.as_ref().and_then(|m| m.modified().ok());
        (p, modified, meta.map_or(0, |m| m.len()))
    };
    match std::fs::read_dir(path) {
        Ok(dir) => {
            let mut files: Stamp = dir.flatten().map(|e| entry(e.path())).collect();
            files.sort();
            files
        }
        Err(_) => vec![entry(path.to_path_buf())],
    }
}

/// How often the client reports; phases are measured in these steps.
pub const INTERVAL_MS: u64 = 250;

pub struct Local {
    pub server_bin: PathBuf,
    pub client_bin: PathBuf,
    pub envoy_bin: Option<PathBuf>,
    pub work_dir: PathBuf,
    routes: ScenarioRoutes,
    twin: Option<Twin>,
    exposure: Exposure,
}

/// A scenario's routes on the twin.
pub struct ScenarioRoutes {
    /// As read before anything was built or started, until the twin takes them at setup; from then
    /// on the twin holds the one copy.
    initial: Option<Routes>,
    /// The user's route file, whose edits are pushed while the scenario runs.
    file: Option<RouteFile>,
}

impl ScenarioRoutes {
    /// Reads the scenario's routes (the one time they are read), and watches the user's file.
    pub fn read(scenario: &Scenario) -> anyhow::Result<ScenarioRoutes> {
        let file = match &scenario.routes {
            Some(source @ RouteSource::File(_)) => Some(RouteFile::watch(source)),
            _ => None,
        };
        let initial = scenario
            .routes
            .as_ref()
            .map(RouteSource::load)
            .transpose()?;
        Ok(ScenarioRoutes { initial, file })
    }
}

impl Local {
    /// A backend for the scenario whose routes are given.
    pub fn new(
        server_bin: PathBuf,
        client_bin: PathBuf,
        envoy_bin: Option<PathBuf>,
        work_dir: PathBuf,
        routes: ScenarioRoutes,
    ) -> Local {
        Local {
            server_bin,
            client_bin,
            envoy_bin,
            work_dir,
            routes,
            twin: None,
            exposure: Exposure::ClusterIp,
        }
    }

    fn twin(&mut self) -> &mut Twin {
        self.twin.as_mut().expect("setup runs first")
    }
}

fn exposure_name(exposure: Exposure) -> &'static str {
    match exposure {
        Exposure::ClusterIp => "a ClusterIP Service",
        Exposure::Headless => "a headless Service",
    }
}

/// The mesh configuration of a phase's retry policy: Istio's built-in default, or
/// `meshConfig.defaultHttpRetryPolicy` with Istio's default attempts and conditions plus `reset`.
fn mesh_config(retries: Retries) -> MeshConfig {
    MeshConfig {
        default_http_retry_policy: match retries {
            Retries::IstioDefault => None,
            Retries::WithReset => Some(RetryPolicy::istio_default_with("reset")),
        },
    }
}

fn describe_retries(config: &MeshConfig) -> String {
    match &config.default_http_retry_policy {
        None => "Istio's default".to_owned(),
        Some(p) => format!("{} retries on {}", p.attempts, p.retry_on),
    }
}

impl Backend for Local {
    fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(INTERVAL_MS)
    }

    async fn setup(&mut self, scenario: &Scenario) -> anyhow::Result<()> {
        let spec = TwinSpec {
            server_bin: self.server_bin.clone(),
            envoy_bin: self.envoy_bin.clone(),
            work_dir: self.work_dir.clone(),
            versions: scenario
                .versions
                .iter()
                .map(|(v, n)| (v.to_string(), *n))
                .collect(),
            server_env: scenario
                .server_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            mode: scenario.exposure,
        };
        self.exposure = scenario.exposure;
        let twin = Twin::start(spec)
            .await
            .context("cannot start the local twin")?;
        progress(&format!(
            "twin on {}, logs in {}",
            twin.block(),
            self.work_dir.display()
        ));
        self.twin = Some(twin);
        if let Some(routes) = self.routes.initial.take().filter(|r| !r.is_empty()) {
            self.twin().set_routes(routes).await?;
        }
        Ok(())
    }

    async fn set_mesh(&mut self, mesh: Mesh) -> anyhow::Result<()> {
        // Proxies are scaled by an action; the arrangement stays.
        if !self.twin().mesh().same_kind(mesh) {
            self.twin().set_mesh(mesh).await?;
        }
        Ok(())
    }

    async fn set_exposure(&mut self, exposure: Exposure) -> anyhow::Result<()> {
        if exposure != self.exposure {
            progress(&format!("  exposing server as {}", exposure_name(exposure)));
            self.twin().set_mode(exposure).await?;
            self.exposure = exposure;
        }
        Ok(())
    }

    async fn set_retries(&mut self, retries: Retries) -> anyhow::Result<()> {
        let config = mesh_config(retries);
        if self.twin().mesh_config() != &config {
            progress(&format!(
                "  the mesh's default retry policy: {}",
                describe_retries(&config)
            ));
            self.twin().set_mesh_config(config).await?;
        }
        Ok(())
    }

    async fn apply(&mut self, action: &Action) -> anyhow::Result<()> {
        match action {
            Action::Scale { version, replicas } => self.twin().scale(version, *replicas).await?,
            Action::ScaleProxies(n) => self.twin().scale_proxies(*n).await?,
            Action::RollingRestart { version } => self.twin().rolling_restart(version).await?,
            Action::Kill { version } => {
                let killed = self.twin().kill(version).await?;
                let restarts = self
                    .twin()
                    .pods()
                    .find(|p| p.name == killed)
                    .map_or(0, |p| p.restarts);
                progress(&format!(
                    "  killed {killed}; its container started again in place (restart {restarts}) and serves"
                ));
            }
            Action::Weights(weights) => {
                let routes = self.twin().routes().with_weights(weights)?;
                self.twin().set_routes(routes).await?;
            }
        }
        Ok(())
    }

    async fn start_client(&mut self, client: &Client, mesh: Mesh) -> anyhow::Result<ClientStream> {
        let target = self.twin().target();
        let mut cmd = std::process::Command::new(&self.client_bin);
        cmd.env_clear()
            .env("RUST_LOG", "off")
            .arg(&target)
            .args([
                "--output",
                "json",
                "--interval",
                &format!("{INTERVAL_MS}ms"),
            ])
            .args(["--lb", client.lb, "--method", client.method])
            .args(["--concurrency", &client.concurrency.to_string()])
            .args([
                "--client-id",
                if mesh.is_on() {
                    "client-mesh"
                } else {
                    "client"
                },
            ]);
        for (k, v) in &client.headers {
            cmd.arg("--header").arg(format!("{k}={v}"));
        }
        cmd.stdout(Stdio::piped());
        // Killed and reaped when the stream is dropped, at the end of a phase or on an error.
        let mut client = Process::spawn("hello-client", cmd, Output::Keep)
            .with_context(|| format!("cannot start {}", self.client_bin.display()))?;
        let stdout = client.take_stdout().context("the client has no stdout")?;
        let stdout = tokio::process::ChildStdout::from_std(stdout)
            .context("cannot read the output of the client")?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str(&line) {
                    Ok(summary) => {
                        if tx.send(summary).is_err() {
                            break;
                        }
                    }
                    Err(err) => eprintln!("warning: unreadable client line ({err}): {line}"),
                }
            }
        });
        Ok(ClientStream {
            summaries: rx,
            _guard: Box::new(client),
        })
    }

    async fn tick(&mut self) -> anyhow::Result<()> {
        let Some(file) = &mut self.routes.file else {
            return Ok(());
        };
        let Some(loaded) = file.changed() else {
            return Ok(());
        };
        let path = file.source.path();
        match loaded {
            Ok(routes) => {
                self.twin().set_routes(routes).await?;
                progress(&format!("  {} changed: pushed to the mesh", path.display()));
            }
            // A half-saved or broken edit: say so, keep what is in force.
            Err(err) => eprintln!("warning: {err}; the previous routes stay in force"),
        }
        Ok(())
    }

    fn servers(&self) -> Vec<String> {
        self.twin
            .as_ref()
            .map(|t| t.pods().map(|p| p.name.clone()).collect())
            .unwrap_or_default()
    }

    async fn proxy_counts(&self) -> anyhow::Result<Option<BTreeMap<String, u64>>> {
        let Some(twin) = &self.twin else {
            return Ok(None);
        };
        let proxies = twin.proxies();
        if proxies.is_empty() {
            return Ok(None);
        }
        let mut counts = BTreeMap::new();
        for (i, proxy) in proxies.iter().enumerate() {
            let stats = proxy.stats().await?;
            let rq: u64 = stats
                .iter()
                .filter(|(k, _)| {
                    k.starts_with("http.proxy_") && k.ends_with(".downstream_rq_total")
                })
                .map(|(_, v)| v)
                .sum();
            counts.insert(format!("proxy-{i}"), rq);
        }
        Ok(Some(counts))
    }

    fn warnings(&self) -> Vec<String> {
        self.twin
            .as_ref()
            .map(|t| t.warnings().iter().map(|w| w.to_string()).collect())
            .unwrap_or_default()
    }

    async fn teardown(mut self) -> anyhow::Result<()> {
        if let Some(twin) = self.twin.take() {
            twin.shutdown().await;
        }
        Ok(())
    }
}

/// Runs a scenario on the local twin, tearing everything down on success, error or Ctrl-C.
pub fn run(
    scenario: &Scenario,
    profile: crate::project::Profile,
    measure: Measure,
) -> anyhow::Result<Report> {
    // The routes first: a bad route file fails before anything is built or started.
    let routes = ScenarioRoutes::read(scenario)?;
    let root = crate::project::root();
    let sh = crate::project::shell()?;
    let apps = crate::project::build_apps(&sh, profile)?;
    let needs_envoy = scenario.phases.iter().any(|p| p.mesh.needs_envoy());
    let envoy = if needs_envoy {
        Some(mesh::envoy::find(&root, &mut |line| progress(line))?)
    } else {
        None
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let work_dir = root
        .join("target/twin")
        .join(format!("{}-{stamp}", scenario.name));
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let mut backend = Local::new(apps.server, apps.client, envoy, work_dir.clone(), routes);
        let mut signals = crate::process::Signals::new()?;
        let result = tokio::select! {
            r = engine::run(&mut backend, scenario, measure, "local") => r,
            interrupted = signals.recv() => Err(anyhow::Error::new(interrupted)),
        };
        progress("stopping the twin");
        backend.teardown().await?;
        if result.is_err() {
            eprintln!("logs of the twin's processes: {}", work_dir.display());
        }
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_with_reset_are_istio_s_default_attempts_and_conditions_plus_reset() {
        assert_eq!(mesh_config(Retries::IstioDefault), MeshConfig::default());
        let policy = mesh_config(Retries::WithReset)
            .default_http_retry_policy
            .unwrap();
        assert_eq!(policy.attempts, 2);
        assert_eq!(
            policy.retry_on,
            "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes,reset"
        );
    }
}
