//! `cargo xtask bench`: what the mesh costs, measured on the local twin with real processes.
//!
//! One twin for the whole run: a hello-server pod per version (`server-v1-0`, `server-v2-0`), the
//! client's sidecar (a real Envoy fed by our control plane) with a route of `server` at 100/0, and
//! a bare tonic server built by the bench (`bench/bare.rs`). Every figure compares paths side by
//! side, in rounds that alternate them, and reports medians over the rounds:
//!
//! 1. throughput (`bench/throughput.rs`): hello-client in closed loop, straight to `server-v1-0`
//!    (`ipv4:` target), through the sidecar (the twin's `dns://.../server:50051`), and straight to
//!    the bare server;
//! 2. latency at 1,000 RPC/s (`bench/latency.rs`): hello-client in open loop (`--rate`), straight,
//!    through the sidecar, and through ambient mode's waypoint (a second twin in ambient mode with
//!    a waypoint and the same route: the client's connection captured by the ztunnel model, then
//!    the waypoint's Envoy);
//! 3. the sidecar's cost, over the sidecar runs of 2: Envoy's CPU seconds and resident memory from
//!    `/proc` (`bench/procfs.rs`);
//! 4. route propagation (`bench/propagation.rs`): weight changes pushed through the twin, seen by a
//!    client inside the bench;
//! 5. server efficiency: the runs of 1, hello-server against the bare tonic server.

mod bare;
mod client;
mod latency;
mod procfs;
mod propagation;
mod report;
mod throughput;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use mesh::{
    gateway,
    twin::{self, Twin, TwinSpec},
};

use crate::{output::progress, project::Profile};

/// The route of `server` every figure runs under: server-v1 and server-v2, at 100/0 to begin.
const ROUTE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: server
  namespace: default
spec:
  parentRefs:
    - group: ""
      kind: Service
      name: server
  rules:
    - backendRefs:
        - name: server-v1
          port: 50051
          weight: 100
        - name: server-v2
          port: 50051
          weight: 0
"#;

/// How much a run measures.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    /// Rounds of figures 1, 2 (and through them 3 and 5).
    pub rounds: usize,
    /// Concurrent RPCs of the closed-loop runs.
    pub concurrency: u32,
    pub throughput_run: Duration,
    /// RPCs a second of the open-loop runs.
    pub rate: u32,
    pub latency_run: Duration,
    /// Cycles of weight changes (3 changes each).
    pub propagation_cycles: usize,
    /// The warm-up run of each path before anything is measured.
    pub warm_up: Duration,
}

impl Plan {
    pub fn full() -> Plan {
        Plan {
            quick: false,
            rounds: 5,
            concurrency: 64,
            throughput_run: Duration::from_secs(3),
            rate: 1000,
            latency_run: Duration::from_secs(4),
            propagation_cycles: 3,
            warm_up: Duration::from_secs(1),
        }
    }

    pub fn quick() -> Plan {
        Plan {
            quick: true,
            rounds: 2,
            throughput_run: Duration::from_millis(1000),
            latency_run: Duration::from_millis(1500),
            propagation_cycles: 1,
            warm_up: Duration::from_millis(500),
            ..Plan::full()
        }
    }
}

/// The ways from the client to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Straight to hello-server `server-v1-0`.
    Direct,
    /// Through the client's sidecar, routed to `server-v1-0`.
    Sidecar,
    /// Straight to the bare tonic server.
    Bare,
    /// Through ztunnel and the waypoint of a twin in ambient mode, routed to its `server-v1-0`.
    Waypoint,
}

impl Path {
    pub fn name(self) -> &'static str {
        match self {
            Path::Direct => "direct",
            Path::Sidecar => "sidecar",
            Path::Bare => "bare tonic",
            Path::Waypoint => "waypoint",
        }
    }
}

/// Everything the figures run against.
pub struct Rig {
    twin: Twin,
    /// The same pods and route in ambient mode, with a waypoint.
    ambient: Twin,
    bare: bare::BareServer,
    pub client_bin: PathBuf,
    /// The client's `--client-id`: the work directory's name, so that its processes can be told.
    pub client_id: String,
    direct: String,
    sidecar: String,
    bare_target: String,
    waypoint: String,
    pub envoy_pid: u32,
    waypoint_pid: u32,
    direct_pid: u32,
    bare_pid: u32,
    /// The sidecar's listener, as Envoy reports it.
    sidecar_addr: SocketAddr,
}

impl Rig {
    pub fn target(&self, path: Path) -> &str {
        match path {
            Path::Direct => &self.direct,
            Path::Sidecar => &self.sidecar,
            Path::Bare => &self.bare_target,
            Path::Waypoint => &self.waypoint,
        }
    }

