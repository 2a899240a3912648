//! `hello-client --authority`: the `:authority` of every RPC, which an L7 proxy such as an ingress
//! gateway routes by. Checked against a real Envoy that routes only `hello.example.com` to a real
//! hello-server: with the flag the client calls the proxy by its address and reaches the server;
//! without it the proxy finds no virtual host and the client gets UNIMPLEMENTED (Envoy's 404).

mod common;

use std::{net::SocketAddr, path::PathBuf};

use common::{Block, Client, server};
use serde_json::{Value, json};

const HOST: &str = "hello.example.com";

fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A proxy at `listen` with one virtual host, `HOST`, sending every request to `upstream` over HTTP/2.
fn gateway_bootstrap(listen: SocketAddr, upstream: SocketAddr) -> Value {
    let addr = |a: SocketAddr| json!({ "socket_address": { "address": a.ip().to_string(), "port_value": a.port() } });
    json!({
        "static_resources": {
            "listeners": [{
                "name": "gateway",
                "address": addr(listen),
                "filter_chains": [{ "filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "gateway",
                        "route_config": { "name": "gateway", "virtual_hosts": [{
                            "name": HOST,
                            "domains": [HOST, format!("{HOST}:*")],
                            "routes": [{ "match": { "prefix": "/" }, "route": { "cluster": "hello" } }],
                        }]},
                        "http_filters": [{
                            "name": "envoy.filters.http.router",
                            "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
                        }],
                    },
                }]}],
            }],
            "clusters": [{
                "name": "hello",
                "type": "STATIC",
                "connect_timeout": "1s",
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": { "http2_protocol_options": {} },
                    },
                },
                "load_assignment": { "cluster_name": "hello", "endpoints": [{ "lb_endpoints": [{
                    "endpoint": { "address": addr(upstream) },
                }]}]},
            }],
        },
    })
}

#[test]
fn the_authority_flag_reaches_a_proxy_s_virtual_host_and_without_it_the_proxy_finds_none() {
    let block = Block::random();
    let upstream = block.addr(1);
    let _server = server(upstream, "server-v1-0", &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let root = project_root();
    let bin = mesh::envoy::find(&root, &mut |line| eprintln!("{line}"))
        .expect("envoy is needed by this test");
    let listen = block.addr(2);
    let envoy = rt
        .block_on(mesh::envoy::start(
            &bin,
            &mesh::envoy::EnvoyConfig {
                node_id: "gateway".into(),
                cluster: "gateway".into(),
                bootstrap: gateway_bootstrap(listen, upstream),
                work_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                    .join(format!("authority-{}", std::process::id())),
                base_id: None,
            },
        ))
        .unwrap();
    // Envoy's listener is up once it says LIVE (`start` waits for it).
    let target = format!("ipv4:{listen}");

    let through = Client::start(&[&target, "--authority", HOST, "--rounds", "3"]).finish();
    assert_eq!(through.errors, 0, "{through:?}");
    assert_eq!(through.ok, 30, "{through:?}");
    assert_eq!(
        through.by_server.keys().collect::<Vec<_>>(),
        ["server-v1-0"],
        "{through:?}"
    );

    let by_address = Client::start(&[&target, "--rounds", "1"]).finish();
    assert_eq!(by_address.ok, 0, "{by_address:?}");
    assert_eq!(
        by_address.errors_by_code.keys().collect::<Vec<_>>(),
        ["Unimplemented"],
        "the proxy's 404, as gRPC reads it: {by_address:?}"
    );
    rt.block_on(envoy.stop());
}
