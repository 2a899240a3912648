//! Running Envoy: [`start`], [`Envoy`], and [`validate`].

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::timeout;
use tracing::{debug, warn};

use super::{EnvoyError, admin};
use crate::process::{Output, Process, ProcessError};

/// How long [`start`] waits for Envoy to say `LIVE`.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long [`Envoy::stop`] waits after SIGTERM before it sends SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long `envoy --mode validate` may take.
const VALIDATE_TIMEOUT: Duration = Duration::from_secs(30);

/// Envoy's log level.
const LOG_LEVEL: &str = "warn";

/// Worker threads of every Envoy [`start`] runs: what an Istio 1.30 sidecar gets by default.
/// pilot-agent sets Envoy's concurrency from `ISTIO_CPU_LIMIT` (`pilot/cmd/pilot-agent/config/`
/// `config.go`: `ConstructProxyConfig`), which the injection template fills from the sidecar's
/// CPU limit, `2000m` in the default values (`manifests/charts/istio-control/istio-discovery/`
/// `values.yaml`: `global.proxy.resources.limits.cpu`).
pub const CONCURRENCY: u32 = 2;

/// How pilot-agent runs Envoy in Istio 1.30 (`pkg/envoy/proxy.go`: `args`): draining lasts the
/// proxy config's `drainDuration` (45 s by default, `pkg/config/mesh/mesh.go`), and with the
/// `immediate` strategy every connection on a draining listener or filter chain is told at once
/// (HTTP/2 GOAWAY), not gradually over the drain time as Envoy's own default does. It matters when
/// a listener changes: a waypoint's routes are inline in its listener, so new weights replace the
/// filter chain and move its connections over at their next request.
pub const DRAIN_ARGS: [&str; 4] = ["--drain-time-s", "45", "--drain-strategy", "immediate"];

/// Base ids are drawn from this range when none is given. Hot restart is disabled, so the base
/// id names no shared memory; a random one keeps Envoys apart all the same if it is ever enabled.
const BASE_IDS: std::ops::Range<u32> = 1..1_000_000;

/// How to run one Envoy.
#[derive(Debug, Clone)]
pub struct EnvoyConfig {
    /// The node id Envoy presents to the control plane (`node.id`).
    pub node_id: String,
    /// The node's cluster (`node.cluster`).
    pub cluster: String,
    /// The bootstrap without `admin`: [`start`] adds an admin listener on `127.0.0.1`, any port,
    /// and sets `node.id` and `node.cluster` from the fields above.
    pub bootstrap: Value,
    /// Where the bootstrap, the admin address file and the log are written; created if missing.
    /// Several Envoys may share it.
    pub work_dir: PathBuf,
    /// The `--base-id`; a random one when `None`.
    pub base_id: Option<u32>,
}

/// A running Envoy, killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct Envoy {
    process: Process,
    admin_addr: SocketAddr,
    log_path: PathBuf,
    bootstrap_path: PathBuf,
    base_id: u32,
}

