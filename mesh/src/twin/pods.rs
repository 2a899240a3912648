//! Server "pods": `hello-server` processes, each on its own loopback address, named like pods.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    time::Duration,
};

use crate::process::{self, Output, Process, ProcessError, StderrTail};

/// How long a pod may take to accept connections.
pub const READY_DEADLINE: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// The pod's process could not be started, watched or stopped.
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("{name} exited ({status}) before listening on {addr}{tail}")]
    Exited {
        name: String,
        addr: SocketAddr,
        status: ExitStatus,
        tail: StderrTail,
    },
    #[error(
        "{name} did not listen on {addr} within {limit}{tail}",
        limit = humantime::format_duration(*.limit)
    )]
    NotReady {
        name: String,
        addr: SocketAddr,
        limit: Duration,
        tail: StderrTail,
    },
}

/// A running server pod; killed when dropped.
pub struct Pod {
    pub name: String,
    pub version: String,
    pub addr: SocketAddr,
    /// How often its container was started again after it died (the pod's restart count).
    pub restarts: u32,
    process: Process,
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
        let process = spawn(
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
            process,
            log,
            bin: spec.bin.to_path_buf(),
            env: spec.env,
        };
        wait_listening(&mut pod.process, pod.addr, READY_DEADLINE).await?;
        Ok(pod)
    }

    /// Starts the pod's container again, as the kubelet does after it died: same name, same
    /// address, its log continued; waits until it accepts connections.
    pub async fn restart(&mut self) -> Result<(), PodError> {
        // Gone before the new one binds its address.
        self.process.kill();
        self.process = spawn(
            &self.bin,
            &self.name,
            &self.version,
            self.addr,
            &self.env,
            &self.log,
            true,
        )?;
        self.restarts += 1;
        wait_listening(&mut self.process, self.addr, READY_DEADLINE).await
    }

    /// The process id, while its process has not been seen to exit.
    pub fn pid(&self) -> Option<u32> {
        self.process
            .exit_status()
            .is_none()
            .then(|| self.process.pid())
    }

    /// SIGTERM, then up to `grace` to drain, then SIGKILL; fails when the server exited with a
    /// failure or had to be killed.
    pub async fn stop(mut self, grace: Duration) -> Result<(), ProcessError> {
        self.process.stop(grace).await
    }

    /// SIGKILL (as `crictl stop --timeout 0`): the server dies without draining, its connections
    /// reset. Returns once it has exited.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

/// Stops every pod at once ([`Pod::stop`]); fails naming each that exited with a failure or had
/// to be killed.
pub async fn stop_all(mut pods: Vec<Pod>, grace: Duration) -> Result<(), ProcessError> {
    process::stop_all(pods.iter_mut().map(|pod| &mut pod.process), grace).await
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
) -> Result<Process, ProcessError> {
    let mut command = Command::new(bin);
    command
        .env_clear()
        .env("POD_NAME", name)
        .env("VERSION", version)
        .env("LISTEN_ADDR", addr.to_string())
        .env("METRICS_ADDR", SocketAddr::new(addr.ip(), 9090).to_string())
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null());
    let output = Output::Log {
        path: log.to_path_buf(),
        append,
        stdout: false,
    };
    Process::spawn(name, command, output)
}

/// Waits until the process accepts TCP connections on `addr`, for at most `limit`; fails naming
/// it, with its last stderr lines, when it exits first or does not listen in time.
async fn wait_listening(
    process: &mut Process,
    addr: SocketAddr,
    limit: Duration,
) -> Result<(), PodError> {
    let probe = || async move {
        tokio::net::TcpStream::connect(addr)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    };
    process
        .wait_ready(limit, probe)
        .await
        .map_err(|error| match error {
            ProcessError::Exited { name, status, tail } => PodError::Exited {
                name,
                addr,
                status,
                tail,
            },
            ProcessError::NotReady {
                name, limit, tail, ..
            } => PodError::NotReady {
                name,
                addr,
                limit,
                tail,
            },
            other => PodError::Process(other),
        })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    /// A loopback address that nothing listens on (a port the system just handed out and took
    /// back), as a server that never comes up.
    fn unused_addr() -> SocketAddr {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.local_addr().unwrap()
    }

    fn quiet(name: &str, program: &str, args: &[&str]) -> Process {
        let mut command = Command::new(program);
        command.args(args).stdout(Stdio::null());
        Process::spawn(name, command, Output::Keep).unwrap()
    }

    #[tokio::test]
    async fn a_server_that_exits_before_listening_is_named_with_its_last_stderr_lines() {
        let mut server = quiet(
            "server-0",
            "sh",
            &["-c", "echo starting >&2; echo cannot bind >&2; exit 2"],
        );
        let addr = unused_addr();
        let err = wait_listening(&mut server, addr, READY_DEADLINE)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "server-0 exited (exit status: 2) before listening on {addr}; its last stderr lines: starting | cannot bind"
            )
        );
    }

    #[tokio::test]
    async fn a_server_that_never_listens_fails_the_wait_at_its_deadline() {
        let listening = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let mut up = quiet("server-0", "sleep", &["600"]);
        let mut down = quiet("server-1", "sleep", &["600"]);
        let limit = Duration::from_millis(300);
        wait_listening(&mut up, listening.local_addr().unwrap(), limit)
            .await
            .unwrap();
        let addr = unused_addr();
        let err = wait_listening(&mut down, addr, limit)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!("server-1 did not listen on {addr} within 300ms; it wrote nothing to stderr")
        );
    }
}
