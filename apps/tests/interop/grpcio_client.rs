//! grpc-core as the client of `hello-server`: both methods and every reply field, health Check
//! and Watch through a drain, reflection v1 and v1alpha, round robin over three servers across
//! max-age reconnects, a graceful shutdown under load, and the `:authority` that a multi-address
//! target makes grpc-core send.

use std::net::SocketAddr;

use super::peer::{Called, PyClient, Reply, run};
use crate::common::{Block, server};

fn ipv4_target(addrs: &[SocketAddr]) -> String {
    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    format!("ipv4:{}", list.join(","))
}

/// `peer.py call` arguments: round robin over `target` for 4s, `concurrency` calls at a time,
/// with an authority that HTTP/2 accepts (see the last case).
fn round_robin_for_4s<'a>(target: &'a str, concurrency: &'a str) -> Vec<&'a str> {
    vec![
        "call",
        "--target",
        target,
        "--authority",
        "hello.test:50051",
        "--lb",
        "round_robin",
        "--seconds",
        "4",
        "--concurrency",
        concurrency,
    ]
}

#[test]
fn a_grpcio_client_calls_both_methods_and_reads_every_reply_field() {
    let block = Block::random();
    let addr = block.addr(1);
    let _server = server(addr, "server-0", &[("VERSION", "v2")]);
    let target = addr.to_string();
    for method in ["SayHello", "SayHelloAgain"] {
        let called: Called = run(&[
            "call", "--target", &target, "--method", method, "--count", "20",
        ]);
        assert_eq!(called.sent, 20, "{method}: {called:?}");
        assert_eq!(called.count("OK"), 20, "{method}: {called:?}");
        assert_eq!(
            called.by_server.get("server-0"),
            Some(&20),
            "{method}: {called:?}"
        );
        assert_eq!(
            called.replies[0],
            Reply {
                message: "server-0: Hello grpcio_0".into(),
                server_id: "server-0".into(),
                server_version: "v2".into(),
                server_addr: target.clone(),
            },
            "{method}"
        );
    }
}

#[derive(serde::Deserialize, Debug)]
struct Checked {
    code: String,
    status: Option<String>,
}

#[derive(serde::Deserialize, Debug, PartialEq)]
struct Watched {
    status: Option<String>,
    ended: Option<String>,
}

#[test]
fn a_grpcio_health_watch_sees_serving_then_not_serving_when_the_server_drains() {
    let block = Block::random();
    let addr = block.addr(1);
    let mut hello = server(addr, "server-0", &[]);
    let target = addr.to_string();

    let checked: Checked = run(&["health-check", "--target", &target]);
    assert_eq!(
        (checked.code.as_str(), checked.status.as_deref()),
        ("OK", Some("SERVING"))
    );
    let unknown: Checked = run(&[
        "health-check",
        "--target",
        &target,
        "--service",
        "no.such.Service",
    ]);
    assert_eq!(unknown.code, "NOT_FOUND", "{unknown:?}");

    let watch = PyClient::start(&["health-watch", "--target", &target]);
    let first: Watched = watch.next();
    assert_eq!(first.status.as_deref(), Some("SERVING"), "{first:?}");
    hello.signal("-TERM");
    let second: Watched = watch.next();
    assert_eq!(second.status.as_deref(), Some("NOT_SERVING"), "{second:?}");
    let last: Watched = watch.finish();
    assert_eq!(
        last.ended.as_deref(),
        Some("OK"),
        "the stream ends cleanly: {last:?}"
    );
    assert!(
        hello.wait(crate::common::DEADLINE).success(),
        "{}",
        hello.stderr()
    );
}

#[derive(serde::Deserialize, Debug)]
struct Reflected {
    code: String,
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    files: Vec<ReflectedFile>,
}

#[derive(serde::Deserialize, Debug)]
struct ReflectedFile {
    name: String,
    services: Vec<String>,
    methods: Vec<String>,
}

#[test]
fn grpcio_reflection_lists_the_services_and_the_hello_file_over_v1_and_v1alpha() {
    let block = Block::random();
    let addr = block.addr(1);
    let _server = server(addr, "server-0", &[]);
    let target = addr.to_string();
    for version in ["v1", "v1alpha"] {
        let reflected: Reflected = run(&["reflect", "--target", &target, "--version", version]);
        assert_eq!(reflected.code, "OK", "{version}: {reflected:?}");
        for service in ["hello.v1.Greeter", "grpc.health.v1.Health"] {
            assert!(
                reflected.services.iter().any(|s| s == service),
                "{version} lists {service}: {reflected:?}"
            );
        }
        let hello = reflected
            .files
            .iter()
            .find(|f| f.services == ["Greeter"])
            .unwrap_or_else(|| panic!("{version}: no file with Greeter: {reflected:?}"));
        assert!(hello.name.ends_with("hello.proto"), "{hello:?}");
        assert_eq!(hello.methods, ["SayHello", "SayHelloAgain"], "{version}");
    }
}

