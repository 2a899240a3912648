//! The twin with real processes: server pods, the client, our DNS, kube-proxy's virtual IPs and a
//! real Envoy sidecar fed by our control plane.

mod common;

use common::{bins, root};

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

/// The endpoints of a cluster in the sidecar's configuration (as pushed by the control plane).
fn endpoints(cp: &mesh::xds::ControlPlane, cluster: &str) -> Vec<std::net::SocketAddr> {
    use envoy_types::pb::envoy::config::{
        core::v3::{address, socket_address::PortSpecifier},
        endpoint::v3::lb_endpoint,
    };
    let snapshot = cp.snapshot("sidecar");
    let mut out = Vec::new();
    for cla in snapshot
        .resources
        .endpoints
        .iter()
        .filter(|e| e.cluster_name == cluster)
    {
        for lb in cla.endpoints.iter().flat_map(|l| &l.lb_endpoints) {
            let Some(lb_endpoint::HostIdentifier::Endpoint(e)) = &lb.host_identifier else {
                continue;
            };
            let Some(address::Address::SocketAddress(sa)) =
                e.address.as_ref().and_then(|a| a.address.as_ref())
            else {
                continue;
            };
            let port = match sa.port_specifier {
                Some(PortSpecifier::PortValue(p)) => u16::try_from(p).unwrap(),
                _ => continue,
            };
            out.push(std::net::SocketAddr::new(sa.address.parse().unwrap(), port));
        }
    }
    out
}

/// Retries the sidecar's circuit breakers refused: Envoy's default allows 3 at once, Istio sets
/// the maximum (the translation's business); each refused retry is a failed RPC.
fn retry_overflow(rt: &tokio::runtime::Runtime, twin: &Twin) -> u64 {
    rt.block_on(twin.sidecar().unwrap().stats())
        .unwrap()
        .iter()
        .filter(|(k, _)| {
            k.starts_with("cluster.outbound|") && k.ends_with(".upstream_rq_retry_overflow")
        })
        .map(|(_, v)| v)
        .sum()
}

/// Everything the client reported so far and the interval in progress.
fn everything_so_far(client: &Client) -> Counts {
    let mut counts = Counts::default();
    while let Ok(s) = client.lines.try_recv() {
        counts.add(&s);
    }
    counts.add(&client.lines.recv_timeout(DEADLINE).unwrap());
    counts
}

/// Starts a twin with `server` exposed as `mode` and the xDS sidecar on.
fn meshed(rt: &tokio::runtime::Runtime, name: &str, pods: u32, mode: ServiceMode) -> Twin {
    let mut twin = rt
        .block_on(Twin::start(spec(name, &[("v1", pods)], mode)))
        .unwrap();
    rt.block_on(twin.set_mesh(Mesh::Sidecar)).unwrap();
    twin
}

