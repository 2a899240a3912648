//! The real Envoy: found or installed into the project's `.tools/`, started with static
//! bootstraps on 127.0.0.1, proxying to a small HTTP server of the test, and validated.
//!
//! These tests need Envoy. They fail, never skip, when it can be neither found nor installed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::ffi::OsString;
use std::fs;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::HOST;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use mesh::envoy::{
    self, BIN_IN_PACKAGE, ENVOY_BIN_VAR, ENVOY_SERIES, ENVOY_VERSION, Envoy, EnvoyConfig,
    EnvoyError,
};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, sleep, timeout};

/// Longer than Envoy's own start-up deadline: a test fails on its own assertions rather than on
/// this.
const WAIT: Duration = Duration::from_secs(60);

/// How often a condition is looked at while waiting for it.
const POLL: Duration = Duration::from_millis(20);

async fn within<F: Future>(future: F) -> F::Output {
    timeout(WAIT, future).await.expect("timed out")
}

/// Waits until `condition` holds, failing the test with `what` after [`WAIT`].
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        sleep(POLL).await;
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the mesh crate lives in the project root")
        .to_path_buf()
}

/// The Envoy binary, found (honouring the real `ENVOY_BIN` and `PATH`) or installed once for all
/// the tests of this binary.
fn envoy_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        envoy::find(&project_root(), &mut |line| eprintln!("{line}"))
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

/// A fresh, empty folder for one test, under cargo's temporary folder for integration tests.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("envoy-tests")
        .join(name);
    match fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("cannot empty {}: {e}", dir.display()),
    }
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// An environment with only the given variables.
fn env_of(vars: &[(&str, OsString)]) -> impl Fn(&str) -> Option<OsString> + use<> {
    let vars: HashMap<String, OsString> = vars
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect();
    move |name| vars.get(name).cloned()
}

/// A port that was free a moment ago: Envoy needs to be told its listener's port up front.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(node_id: &str, bootstrap: Value, work_dir: &Path) -> EnvoyConfig {
    EnvoyConfig {
        node_id: node_id.to_owned(),
        cluster: "twin".to_owned(),
        bootstrap,
        work_dir: work_dir.to_path_buf(),
        base_id: None,
    }
}

async fn start(config: &EnvoyConfig) -> Envoy {
    within(envoy::start(envoy_bin(), config))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A bootstrap with one cluster and no listener.
fn minimal_bootstrap() -> Value {
    json!({
        "static_resources": {
            "clusters": [{
                "name": "nowhere",
                "type": "STATIC",
                "connect_timeout": "1s",
            }],
        },
    })
}

/// A bootstrap with one HTTP listener on 127.0.0.1:`port` routing everything to `upstream`.
fn proxy_bootstrap(port: u16, upstream: SocketAddr) -> Value {
    json!({
        "static_resources": {
            "listeners": [{
                "name": "ingress",
                "address": { "socket_address": { "address": "127.0.0.1", "port_value": port } },
                "filter_chains": [{
                    "filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": "ingress",
                            "route_config": {
                                "name": "local",
                                "virtual_hosts": [{
                                    "name": "all",
                                    "domains": ["*"],
                                    "routes": [{
                                        "match": { "prefix": "/" },
                                        "route": { "cluster": "upstream" },
                                    }],
                                }],
                            },
                            "http_filters": [{
                                "name": "envoy.filters.http.router",
                                "typed_config": {
                                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                                },
                            }],
                        },
                    }],
                }],
            }],
            "clusters": [{
                "name": "upstream",
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {
                    "cluster_name": "upstream",
                    "endpoints": [{
                        "lb_endpoints": [{
                            "endpoint": {
                                "address": {
                                    "socket_address": {
                                        "address": upstream.ip().to_string(),
                                        "port_value": upstream.port(),
                                    },
                                },
                            },
                        }],
                    }],
                },
            }],
        },
    })
}

