//! `hello-client` against grpc-core servers: strict round robin and pick_first, metadata as sent,
//! GOAWAY at grpc-core's max connection age with re-resolution through our DNS, a server that
//! goes away (UNAVAILABLE, then recovery), and `--fail-on-error`'s exit codes.

use std::net::SocketAddr;

use mesh::dns::{DnsServer, Records};

use super::peer::PyServer;
use crate::common::{Block, CLIENT, Client, PORT, run};

fn py_servers(block: &Block, n: u8, extra: &[&str]) -> Vec<PyServer> {
    (0..n)
        .map(|i| PyServer::start(block.addr(10 + i), &format!("py-{i}"), extra))
        .collect()
}

fn ipv4_target(block: &Block, n: u8) -> String {
    let list: Vec<String> = (0..n).map(|i| block.addr(10 + i).to_string()).collect();
    format!("ipv4:{}", list.join(","))
}

#[test]
fn hello_client_round_robins_strictly_over_three_grpcio_servers_and_sends_its_metadata() {
    let block = Block::random();
    let servers = py_servers(&block, 3, &[]);
    let target = ipv4_target(&block, 3);
    let done = Client::start(&[
        &target,
        "--rounds",
        "4",
        "--concurrency",
        "9",
        "--header",
        "x-interop=yes",
    ])
    .finish();
    assert_eq!((done.rpcs, done.ok, done.errors), (36, 36, 0), "{done:?}");
    for server in &servers {
        assert_eq!(
            done.by_server.get(&server.name),
            Some(&12),
            "strict: {done:?}"
        );
    }
    for server in servers {
        let name = server.name.clone();
        let served = server.stop();
        assert_eq!(
            served.calls.get("SayHello"),
            Some(&12),
            "{name}: {served:?}"
        );
        assert_eq!(
            served.metadata.get("x-interop=yes"),
            Some(&12),
            "{name}: {served:?}"
        );
    }
}

#[test]
fn hello_client_pick_first_sends_everything_to_the_first_grpcio_server() {
    let block = Block::random();
    let _servers = py_servers(&block, 3, &[]);
    let target = ipv4_target(&block, 3);
    let done = Client::start(&[
        &target,
        "--lb",
        "pick_first",
        "--rounds",
        "3",
        "--concurrency",
        "10",
        "--method",
        "SayHelloAgain",
    ])
    .finish();
    assert_eq!((done.ok, done.errors), (30, 0), "{done:?}");
    assert_eq!(done.by_server.get("py-0"), Some(&30), "{done:?}");
}

/// grpc-core servers that send GOAWAY after 1s (`grpc.max_connection_age_ms`); a third server
/// added to our DNS gets traffic once the client reconnects and resolves again, with no error.
#[test]
fn hello_client_follows_grpcio_goaway_at_max_age_and_finds_a_new_server_through_dns() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let block = Block::random();
    let _servers = py_servers(&block, 3, &["--max-age-ms", "1000", "--grace-ms", "5000"]);
    let records = Records::new();
    records.set("server", vec![block.ip(10), block.ip(11)]);
    let dns = rt
        .block_on(DnsServer::start(
            "127.0.0.1:0".parse().unwrap(),
            records.clone(),
        ))
        .unwrap();
    let target = format!("dns://{}/server:{PORT}", dns.local_addr());
    let client = Client::start(&[&target, "--interval", "200ms", "--duration", "120s"]);
    client.until("both first servers answer", |s| {
        s.by_server.contains_key("py-0") && s.by_server.contains_key("py-1")
    });
    records.set("server", vec![block.ip(10), block.ip(11), block.ip(12)]);
    let mut errors = 0;
    client.until("the server added to DNS answers", |s| {
        errors += s.errors;
        s.by_server.get("py-2").is_some_and(|n| *n > 0)
    });
    assert_eq!(errors, 0, "RPCs failed across grpc-core's GOAWAYs");
}

/// One grpcio server; killed (no GOAWAY), the client's RPCs fail with UNAVAILABLE; started again
/// on the same address, they succeed again without restarting the client.
#[test]
fn hello_client_gets_unavailable_while_a_grpcio_server_is_gone_and_recovers_when_it_returns() {
    let block = Block::random();
    let addr: SocketAddr = block.addr(10);
    let server = PyServer::start(addr, "py-0", &[]);
    let client = Client::start(&[
        &addr.to_string(),
        "--interval",
        "200ms",
        "--duration",
        "120s",
        "--timeout",
        "1s",
    ]);
    client.until("the server answers", |s| s.ok > 0);
    server.kill();
    let down = client.until("RPCs fail", |s| s.errors > 0);
    assert!(
        down.errors_by_code.keys().all(|code| code == "Unavailable"),
        "{down:?}"
    );
    let _back = PyServer::start(addr, "py-0-again", &[]);
    client.until("the server that came back answers", |s| {
        s.by_server.get("py-0-again").is_some_and(|n| *n > 0)
    });
}

#[test]
fn fail_on_error_exits_0_against_a_healthy_grpcio_server_and_1_when_rpcs_fail() {
    let block = Block::random();
    let servers = py_servers(&block, 1, &[]);
    let target = block.addr(10).to_string();
    let args = [
        target.as_str(),
        "--rounds",
        "2",
        "--fail-on-error",
        "--timeout",
        "1s",
    ];
    let env = [("RUST_LOG", "off")];
    let (code, out, err) = run(CLIENT, &args, &env);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("Greeting: py-0: Hello"))
            .count(),
        20,
        "{out}"
    );
    for server in servers {
        server.kill();
    }
    let (code, out, err) = run(CLIENT, &args, &env);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.lines().any(|l| l.starts_with("Error: Unavailable")),
        "{out}"
    );
}
