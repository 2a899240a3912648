//! When the target does not resolve: RPCs fail fast with UNAVAILABLE and a message that names
//! the resolver's error (as grpc-go's `name resolver error: ...`), not a deadline that hides it;
//! the client resolves again with backoff and recovers once the name resolves. Real processes,
//! our real DNS server, and a DNS server that never answers.

mod common;

use std::{
    net::{SocketAddr, TcpListener, UdpSocket},
    time::{Duration, Instant},
};

use common::{Block, CLIENT, Client, server};
use hello_apps::client::{Summary, config::DEFAULT_TIMEOUT};
use mesh::dns::{DnsServer, Records};

/// A resolution gives up after 2s; an RPC waiting for the first one fails soon after, well
/// within its 10s deadline.
const FAILS_WITHIN: Duration = Duration::from_secs(4);

fn dns_at(rt: &tokio::runtime::Runtime, addr: SocketAddr, records: &Records) -> DnsServer {
    rt.block_on(DnsServer::start(addr, records.clone()))
        .expect("dns server")
}

/// A DNS server that never answers: a bound UDP socket that nobody reads, and a TCP listener
/// on the same port that never accepts (so that a resolver trying TCP gets no answer either).
struct SilentDns {
    _udp: UdpSocket,
    _tcp: TcpListener,
}

impl SilentDns {
    fn bind(addr: SocketAddr) -> (SilentDns, SocketAddr) {
        let udp = UdpSocket::bind(addr).expect("bind udp");
        let addr = udp.local_addr().unwrap();
        let tcp = TcpListener::bind(addr).expect("bind tcp");
        (
            SilentDns {
                _udp: udp,
                _tcp: tcp,
            },
            addr,
        )
    }
}

/// Runs `hello-client TARGET --rounds 1 --concurrency 2` (text output, default 10s deadline);
/// returns its stdout and how long it took.
fn one_round(target: &str) -> (String, Duration) {
    let start = Instant::now();
    let (code, out, err) = common::run(
        CLIENT,
        &[target, "--rounds", "1", "--concurrency", "2"],
        &[("RUST_LOG", "off")],
    );
    let took = start.elapsed();
    assert_eq!(code, 0, "{err}");
    (out, took)
}

/// Both RPCs of the round failed with UNAVAILABLE and exactly `message`, in well under the
/// deadline.
fn assert_failed_fast(out: &str, took: Duration, message: &str) {
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("Error: ")).collect();
    assert_eq!(errors.len(), 2, "{out}");
    for line in errors {
        assert_eq!(line, format!("Error: Unavailable: {message}"), "{out}");
    }
    assert!(
        took < FAILS_WITHIN && took < DEFAULT_TIMEOUT / 2,
        "took {took:?}, the deadline is {DEFAULT_TIMEOUT:?}"
    );
}

#[test]
fn a_name_dns_does_not_know_fails_rpcs_fast_with_unavailable_naming_nxdomain() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let block = Block::random();
    let dns = dns_at(&rt, SocketAddr::new(block.ip(1), 0), &Records::new());
    let (out, took) = one_round(&format!("dns://{}/server:50051", dns.local_addr()));
    assert_failed_fast(
        &out,
        took,
        &format!(
            "name resolver error: cannot resolve server via DNS server {}: no such name (NXDOMAIN)",
            dns.local_addr()
        ),
    );
}

#[test]
fn a_name_with_zero_addresses_fails_rpcs_fast_with_unavailable() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let block = Block::random();
    let records = Records::new();
    records.set("server", vec![]);
    let dns = dns_at(&rt, SocketAddr::new(block.ip(1), 0), &records);
    let (out, took) = one_round(&format!("dns://{}/server:50051", dns.local_addr()));
    assert_failed_fast(
        &out,
        took,
        &format!(
            "name resolver error: cannot resolve server via DNS server {}: produced zero addresses",
            dns.local_addr()
        ),
    );
}

#[test]
fn a_dns_server_that_does_not_answer_fails_rpcs_with_unavailable_before_their_deadline() {
    let block = Block::random();
    let (_silent, addr) = SilentDns::bind(SocketAddr::new(block.ip(1), 0));
    let (out, took) = one_round(&format!("dns://{addr}/server:50051"));
    assert_failed_fast(
        &out,
        took,
        &format!(
            "name resolver error: cannot resolve server via DNS server {addr}: no answer within 2.0s"
        ),
    );
    assert!(took >= Duration::from_secs(2), "{took:?}");
}

/// A client (JSON, 200ms summaries) whose target does not resolve yet, read until its RPCs fail.
fn failing_client(target: &str) -> Client {
    let client = Client::start(&[target, "--interval", "200ms", "--duration", "60s"]);
    let s = client.until("rpcs fail", |s| s.errors > 0);
    assert_only_unavailable(&s);
    client
}