/// Starts Envoy and waits (at most 15 s) until its admin listener answers `/ready` with `LIVE`.
///
/// Runs `bin -c <work_dir>/envoy-<node>-<base id>.json --admin-address-path <...>.admin
/// --log-level warn --concurrency 2 --base-id <base id> --disable-hot-restart`, with its stdout
/// and stderr in `<...>.log`. With an xDS bootstrap Envoy is `LIVE` only once it has its first
/// listeners and clusters (or once their initial fetch timed out).
pub async fn start(bin: &Path, config: &EnvoyConfig) -> Result<Envoy, EnvoyError> {
    let base_id = config
        .base_id
        .unwrap_or_else(|| rand::random_range(BASE_IDS));
    let bootstrap = with_admin(config)?;

    let dir = &config.work_dir;
    create_dir(dir)?;
    let stem = format!("envoy-{}-{base_id}", file_safe(&config.node_id));
    let bootstrap_path = dir.join(format!("{stem}.json"));
    let admin_path = dir.join(format!("{stem}.admin"));
    let log_path = dir.join(format!("{stem}.log"));
    match fs::remove_file(&admin_path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            return Err(EnvoyError::Write {
                path: admin_path,
                source: e,
            });
        }
        _ => {}
    }
    write_json(&bootstrap_path, &bootstrap)?;

    let mut command = Command::new(bin);
    command
        .arg("-c")
        .arg(&bootstrap_path)
        .arg("--admin-address-path")
        .arg(&admin_path)
        .args(["--log-level", LOG_LEVEL])
        .args(["--concurrency", &CONCURRENCY.to_string()])
        .args(["--base-id", &base_id.to_string()])
        .arg("--disable-hot-restart")
        .args(DRAIN_ARGS)
        .current_dir(dir);
    let output = Output::Log {
        path: log_path.clone(),
        append: false,
        stdout: true,
    };
    let name = format!("envoy {}", config.node_id);
    let mut process =
        Process::spawn(name, command, output).map_err(|e| envoy_error(e, bin, &log_path))?;
    let admin_addr = process
        .wait_ready(READY_TIMEOUT, || ready(admin_path.clone()))
        .await
        .map_err(|e| envoy_error(e, bin, &log_path))?;
    let envoy = Envoy {
        process,
        admin_addr,
        log_path,
        bootstrap_path,
        base_id,
    };
    debug!(
        pid = envoy.pid(),
        admin = %envoy.admin_addr,
        log = %envoy.log_path.display(),
        "envoy is live"
    );
    Ok(envoy)
}

impl Envoy {
    /// The address of the admin listener.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The file that holds Envoy's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The bootstrap file Envoy was started with (the given bootstrap, with `admin` and `node`).
    pub fn bootstrap_path(&self) -> &Path {
        &self.bootstrap_path
    }

    /// The `--base-id` Envoy was started with.
    pub fn base_id(&self) -> u32 {
        self.base_id
    }

    /// `GET path` (e.g. `/ready`, `/clusters?format=json`) on the admin listener: the body,
    /// or an error for a status other than 2xx.
    pub async fn admin_get(&self, path: &str) -> Result<String, EnvoyError> {
        admin::get_ok(self.admin_addr, path).await
    }

    /// `/config_dump?include_eds`: the whole configuration, endpoints included.
    pub async fn config_dump(&self) -> Result<Value, EnvoyError> {
        let path = "/config_dump?include_eds";
        let body = self.admin_get(path).await?;
        serde_json::from_str(&body).map_err(|source| EnvoyError::AdminJson {
            path: path.to_owned(),
            source,
        })
    }

    /// The counters and gauges (`/stats?format=json`) by name, e.g.
    /// `cluster.upstream.upstream_rq_total`. Histograms and text readouts are left out.
    pub async fn stats(&self) -> Result<BTreeMap<String, u64>, EnvoyError> {
        let path = "/stats?format=json";
        let body = self.admin_get(path).await?;
        let json: Value = serde_json::from_str(&body).map_err(|source| EnvoyError::AdminJson {
            path: path.to_owned(),
            source,
        })?;
        let stats = json
            .get("stats")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|stat| {
                let name = stat.get("name")?.as_str()?;
                let value = stat.get("value")?.as_u64()?;
                Some((name.to_owned(), value))
            })
            .collect();
        Ok(stats)
    }

    /// Shuts Envoy down: SIGTERM, then SIGKILL if it has not exited within 5 s; reaps it.
    pub async fn stop(mut self) {
        if let Err(error) = self.process.stop(STOP_GRACE).await {
            warn!(pid = self.pid(), %error, "envoy did not stop cleanly");
        }
    }
}

