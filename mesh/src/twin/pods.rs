//! Server "pods": `hello-server` processes, each on its own loopback address, named like pods.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::{process::Child, time::Instant};

/// How long a pod may take to accept connections.
pub const READY_DEADLINE: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("cannot start pod {name} ({bin})")]
    Spawn {
        name: String,
        bin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("pod {name} exited before it listened on {addr}: {log}")]
    Exited {
        name: String,
        addr: SocketAddr,
        log: String,
    },
    #[error("pod {name} did not listen on {addr} within {secs}s")]
    NotReady {
        name: String,
        addr: SocketAddr,
        secs: u64,
    },
}

/// A running server pod; killed when dropped.
pub struct Pod {
    pub name: String,
    pub version: String,
    pub addr: SocketAddr,
    /// How often its container was started again after it died (the pod's restart count).
    pub restarts: u32,
    child: Child,
    log: PathBuf,
    /// What the container is started with, again after a restart.
    bin: PathBuf,
    env: Vec<(String, String)>,
}

/// What a pod is started with.
#[derive(Debug, Clone)]
pub struct PodSpec<'a> {
    pub bin: &'a Path,
    pub name: String,
    pub version: String,
    pub addr: SocketAddr,
    pub env: Vec<(String, String)>,
    pub log_dir: &'a Path,
}

impl Pod {
    /// Starts the pod and waits until it accepts connections.
    pub async fn start(spec: PodSpec<'_>) -> Result<Pod, PodError> {
        let log = spec.log_dir.join(format!("{}.log", spec.name));
        let child = spawn(
            spec.bin,
            &spec.name,
            &spec.version,
            spec.addr,
            &spec.env,
            &log,
            false,
        )?;
        let mut pod = Pod {
            name: spec.name,
            version: spec.version,
            addr: spec.addr,
            restarts: 0,
            child,
            log,
            bin: spec.bin.to_path_buf(),
            env: spec.env,
        };
        pod.wait_ready().await?;
        Ok(pod)
    }

    /// Starts the pod's container again, as the kubelet does after it died: same name, same
    /// address, its log continued; waits until it accepts connections.
    pub async fn restart(&mut self) -> Result<(), PodError> {
        let _ = self.child.kill().await;
        self.child = spawn(
            &self.bin,
            &self.name,
            &self.version,
            self.addr,
            &self.env,
            &self.log,
            true,
        )?;
        self.restarts += 1;
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> Result<(), PodError> {
        let end = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(PodError::Exited {
                    name: self.name.clone(),
                    addr: self.addr,
                    log: self.last_log_line(),
                });
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > end {
                return Err(PodError::NotReady {
                    name: self.name.clone(),
                    addr: self.addr,
                    secs: READY_DEADLINE.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn last_log_line(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .last()
            .unwrap_or("(no output)")
            .trim()
            .to_owned()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGTERM, then wait for a graceful exit up to `deadline`, then SIGKILL.
    pub async fn stop(mut self, deadline: Duration) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if tokio::time::timeout(deadline, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    /// SIGKILL (as `crictl stop --timeout 0`): the server dies without draining, its connections
    /// reset. Returns once it has exited.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// Spawns the server process of a pod, its stderr into `log` (appended to on a restart).
fn spawn(
    bin: &Path,
    name: &str,
    version: &str,
    addr: SocketAddr,
    env: &[(String, String)],
    log: &Path,
    append: bool,
) -> Result<Child, PodError> {
    let spawn_error = |source| PodError::Spawn {
        name: name.to_owned(),
        bin: bin.display().to_string(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(log)
        .map_err(spawn_error)?;
    let mut cmd = tokio::process::Command::new(bin);
    cmd.env_clear()
        .env("POD_NAME", name)
        .env("VERSION", version)
        .env("LISTEN_ADDR", addr.to_string())
        .env("METRICS_ADDR", SocketAddr::new(addr.ip(), 9090).to_string())
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .kill_on_drop(true);
    cmd.spawn().map_err(spawn_error)
}
