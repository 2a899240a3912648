//! Helpers for the apps' tests: real server and client processes on loopback addresses.

#![allow(dead_code)] // each test binary uses a different part

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{IpAddr, SocketAddr, TcpStream},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use hello_apps::client::Summary;

pub const SERVER: &str = env!("CARGO_BIN_EXE_hello-server");
pub const CLIENT: &str = env!("CARGO_BIN_EXE_hello-client");
pub const PORT: u16 = 50051;
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A /24 of loopback addresses of our own (the twin's: 127.X.Y.0, X and Y random), so that tests
/// running in parallel never share an address.
pub struct Block(mesh::twin::Block);

impl Block {
    pub fn random() -> Block {
        Block(mesh::twin::Block::random())
    }

    pub fn ip(&self, host: u8) -> IpAddr {
        self.0.ip(host)
    }

    pub fn addr(&self, host: u8) -> SocketAddr {
        SocketAddr::new(self.ip(host), PORT)
    }
}

/// Polls `cond` until it holds; panics with `what` after `deadline`.
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !cond() {
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process that is killed when dropped, with its stderr kept for diagnostics.
pub struct Proc {
    pub child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Proc { child, stderr }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {sig} failed");
    }

    /// Waits for the process to exit, up to `deadline`.
    pub fn wait(&mut self, deadline: Duration) -> ExitStatus {
        let end = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < end,
                "process did not exit within {deadline:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `hello-server` at `addr` named `id`, with extra environment, and waits until it accepts
/// connections.
pub fn server(addr: SocketAddr, id: &str, env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(SERVER);
    cmd.env_clear()
        .env("RUST_LOG", "warn")
        .env("LISTEN_ADDR", addr.to_string())
        .env("POD_NAME", id)
        .env("METRICS_ADDR", SocketAddr::new(addr.ip(), 9090).to_string());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut proc = Proc::spawn(cmd);
    wait_until(&format!("{id} listens on {addr}"), DEADLINE, || {
        assert!(proc.is_running(), "{id} exited early: {}", proc.stderr());
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    });
    proc
}

/// A `hello-client` whose JSON lines are parsed as they come.
pub struct Client {
    pub proc: Proc,
    summaries: mpsc::Receiver<Summary>,
}

impl Client {
    /// Starts `hello-client --output json` with `args`.
    pub fn start(args: &[&str]) -> Client {
        let mut cmd = Command::new(CLIENT);
        cmd.env_clear()
            .env("RUST_LOG", "warn")
            .arg("--output")
            .arg("json")
            .args(args)
            .stdout(Stdio::piped());
        let mut proc = Proc::spawn(cmd);
        let stdout = proc.child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let summary: Summary = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("bad json line {line:?}: {e}"));
                if tx.send(summary).is_err() {
                    break;
                }
            }
        });
        Client {
            proc,
            summaries: rx,
        }
    }

    /// The next summary line, within the deadline.
    pub fn next(&self) -> Summary {
        self.summaries.recv_timeout(DEADLINE).unwrap_or_else(|_| {
            panic!(
                "no summary from the client within {DEADLINE:?}; stderr:\n{}",
                self.proc.stderr()
            )
        })
    }

    /// Reads summaries until one satisfies `cond`.
    pub fn until(&self, what: &str, mut cond: impl FnMut(&Summary) -> bool) -> Summary {
        let end = Instant::now() + DEADLINE;
        loop {
            let s = self.next();
            if cond(&s) {
                return s;
            }
            assert!(
                Instant::now() < end,
                "timed out waiting until {what}; last summary: {s:?}"
            );
        }
    }

    /// Runs to completion and returns the final summary.
    pub fn finish(self) -> Summary {
        self.finish_all().pop().expect("a final summary")
    }

    /// Runs to completion and returns every summary not read yet, the final one last.
    pub fn finish_all(mut self) -> Vec<Summary> {
        let status = self.proc.wait(Duration::from_secs(60));
        assert!(
            status.success(),
            "client failed: {status}; stderr:\n{}",
            self.proc.stderr()
        );
        let mut all = Vec::new();
        while let Ok(s) = self.summaries.recv_timeout(Duration::from_secs(5)) {
            all.push(s);
        }
        assert_eq!(
            all.last().map(|s| s.kind),
            Some(hello_apps::client::SummaryKind::Final),
            "the last summary is the final one: {all:?}"
        );
        all
    }
}

/// Runs a binary to completion with `args` and `env`; returns (exit code, stdout, stderr).
pub fn run(bin: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(bin);
    cmd.env_clear().args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("{bin} {args:?} did not exit within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code().unwrap_or(-1), out, err)
}

/// `GET /metrics` from a server's metrics address.
pub fn metrics(addr: SocketAddr) -> String {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect to metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    body
}

/// The value of one sample line in the Prometheus text, e.g. `hello_rpcs_in_flight`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
