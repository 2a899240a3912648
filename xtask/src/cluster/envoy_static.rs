//! Static Envoy bootstraps for the cluster's own Envoys (not Istio's): the proxy in front of the
//! servers, and the client's static sidecar. Each is one JSON document, mounted from a ConfigMap;
//! a change means new content and a restart, as in the seed.
//!
//! Both resolve headless Services with `STRICT_DNS` every second, so they see every pod and
//! balance each RPC over HTTP/2 connections to all of them.
//!
//! The static sidecar runs as a native sidecar, and the kubelet starts the client only once the
//! sidecar's startup probe passes (`computeInitContainerActions` in `pkg/kubelet/kuberuntime`; without
//! a probe it would start the client as soon as Envoy's process runs, before Envoy listens). The probe
//! connects to the pod IP (`pkg/kubelet/prober`), but the sidecar's admin listens on loopback only, so
//! the sidecar has a third listener on every address, [`READY_PORT`], that forwards `/ready` and
//! nothing else to the admin, as Istio's sidecar answers its own probe on port 15021.

use serde_json::{Value, json};

/// The port of the proxy's listener (the servers' port: the Service `server` keeps its port).
pub const PROXY_PORT: u16 = super::objects::GRPC_PORT;
/// The static sidecar's listener, on the client pod's loopback.
pub const SIDECAR_PORT: u16 = 15001;
/// Envoy's admin interface: on the static sidecar's loopback only; on the proxies' pod address,
/// where the demo reads their request counts through the API server's pod proxy. The demo's
/// namespace holds nothing else, and nothing outside the cluster reaches a pod address.
pub const ADMIN_PORT: u16 = 15000;
/// The static sidecar's listener for the kubelet: `GET /ready` is Envoy's admin `/ready` (200 `LIVE`
/// once Envoy is initialized and listening), every other path is a 404.
pub const READY_PORT: u16 = 15021;
/// The path of [`READY_PORT`] that reaches the admin.
pub const READY_PATH: &str = "/ready";
/// How often `STRICT_DNS` clusters resolve their Service again.
pub const DNS_REFRESH_RATE: &str = "1s";

const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const HTTP_OPTIONS_TYPE: &str =
    "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Where a cluster sends RPCs: a DNS name (a headless Service) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The Envoy cluster's name (the backend Service's name, for the sidecar).
    pub name: String,
    /// The name resolved, every [`DNS_REFRESH_RATE`].
    pub host: String,
    pub port: u16,
}

/// The proxy in front of the servers: every RPC on [`PROXY_PORT`], on every address, goes to
/// `upstream`.
pub fn proxy(upstream: &Upstream) -> Value {
    bootstrap(
        "0.0.0.0",
        "0.0.0.0",
        PROXY_PORT,
        json!({ "cluster": upstream.name }),
        std::slice::from_ref(upstream),
    )
}

/// Where the static sidecar listens: its admin and RPC listener on `loopback`, its [`READY_PORT`] on
/// `pod` (every address of the pod).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarAddresses {
    pub loopback: String,
    pub pod: String,
}

impl Default for SidecarAddresses {
    fn default() -> Self {
        SidecarAddresses {
            loopback: "127.0.0.1".into(),
            pod: "0.0.0.0".into(),
        }
    }
}

/// The client's static sidecar: every RPC on `127.0.0.1:15001` goes to one of the upstreams, in
/// proportion to their weights (a weight of 0 gets nothing); `/ready` on `0.0.0.0:15021` for the
/// kubelet.
pub fn sidecar(upstreams: &[(Upstream, u32)]) -> Value {
    sidecar_at(&SidecarAddresses::default(), upstreams)
}

/// [`sidecar`] on other addresses (the tests run it on a loopback address of their own).
pub fn sidecar_at(at: &SidecarAddresses, upstreams: &[(Upstream, u32)]) -> Value {
    let clusters: Vec<Value> = upstreams
        .iter()
        .map(|(upstream, weight)| json!({ "name": upstream.name, "weight": weight }))
        .collect();
    let upstreams: Vec<Upstream> = upstreams.iter().map(|(u, _)| u.clone()).collect();
    let mut bootstrap = bootstrap(
        &at.loopback,
        &at.loopback,
        SIDECAR_PORT,
        json!({ "weighted_clusters": { "clusters": clusters } }),
        &upstreams,
    );
    let resources = &mut bootstrap["static_resources"];
    if let Some(listeners) = resources["listeners"].as_array_mut() {
        listeners.push(ready_listener(&at.pod));
    }
    if let Some(clusters) = resources["clusters"].as_array_mut() {
        clusters.push(admin_cluster(&at.loopback));
    }
    bootstrap
}

/// The name of the static cluster that is Envoy's own admin.
const ADMIN_CLUSTER: &str = "envoy-admin";