fn assert_only_unavailable(s: &Summary) {
    assert_eq!(s.ok, 0, "{s:?}");
    assert_eq!(
        s.errors_by_code.keys().collect::<Vec<_>>(),
        ["Unavailable"],
        "{s:?}"
    );
}

/// Reads summaries until RPCs succeed; then the next summary has no errors.
fn assert_recovers(client: &Client, server_id: &str) {
    client.until("rpcs succeed", |s| s.ok > 0);
    let s = client.next();
    assert_eq!(s.errors, 0, "{s:?}");
    assert_eq!(s.by_server.keys().collect::<Vec<_>>(), [server_id], "{s:?}");
}

/// A client whose name first resolves as `records` has it (missing, or no address) recovers once
/// the name gets the address of a running server.
fn assert_recovers_once_the_name_resolves(records: Records) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let block = Block::random();
    let dns = dns_at(&rt, SocketAddr::new(block.ip(1), 0), &records);
    let client = failing_client(&format!(
        "dns://{}/server:{}",
        dns.local_addr(),
        common::PORT
    ));
    let _server = server(block.addr(10), "server-0", &[]);
    records.set("server", vec![block.ip(10)]);
    assert_recovers(&client, "server-0");
}

#[test]
fn the_client_recovers_once_a_missing_name_is_added_to_dns() {
    assert_recovers_once_the_name_resolves(Records::new());
}

#[test]
fn the_client_recovers_once_a_name_with_zero_addresses_gets_one() {
    let records = Records::new();
    records.set("server", vec![]);
    assert_recovers_once_the_name_resolves(records);
}

#[test]
fn the_client_recovers_once_a_silent_dns_server_answers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let block = Block::random();
    let (silent, addr) = SilentDns::bind(SocketAddr::new(block.ip(1), 0));
    let client = failing_client(&format!("dns://{addr}/server:{}", common::PORT));
    let _server = server(block.addr(10), "server-0", &[]);
    drop(silent);
    let records = Records::new();
    records.set("server", vec![block.ip(10)]);
    let _dns = dns_at(&rt, addr, &records);
    assert_recovers(&client, "server-0");
}

/// Two servers behind `server`; only server-0 ages its connections out, so the client resolves
/// again while its connection to server-1 stays open.
fn two_servers_one_aging(block: &Block) -> Vec<common::Proc> {
    vec![
        server(
            block.addr(10),
            "server-0",
            &[
                ("MAX_CONNECTION_AGE", "500ms"),
                ("MAX_CONNECTION_AGE_GRACE", "1s"),
            ],
        ),
        server(block.addr(11), "server-1", &[]),
    ]
}

#[test]
fn a_name_removed_from_dns_closes_the_open_connections_at_the_next_resolution() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let block = Block::random();
    let _servers = two_servers_one_aging(&block);
    let records = Records::new();
    records.set("server", vec![block.ip(10), block.ip(11)]);
    let dns = dns_at(&rt, SocketAddr::new(block.ip(1), 0), &records);
    let target = format!("dns://{}/server:{}", dns.local_addr(), common::PORT);
    let client = Client::start(&[&target, "--interval", "200ms", "--duration", "60s"]);
    client.until("both servers answer", |s| s.by_server.len() == 2);
    // NXDOMAIN is an answer: the name has no addresses, so server-1's connection goes too
    // (grpc-go: an update with zero addresses closes every subchannel).
    records.remove("server");
    let s = client.until("rpcs fail", |s| s.ok == 0 && s.errors > 0);
    assert_only_unavailable(&s);
}

#[test]
fn a_dns_server_that_stops_answering_leaves_the_open_connections_in_use() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let block = Block::random();
    let _servers = two_servers_one_aging(&block);
    let records = Records::new();
    records.set("server", vec![block.ip(10), block.ip(11)]);
    let dns = dns_at(&rt, SocketAddr::new(block.ip(1), 0), &records);
    let addr = dns.local_addr();
    let target = format!("dns://{addr}/server:{}", common::PORT);
    let client = Client::start(&[&target, "--interval", "200ms", "--duration", "60s"]);
    client.until("both servers answer", |s| s.by_server.len() == 2);
    rt.block_on(dns.shutdown());
    let (_silent, _) = SilentDns::bind(addr);
    // server-0's connection ages out, the client resolves again and gets no answer...
    common::wait_until(
        "the client reports a resolution without an answer",
        common::DEADLINE,
        || client.proc.stderr().contains("no answer within"),
    );
    // ...and keeps sending every RPC over the connection it still has, to server-1.
    client.until("only server-1 answers", |s| {
        s.by_server.keys().collect::<Vec<_>>() == ["server-1"]
    });
    let s = client.next();
    assert_eq!(s.errors, 0, "{s:?}");
    assert!(s.ok > 0, "{s:?}");
    assert_eq!(
        s.by_server.keys().collect::<Vec<_>>(),
        ["server-1"],
        "{s:?}"
    );
}
