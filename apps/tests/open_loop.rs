//! The client's open loop (`--rate`): RPCs on a fixed schedule whatever the replies, latency
//! from the time each RPC was due. Real processes on loopback.

mod common;

use common::{Block, Client, DEADLINE, metrics, sample, server, wait_until};
use hello_apps::client::{Summary, SummaryKind};

/// `ipv4:` target over the servers at hosts 10, 11, ... of the block.
fn target(block: &Block, servers: u8) -> String {
    let addrs: Vec<String> = (0..servers)
        .map(|i| block.addr(10 + i).to_string())
        .collect();
    format!("ipv4:{}", addrs.join(","))
}

/// RPCs per second over a run's interval summaries (RPCs are counted when they finish), leaving
/// out the first interval (the first replies of a slow server are not back yet) and whatever
/// came after `until` seconds (the RPCs still in flight at the end of the run).
fn steady_rate(summaries: &[Summary], until: f64) -> f64 {
    let intervals: Vec<&Summary> = summaries
        .iter()
        .filter(|s| s.kind == SummaryKind::Summary && s.t <= until + 0.1)
        .collect();
    assert!(intervals.len() >= 3, "too few summaries: {summaries:?}");
    let (first, rest) = intervals.split_first().unwrap();
    let rpcs: u64 = rest.iter().map(|s| s.rpcs).sum();
    rpcs as f64 / (rest.last().unwrap().t - first.t)
}

fn assert_near(what: &str, got: f64, want: f64, tolerance: f64, context: &impl std::fmt::Debug) {
    assert!(
        (got - want).abs() <= want * tolerance,
        "{what}: {got:.1}, expected {want:.1} ± {:.0}%: {context:?}",
        tolerance * 100.0
    );
}

#[test]
fn an_open_loop_at_200_per_second_sends_200_rpcs_a_second_balanced_over_three_servers() {
    let block = Block::random();
    let _servers: Vec<_> = (0..3)
        .map(|i| server(block.addr(10 + i), &format!("server-{i}"), &[]))
        .collect();
    let client = Client::start(&[&target(&block, 3), "--rate", "200", "--interval", "500ms"]);
    client.until("the client has run for 2s", |s| s.t >= 2.0);
    client.proc.signal("-TERM");
    let fin = client.finish();
    assert_near(
        "RPCs in the client's own time",
        fin.rpcs as f64,
        200.0 * fin.t,
        0.10,
        &fin,
    );
    assert_eq!(fin.errors, 0, "{fin:?}");
    assert_eq!(
        fin.ok, fin.rpcs,
        "every RPC due was sent and answered: {fin:?}"
    );
    let counts: Vec<u64> = (0..3)
        .map(|i| {
            fin.by_server
                .get(&format!("server-{i}"))
                .copied()
                .unwrap_or(0)
        })
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), fin.rpcs, "{fin:?}");
    let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(max - min <= 1, "round robin in strict rotation: {fin:?}");
}

#[test]
fn open_loop_latency_includes_the_server_s_response_delay() {
    let block = Block::random();
    let _server = server(block.addr(10), "slow-0", &[("RESPONSE_DELAY", "50ms")]);
    let fin = Client::start(&[&target(&block, 1), "--rate", "100", "--duration", "1s"]).finish();
    assert_eq!(fin.rpcs, 100, "{fin:?}");
    assert!(fin.t >= 1.0, "a run lasts its --duration: {fin:?}");
    assert_eq!(fin.errors, 0, "{fin:?}");
    assert!(fin.latency_ms.p50 >= 50.0, "{fin:?}");
}

#[test]
fn a_slow_server_slows_rounds_down_but_not_the_open_loop() {
    let block = Block::random();
    let _server = server(block.addr(10), "slow-0", &[("RESPONSE_DELAY", "200ms")]);
    let run = |mode: &[&str]| {
        let target = target(&block, 1);
        let mut args = vec![&target[..], "--duration", "3s", "--interval", "500ms"];
        args.extend_from_slice(mode);
        Client::start(&args).finish_all()
    };

    // The open loop keeps its schedule: 50 RPCs a second, each 200ms or more from its due time.
    let open = run(&["--rate", "50"]);
    let fin = open.last().unwrap();
    assert_eq!(fin.rpcs, 150, "{fin:?}");
    assert_eq!(fin.errors, 0, "{fin:?}");
    assert!(fin.latency_ms.p50 >= 200.0, "{fin:?}");
    assert_near(
        "open-loop RPCs/s",
        steady_rate(&open, 3.0),
        50.0,
        0.10,
        &open,
    );

    // Rounds wait for every reply: 5 RPCs per 200ms, 25 a second.
    let rounds = run(&["--concurrency", "5"]);
    let rate = steady_rate(&rounds, 3.0);
    assert!(
        rate <= 30.0,
        "rounds of 5 at 200ms: {rate:.1} RPCs/s: {rounds:?}"
    );
}

#[test]
fn sigterm_stops_the_open_loop_and_waits_for_the_rpcs_in_flight() {
    let block = Block::random();
    let addr = block.addr(10);
    let _server = server(addr, "slow-0", &[("RESPONSE_DELAY", "500ms")]);
    let metrics_addr = std::net::SocketAddr::new(addr.ip(), 9090);
    let client = Client::start(&[&target(&block, 1), "--rate", "100", "--interval", "500ms"]);
    // Replies have come back, and about 50 RPCs are in flight.
    client.until("replies come back", |s| s.ok > 0);
    client.proc.signal("-TERM");
    let fin = client.finish();
    assert_eq!(fin.errors, 0, "{fin:?}");
    assert_eq!(fin.ok, fin.rpcs, "{fin:?}");
    assert!(fin.rpcs >= 100, "{fin:?}");
    // The server finished every RPC it was sent, none cancelled by a client that went away.
    let ok = r#"hello_rpcs_total{method="SayHello",code="OK"}"#;
    wait_until("the server has answered every RPC", DEADLINE, || {
        sample(&metrics(metrics_addr), ok) == Some(fin.ok as f64)
    });
    let text = metrics(metrics_addr);
    assert_eq!(
        sample(
            &text,
            r#"hello_rpcs_total{method="SayHello",code="CANCELLED"}"#
        ),
        None,
        "{text}"
    );
}