fn assert_balanced(counts: &Counts, pods: u32) {
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

#[test]
fn a_headless_service_behind_a_sidecar_keeps_a_pick_first_client_on_one_pod() {
    let rt = rt();
    let twin = meshed(&rt, "headless-pick-first", 3, ServiceMode::Headless);
    let client = Client::start(&twin.target(), &["--lb", "pick_first"]);
    let counts = client.measure(5);
    assert!(counts.ok > 0 && counts.errors == 0, "{counts:?}");
    assert_eq!(
        counts.by_server.len(),
        1,
        "the sidecar passes each connection through to the pod the client chose: {counts:?}"
    );
    let stats = rt.block_on(twin.sidecar().unwrap().stats()).unwrap();
    let through_sidecar: u64 = stats
        .iter()
        .filter(|(k, _)| {
            k.starts_with("cluster.outbound|50051||server.") && k.ends_with(".upstream_rq_total")
        })
        .map(|(_, v)| v)
        .sum();
    assert!(
        through_sidecar > 0,
        "the requests went through the sidecar's cluster of server"
    );
    drop(client);
    rt.block_on(twin.shutdown());
}

#[test]
fn a_cluster_ip_service_behind_a_sidecar_balances_a_pick_first_client() {
    let rt = rt();
    let twin = meshed(&rt, "clusterip-pick-first", 3, ServiceMode::ClusterIp);
    let client = Client::start(&twin.target(), &["--lb", "pick_first"]);
    assert_balanced(&client.measure(5), 3);
    drop(client);
    rt.block_on(twin.shutdown());
}

#[test]
fn a_headless_service_behind_a_sidecar_follows_the_round_robin_client_s_own_spread() {
    let rt = rt();
    let mut twin = meshed(&rt, "headless-round-robin", 3, ServiceMode::Headless);
    let client = Client::start(&twin.target(), &[]);
    assert_balanced(&client.measure(5), 3);
    // The client chose its three pods when it resolved; the sidecar does not add the new ones.
    rt.block_on(twin.scale("v1", 5)).unwrap();
    client.drain();
    let after = client.measure(5);
    assert!(after.ok > 0 && after.errors == 0, "{after:?}");
    assert_eq!(after.by_server.len(), 3, "new pods get nothing: {after:?}");
    drop(client);
    rt.block_on(twin.shutdown());
}

#[test]
fn the_service_type_changes_while_the_sidecar_runs() {
    let rt = rt();
    let mut twin = meshed(&rt, "set-mode", 3, ServiceMode::Headless);
    let pid = twin.sidecar().unwrap().pid();
    let pinned = Client::start(&twin.target(), &["--lb", "pick_first"]);
    assert_eq!(pinned.measure(3).by_server.len(), 1);
    drop(pinned);
    rt.block_on(twin.set_mode(ServiceMode::ClusterIp)).unwrap();
    assert_eq!(twin.mode(), ServiceMode::ClusterIp);
    assert!(!twin.services()[0].headless);
    let listeners = |twin: &Twin| {
        twin.control_plane()
            .snapshot("sidecar")
            .resources
            .listeners
            .len()
    };
    assert_eq!(listeners(&twin), 1, "the intercepting listeners are gone");
    let balanced = Client::start(&twin.target(), &["--lb", "pick_first"]);
    assert_balanced(&balanced.measure(5), 3);
    drop(balanced);
    rt.block_on(twin.set_mode(ServiceMode::Headless)).unwrap();
    assert!(twin.services()[0].headless);
    assert!(listeners(&twin) > 1);
    let pinned = Client::start(&twin.target(), &["--lb", "pick_first"]);
    let counts = pinned.measure(3);
    assert_eq!(counts.by_server.len(), 1, "{counts:?}");
    assert_eq!(counts.errors, 0, "{counts:?}");
    assert_eq!(
        twin.sidecar().unwrap().pid(),
        pid,
        "the sidecar was not restarted"
    );
    drop(pinned);
    rt.block_on(twin.shutdown());
}

#[test]
fn a_killed_pod_restarts_in_place_and_rejoins_once_ready() {
    let rt = rt();
    let mut twin = meshed(&rt, "kill", 3, ServiceMode::ClusterIp);
    let before: BTreeMap<String, (std::net::SocketAddr, Option<u32>)> = twin
        .pods()
        .map(|p| (p.name.clone(), (p.addr, p.pid())))
        .collect();
    let cp = twin.control_plane().clone();
    let client = Client::start(&twin.target(), &[]);
    client.measure(2);
    let victim = before["server-v1-0"].0;
    let server = mesh::translate::cluster_name("server", "default", 50051);
    let in_sidecar = move || endpoints(&cp, &server).contains(&victim);
    assert!(in_sidecar(), "the pod is an endpoint before the kill");
    let started = std::time::Instant::now();
    let (killed, left) = rt.block_on(async {
        let watch = async {
            loop {
                if !in_sidecar() {
                    return Some(started.elapsed());
                }
                if started.elapsed() > DEADLINE {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::join!(twin.kill("v1"), watch)
    });
    let killed = killed.unwrap();
    assert_eq!(killed, "server-v1-0", "the oldest pod");
    let left = left.expect("the endpoint left the sidecar while the pod was down");
    assert!(
        left >= Duration::from_millis(100),
        "not before istiod's debounce: {left:?}"
    );
    assert!(in_sidecar(), "the endpoint is back once the pod is ready");
    let after: Vec<_> = twin.pods().filter(|p| p.name == killed).collect();
    assert_eq!(after.len(), 1, "the same pod, not a new one");
    assert_eq!(after[0].addr, before[&killed].0, "same address");
    assert_eq!(after[0].restarts, 1);
    assert_ne!(after[0].pid(), before[&killed].1, "a new process");
    assert_eq!(twin.pods().count(), 3);
    let through = everything_so_far(&client);
    let overflow = retry_overflow(&rt, &twin);
    assert!(
        through.errors <= 10 + overflow,
        "at most the 10 RPCs in flight on the killed pod fail; the retries cover the connect \
         failures until its endpoint leaves: {through:?}, {overflow} retries overflowed"
    );
    client.drain();
    let counts = client.measure(5);
    assert_eq!(counts.errors, 0, "{counts:?}");
    assert!(
        counts.by_server.get(&killed).is_some_and(|n| *n > 0),
        "it serves again: {counts:?}"
    );
    drop(client);
    rt.block_on(twin.shutdown());
}

#[test]
fn a_scaled_away_pod_gets_sigterm_before_istiod_pushes_its_removal() {
    let rt = rt();
    let mut twin = meshed(&rt, "scale-down-timing", 3, ServiceMode::ClusterIp);
    let removed = twin.pods().last().unwrap().addr;
    let cp = twin.control_plane().clone();
    let before = cp.snapshot("sidecar").version;
    let started = std::time::Instant::now();
    let (scaled, at_push) = rt.block_on(async {
        let watch = async {
            loop {
                if cp.snapshot("sidecar").version > before {
                    let refused = tokio::net::TcpStream::connect(removed).await.is_err();
                    return Some((started.elapsed(), refused));
                }
                if started.elapsed() > DEADLINE {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        tokio::join!(twin.scale("v1", 2), watch)
    });
    scaled.unwrap();
    let (pushed_after, refused) = at_push.expect("the removal was pushed");
    assert!(
        pushed_after >= Duration::from_millis(100),
        "pushed {pushed_after:?} after the deletion, within istiod's debounce"
    );
    assert!(
        refused,
        "when the removal was pushed, the pod had already stopped accepting connections"
    );
    rt.block_on(twin.shutdown());
}

#[test]
fn the_raw_push_timing_skips_istiod_s_debounce() {
    let rt = rt();
    let mut twin = meshed(&rt, "raw-push", 2, ServiceMode::ClusterIp);
    twin.set_push_timing(mesh::twin::PushTiming::Immediate);
    let cp = twin.control_plane().clone();
    let before = cp.snapshot("sidecar").version;
    let started = std::time::Instant::now();
    let (scaled, pushed) = rt.block_on(async {
        let watch = async {
            loop {
                if cp.snapshot("sidecar").version > before {
                    return Some(started.elapsed());
                }
                if started.elapsed() > DEADLINE {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::join!(twin.scale("v1", 1), watch)
    });
    scaled.unwrap();
    let pushed = pushed.expect("pushed");
    assert!(pushed < Duration::from_millis(100), "{pushed:?}");
    rt.block_on(twin.shutdown());
}

#[test]
fn the_mesh_config_is_translated_into_the_sidecar_s_configuration() {
    use mesh::model::{MeshConfig, RetryPolicy};
    let rt = rt();
    let mut twin = meshed(&rt, "mesh-config", 1, ServiceMode::ClusterIp);
    let config = MeshConfig {
        default_http_retry_policy: Some(RetryPolicy {
            attempts: 2,
            retry_on: "connect-failure,refused-stream,unavailable,cancelled,reset".into(),
        }),
    };
    rt.block_on(twin.set_mesh_config(config.clone())).unwrap();
    assert_eq!(twin.mesh_config(), &config);
    let services = twin.services();
    let (routes, _) = gateway::route_table(&[], &services);
    let expected = mesh::translate::resources(
        &mesh::translate::Role::Sidecar {
            ip: "127.0.0.1".parse().unwrap(),
            passthrough: Vec::new(),
        },
        &services,
        &routes,
        &config,
    );
    let snapshot = twin.control_plane().snapshot("sidecar");
    assert_eq!(snapshot.resources.routes, expected.routes);
    let version = snapshot.version;
    rt.block_on(twin.control_plane().wait_acked("sidecar", version))
        .unwrap();
    rt.block_on(twin.shutdown());
}

#[test]
fn a_rolling_restart_behind_a_sidecar_fails_only_retries_the_circuit_breaker_refuses() {
    let rt = rt();
    let mut twin = meshed(&rt, "rolling", 3, ServiceMode::ClusterIp);
    let client = Client::start(&twin.target(), &[]);
    client.drain();
    rt.block_on(twin.rolling_restart("v1")).unwrap();
    let through = everything_so_far(&client);
    let overflow = retry_overflow(&rt, &twin);
    assert!(
        through.errors <= overflow,
        "the old pods drain while their endpoints are still pushed: new connections to them are \
         refused and retried elsewhere, nothing else fails: {through:?}, {overflow} retries overflowed"
    );
    let names: Vec<String> = twin.pods().map(|p| p.name.clone()).collect();
    assert_eq!(names, ["server-v1-3", "server-v1-4", "server-v1-5"]);
    client.drain();
    assert_balanced(&client.measure(5), 3);
    drop(client);
    rt.block_on(twin.shutdown());
}
