//! The grpcio peers as the cases use them: a server that says when it listens and, once stopped,
//! what it was sent; client commands that run to completion and print one JSON document.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::ChildStdout,
    sync::mpsc,
    time::Duration,
};

use serde::Deserialize;

use super::python::Python;
use crate::common::{DEADLINE, Proc};

/// A grpcio server of the Hello API (`peer.py serve`).
pub struct PyServer {
    proc: Proc,
    lines: mpsc::Receiver<String>,
    pub name: String,
}

/// What a grpcio server was sent, as it says once stopped.
#[derive(Debug, Deserialize)]
pub struct Served {
    pub calls: BTreeMap<String, u64>,
    pub metadata: BTreeMap<String, u64>,
}

fn lines_of(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl PyServer {
    /// Starts a grpcio server named `name` at `addr`, with `extra` flags (`--max-age-ms`), and
    /// waits until it listens.
    pub fn start(addr: SocketAddr, name: &str, extra: &[&str]) -> PyServer {
        let addr = addr.to_string();
        let mut args = vec!["serve", "--addr", &addr, "--name", name];
        args.extend_from_slice(extra);
        let mut proc = Proc::spawn(Python::get().peer(&args));
        let lines = lines_of(proc.child.stdout.take().expect("stdout"));
        let first = lines.recv_timeout(DEADLINE).unwrap_or_else(|_| {
            panic!(
                "grpcio server {name} did not listen within {DEADLINE:?}: {}",
                proc.stderr()
            )
        });
        assert!(first.contains("\"listening\""), "{name}: {first}");
        PyServer {
            proc,
            lines,
            name: name.to_owned(),
        }
    }

    /// Stops it with SIGTERM (grpcio's graceful stop) and returns what it was sent.
    pub fn stop(mut self) -> Served {
        self.proc.signal("-TERM");
        let status = self.proc.wait(DEADLINE);
        assert!(
            status.success(),
            "{}: {status}: {}",
            self.name,
            self.proc.stderr()
        );
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("{} printed nothing when it stopped", self.name));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    /// Kills it at once (SIGKILL): connections close with no GOAWAY.
    pub fn kill(mut self) {
        self.proc.signal("-KILL");
        self.proc.wait(DEADLINE);
    }
}

/// What a grpcio client command printed.
#[derive(Debug, Deserialize)]
pub struct Called {
    pub sent: u64,
    pub codes: BTreeMap<String, u64>,
    pub by_server: BTreeMap<String, u64>,
    pub replies: Vec<Reply>,
}

#[derive(Debug, Deserialize, PartialEq)]
pub struct Reply {
    pub message: String,
    pub server_id: String,
    pub server_version: String,
    pub server_addr: String,
}

impl Called {
    /// Calls that ended with `code`.
    pub fn count(&self, code: &str) -> u64 {
        self.codes.get(code).copied().unwrap_or(0)
    }
}

/// A grpcio client command running in the background.
pub struct PyClient {
    proc: Proc,
    lines: mpsc::Receiver<String>,
}

impl PyClient {
    /// Starts `peer.py <args>`.
    pub fn start(args: &[&str]) -> PyClient {
        let mut proc = Proc::spawn(Python::get().peer(args));
        let lines = lines_of(proc.child.stdout.take().expect("stdout"));
        PyClient { proc, lines }
    }

    /// The next JSON line it prints, within the deadline.
    pub fn next<T: for<'de> Deserialize<'de>>(&self) -> T {
        let line = self.lines.recv_timeout(DEADLINE).unwrap_or_else(|_| {
            panic!(
                "the grpcio client printed nothing within {DEADLINE:?}: {}",
                self.proc.stderr()
            )
        });
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    /// Waits for it to exit successfully and returns its one document.
    pub fn finish<T: for<'de> Deserialize<'de>>(mut self) -> T {
        let status = self.proc.wait(Duration::from_secs(60));
        assert!(
            status.success(),
            "grpcio client: {status}: {}",
            self.proc.stderr()
        );
        self.next()
    }
}

/// Runs `peer.py <args>` to completion and returns its document.
pub fn run<T: for<'de> Deserialize<'de>>(args: &[&str]) -> T {
    PyClient::start(args).finish()
}