/// `GET /ready` on `address:15021` goes to the admin; any other request gets a 404 from the listener
/// itself, so nothing else of the admin is reachable from outside the pod.
fn ready_listener(address: &str) -> Value {
    json!({
        "name": "ready",
        "address": socket_address(address, READY_PORT),
        "filter_chains": [{
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": HCM_TYPE,
                    "stat_prefix": "ready",
                    "codec_type": "AUTO",
                    "route_config": {
                        "name": "ready",
                        "virtual_hosts": [{
                            "name": "ready",
                            "domains": ["*"],
                            "routes": [
                                { "match": { "path": READY_PATH }, "route": { "cluster": ADMIN_CLUSTER } },
                                { "match": { "prefix": "/" }, "direct_response": { "status": 404 } }
                            ]
                        }]
                    },
                    "http_filters": [{
                        "name": "envoy.filters.http.router",
                        "typed_config": { "@type": ROUTER_TYPE }
                    }]
                }
            }]
        }]
    })
}

/// The admin listener as an upstream (plain HTTP/1.1 on loopback).
fn admin_cluster(loopback: &str) -> Value {
    json!({
        "name": ADMIN_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": ADMIN_CLUSTER,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": {
                "address": socket_address(loopback, ADMIN_PORT)
            }}]}]
        }
    })
}

fn bootstrap(admin: &str, address: &str, port: u16, route: Value, upstreams: &[Upstream]) -> Value {
    json!({
        "admin": { "address": socket_address(admin, ADMIN_PORT) },
        "static_resources": {
            "listeners": [listener(address, port, route)],
            "clusters": upstreams.iter().map(strict_dns_cluster).collect::<Vec<_>>()
        }
    })
}

fn socket_address(address: &str, port: u16) -> Value {
    json!({ "socket_address": { "address": address, "port_value": port } })
}

/// An HTTP connection manager that detects HTTP/1.1 or HTTP/2 (the client speaks h2c) and routes
/// every request.
fn listener(address: &str, port: u16, route: Value) -> Value {
    json!({
        "name": "grpc",
        "address": socket_address(address, port),
        "filter_chains": [{
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": HCM_TYPE,
                    "stat_prefix": "grpc",
                    "codec_type": "AUTO",
                    "route_config": {
                        "name": "grpc",
                        "virtual_hosts": [{
                            "name": "all",
                            "domains": ["*"],
                            "routes": [{ "match": { "prefix": "/" }, "route": route }]
                        }]
                    },
                    "http_filters": [{
                        "name": "envoy.filters.http.router",
                        "typed_config": { "@type": ROUTER_TYPE }
                    }]
                }
            }]
        }]
    })
}

