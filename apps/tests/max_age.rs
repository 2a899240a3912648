//! The seed's headless and max-connection-age demos: does a server added to DNS after the client
//! started ever get traffic?

mod common;

use common::{Block, Client, server};
use mesh::dns::{DnsServer, Records};

/// Two servers in DNS, a client running, then a third server added to DNS. Returns what the
/// client saw afterwards.
struct ScaleUp {
    _rt: tokio::runtime::Runtime,
    _dns: DnsServer,
    _servers: Vec<common::Proc>,
    client: Client,
}

fn scale_up(server_env: &[(&str, &str)]) -> ScaleUp {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let block = Block::random();
    let env: Vec<(&str, &str)> = [("RESPONSE_DELAY", "5ms")]
        .iter()
        .chain(server_env)
        .copied()
        .collect();
    let servers: Vec<_> = (0..3)
        .map(|i| server(block.addr(10 + i), &format!("server-{i}"), &env))
        .collect();
    let records = Records::new();
    records.set("server", vec![block.ip(10), block.ip(11)]);
    let dns = rt
        .block_on(DnsServer::start(
            "127.0.0.1:0".parse().unwrap(),
            records.clone(),
        ))
        .unwrap();
    let target = format!("dns://{}/server:{}", dns.local_addr(), common::PORT);
    let client = Client::start(&[&target, "--interval", "200ms", "--duration", "120s"]);
    client.until("both first servers answer", |s| {
        s.by_server.contains_key("server-0") && s.by_server.contains_key("server-1")
    });
    records.set("server", vec![block.ip(10), block.ip(11), block.ip(12)]);
    ScaleUp {
        _rt: rt,
        _dns: dns,
        _servers: servers,
        client,
    }
}

#[test]
fn a_server_added_to_dns_gets_traffic_once_connections_age_out() {
    let run = scale_up(&[
        ("MAX_CONNECTION_AGE", "1s"),
        ("MAX_CONNECTION_AGE_GRACE", "1s"),
    ]);
    let s = run.client.until("the new server answers", |s| {
        s.by_server.get("server-2").is_some_and(|n| *n > 0)
    });
    assert_eq!(
        s.errors, 0,
        "reconnecting after GOAWAY must not fail RPCs: {s:?}"
    );
    // And from then on all three share the load.
    let s = run.client.until("all three answer in one interval", |s| {
        s.by_server.len() == 3
    });
    assert_eq!(s.errors, 0, "{s:?}");
}

#[test]
fn without_max_age_a_server_added_to_dns_never_gets_traffic() {
    let run = scale_up(&[]);
    // Watch ten intervals (2s, twice the max age of the test above): the client keeps its two
    // connections and never asks DNS again.
    let mut served = 0;
    for _ in 0..10 {
        let s = run.client.next();
        assert!(
            !s.by_server.contains_key("server-2"),
            "the new server got traffic: {s:?}"
        );
        served += s.ok;
    }
    assert!(served > 0, "the first two servers kept answering");
}

#[test]
fn an_rpc_in_flight_at_max_age_finishes_within_the_grace() {
    let block = Block::random();
    let addr = block.addr(10);
    let env = [
        ("MAX_CONNECTION_AGE", "300ms"),
        ("MAX_CONNECTION_AGE_GRACE", "5s"),
        ("RESPONSE_DELAY", "1s"),
    ];
    let _srv = server(addr, "server-0", &env);
    // Every round outlives the connection's age: GOAWAY comes mid-round, the round still succeeds,
    // and the next round runs on a new connection.
    let fin = Client::start(&[
        &format!("ipv4:{addr}"),
        "--rounds",
        "3",
        "--concurrency",
        "2",
    ])
    .finish();
    assert_eq!((fin.ok, fin.errors), (6, 0), "{fin:?}");
    let text = common::metrics(std::net::SocketAddr::new(addr.ip(), 9090));
    let conns = common::sample(&text, "hello_connections_total").unwrap();
    assert!(
        conns >= 3.0,
        "the client reconnected after each GOAWAY: {text}"
    );
}

#[test]
fn an_rpc_still_running_when_the_grace_ends_is_cut_off() {
    let block = Block::random();
    let addr = block.addr(10);
    let env = [
        ("MAX_CONNECTION_AGE", "200ms"),
        ("MAX_CONNECTION_AGE_GRACE", "200ms"),
        ("RESPONSE_DELAY", "3s"),
    ];
    let _srv = server(addr, "server-0", &env);
    let fin = Client::start(&[
        &format!("ipv4:{addr}"),
        "--rounds",
        "1",
        "--concurrency",
        "2",
    ])
    .finish();
    assert_eq!(fin.errors, 2, "{fin:?}");
    assert_eq!(fin.errors_by_code.get("Unavailable"), Some(&2), "{fin:?}");
}
