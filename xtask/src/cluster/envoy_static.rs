//! Static Envoy bootstraps for the cluster's own Envoys (not Istio's): the proxy in front of the
//! servers, and the client's static sidecar. Each is one JSON document, mounted from a ConfigMap;
//! a change means new content and a restart, as in the seed.
//!
//! Both resolve headless Services with `STRICT_DNS` every second, so they see every pod and
//! balance each RPC over HTTP/2 connections to all of them.

use serde_json::{Value, json};

/// The port of the proxy's listener (the servers' port: the Service `server` keeps its port).
pub const PROXY_PORT: u16 = 50051;
/// The static sidecar's listener, on the client pod's loopback.
pub const SIDECAR_PORT: u16 = 15001;
/// Envoy's admin interface: on the static sidecar's loopback only; on the proxies' pod address,
/// where the demo reads their request counts through the API server's pod proxy. The demo's
/// namespace holds nothing else, and nothing outside the cluster reaches a pod address.
pub const ADMIN_PORT: u16 = 15000;
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

/// The proxy in front of the servers: every RPC on `0.0.0.0:50051` goes to `upstream`.
pub fn proxy(upstream: &Upstream) -> Value {
    bootstrap(
        "0.0.0.0",
        "0.0.0.0",
        PROXY_PORT,
        json!({ "cluster": upstream.name }),
        std::slice::from_ref(upstream),
    )
}

/// The client's static sidecar: every RPC on `127.0.0.1:15001` goes to one of the upstreams, in
/// proportion to their weights (a weight of 0 gets nothing).
pub fn sidecar(upstreams: &[(Upstream, u32)]) -> Value {
    let clusters: Vec<Value> = upstreams
        .iter()
        .map(|(upstream, weight)| json!({ "name": upstream.name, "weight": weight }))
        .collect();
    let upstreams: Vec<Upstream> = upstreams.iter().map(|(u, _)| u.clone()).collect();
    bootstrap(
        "127.0.0.1",
        "127.0.0.1",
        SIDECAR_PORT,
        json!({ "weighted_clusters": { "clusters": clusters } }),
        &upstreams,
    )
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

    fn upstream(name: &str) -> Upstream {
        Upstream {
            name: name.into(),
            host: format!("{name}-pods.gml-test.svc.cluster.local"),
            port: 50051,
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
        assert_eq!(clusters.len(), 2);
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
}