    /// The process that answers on a path: hello-server, Envoy, or the bare server.
    pub fn server_pid(&self, path: Path) -> u32 {
        match path {
            Path::Direct => self.direct_pid,
            Path::Sidecar => self.envoy_pid,
            Path::Bare => self.bare_pid,
            Path::Waypoint => self.waypoint_pid,
        }
    }

    async fn start(bins: &Bins, work_dir: PathBuf) -> Result<Rig> {
        let spec = |work_dir: PathBuf| TwinSpec {
            server_bin: bins.server.clone(),
            envoy_bin: Some(bins.envoy.clone()),
            work_dir,
            versions: vec![("v1".into(), 1), ("v2".into(), 1)],
            server_env: Vec::new(),
            // The sidecar balances over EDS (a headless `server` would be passthrough).
            mode: twin::ServiceMode::ClusterIp,
        };
        let mut twin = Twin::start(spec(work_dir.clone()))
            .await
            .context("cannot start the local twin")?;
        // Figure 4 measures our control plane's raw push, without istiod's debounce.
        twin.set_push_timing(twin::PushTiming::Immediate);
        progress(&format!(
            "twin on {}, logs in {}",
            twin.block(),
            work_dir.display()
        ));
        twin.set_routes(gateway::parse(ROUTE, "the bench's route")?)
            .await?;
        twin.set_mesh(twin::Mesh::Sidecar).await?;
        let sidecar = twin.sidecar().context("the twin started no sidecar")?;
        let envoy_pid = sidecar.pid();
        let sidecar_addr = listener_addr(sidecar).await?;
        let v1 = twin
            .pods()
            .find(|p| p.version == "v1")
            .context("the twin has no v1 pod")?;
        let direct = format!("ipv4:{}", v1.addr);
        let direct_pid = v1.pid().context("the v1 pod has exited")?;
        let sidecar_target = twin.target();
        progress(
            "starting a second twin in ambient mode: a pod per version, a waypoint, the same route",
        );
        let mut ambient = Twin::start(spec(work_dir.join("ambient")))
            .await
            .context("cannot start the local twin in ambient mode")?;
        ambient
            .set_routes(gateway::parse(ROUTE, "the bench's route")?)
            .await?;
        ambient.set_mesh(twin::Mesh::Waypoint).await?;
        let waypoint_pid = ambient
            .waypoint()
            .context("the twin started no waypoint")?
            .pid();
        let waypoint = ambient.target();
        progress("starting the bare tonic server");
        let bare = bare::BareServer::start(&bins.bare, &work_dir).await?;
        let bare_pid = bare.pid();
        let bare_target = format!("ipv4:{}", bare.addr);
        Ok(Rig {
            twin,
            ambient,
            bare,
            client_bin: bins.client.clone(),
            client_id: work_dir
                .file_name()
                .map_or_else(|| "bench".to_owned(), |n| n.to_string_lossy().into_owned()),
            direct,
            sidecar: sidecar_target,
            bare_target,
            waypoint,
            envoy_pid,
            waypoint_pid,
            direct_pid,
            bare_pid,
            sidecar_addr,
        })
    }

    /// Stops every process: the bare server, then the twin.
    async fn stop(self) -> Result<()> {
        let bare = self.bare.stop().await;
        self.twin.shutdown().await;
        self.ambient.shutdown().await;
        bare
    }
}

/// The sidecar's listener for port 50051 (`/listeners?format=json` of its admin).
async fn listener_addr(envoy: &mesh::envoy::Envoy) -> Result<SocketAddr> {
    let body = envoy.admin_get("/listeners?format=json").await?;
    let json: serde_json::Value =
        serde_json::from_str(&body).context("unreadable /listeners of the sidecar")?;
    json["listener_statuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| {
            let sa = &l["local_address"]["socket_address"];
            let ip = sa["address"].as_str()?.parse().ok()?;
            let port = u16::try_from(sa["port_value"].as_u64()?).ok()?;
            Some(SocketAddr::new(ip, port))
        })
        .find(|a| a.port() == twin::PORT)
        .with_context(|| format!("the sidecar has no listener on port {}", twin::PORT))
}

/// The binaries a run needs.
struct Bins {
    server: PathBuf,
    client: PathBuf,
    bare: PathBuf,
    envoy: PathBuf,
}