/// Three servers that send GOAWAY after 1s (grace 5s); a grpcio round-robin client calls them
/// for 4s, so each connection is replaced a few times under load.
#[test]
fn a_grpcio_round_robin_client_spreads_evenly_over_three_servers_across_max_age_reconnects() {
    let block = Block::random();
    let addrs: Vec<SocketAddr> = (1..=3).map(|h| block.addr(h)).collect();
    let age = [
        ("MAX_CONNECTION_AGE", "1s"),
        ("MAX_CONNECTION_AGE_GRACE", "5s"),
    ];
    let _servers: Vec<_> = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| server(*addr, &format!("server-{i}"), &age))
        .collect();
    let target = ipv4_target(&addrs);
    let called: Called = run(&round_robin_for_4s(&target, "6"));
    assert_eq!(
        called.count("OK"),
        called.sent,
        "no errors across reconnects: {called:?}"
    );
    assert!(called.sent >= 60, "{called:?}");
    for i in 0..3 {
        let share =
            *called.by_server.get(&format!("server-{i}")).unwrap_or(&0) as f64 / called.sent as f64;
        assert!(
            (0.25..=0.42).contains(&share),
            "server-{i} got {share:.2}: {called:?}"
        );
    }
}

/// Two servers under a steady grpcio load; one is told to stop (SIGTERM): it sends GOAWAY,
/// finishes what it has, and the client carries on with the other, with no error.
#[test]
fn a_grpcio_client_under_load_loses_nothing_when_a_server_shuts_down_gracefully() {
    let block = Block::random();
    let addrs = [block.addr(1), block.addr(2)];
    let mut first = server(addrs[0], "server-0", &[("RESPONSE_DELAY", "20ms")]);
    let _second = server(addrs[1], "server-1", &[("RESPONSE_DELAY", "20ms")]);
    let target = ipv4_target(&addrs);
    let load = PyClient::start(&round_robin_for_4s(&target, "8"));
    crate::common::wait_until(
        "server-0 has answered calls",
        crate::common::DEADLINE,
        || {
            let text = crate::common::metrics(SocketAddr::new(addrs[0].ip(), 9090));
            crate::common::sample(&text, "hello_rpcs_total{method=\"SayHello\",code=\"OK\"}")
                .is_some_and(|n| n >= 10.0)
        },
    );
    first.signal("-TERM");
    assert!(
        first.wait(crate::common::DEADLINE).success(),
        "{}",
        first.stderr()
    );
    let called: Called = load.finish();
    assert_eq!(called.count("OK"), called.sent, "{called:?}");
    assert!(
        called.by_server.get("server-0").is_some_and(|n| *n > 0),
        "{called:?}"
    );
    assert!(
        called.by_server.get("server-1").is_some_and(|n| *n > 0),
        "{called:?}"
    );
}

/// By default grpc-core sends a multi-address `ipv4:` target's address list as `:authority`;
/// HTTP/2 (the `h2` crate, through the `http` crate's authority parser) refuses a value with more
/// than one colon, so every stream is reset and grpc-core reports INTERNAL. The server says why
/// in one line naming the authority; `grpc.default_authority` is the client-side fix.
#[test]
fn a_multi_address_authority_is_refused_and_hello_server_names_it_in_one_line() {
    let block = Block::random();
    let addrs = [block.addr(1), block.addr(2)];
    let servers: Vec<_> = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| server(*addr, &format!("server-{i}"), &[]))
        .collect();
    let target = ipv4_target(&addrs);
    let refused: Called = run(&[
        "call",
        "--target",
        &target,
        "--lb",
        "round_robin",
        "--count",
        "10",
    ]);
    assert_eq!(refused.count("INTERNAL"), 10, "{refused:?}");
    // Each server that was sent a request says so once, however many it refused.
    let authority = format!("{},{}", addrs[0], addrs[1]);
    let naming = |server: &crate::common::Proc| -> Vec<String> {
        server
            .stderr()
            .lines()
            .filter(|l| l.contains("rejected a request") && l.contains(&authority))
            .map(str::to_owned)
            .collect()
    };
    crate::common::wait_until(
        "a server names the authority",
        crate::common::DEADLINE,
        || servers.iter().any(|s| !naming(s).is_empty()),
    );
    for server in &servers {
        let lines = naming(server);
        assert!(lines.len() <= 1, "once per server: {lines:#?}");
        assert!(
            lines.iter().all(|l| l.contains("grpc.default_authority")),
            "the line gives the fix: {lines:#?}"
        );
    }

    let fixed: Called = run(&[
        "call",
        "--target",
        &target,
        "--authority",
        "hello.test",
        "--lb",
        "round_robin",
        "--count",
        "10",
    ]);
    assert_eq!(fixed.count("OK"), 10, "{fixed:?}");
}