/// Envoy's readiness: its admin address file names the admin listener (the address found), and
/// `/ready` there says `LIVE`; else what was seen instead.
async fn ready(admin_path: PathBuf) -> Result<SocketAddr, String> {
    let addr: SocketAddr = fs::read_to_string(&admin_path)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| "it has not written its admin address yet".to_owned())?;
    match admin::get(addr, "/ready").await {
        Ok((status, body)) if status.is_success() && body.trim() == "LIVE" => Ok(addr),
        Ok((status, body)) => Err(format!(
            "/ready answered {} {}",
            status.as_u16(),
            body.trim()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// An error of starting Envoy, in the words of [`EnvoyError`]: the log's end when it exited
/// early, the log file when it was not ready in time.
fn envoy_error(error: ProcessError, bin: &Path, log: &Path) -> EnvoyError {
    match error {
        ProcessError::Spawn { source, .. } | ProcessError::Wait { source, .. } => {
            EnvoyError::Spawn {
                path: bin.to_path_buf(),
                source,
            }
        }
        ProcessError::Log { path, source, .. } => EnvoyError::Write { path, source },
        ProcessError::Exited { status, tail, .. } => EnvoyError::Exited {
            status,
            log: log.to_path_buf(),
            tail: if tail.lines().is_empty() {
                "(empty)".to_owned()
            } else {
                tail.lines().join(" | ")
            },
        },
        ProcessError::NotReady { limit, last, .. } => EnvoyError::NotReady {
            timeout: limit,
            last: last.unwrap_or_else(|| "no answer from its admin listener".to_owned()),
            log: log.to_path_buf(),
        },
        other => EnvoyError::Process(other),
    }
}

/// Checks a bootstrap with `envoy --mode validate`, writing it to `work_dir` first.
///
/// On failure the error is [`EnvoyError::Invalid`] with Envoy's own message, on one line. The
/// bootstrap is checked as given (an `admin` section is optional there).
pub async fn validate(bin: &Path, bootstrap: &Value, work_dir: &Path) -> Result<(), EnvoyError> {
    create_dir(work_dir)?;
    let id: u32 = rand::random_range(BASE_IDS);
    let path = work_dir.join(format!("envoy-validate-{id}.json"));
    write_json(&path, bootstrap)?;
    let run = tokio::process::Command::new(bin)
        .args(["--mode", "validate", "-c"])
        .arg(&path)
        .args(["--log-level", LOG_LEVEL, "--concurrency", "1"])
        .arg("--disable-hot-restart")
        .current_dir(work_dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match timeout(VALIDATE_TIMEOUT, run).await {
        Ok(output) => output.map_err(|source| EnvoyError::Spawn {
            path: bin.to_path_buf(),
            source,
        })?,
        Err(_) => {
            return Err(EnvoyError::ValidateTimeout {
                timeout: VALIDATE_TIMEOUT,
            });
        }
    };
    if output.status.success() {
        let _ = fs::remove_file(&path);
        return Ok(());
    }
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    Err(EnvoyError::Invalid {
        message: complaint(&text, &path)
            .unwrap_or_else(|| format!("envoy --mode validate failed ({})", output.status)),
    })
}

/// Envoy's complaint in its output, on one line: the last `critical` or `error` log line with
/// its continuation lines, without the log prefix nor the name of the bootstrap file.
fn complaint(text: &str, bootstrap: &Path) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let is_error = |line: &str| {
        line.starts_with('[') && (line.contains("][critical][") || line.contains("][error]["))
    };
    let message = match lines.iter().rposition(|line| is_error(line)) {
        Some(start) => {
            let first = strip_log_prefix(lines[start]);
            let rest = lines[start + 1..]
                .iter()
                .take_while(|line| !line.starts_with('['))
                .copied();
            std::iter::once(first)
                .chain(rest)
                .collect::<Vec<_>>()
                .join(" ")
        }
        None => lines
            .iter()
            .rev()
            .find(|line| !line.trim().is_empty())?
            .to_string(),
    };
    let prefix = format!(
        "error initializing configuration '{}': ",
        bootstrap.display()
    );
    let message = message.trim();
    let message = message.strip_prefix(&prefix).unwrap_or(message);
    Some(message.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// `[2026-01-01 00:00:00.000][12][critical][main] [source/server/server.cc:1] text` -> `text`.
fn strip_log_prefix(line: &str) -> &str {
    let mut rest = line.trim_start();
    while let Some(after) = rest.strip_prefix('[') {
        match after.find(']') {
            Some(end) => rest = after[end + 1..].trim_start(),
            None => break,
        }
    }
    rest
}

/// The bootstrap as Envoy gets it: with `node.id`, `node.cluster` and an admin listener.
fn with_admin(config: &EnvoyConfig) -> Result<Value, EnvoyError> {
    let mut bootstrap = config.bootstrap.clone();
    let Some(object) = bootstrap.as_object_mut() else {
        return Err(EnvoyError::BootstrapNotObject {
            found: json_type(&config.bootstrap),
        });
    };
    if object.contains_key("admin") {
        return Err(EnvoyError::BootstrapHasAdmin);
    }
    object.insert(
        "admin".to_owned(),
        json!({ "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } }),
    );
    let node = object
        .entry("node")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !node.is_object() {
        *node = Value::Object(serde_json::Map::new());
    }
    if let Some(node) = node.as_object_mut() {
        node.insert("id".to_owned(), Value::String(config.node_id.clone()));
        node.insert("cluster".to_owned(), Value::String(config.cluster.clone()));
    }
    Ok(bootstrap)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A node id as a file name part: other characters than `[A-Za-z0-9._-]` become `_`.
fn file_safe(name: &str) -> String {
    let safe: String = name
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() {
        "node".to_owned()
    } else {
        safe
    }
}

fn create_dir(dir: &Path) -> Result<(), EnvoyError> {
    fs::create_dir_all(dir).map_err(|source| EnvoyError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

fn write_json(path: &Path, value: &Value) -> Result<(), EnvoyError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    fs::write(path, text).map_err(|source| EnvoyError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_complaint_is_the_last_critical_line_without_prefix_nor_file() {
        let path = Path::new("/tmp/x.json");
        let text = "[2026-11-29 14:59:48.053][32515][critical][main] [source/server/config_validation/server.cc:76] error initializing configuration '/tmp/x.json': cluster manager: duplicate cluster 'x'\n";
        assert_eq!(
            complaint(text, path).as_deref(),
            Some("cluster manager: duplicate cluster 'x'")
        );
    }

    #[test]
    fn the_complaint_keeps_continuation_lines_on_one_line() {
        let text = "[t][1][warning][main] [a.cc:1] noise\n[t][1][critical][main] [b.cc:2] bad thing:\n  detail one\n  detail two\n";
        assert_eq!(
            complaint(text, Path::new("f.json")).as_deref(),
            Some("bad thing: detail one detail two")
        );
    }

    #[test]
    fn the_node_id_becomes_a_safe_file_name() {
        assert_eq!(
            file_safe("sidecar~10.0.0.1~client"),
            "sidecar_10.0.0.1_client"
        );
        assert_eq!(file_safe(""), "node");
    }

    #[test]
    fn the_bootstrap_gets_admin_and_node() {
        let config = EnvoyConfig {
            node_id: "n".to_owned(),
            cluster: "c".to_owned(),
            bootstrap: json!({ "node": { "locality": { "zone": "z" } } }),
            work_dir: PathBuf::from("."),
            base_id: None,
        };
        let bootstrap = with_admin(&config).unwrap();
        assert_eq!(bootstrap["node"]["id"], "n");
        assert_eq!(bootstrap["node"]["cluster"], "c");
        assert_eq!(bootstrap["node"]["locality"]["zone"], "z");
        assert_eq!(
            bootstrap["admin"]["address"]["socket_address"]["address"],
            "127.0.0.1"
        );
    }
}