/// A small HTTP/1.1 server that answers every request with `hello from upstream`, tells in an
/// `x-seen-request-id` header which `x-request-id` it got (Envoy adds one), and counts requests.
struct Upstream {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let seen = request
                            .headers()
                            .get("x-request-id")
                            .and_then(|value| value.to_str().ok())
                            .unwrap_or("none")
                            .to_owned();
                        async move {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .header("x-seen-request-id", seen)
                                    .body(Full::new(Bytes::from_static(b"hello from upstream")))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `GET path` through the listener at `addr`: the response's headers and body. Connecting is
/// retried until [`WAIT`] runs out.
async fn get_through(addr: SocketAddr, path: &str) -> (hyper::HeaderMap, String) {
    let deadline = Instant::now() + WAIT;
    let stream = loop {
        match TcpStream::connect(addr).await {
            Ok(stream) => break stream,
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot connect to {addr}: {e}");
                sleep(POLL).await;
            }
        }
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let request = Request::get(path)
        .header(HOST, "server.default.svc.cluster.local")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = within(sender.send_request(request)).await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers().clone();
    let body = within(response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    connection.abort();
    (headers, String::from_utf8(body.to_vec()).unwrap())
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Writes an executable file. Another test's child process may briefly hold it open (it forked
/// while the file was being written), and running it then fails with `ETXTBSY`: callers retry.
fn write_executable(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn is_text_file_busy(error: &EnvoyError) -> bool {
    matches!(error, EnvoyError::VersionCheck { source, .. }
        if source.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32))
}

/// [`envoy::find_with`], retried while the binary is busy being written (see
/// [`write_executable`]); also returns the progress lines.
async fn find_retrying(
    env: &dyn Fn(&str) -> Option<OsString>,
) -> (Result<PathBuf, EnvoyError>, Vec<String>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut lines = Vec::new();
        let result = envoy::find_with(&project_root(), env, &mut |line| {
            lines.push(line.to_owned())
        });
        match result {
            Err(e) if is_text_file_busy(&e) && Instant::now() < deadline => sleep(POLL).await,
            result => return (result, lines),
        }
    }
}

#[tokio::test]
async fn find_installs_envoy_into_the_project_tools_folder_when_it_is_nowhere_else() {
    let env = env_of(&[("PATH", OsString::new())]);
    let mut lines = Vec::new();
    let path = envoy::find_with(&project_root(), &env, &mut |line| {
        eprintln!("{line}");
        lines.push(line.to_owned());
    })
    .unwrap_or_else(|e| panic!("{e}"));

    let expected = project_root()
        .join(".tools")
        .join(format!("envoy-{ENVOY_VERSION}"))
        .join(BIN_IN_PACKAGE);
    assert_eq!(path, expected);
    let version = envoy::version(&path).unwrap();
    assert!(
        version.starts_with(&format!("{ENVOY_SERIES}.")),
        "{version}"
    );
    assert!(
        lines.last().is_some_and(|line| line.contains(&version)),
        "{lines:?}"
    );
    let leftovers: Vec<_> = fs::read_dir(project_root().join(".tools"))
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name())
        .filter(|name| name.to_string_lossy().contains(".partial-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "partial installs left behind: {leftovers:?}"
    );
}

#[tokio::test]
async fn find_prefers_the_binary_named_by_envoy_bin() {
    let dir = scratch("find-envoy-bin");
    let link = dir.join("my-envoy");
    symlink(envoy_bin(), &link).unwrap();
    let env = env_of(&[(ENVOY_BIN_VAR, link.clone().into_os_string())]);

    let (result, lines) = find_retrying(&env).await;

    assert_eq!(result.unwrap(), link);
    assert!(
        !lines.iter().any(|line| line.contains("warning")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn find_fails_naming_envoy_bin_when_it_names_no_file() {
    let missing = scratch("find-missing").join("no-such-envoy");
    let env = env_of(&[(ENVOY_BIN_VAR, missing.clone().into_os_string())]);

    let error = envoy::find_with(&project_root(), &env, &mut |_| {}).unwrap_err();

    assert!(matches!(error, EnvoyError::BinMissing { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("ENVOY_BIN"), "{message}");
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
}

#[tokio::test]
async fn find_fails_naming_envoy_bin_when_it_names_a_file_that_cannot_run() {
    let file = scratch("find-not-executable").join("envoy");
    fs::write(&file, "not a program").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let env = env_of(&[(ENVOY_BIN_VAR, file.clone().into_os_string())]);

    let error = envoy::find_with(&project_root(), &env, &mut |_| {}).unwrap_err();

    assert!(
        matches!(error, EnvoyError::BinNotExecutable { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("ENVOY_BIN"), "{message}");
    assert!(message.contains(&file.display().to_string()), "{message}");
}

#[tokio::test]
async fn find_uses_envoy_on_path_before_the_tools_folder() {
    let dir = scratch("find-on-path");
    symlink(envoy_bin(), dir.join("envoy")).unwrap();
    let mut path = OsString::from("/nonexistent-folder:");
    path.push(dir.as_os_str());
    let env = env_of(&[("PATH", path)]);

    let (result, _) = find_retrying(&env).await;

    assert_eq!(result.unwrap(), dir.join("envoy"));
}

#[tokio::test]
async fn find_only_warns_about_another_version_named_by_envoy_bin() {
    let fake = scratch("find-other-version-explicit").join("envoy");
    write_executable(
        &fake,
        "#!/bin/sh\necho 'envoy  version: 0000/1.39.2/Clean/RELEASE/BoringSSL'\n",
    );
    let env = env_of(&[(ENVOY_BIN_VAR, fake.clone().into_os_string())]);

    let (result, lines) = find_retrying(&env).await;

    assert_eq!(result.unwrap(), fake);
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("warning") && line.contains("1.39.2")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn find_rejects_another_version_found_on_path() {
    let dir = scratch("find-other-version-on-path");
    write_executable(
        &dir.join("envoy"),
        "#!/bin/sh\necho 'envoy  version: 0000/1.39.2/Clean/RELEASE/BoringSSL'\n",
    );
    let env = env_of(&[("PATH", dir.clone().into_os_string())]);

    let (result, _) = find_retrying(&env).await;

    let error = result.unwrap_err();
    assert!(
        matches!(error, EnvoyError::WrongVersion { ref found, .. } if found == "1.39.2"),
        "{error:?}"
    );
    assert!(error.to_string().contains("ENVOY_BIN"), "{error}");
}

#[tokio::test]
async fn envoy_proxies_http_from_a_static_listener_to_an_upstream() {
    let upstream = Upstream::start().await;
    let port = free_port();
    let dir = scratch("proxy");
    let envoy = start(&config("proxy", proxy_bootstrap(port, upstream.addr), &dir)).await;
    let listener = SocketAddr::from(([127, 0, 0, 1], port));

    for _ in 0..3 {
        let (headers, body) = get_through(listener, "/hello").await;
        assert_eq!(body, "hello from upstream");
        // Envoy adds these two: one on the way up, one on the way back
        let seen = headers.get("x-seen-request-id").unwrap().to_str().unwrap();
        assert_ne!(seen, "none", "the upstream got no x-request-id from envoy");
        assert!(
            headers.contains_key("x-envoy-upstream-service-time"),
            "{headers:?}"
        );
    }

    assert_eq!(upstream.requests.load(Ordering::SeqCst), 3);
    let stats = within(envoy.stats()).await.unwrap();
    assert_eq!(stats.get("cluster.upstream.upstream_rq_total"), Some(&3));
    assert_eq!(stats.get("http.ingress.downstream_rq_total"), Some(&3));
}

#[tokio::test]
async fn admin_reports_ready_and_dumps_the_configuration() {
    let dir = scratch("admin");
    let envoy = start(&config("admin-node", minimal_bootstrap(), &dir)).await;

    assert_eq!(envoy.admin_addr().ip().to_string(), "127.0.0.1");
    assert_ne!(envoy.admin_addr().port(), 0);
    let ready = within(envoy.admin_get("/ready")).await.unwrap();
    assert_eq!(ready.trim(), "LIVE");

    let dump = within(envoy.config_dump()).await.unwrap();
    let configs = dump["configs"].as_array().unwrap();
    let bootstrap = configs
        .iter()
        .find(|config| config["@type"] == "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump")
        .unwrap_or_else(|| panic!("no bootstrap in {dump}"));
    assert_eq!(bootstrap["bootstrap"]["node"]["id"], "admin-node");
    assert_eq!(bootstrap["bootstrap"]["node"]["cluster"], "twin");
    let clusters = configs
        .iter()
        .find(|config| config["@type"] == "type.googleapis.com/envoy.admin.v3.ClustersConfigDump")
        .unwrap_or_else(|| panic!("no clusters in {dump}"));
    assert!(clusters.to_string().contains("\"nowhere\""), "{clusters}");

    let error = within(envoy.admin_get("/no-such-admin-page"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, EnvoyError::AdminStatus { status: 404, .. }),
        "{error:?}"
    );
    assert!(envoy.log_path().starts_with(&dir));
    assert!(envoy.log_path().exists());
}

/// Istio's sidecar runs two workers by default (its CPU limit of 2000m), and so does every Envoy
/// the twin starts: the same threads share the same work.
#[tokio::test]
async fn envoy_runs_the_two_worker_threads_of_an_istio_sidecar() {
    let dir = scratch("workers");
    let envoy = start(&config("workers-node", minimal_bootstrap(), &dir)).await;
    let info: Value =
        serde_json::from_str(&within(envoy.admin_get("/server_info")).await.unwrap()).unwrap();
    assert_eq!(
        info["command_line_options"]["concurrency"],
        serde_json::json!(mesh::envoy::CONCURRENCY)
    );
    assert_eq!(mesh::envoy::CONCURRENCY, 2);
}

/// pilot-agent runs Envoy with `--drain-time-s 45 --drain-strategy immediate`, and so does the twin:
/// a changed listener tells its connections at once, not over ten minutes.
#[tokio::test]
async fn envoy_drains_as_pilot_agent_runs_it_at_once_for_45_seconds() {
    let dir = scratch("drain");
    let envoy = start(&config("drain-node", minimal_bootstrap(), &dir)).await;
    let info: Value =
        serde_json::from_str(&within(envoy.admin_get("/server_info")).await.unwrap()).unwrap();
    let options = &info["command_line_options"];
    assert_eq!(options["drain_strategy"], "Immediate", "{options}");
    assert_eq!(options["drain_time"], "45s", "{options}");
}

#[tokio::test]
async fn start_refuses_a_bootstrap_that_has_its_own_admin() {
    let dir = scratch("own-admin");
    let mut bootstrap = minimal_bootstrap();
    bootstrap["admin"] =
        json!({ "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } });

    let error = envoy::start(envoy_bin(), &config("own-admin", bootstrap, &dir))
        .await
        .unwrap_err();

    assert!(matches!(error, EnvoyError::BootstrapHasAdmin), "{error:?}");
}

#[tokio::test]
async fn start_reports_the_end_of_the_log_when_envoy_exits_early() {
    let dir = scratch("exits-early");
    let bootstrap = json!({
        "static_resources": {
            "clusters": [
                { "name": "twice", "type": "STATIC", "connect_timeout": "1s" },
                { "name": "twice", "type": "STATIC", "connect_timeout": "1s" },
            ],
        },
    });

    let error = within(envoy::start(
        envoy_bin(),
        &config("exits-early", bootstrap, &dir),
    ))
    .await
    .unwrap_err();

    assert!(matches!(error, EnvoyError::Exited { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("duplicate cluster 'twice'"), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

#[tokio::test]
async fn validate_accepts_a_good_bootstrap() {
    let dir = scratch("validate-good");
    let upstream: SocketAddr = "127.0.0.1:9".parse().unwrap();

    within(envoy::validate(
        envoy_bin(),
        &proxy_bootstrap(free_port(), upstream),
        &dir,
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn validate_rejects_a_broken_bootstrap_with_envoys_message_on_one_line() {
    let dir = scratch("validate-broken");
    let bootstrap = json!({
        "static_resources": {
            "clusters": [{ "name": "bogus", "type": "NO_SUCH_TYPE" }],
        },
    });

    let error = within(envoy::validate(envoy_bin(), &bootstrap, &dir))
        .await
        .unwrap_err();

    let EnvoyError::Invalid { message } = &error else {
        panic!("{error:?}");
    };
    assert!(message.contains("NO_SUCH_TYPE"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    assert_eq!(message.trim(), message);
    assert!(!message.starts_with('['), "{message}");
}

#[tokio::test]
async fn dropping_envoy_leaves_no_process_behind() {
    let dir = scratch("drop");
    let envoy = start(&config("dropped", minimal_bootstrap(), &dir)).await;
    let pid = envoy.pid();
    assert!(process_exists(pid));

    drop(envoy);

    eventually(&format!("process {pid} is gone"), || !process_exists(pid)).await;
}

#[tokio::test]
async fn stopping_envoy_ends_its_process() {
    let dir = scratch("stop");
    let envoy = start(&config("stopped", minimal_bootstrap(), &dir)).await;
    let pid = envoy.pid();
    let admin = envoy.admin_addr();

    within(envoy.stop()).await;

    eventually(&format!("process {pid} is gone"), || !process_exists(pid)).await;
    assert!(TcpStream::connect(admin).await.is_err());
}

#[tokio::test]
async fn two_envoys_run_at_once() {
    let upstream = Upstream::start().await;
    let dir = scratch("two");
    let port_a = free_port();
    let port_b = std::iter::repeat_with(free_port)
        .find(|port| *port != port_a)
        .unwrap();
    let a = start(&config("a", proxy_bootstrap(port_a, upstream.addr), &dir)).await;
    let b = start(&config("b", proxy_bootstrap(port_b, upstream.addr), &dir)).await;

    assert_ne!(a.pid(), b.pid());
    assert_ne!(a.admin_addr(), b.admin_addr());
    assert_ne!(a.log_path(), b.log_path());
    for envoy in [&a, &b] {
        let ready = within(envoy.admin_get("/ready")).await.unwrap();
        assert_eq!(ready.trim(), "LIVE");
    }
    for port in [port_a, port_b] {
        let (_, body) = get_through(SocketAddr::from(([127, 0, 0, 1], port)), "/").await;
        assert_eq!(body, "hello from upstream");
    }
    assert_eq!(upstream.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn find_fails_in_one_line_when_envoy_is_nowhere_and_cannot_be_installed() {
    // A project whose `.tools` is a file: the install has nowhere to go.
    let root = scratch("no-install");
    fs::write(root.join(".tools"), "in the way").unwrap();
    let env = env_of(&[("PATH", OsString::new())]);

    let err = envoy::find_with(&root, &env, &mut |_| {}).unwrap_err();

    let message = err.to_string();
    assert!(
        message.starts_with("envoy not found and cannot be installed: cannot create "),
        "{message}"
    );
    assert!(message.ends_with("and set ENVOY_BIN"), "{message}");
    assert!(!message.contains('\n'), "{message}");
}