/// A cluster of every address the name resolves to, reached over HTTP/2 (gRPC), round robin.
fn strict_dns_cluster(upstream: &Upstream) -> Value {
    json!({
        "name": upstream.name,
        "type": "STRICT_DNS",
        "dns_refresh_rate": DNS_REFRESH_RATE,
        // kind clusters are IPv4; asking for AAAA first would only slow each resolution down.
        "dns_lookup_family": "V4_ONLY",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": HTTP_OPTIONS_TYPE,
                "explicit_http_config": { "http2_protocol_options": {} }
            }
        },
        "load_assignment": {
            "cluster_name": upstream.name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": {
                "address": socket_address(&upstream.host, upstream.port)
            }}]}]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::objects::{CLUSTER_DOMAIN, GRPC_PORT};

    fn upstream(name: &str) -> Upstream {
        Upstream {
            name: name.into(),
            host: format!("{name}-pods.gml-test.svc.{CLUSTER_DOMAIN}"),
            port: GRPC_PORT,
        }
    }

    #[test]
    fn the_proxy_listens_on_every_address_and_resolves_its_upstream_every_second() {
        let b = proxy(&upstream("server-pods"));
        let listener = &b["static_resources"]["listeners"][0];
        assert_eq!(
            listener["address"]["socket_address"]["address"],
            json!("0.0.0.0")
        );
        assert_eq!(
            listener["address"]["socket_address"]["port_value"],
            json!(50051)
        );
        let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(hcm["codec_type"], json!("AUTO"));
        let cluster = &b["static_resources"]["clusters"][0];
        assert_eq!(cluster["type"], json!("STRICT_DNS"));
        assert_eq!(cluster["dns_refresh_rate"], json!("1s"));
        assert_eq!(
            cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
                ["explicit_http_config"]["http2_protocol_options"],
            json!({})
        );
        assert_eq!(
            b["admin"]["address"]["socket_address"],
            json!({ "address": "0.0.0.0", "port_value": 15000 })
        );
    }

    #[test]
    fn the_sidecar_listens_on_loopback_and_splits_by_weight() {
        let b = sidecar(&[(upstream("server-v1"), 90), (upstream("server-v2"), 10)]);
        let listener = &b["static_resources"]["listeners"][0];
        assert_eq!(
            listener["address"]["socket_address"],
            json!({ "address": "127.0.0.1", "port_value": 15001 })
        );
        let route = &listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"]
            [0]["routes"][0]["route"];
        assert_eq!(
            route["weighted_clusters"]["clusters"],
            json!([{ "name": "server-v1", "weight": 90 }, { "name": "server-v2", "weight": 10 }])
        );
        let clusters = b["static_resources"]["clusters"].as_array().unwrap();
        assert_eq!(clusters.len(), 3, "two upstreams and the admin");
        assert_eq!(
            b["admin"]["address"]["socket_address"],
            json!({ "address": "127.0.0.1", "port_value": 15000 })
        );
        assert_eq!(
            clusters[1]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ["socket_address"]["address"],
            json!("server-v2-pods.gml-test.svc.cluster.local")
        );
    }

    /// Runs the pinned Envoy (`mesh::envoy::find`: `ENVOY_BIN`, `PATH`, `.tools/`, else installs
    /// it there) in validate mode on both bootstraps.
    #[test]
    fn envoy_accepts_both_bootstraps() {
        let root = crate::project::root();
        let bin = mesh::envoy::find(&root, &mut |line| eprintln!("{line}")).unwrap();
        let dir = std::env::temp_dir().join(format!("gml-envoy-static-{}", std::process::id()));
        let runtime = tokio::runtime::Runtime::new().unwrap();
        for bootstrap in [
            proxy(&upstream("server-pods")),
            sidecar(&[(upstream("server-v1"), 100), (upstream("server-v2"), 0)]),
        ] {
            runtime
                .block_on(mesh::envoy::validate(&bin, &bootstrap, &dir))
                .unwrap_or_else(|e| panic!("{e}\n{bootstrap:#}"));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A running Envoy, killed when dropped.
    struct Running(std::process::Child);

    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// `GET path` over HTTP/1.1 on `addr`: the status code and the body, or `None` when nothing listens.
    fn get(addr: &str, path: &str) -> Option<(u16, String)> {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(addr).ok()?;
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: kubelet\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let code = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        Some((code, body.to_owned()))
    }

    /// The kubelet's startup probe as Envoy really answers it: the static sidecar, run by the pinned
    /// Envoy on a loopback address of its own, answers `GET /ready` on the ready port with the admin's
    /// `LIVE`, and nothing else of the admin is reachable there.
    #[test]
    fn the_static_sidecar_answers_the_kubelet_s_ready_probe_and_hides_the_rest_of_its_admin() {
        let root = crate::project::root();
        let bin = mesh::envoy::find(&root, &mut |line| eprintln!("{line}")).unwrap();
        let ip = format!(
            "127.{}.{}.{}",
            rand::random_range(1..255u8),
            rand::random_range(0..255u8),
            rand::random_range(2..255u8)
        );
        let at = SidecarAddresses {
            loopback: ip.clone(),
            pod: ip.clone(),
        };
        let local = |name: &str| Upstream {
            name: name.into(),
            host: "localhost".into(),
            port: GRPC_PORT,
        };
        let bootstrap = sidecar_at(&at, &[(local("server-v1"), 90), (local("server-v2"), 10)]);
        let dir = std::env::temp_dir().join(format!("gml-ready-probe-{}-{ip}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("envoy.json");
        std::fs::write(&path, bootstrap.to_string()).unwrap();
        let _envoy = Running(
            std::process::Command::new(&bin)
                .arg("-c")
                .arg(&path)
                .args([
                    "--concurrency",
                    "1",
                    "--log-level",
                    "warn",
                    "--disable-hot-restart",
                ])
                .args([
                    "--base-id",
                    &rand::random_range(1..1_000_000u32).to_string(),
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let ready = format!("{ip}:{READY_PORT}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let answer = loop {
            match get(&ready, READY_PATH) {
                Some((200, body)) => break body,
                other if std::time::Instant::now() > deadline => {
                    panic!("no 200 from {ready}{READY_PATH} within 20s: {other:?}")
                }
                _ => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        };
        // The admin's body, chunked on the way (the kubelet reads only the status).
        assert!(answer.contains("LIVE"), "{answer:?}");
        for path in ["/stats", "/config_dump", "/quitquitquit", "/ready/x"] {
            let (code, _) = get(&ready, path).unwrap();
            assert_eq!(code, 404, "{path} must not reach the admin");
        }
        let (code, _) = get(&format!("{ip}:{ADMIN_PORT}"), "/ready").unwrap();
        assert_eq!(code, 200, "the admin itself listens on loopback");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
