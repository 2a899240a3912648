//! The twin's sidecar against what Istio 1.30 does, on a real Envoy 1.40:
//!
//! - its configuration, field by field, against the dump Istio writes for the grpcroute demo (derived
//!   from Istio's source: `xtask/src/cluster/route_check/istio-grpcroute-90-10.md`), and the parts
//!   of the listener and process Istio sets (connection manager, filters, workers);
//! - what a real gRPC client (`hello-client`) gets through the twin's sidecar for routes that send
//!   nowhere, for a route attached to the Service's port, and for authorities Istio's virtual hosts
//!   accept.

mod common;

use common::{bins, root};

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use mesh::{
    envoy::{self, Envoy, EnvoyConfig},
    gateway::{self, RouteObject},
    model::{MeshConfig, RetryPolicy, Service},
    translate::{self, Resources, Role},
    twin::{Block, Mesh, ServiceMode, Twin, TwinSpec, sidecar},
    xds::{ControlPlane, Serving},
};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(30);
const NAMESPACE: &str = "gml-grpcroute";
const ROUTE_CONFIG: &str = "50051";

fn envoy_bin() -> PathBuf {
    envoy::find(&root(), &mut |line| eprintln!("{line}")).expect("envoy is needed by these tests")
}

fn work_dir(name: &str) -> PathBuf {
    root()
        .join("target/tmp/istio-fidelity")
        .join(format!("{name}-{}", std::process::id()))
}

// ---- a sidecar fed by our control plane ----

/// One Envoy fed over ADS by our control plane, as the twin feeds its sidecar.
struct Fed {
    cp: ControlPlane,
    _serving: Serving,
    envoy: Envoy,
    version: u64,
}

impl Fed {
    async fn start(name: &str, resources: Resources) -> Fed {
        let cp = ControlPlane::new();
        let serving = cp.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let version = cp.set("sidecar", resources);
        let config = EnvoyConfig {
            node_id: "sidecar".into(),
            cluster: "sidecar".into(),
            bootstrap: sidecar::ads_bootstrap(serving.addr),
            work_dir: work_dir(name),
            base_id: None,
        };
        let envoy = envoy::start(&envoy_bin(), &config).await.unwrap();
        let mut fed = Fed {
            cp,
            _serving: serving,
            envoy,
            version,
        };
        fed.push_version(version).await;
        fed
    }

    async fn push(&mut self, resources: Resources) {
        let version = self.cp.set("sidecar", resources);
        self.push_version(version).await;
    }

    async fn push_version(&mut self, version: u64) {
        tokio::time::timeout(DEADLINE, self.cp.wait_acked("sidecar", version))
            .await
            .expect("envoy answers within the deadline")
            .expect("envoy accepts the configuration");
        self.version = version;
    }

    /// The config dump once it holds the route configuration of the last version pushed (the
    /// routes arrive after the listener that asks for them).
    async fn dump(&self) -> Value {
        let version = self.version.to_string();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let dump = self.envoy.config_dump().await.unwrap();
            let arrived = section(&dump, "RoutesConfigDump")["dynamic_route_configs"]
                .as_array()
                .is_some_and(|routes| {
                    routes.iter().any(|r| {
                        r["route_config"]["name"] == ROUTE_CONFIG && r["version_info"] == version
                    })
                });
            if arrived {
                return dump;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "route configuration {ROUTE_CONFIG} version {version} never arrived"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// The entry of `configs` of one type (`RoutesConfigDump`) of a config dump.
fn section<'a>(dump: &'a Value, type_name: &str) -> &'a Value {
    dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["@type"]
                .as_str()
                .is_some_and(|t| t.rsplit('.').next() == Some(type_name))
        })
        .unwrap_or_else(|| panic!("no {type_name} in the dump"))
}

fn route_config<'a>(dump: &'a Value, name: &str) -> &'a Value {
    section(dump, "RoutesConfigDump")["dynamic_route_configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["route_config"])
        .find(|rc| rc["name"] == name)
        .unwrap_or_else(|| panic!("no route configuration {name}"))
}

fn clusters(dump: &Value) -> BTreeMap<String, Value> {
    section(dump, "ClustersConfigDump")["dynamic_active_clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["cluster"]["name"].as_str().unwrap().to_owned(),
                c["cluster"].clone(),
            )
        })
        .collect()
}