/// Warms every path up, then measures every figure.
async fn measure(rig: &mut Rig, plan: &Plan, clock_ticks: u64) -> Result<report::Measured> {
    progress("warming up every path");
    for path in [Path::Direct, Path::Sidecar, Path::Bare, Path::Waypoint] {
        client::run(
            &rig.client_bin,
            rig.target(path),
            client::Load::Concurrency(plan.concurrency),
            plan.warm_up,
            &rig.client_id,
            &format!("warm-up, {}", path.name()),
        )
        .await?;
    }
    progress(&format!(
        "1 and 5. throughput: {} rounds of direct, sidecar and bare tonic, {} concurrent rpcs, {:.1}s each",
        plan.rounds,
        plan.concurrency,
        plan.throughput_run.as_secs_f64()
    ));
    let throughput = throughput::measure(rig, plan).await?;
    progress(&format!(
        "2 and 3. latency at {} rpc/s: {} rounds of direct, sidecar and waypoint, {:.1}s each; envoy's cpu and memory",
        plan.rate,
        plan.rounds,
        plan.latency_run.as_secs_f64()
    ));
    let latencies = latency::measure(rig, plan).await?;
    progress(&format!(
        "4. route propagation: {} weight changes",
        plan.propagation_cycles * propagation::CYCLE.len()
    ));
    let propagation =
        propagation::measure(&mut rig.twin, rig.sidecar_addr, plan.propagation_cycles).await?;
    Ok(report::Measured {
        throughput,
        latencies,
        propagation,
        clock_ticks,
    })
}

/// `cargo xtask bench`.
pub fn run(flags: &crate::flags::Bench) -> Result<()> {
    let started = std::time::Instant::now();
    let plan = if flags.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let profile = if flags.debug {
        Profile::Debug
    } else {
        Profile::Release
    };
    let root = crate::project::root();
    let sh = crate::project::shell()?;
    let apps = crate::project::build_apps(&sh, profile)?;
    let bare = bare::build(&sh, profile)?;
    let envoy = mesh::envoy::find(&root, &mut |line| progress(line))?;
    let bins = Bins {
        server: apps.server,
        client: apps.client,
        bare,
        envoy,
    };
    require_rate_flag(&bins.client)?;
    let clock_ticks = procfs::clock_ticks(&sh);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let work_dir = root.join("target/twin").join(format!("bench-{stamp}"));
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let measured = runtime.block_on(async {
        let mut signals = crate::process::Signals::new()?;
        progress("starting the twin: a pod per version, the sidecar, a route at 100/0");
        let mut rig = tokio::select! {
            rig = Rig::start(&bins, work_dir.clone()) => rig?,
            interrupted = signals.recv() => return Err(anyhow::Error::new(interrupted)),
        };
        let result = tokio::select! {
            r = measure(&mut rig, &plan, clock_ticks) => r,
            interrupted = signals.recv() => Err(anyhow::Error::new(interrupted)),
        };
        progress("stopping the twin");
        let stopped = rig.stop().await;
        if result.is_err() {
            eprintln!("logs of the twin's processes: {}", work_dir.display());
        }
        match (result, stopped) {
            (Ok(m), Ok(())) => Ok(m),
            (Err(err), _) => Err(err),
            (Ok(_), Err(err)) => Err(err.context("the bench ran, but a process did not stop")),
        }
    })?;
    let doc = report::Document::new(&measured, procfs::Machine::read(), started.elapsed());
    if flags.json {
        println!("{}", serde_json::to_string(&doc)?);
    } else {
        print!("{}", report::render(&doc, &measured, &plan));
    }
    Ok(())
}

/// The latency figure needs hello-client's open loop (`--rate`).
fn require_rate_flag(client: &std::path::Path) -> Result<()> {
    let help = std::process::Command::new(client)
        .arg("--help")
        .output()
        .with_context(|| format!("cannot run {} --help", client.display()))?;
    if !String::from_utf8_lossy(&help.stdout).contains("--rate") {
        bail!("this hello-client has no --rate (open loop), which the latency figure needs");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The time the clients of a plan run, start-ups and propagation aside.
    fn client_time(plan: &Plan) -> Duration {
        plan.warm_up * 4
            + plan.throughput_run * 3 * plan.rounds as u32
            + plan.latency_run * 3 * plan.rounds as u32
    }

    #[test]
    fn a_full_bench_fits_in_three_minutes_and_a_quick_one_in_thirty_seconds() {
        // Room is left for start-up, the clients' own start-ups, propagation and teardown.
        assert!(client_time(&Plan::full()) <= Duration::from_secs(120));
        assert!(client_time(&Plan::quick()) <= Duration::from_secs(20));
        assert!(
            Plan::quick().rounds >= 2,
            "a median needs rounds to alternate"
        );
    }

    #[test]
    fn the_route_parses_and_starts_where_the_propagation_cycle_starts() {
        let routes = gateway::parse(ROUTE, "test").unwrap();
        let text = format!("{routes:?}");
        let start = propagation::START;
        for (backend, weight) in [("server-v1", start.v1), ("server-v2", start.v2)] {
            let at = text
                .find(backend)
                .unwrap_or_else(|| panic!("{backend}: {text}"));
            assert!(
                text[at..].contains(&format!("weight: Some({weight})")),
                "{backend} {weight}: {text}"
            );
        }
    }
}
