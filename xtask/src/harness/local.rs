//! The local backend: the mesh twin (`mesh::twin`) with real processes and a real Envoy.

use std::{collections::BTreeMap, path::PathBuf, process::Stdio};

use anyhow::Context;
use mesh::{
    gateway::{self, RouteObject},
    model::{MeshConfig, RetryPolicy},
    twin::{self, Twin, TwinSpec},
};
use tokio::{io::AsyncBufReadExt, sync::mpsc};

use crate::{
    harness::backend::{Backend, ClientStream},
    harness::scenario::{Action, Client, Exposure, Mesh, Retries, Scenario},
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
    /// Routes from `--routes`, instead of the scenario's own file; edits of it are pushed live.
    pub routes_path: Option<PathBuf>,
    routes_stamp: Option<Stamp>,
    twin: Option<Twin>,
    routes: Vec<RouteObject>,
    exposure: Exposure,
}

impl Local {
    pub fn new(
        server_bin: PathBuf,
        client_bin: PathBuf,
        envoy_bin: Option<PathBuf>,
        work_dir: PathBuf,
    ) -> Local {
        Local {
            server_bin,
            client_bin,
            envoy_bin,
            work_dir,
            routes_path: None,
            routes_stamp: None,
            twin: None,
            routes: Vec::new(),
            exposure: Exposure::ClusterIp,
        }
    }

    fn twin(&mut self) -> &mut Twin {
        self.twin.as_mut().expect("setup runs first")
    }
}

fn mesh_of(mesh: Mesh) -> twin::Mesh {
    match mesh {
        Mesh::Off => twin::Mesh::Off,
        Mesh::Sidecar => twin::Mesh::Sidecar,
        Mesh::StaticSidecar => twin::Mesh::StaticSidecar,
        Mesh::Proxy(n) => twin::Mesh::Proxy(n),
    }
}

fn mode_of(exposure: Exposure) -> twin::ServiceMode {
    match exposure {
        Exposure::ClusterIp => twin::ServiceMode::ClusterIp,
        Exposure::Headless => twin::ServiceMode::Headless,
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

struct KillOnDrop(tokio::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
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
            mode: mode_of(scenario.exposure),
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
        let routes = match (&self.routes_path, scenario.routes) {
            (Some(path), _) => {
                self.routes_stamp = Some(stamp(path));
                gateway::load(path)?
            }
            (None, Some(file)) => {
                gateway::load(&crate::project::root().join("gateway").join(file))?
            }
            (None, None) => Vec::new(),
        };
        if !routes.is_empty() {
            self.routes = routes.clone();
            self.twin().set_routes(routes).await?;
        }
        Ok(())
    }

    async fn set_mesh(&mut self, mesh: Mesh) -> anyhow::Result<()> {
        let current = self.twin().mesh();
        // Proxies are scaled by an action; the arrangement stays.
        let same = current == mesh_of(mesh)
            || matches!((current, mesh), (twin::Mesh::Proxy(_), Mesh::Proxy(_)));
        if !same {
            self.twin().set_mesh(mesh_of(mesh)).await?;
        }
        Ok(())
    }

    async fn set_exposure(&mut self, exposure: Exposure) -> anyhow::Result<()> {
        if exposure != self.exposure {
            progress(&format!("  exposing server as {}", exposure_name(exposure)));
            self.twin().set_mode(mode_of(exposure)).await?;
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
                for route in &mut self.routes {
                    gateway::set_weights(route, weights)?;
                }
                let routes = self.routes.clone();
                self.twin().set_routes(routes).await?;
            }
        }
        Ok(())
    }

    async fn start_client(&mut self, client: &Client, mesh: Mesh) -> anyhow::Result<ClientStream> {
        let target = self.twin().target();
        let mut cmd = tokio::process::Command::new(&self.client_bin);
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
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", self.client_bin.display()))?;
        let stdout = child.stdout.take().context("the client has no stdout")?;
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
            _guard: Box::new(KillOnDrop(child)),
        })
    }

    async fn tick(&mut self) -> anyhow::Result<()> {
        let Some(path) = self.routes_path.clone() else {
            return Ok(());
        };
        let now = stamp(&path);
        if self.routes_stamp.as_ref() == Some(&now) {
            return Ok(());
        }
        self.routes_stamp = Some(now);
        match gateway::load(&path) {
            Ok(routes) => {
                self.routes = routes.clone();
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
    routes: Option<std::path::PathBuf>,
) -> anyhow::Result<Report> {
    let root = crate::project::root();
    let sh = crate::project::shell()?;
    let apps = crate::project::build_apps(&sh, profile)?;
    let needs_envoy = scenario.phases.iter().any(|p| p.mesh.is_on());
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
        let mut backend = Local::new(apps.server, apps.client, envoy, work_dir.clone());
        backend.routes_path = routes;
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