fn gml_service(name: &str, host: u8) -> Service {
    Service {
        name: name.into(),
        namespace: NAMESPACE.into(),
        port: 50051,
        endpoints: vec![SocketAddr::new(IpAddr::from([127, 0, 0, host]), 50051)],
        headless: false,
    }
}

/// `gateway/grpcroute.yaml` in the demo's namespace, SayHello at 90/10: the twin's resources for the
/// demo's client, as the kind demo's sidecar would get them.
fn grpcroute_demo(mesh: &MeshConfig) -> Resources {
    let weighted = gateway::load(&root().join("gateway/grpcroute.yaml"))
        .unwrap()
        .with_weights(&[("server-v1", 90), ("server-v2", 10)])
        .unwrap();
    let mut objects = weighted.into_objects();
    for object in &mut objects {
        let RouteObject::Grpc(route) = object else {
            panic!("a GRPCRoute")
        };
        route.metadata.namespace = Some(NAMESPACE.into());
    }
    let services = [
        gml_service("server", 10),
        gml_service("server-v1", 11),
        gml_service("server-v2", 12),
    ];
    let (table, warnings) = gateway::route_table_for(&objects, &services, NAMESPACE);
    assert_eq!(warnings, []);
    let role = Role::Sidecar {
        ip: Block::random().ip(2),
        passthrough: Vec::new(),
    };
    translate::resources_in(NAMESPACE, &role, &services, &table, mesh)
}

fn istio_fixture() -> Value {
    let path = root().join("xtask/src/cluster/route_check/istio-grpcroute-90-10.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Compares `ours` with `istio` key by key, naming the first path that differs.
fn same(path: &str, ours: &Value, istio: &Value) {
    match (ours, istio) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                same(
                    &format!("{path}.{key}"),
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                );
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(
                a.len(),
                b.len(),
                "{path}: lengths differ: {ours} / istio {istio}"
            );
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                same(&format!("{path}[{i}]"), x, y);
            }
        }
        _ => assert_eq!(ours, istio, "{path}: ours / istio"),
    }
}

#[tokio::test]
async fn the_twin_s_sidecar_holds_what_istio_writes_for_the_grpcroute_demo() {
    let fed = Fed::start("fixture", grpcroute_demo(&MeshConfig::default())).await;
    let dump = fed.dump().await;
    let istio = istio_fixture();

    let ours = route_config(&dump, ROUTE_CONFIG);
    let mut theirs = route_config(&istio, ROUTE_CONFIG).clone();
    // The twin's known differences (istio-grpcroute-90-10.md): no passthrough virtual host, and no
    // cluster IP among the domains.
    let hosts = theirs["virtual_hosts"].as_array_mut().unwrap();
    assert_eq!(hosts.last().unwrap()["name"], "allow_any");
    hosts.pop();
    for host in hosts.iter_mut() {
        let domains = host["domains"].as_array_mut().unwrap();
        let ip = domains.pop().unwrap();
        assert!(ip.as_str().unwrap().parse::<IpAddr>().is_ok(), "{ip}");
    }
    same("route_config", ours, &theirs);

    let ours = clusters(&dump);
    let theirs = clusters(&istio);
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (name, cluster) in &theirs {
        same(name, &ours[name], cluster);
    }
    fed.envoy.stop().await;
}

#[tokio::test]
async fn the_mesh_s_default_retry_policy_reaches_every_route_of_the_sidecar() {
    let mut fed = Fed::start("retry", grpcroute_demo(&MeshConfig::default())).await;
    let mesh = MeshConfig {
        default_http_retry_policy: Some(RetryPolicy::istio_default_with("reset")),
    };
    fed.push(grpcroute_demo(&mesh)).await;
    let dump = fed.dump().await;
    let rc = route_config(&dump, ROUTE_CONFIG);
    let mut policies = Vec::new();
    for host in rc["virtual_hosts"].as_array().unwrap() {
        for route in host["routes"].as_array().unwrap() {
            policies.push(route["route"]["retry_policy"].clone());
        }
    }
    assert_eq!(
        policies.len(),
        6,
        "two default routes and four of the GRPCRoute"
    );
    for policy in policies {
        assert_eq!(
            policy["retry_on"],
            "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes,reset"
        );
        assert_eq!(policy["num_retries"], 2);
        assert_eq!(policy["host_selection_retry_max_attempts"], "5");
        assert_eq!(policy.get("retriable_status_codes"), None);
    }
    fed.envoy.stop().await;
}

