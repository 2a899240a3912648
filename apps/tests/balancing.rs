//! How the client spreads RPCs over servers: real processes on loopback, real DNS.

mod common;

use common::{Block, Client, server};
use mesh::dns::{DnsServer, Records};

fn dns(rt: &tokio::runtime::Runtime, records: &Records) -> DnsServer {
    rt.block_on(DnsServer::start(
        "127.0.0.1:0".parse().unwrap(),
        records.clone(),
    ))
    .expect("dns server")
}

fn three_servers(block: &Block) -> Vec<common::Proc> {
    (0..3)
        .map(|i| server(block.addr(10 + i), &format!("server-{i}"), &[]))
        .collect()
}

/// Three servers, and a DNS server of the test's that resolves `server` to all three.
fn three_servers_behind_dns() -> (
    tokio::runtime::Runtime,
    DnsServer,
    Vec<common::Proc>,
    String,
) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let block = Block::random();
    let servers = three_servers(&block);
    let records = Records::new();
    records.set("server", (10..13).map(|h| block.ip(h)).collect());
    let dns = dns(&rt, &records);
    let target = format!("dns://{}/server:{}", dns.local_addr(), common::PORT);
    (rt, dns, servers, target)
}

fn assert_each_server_got(fin: &hello_apps::client::Summary, n: u64) {
    for i in 0..3 {
        assert_eq!(
            fin.by_server.get(&format!("server-{i}")),
            Some(&n),
            "{fin:?}"
        );
    }
}

#[test]
fn round_robin_over_ipv4_addresses_spreads_rpcs_evenly_over_three_servers() {
    let block = Block::random();
    let _servers = three_servers(&block);
    let target = format!(
        "ipv4:{},{},{}",
        block.addr(10),
        block.addr(11),
        block.addr(12)
    );
    let fin = Client::start(&[&target, "--rounds", "30", "--concurrency", "10"]).finish();
    assert_eq!(fin.rpcs, 300);
    assert_eq!(fin.errors, 0, "{fin:?}");
    assert_each_server_got(&fin, 100);
}

#[test]
fn round_robin_over_a_dns_name_spreads_rpcs_evenly_over_three_servers() {
    let (_rt, _dns, _servers, target) = three_servers_behind_dns();
    let fin = Client::start(&[
        &target,
        "--rounds",
        "30",
        "--concurrency",
        "10",
        "--lb",
        "round_robin",
    ])
    .finish();
    assert_eq!(fin.rpcs, 300);
    assert_each_server_got(&fin, 100);
}

#[test]
fn pick_first_sends_every_rpc_to_one_server() {
    let (_rt, _dns, _servers, target) = three_servers_behind_dns();
    let fin = Client::start(&[&target, "--rounds", "10", "--lb", "pick_first"]).finish();
    assert_eq!(fin.rpcs, 100);
    assert_eq!(fin.by_server.len(), 1, "{fin:?}");
    assert_eq!(fin.by_server.values().sum::<u64>(), 100);
}

#[test]
fn the_version_label_of_each_server_is_counted() {
    let block = Block::random();
    let _v1 = server(block.addr(10), "server-v1-0", &[("VERSION", "v1")]);
    let _v2 = server(block.addr(11), "server-v2-0", &[("VERSION", "v2")]);
    let target = format!("ipv4:{},{}", block.addr(10), block.addr(11));
    let fin = Client::start(&[&target, "--rounds", "4", "--method", "SayHelloAgain"]).finish();
    assert_eq!(fin.by_version.get("v1"), Some(&20), "{fin:?}");
    assert_eq!(fin.by_version.get("v2"), Some(&20), "{fin:?}");
}

#[test]
fn a_plain_host_and_port_resolves_through_the_system_resolver() {
    // `localhost` is answered from /etc/hosts by the system resolver configuration.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let _server = server(addr, "local-0", &[("METRICS_ADDR", "off")]);
    let fin = Client::start(&[&format!("localhost:{port}"), "--rounds", "2"]).finish();
    assert_eq!(fin.by_server.get("local-0"), Some(&20), "{fin:?}");
}

#[test]
fn text_output_prints_each_reply_as_the_seed_did() {
    let block = Block::random();
    let _server = server(block.addr(10), "server-0", &[]);
    let (code, out, _) = common::run(
        common::CLIENT,
        &[
            &format!("ipv4:{}", block.addr(10)),
            "--rounds",
            "1",
            "--concurrency",
            "3",
            "--client-id",
            "me",
        ],
        &[],
    );
    assert_eq!(code, 0);
    for n in 1..=3 {
        assert!(
            out.contains(&format!(
                "Greeting: server-0: Hello me_{n} (v1 at {}",
                block.addr(10)
            )),
            "{out}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("-- final") && l.contains("server-0=3")),
        "{out}"
    );
}
