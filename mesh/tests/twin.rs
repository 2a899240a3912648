//! The twin with real processes: server pods, the client, our DNS, kube-proxy's virtual IPs and a
//! real Envoy sidecar fed by our control plane.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use mesh::{
    gateway,
    twin::{Mesh, ServiceMode, Twin, TwinSpec},
};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(30);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the apps (a no-op when they are up to date) and returns the directory of the binaries.
fn bins() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "hello-apps", "--bins"])
                .current_dir(root())
                .status()
                .expect("cargo build");
            assert!(status.success(), "building the apps failed");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| root().join("target"), PathBuf::from);
            target.join("debug")
        })
        .clone()
}

fn envoy() -> PathBuf {
    mesh::envoy::find(&root(), &mut |line| eprintln!("{line}"))
        .expect("envoy is needed by these tests")
}

fn spec(name: &str, versions: &[(&str, u32)], mode: ServiceMode) -> TwinSpec {
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
struct Client {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl Client {
    fn start(target: &str, args: &[&str]) -> Client {
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
    fn measure(&self, n: usize) -> Counts {
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
    fn drain(&self) {
        while self.lines.try_recv().is_ok() {}
        self.measure(1);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Default)]
struct Counts {
    ok: u64,
    errors: u64,
    by_server: BTreeMap<String, u64>,
    by_version: BTreeMap<String, u64>,
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

    fn share(&self, server: &str) -> f64 {
        self.by_server.get(server).copied().unwrap_or(0) as f64 / self.ok.max(1) as f64
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

#[test]
fn a_cluster_ip_service_pins_a_round_robin_client_to_one_pod() {
    let rt = rt();
    let twin = rt
        .block_on(Twin::start(spec(
            "clusterip",
            &[("v1", 3)],
            ServiceMode::ClusterIp,
        )))
        .unwrap();
    let client = Client::start(&twin.target(), &[]);
    let counts = client.measure(5);
    assert!(counts.ok > 0);
    assert_eq!(
        counts.by_server.len(),
        1,
        "one connection through the virtual ip, one pod: {counts:?}"
    );
    drop(client);
    rt.block_on(twin.shutdown());
}

#[test]
fn a_headless_service_balances_but_a_scale_up_goes_unnoticed() {
    let rt = rt();
    let mut twin = rt
        .block_on(Twin::start(spec(
            "headless",
            &[("v1", 3)],
            ServiceMode::Headless,
        )))
        .unwrap();
    let client = Client::start(&twin.target(), &[]);
    let before = client.measure(5);
    assert_eq!(before.by_server.len(), 3, "{before:?}");
    rt.block_on(twin.scale("v1", 5)).unwrap();
    client.drain();
    let after = client.measure(5);
    assert!(after.ok > 0);
    assert!(
        !after.by_server.contains_key("server-v1-3")
            && !after.by_server.contains_key("server-v1-4"),
        "{after:?}"
    );
    drop(client);
    rt.block_on(twin.shutdown());
}

#[test]
fn a_sidecar_balances_per_rpc_and_sends_to_new_pods_at_once() {
    let rt = rt();
    let mut twin = rt
        .block_on(Twin::start(spec(
            "sidecar",
            &[("v1", 3)],
            ServiceMode::ClusterIp,
        )))
        .unwrap();
    rt.block_on(twin.set_mesh(Mesh::Sidecar)).unwrap();
    let client = Client::start(&twin.target(), &[]);
    let before = client.measure(5);
    assert_eq!(before.errors, 0, "{before:?}");
    for i in 0..3 {
        let share = before.share(&format!("server-v1-{i}"));
        assert!(
            (0.2..0.47).contains(&share),
            "pod {i} got {share:.2}: {before:?}"
        );
    }
    let pid = twin.sidecar().unwrap().pid();
    rt.block_on(twin.scale("v1", 5)).unwrap();
    client.drain();
    let after = client.measure(5);
    assert_eq!(
        after.by_server.len(),
        5,
        "new pods get traffic without the client reconnecting: {after:?}"
    );
    assert_eq!(
        twin.sidecar().unwrap().pid(),
        pid,
        "the sidecar was not restarted"
    );
    drop(client);
    rt.block_on(twin.shutdown());
}

#[test]
fn httproute_weights_pushed_over_xds_split_traffic_without_a_restart() {
    let rt = rt();
    let mut twin = rt
        .block_on(Twin::start(spec(
            "weights",
            &[("v1", 2), ("v2", 2)],
            ServiceMode::ClusterIp,
        )))
        .unwrap();
    rt.block_on(twin.set_mesh(Mesh::Sidecar)).unwrap();
    let mut routes = gateway::load(&root().join("gateway/httproute.yaml")).unwrap();
    rt.block_on(twin.set_routes(routes.clone())).unwrap();
    let client = Client::start(&twin.target(), &[]);
    let all_v1 = client.measure(4);
    assert_eq!(all_v1.by_version.get("v2"), None, "100/0: {all_v1:?}");
    let pid = twin.sidecar().unwrap().pid();
    for r in &mut routes {
        gateway::set_weights(r, &[("server-v1", 0), ("server-v2", 100)]).unwrap();
    }
    rt.block_on(twin.set_routes(routes)).unwrap();
    client.drain();
    let all_v2 = client.measure(4);
    assert_eq!(all_v2.by_version.get("v1"), None, "0/100: {all_v2:?}");
    assert!(all_v2.ok > 0 && all_v2.errors == 0, "{all_v2:?}");
    assert_eq!(twin.sidecar().unwrap().pid(), pid);
    drop(client);
    rt.block_on(twin.shutdown());
}

#[test]
fn grpcroute_sends_each_method_and_the_canary_header_where_the_route_says() {
    let rt = rt();
    let mut twin = rt
        .block_on(Twin::start(spec(
            "grpcroute",
            &[("v1", 1), ("v2", 1)],
            ServiceMode::ClusterIp,
        )))
        .unwrap();
    rt.block_on(twin.set_mesh(Mesh::Sidecar)).unwrap();
    let routes = gateway::load(&root().join("gateway/grpcroute.yaml")).unwrap();
    rt.block_on(twin.set_routes(routes)).unwrap();
    let target = twin.target();
    for (args, version) in [
        (&["--method", "SayHello"][..], "v1"),
        (&["--method", "SayHelloAgain"][..], "v2"),
        (
            &["--method", "SayHello", "--header", "x-canary=true"][..],
            "v2",
        ),
    ] {
        let client = Client::start(&target, args);
        let counts = client.measure(3);
        assert!(counts.ok > 0, "{args:?}: {counts:?}");
        assert_eq!(
            counts.by_version.keys().collect::<Vec<_>>(),
            vec![version],
            "{args:?}: {counts:?}"
        );
    }
    rt.block_on(twin.shutdown());
}

#[derive(Debug, Default)]
struct Errors(BTreeMap<String, u64>);

impl Client {
    /// Errors by code over the next `n` summaries.
    fn errors(&self, n: usize) -> (u64, Errors) {
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

fn routes(yaml: &str) -> Vec<gateway::RouteObject> {
    gateway::parse(yaml, "test").unwrap()
}

#[test]
fn a_request_no_rule_matches_gets_unimplemented() {
    let rt = rt();
    let mut twin = rt
        .block_on(Twin::start(spec(
            "nomatch",
            &[("v1", 1)],
            ServiceMode::ClusterIp,
        )))
        .unwrap();
    rt.block_on(twin.set_mesh(Mesh::Sidecar)).unwrap();
    let only_again = "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: again}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: server}]\n  rules:\n  - matches: [{method: {service: hello.v1.Greeter, method: SayHelloAgain}}]\n    backendRefs: [{name: server-v1, port: 50051}]\n";
    rt.block_on(twin.set_routes(routes(only_again))).unwrap();
    let client = Client::start(&twin.target(), &["--method", "SayHello"]);
    let (ok, errors) = client.errors(3);
    assert_eq!(ok, 0, "{errors:?}");
    assert!(
        errors.0.get("Unimplemented").is_some_and(|n| *n > 0),
        "{errors:?}"
    );
    assert_eq!(errors.0.len(), 1, "{errors:?}");
    drop(client);
    rt.block_on(twin.shutdown());
}

/// Istio keeps a backendRef to a Service that does not exist and answers its share with HTTP 500,
/// which a gRPC client reads as UNKNOWN.
#[test]
fn the_share_aimed_at_a_missing_service_gets_unknown_and_a_warning() {
    let rt = rt();
    let mut twin = rt
        .block_on(Twin::start(spec(
            "missing",
            &[("v1", 1)],
            ServiceMode::ClusterIp,
        )))
        .unwrap();
    rt.block_on(twin.set_mesh(Mesh::Sidecar)).unwrap();
    let half_missing = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: half}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: server}]\n  rules:\n  - backendRefs:\n    - {name: server-v1, port: 50051, weight: 50}\n    - {name: server-v9, port: 50051, weight: 50}\n";
    let warnings = rt.block_on(twin.set_routes(routes(half_missing))).unwrap();
    assert!(
        warnings.iter().any(|w| w.to_string().contains("server-v9")),
        "{warnings:?}"
    );
    let client = Client::start(&twin.target(), &[]);
    let (ok, errors) = client.errors(6);
    let failed = errors.0.get("Unknown").copied().unwrap_or(0);
    let share = failed as f64 / (ok + failed) as f64;
    assert!(
        (0.35..0.65).contains(&share),
        "about half fails: ok {ok}, {errors:?}"
    );
    assert_eq!(errors.0.len(), 1, "{errors:?}");
    drop(client);
    rt.block_on(twin.shutdown());
}

#[test]
fn an_invalid_route_is_refused_and_the_routes_in_force_stay() {
    let rt = rt();
    let mut twin = rt
        .block_on(Twin::start(spec(
            "invalid",
            &[("v1", 1), ("v2", 1)],
            ServiceMode::ClusterIp,
        )))
        .unwrap();
    rt.block_on(twin.set_mesh(Mesh::Sidecar)).unwrap();
    rt.block_on(twin.set_routes(gateway::load(&root().join("gateway/httproute.yaml")).unwrap()))
        .unwrap();
    let before = twin.control_plane().snapshot("sidecar").version;
    let dup = format!(
        "{}\n---\n{}",
        std::fs::read_to_string(root().join("gateway/httproute.yaml")).unwrap(),
        std::fs::read_to_string(root().join("gateway/httproute.yaml")).unwrap()
    );
    assert!(
        gateway::parse(&dup, "dup.yaml").is_err(),
        "a duplicate is refused at load"
    );
    let mut objects = gateway::load(&root().join("gateway/httproute.yaml")).unwrap();
    objects.push(objects[0].clone());
    let err = rt.block_on(twin.set_routes(objects)).unwrap_err();
    assert!(err.to_string().contains("defined twice"), "{err}");
    assert_eq!(
        twin.control_plane().snapshot("sidecar").version,
        before,
        "nothing was pushed"
    );
    rt.block_on(twin.shutdown());
}