#[tokio::test]
async fn the_sidecar_s_listener_runs_istio_s_connection_manager_on_two_workers() {
    let fed = Fed::start("listener", grpcroute_demo(&MeshConfig::default())).await;
    let dump = fed.dump().await;
    let listeners = section(&dump, "ListenersConfigDump")["dynamic_listeners"]
        .as_array()
        .unwrap();
    assert_eq!(listeners.len(), 1);
    let hcm =
        &listeners[0]["active_state"]["listener"]["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(
        hcm["@type"],
        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    );
    assert_eq!(hcm["stream_idle_timeout"], "0s");
    assert_eq!(hcm["normalize_path"], true);
    assert_eq!(hcm["path_with_escaped_slashes_action"], "KEEP_UNCHANGED");
    assert_eq!(hcm["use_remote_address"], false);
    assert_eq!(hcm["upgrade_configs"][0]["upgrade_type"], "websocket");
    assert_eq!(hcm["rds"]["route_config_name"], ROUTE_CONFIG);
    assert_eq!(hcm["rds"]["config_source"]["initial_fetch_timeout"], "0s");
    let filters: Vec<(&str, &str)> = hcm["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap(),
                f["typed_config"]["@type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        filters,
        [
            (
                "envoy.filters.http.grpc_stats",
                "type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig"
            ),
            (
                "envoy.filters.http.fault",
                "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
            ),
            (
                "envoy.filters.http.cors",
                "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"
            ),
            (
                "envoy.filters.http.router",
                "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
            ),
        ]
    );
    let grpc_stats = &hcm["http_filters"][0]["typed_config"];
    assert_eq!(grpc_stats["emit_filter_state"], true);
    assert_eq!(grpc_stats["stats_for_all_methods"], false);

    let info: Value =
        serde_json::from_str(&fed.envoy.admin_get("/server_info").await.unwrap()).unwrap();
    assert_eq!(info["command_line_options"]["concurrency"], 2);
    fed.envoy.stop().await;
}

// ---- a real client through the twin's sidecar ----

async fn twin_with_routes(name: &str, routes: &str) -> Twin {
    let spec = TwinSpec {
        server_bin: bins().join("hello-server"),
        envoy_bin: Some(envoy_bin()),
        work_dir: work_dir(name),
        versions: vec![("v1".into(), 1), ("v2".into(), 1)],
        server_env: Vec::new(),
        mode: ServiceMode::ClusterIp,
    };
    let mut twin = Twin::start(spec).await.unwrap();
    twin.set_routes(gateway::parse(routes, name).unwrap())
        .await
        .unwrap();
    twin.set_mesh(Mesh::Sidecar).await.unwrap();
    twin
}

/// The final summary of `hello-client` run for two rounds of 3 RPCs against `target`.
fn call(target: &str, args: &[&str]) -> Value {
    let output = Command::new(bins().join("hello-client"))
        .env_clear()
        .env("RUST_LOG", "off")
        .args([
            target,
            "--output",
            "json",
            "--rounds",
            "2",
            "--concurrency",
            "3",
            "--timeout",
            "5s",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the client");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let last = text.lines().last().expect("a summary");
    let summary: Value = serde_json::from_str(last).unwrap();
    assert_eq!(summary["type"], "final", "{text}");
    assert_eq!(summary["rpcs"], 6, "{text}");
    summary
}

/// The one gRPC code every RPC of the run ended with (`Ok` when none failed).
fn code_of(summary: &Value) -> String {
    let errors = summary["errors_by_code"].as_object().unwrap();
    match errors.len() {
        0 => "Ok".to_owned(),
        1 => {
            let (code, n) = errors.iter().next().unwrap();
            assert_eq!(n, 6, "{summary}");
            code.clone()
        }
        _ => panic!("several codes: {summary}"),
    }
}

const CODES: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: codes}
spec:
  parentRefs: [{group: "", kind: Service, name: server}]
  rules:
  - matches: [{method: {service: hello.v1.Greeter, method: SayHello}, headers: [{name: x-case, value: missing}]}]
    backendRefs: [{name: server-v9, port: 50051}]
  - matches: [{method: {service: hello.v1.Greeter, method: SayHello}, headers: [{name: x-case, value: wrong-port}]}]
    backendRefs: [{name: server-v1, port: 9999}]
  - matches: [{method: {service: hello.v1.Greeter, method: SayHello}, headers: [{name: x-case, value: zero}]}]
    backendRefs: [{name: server-v1, port: 50051, weight: 0}]
  - matches: [{method: {service: hello.v1.Greeter, method: SayHello}, headers: [{name: x-case, value: none}]}]
  - matches: [{method: {service: hello.v1.Greeter, method: SayHello}}]
    backendRefs: [{name: server-v1, port: 50051}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{group: "", kind: Service, name: server}]
  rules:
  - matches: [{path: {type: Exact, value: /hello.v1.Greeter/SayHelloAgain}, headers: [{name: x-case, value: none}]}]
"#;

/// Istio keeps a backendRef that resolves to nothing and answers 500 (`UNKNOWN` to gRPC), where the
/// GRPCRoute spec asks for `UNAVAILABLE`; an HTTPRoute rule without backends answers 404
/// (`UNIMPLEMENTED`), as does a call no rule matches.
#[test]
fn a_grpc_client_gets_the_codes_istio_answers_for_rules_that_send_nowhere() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let twin = rt.block_on(twin_with_routes("codes", CODES));
    let target = twin.target();
    let warnings: Vec<String> = twin.warnings().iter().map(ToString::to_string).collect();
    let cases = [
        ("SayHello", Some("missing"), "Unknown"),
        ("SayHello", Some("wrong-port"), "Unknown"),
        ("SayHello", Some("zero"), "Unknown"),
        ("SayHello", Some("none"), "Unknown"),
        ("SayHello", None, "Ok"),
        ("SayHelloAgain", Some("none"), "Unimplemented"),
        ("SayHelloAgain", None, "Unimplemented"),
    ];
    let mut got = Vec::new();
    for (method, case, _) in cases {
        let header = case.map(|c| format!("x-case={c}"));
        let mut args = vec!["--method", method];
        if let Some(header) = &header {
            args.extend(["--header", header.as_str()]);
        }
        got.push(code_of(&call(&target, &args)));
    }
    rt.block_on(twin.shutdown());
    let expected: Vec<&str> = cases.iter().map(|(_, _, code)| *code).collect();
    assert_eq!(got, expected);
    for needle in [
        "backendRef server-v9 does not exist: its share (100%) of calls gets HTTP 500, which gRPC clients see as UNKNOWN",
        "backendRef server-v1 port 9999 is not the Service's port (50051)",
        "rule 2 has no backendRef with a weight above 0: all its calls get HTTP 500, which gRPC clients see as UNKNOWN",
        "rule 3 has no backendRefs: all its calls get HTTP 500, which gRPC clients see as UNKNOWN",
        "HTTPRoute default/web: rule 0 has no backendRefs: all its calls get HTTP 404, which gRPC clients see as UNIMPLEMENTED",
    ] {
        assert!(
            warnings.iter().any(|w| w.contains(needle)),
            "no warning with {needle:?} in {warnings:#?}"
        );
    }
}

const ON_PORT: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: on-port}
spec:
  parentRefs: [{group: "", kind: Service, name: server, port: 50051}]
  rules:
  - backendRefs: [{name: server-v2, port: 50051}]
