//! What the twin's tests share: a twin spec with the apps' binaries and Envoy, a running client
//! and the counts of its summaries, and a twin with the sidecar on.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use mesh::twin::{Mesh, ServiceMode, Twin, TwinSpec};
use serde_json::Value;

use crate::common::{bins, root};

pub(super) const DEADLINE: Duration = Duration::from_secs(30);

fn envoy() -> PathBuf {
    mesh::envoy::find(&root(), &mut |line| eprintln!("{line}"))
        .expect("envoy is needed by these tests")
}

pub(super) fn spec(name: &str, versions: &[(&str, u32)], mode: ServiceMode) -> TwinSpec {
    TwinSpec {
        server_bin: bins().join("hello-server"),
        envoy_bin: Some(envoy()),
        work_dir: root()
            .join("target/tmp/twin-tests")
            .join(format!("{name}-{}", std::process::id())),
        versions: versions.iter().map(|(v, n)| (v.to_string(), *n)).collect(),
        server_env: vec![("RESPONSE_DELAY".into(), "2ms".into())],
        mode,
    }
}

/// A running `hello-client --output json`; killed when dropped.
pub(super) struct Client {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl Client {
    pub(super) fn start(target: &str, args: &[&str]) -> Client {
        let mut child = Command::new(bins().join("hello-client"))
            .env_clear()
            .env("RUST_LOG", "off")
            .args([
                target,
                "--output",
                "json",
                "--interval",
                "200ms",
                "--client-id",
                "client-0",
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the client");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx
                    .send(serde_json::from_str::<Value>(&line).expect("json line"))
                    .is_err()
                {
                    break;
                }
            }
        });
        Client { child, lines: rx }
    }

    /// Adds up the next `n` summaries.
    pub(super) fn measure(&self, n: usize) -> Counts {
        let mut counts = Counts::default();
        for _ in 0..n {
            let s = self
                .lines
                .recv_timeout(DEADLINE)
                .expect("a summary from the client");
            counts.add(&s);
        }
        counts
    }

    /// Discards what was measured so far, and the interval in progress (it straddles the change).
    pub(super) fn drain(&self) {
        while self.lines.try_recv().is_ok() {}
        self.measure(1);
    }

    /// Errors by code over the next `n` summaries.
    pub(super) fn errors(&self, n: usize) -> (u64, Errors) {
        let mut ok = 0;
        let mut errors = Errors::default();
        for _ in 0..n {
            let s = self
                .lines
                .recv_timeout(DEADLINE)
                .expect("a summary from the client");
            ok += s["ok"].as_u64().unwrap();
            for (k, v) in s["errors_by_code"].as_object().unwrap() {
                *errors.0.entry(k.clone()).or_default() += v.as_u64().unwrap();
            }
        }
        (ok, errors)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Default)]
pub(super) struct Counts {
    pub(super) ok: u64,
    pub(super) errors: u64,
    pub(super) by_server: BTreeMap<String, u64>,
    pub(super) by_version: BTreeMap<String, u64>,
}

impl Counts {
    fn add(&mut self, s: &Value) {
        self.ok += s["ok"].as_u64().unwrap();
        self.errors += s["errors"].as_u64().unwrap();
        for (key, map) in [
            ("by_server", &mut self.by_server),
            ("by_version", &mut self.by_version),
        ] {
            for (k, v) in s[key].as_object().unwrap() {
                *map.entry(k.clone()).or_default() += v.as_u64().unwrap();
            }
        }
    }

    pub(super) fn share(&self, server: &str) -> f64 {
        self.by_server.get(server).copied().unwrap_or(0) as f64 / self.ok.max(1) as f64
    }
}

#[derive(Debug, Default)]
pub(super) struct Errors(pub(super) BTreeMap<String, u64>);

pub(super) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// Everything the client reported so far and the interval in progress.
pub(super) fn everything_so_far(client: &Client) -> Counts {
    let mut counts = Counts::default();
    while let Ok(s) = client.lines.try_recv() {
        counts.add(&s);
    }
    counts.add(&client.lines.recv_timeout(DEADLINE).unwrap());
    counts
}

/// Starts a twin with `server` exposed as `mode` and the xDS sidecar on.
pub(super) fn meshed(
    rt: &tokio::runtime::Runtime,
    name: &str,
    pods: u32,
    mode: ServiceMode,
) -> Twin {
    let mut twin = rt
        .block_on(Twin::start(spec(name, &[("v1", pods)], mode)))
        .unwrap();
    rt.block_on(twin.set_mesh(Mesh::Sidecar)).unwrap();
    twin
}

pub(super) fn assert_balanced(counts: &Counts, pods: u32) {
    assert_eq!(counts.errors, 0, "{counts:?}");
    assert_eq!(counts.by_server.len(), pods as usize, "{counts:?}");
    let even = 1.0 / f64::from(pods);
    for server in counts.by_server.keys() {
        let share = counts.share(server);
        assert!(
            (even * 0.6..even * 1.4).contains(&share),
            "{server} got {share:.2}: {counts:?}"
        );
    }
}