"#;

/// A route whose parentRef names the Service's port is the one the sidecar uses for that port.
#[test]
fn a_route_attached_to_the_service_s_port_routes_the_calls_to_it() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let twin = rt.block_on(twin_with_routes("on-port", ON_PORT));
    let summary = call(&twin.target(), &[]);
    rt.block_on(twin.shutdown());
    assert_eq!(code_of(&summary), "Ok");
    assert_eq!(summary["by_version"], serde_json::json!({"v2": 6}));
}

/// Istio's virtual hosts ignore the authority's port and name the Service also by its absolute
/// FQDN (with the trailing dot), so every spelling a client may use reaches the route.
#[test]
fn every_name_of_the_service_with_its_port_reaches_the_route() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let twin = rt.block_on(twin_with_routes("names", ON_PORT));
    let dns = twin.dns_addr();
    let mut versions = Vec::new();
    for name in [
        "server",
        "server.default",
        "server.default.svc",
        "server.default.svc.cluster.local",
        "server.default.svc.cluster.local.",
    ] {
        let summary = call(&format!("dns://{dns}/{name}:50051"), &[]);
        versions.push((name, code_of(&summary), summary["by_version"].clone()));
    }
    rt.block_on(twin.shutdown());
    for (name, code, by_version) in versions {
        assert_eq!(code, "Ok", "{name}");
        assert_eq!(by_version, serde_json::json!({"v2": 6}), "{name}");
    }
}
