//! Bad input: one clear line on stderr naming the problem, and a non-zero exit.

mod common;

use common::{CLIENT, SERVER, run};

/// Asserts the run failed with `code` and exactly one stderr line that contains `text`.
fn assert_one_line_error(result: (i32, String, String), code: i32, text: &str) {
    let (got, _, stderr) = result;
    assert_eq!(got, code, "exit code; stderr: {stderr}");
    let lines: Vec<_> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got: {stderr}");
    assert!(
        lines[0].contains(text),
        "{:?} should contain {text:?}",
        lines[0]
    );
    assert!(!lines[0].ends_with('.'), "no final period: {:?}", lines[0]);
}

#[test]
fn invalid_client_targets_are_one_line_errors() {
    for (target, text) in [
        ("server", r#"invalid target "server": "server" has no port"#),
        ("http://server:80", r#"unsupported scheme "http""#),
        (
            "dns://nameserver/server:1",
            r#"DNS server "nameserver" is not an IP address"#,
        ),
        (
            "ipv4:10.0.0.1",
            r#""10.0.0.1" is not an IPv4 address with a port"#,
        ),
        ("server:99999", "port 99999 is out of range (1-65535)"),
    ] {
        assert_one_line_error(run(CLIENT, &[target, "--rounds", "1"], &[]), 2, text);
    }
}

#[test]
fn malformed_dns_targets_are_usage_errors_not_other_targets() {
    for (target, text) in [
        // Once read as the DNS server [::1]:53.
        (
            "dns://[::1/server:50051",
            r#"invalid target "dns://[::1/server:50051": DNS server "[::1" has an unclosed '['"#,
        ),
        (
            "dns://[::1]:/server:50051",
            r#"DNS server "[::1]:": missing port after ':'"#,
        ),
        (
            "dns://127.0.0.1:0/server:50051",
            "port 0 is out of range (1-65535)",
        ),
        (
            "dns://127.0.0.1:65536/server:50051",
            "port 65536 is out of range (1-65535)",
        ),
        ("dns:///[::1:50051", r#""[::1:50051" has an unclosed '['"#),
        ("dns:///:50051", "empty host name"),
        ("dns:///server:", "missing port after ':'"),
        (
            "dns:///server:port",
            r#""port" is not a port number (1-65535)"#,
        ),
        (
            "dns:///server:65536",
            "port 65536 is out of range (1-65535)",
        ),
        ("dns:///::1:50051", "an IPv6 address needs brackets"),
    ] {
        assert_one_line_error(run(CLIENT, &[target, "--rounds", "1"], &[]), 2, text);
    }
}

#[test]
fn an_invalid_server_address_variable_is_a_one_line_error() {
    assert_one_line_error(
        run(CLIENT, &["--rounds", "1"], &[("SERVER_ADDRESS", "no port")]),
        2,
        r#"invalid target "no port""#,
    );
}

#[test]
fn invalid_client_flags_are_one_line_errors() {
    for (args, text) in [
        (
            &["--duration", "a while"][..],
            r#"invalid --duration "a while""#,
        ),
        (&["--concurrency", "0"][..], r#"invalid --concurrency "0""#),
        (&["--lb", "random"][..], "invalid value 'random' for '--lb"),
        (
            &["--no-such-flag"][..],
            "unexpected argument '--no-such-flag'",
        ),
    ] {
        assert_one_line_error(run(CLIENT, args, &[]), 2, text);
    }
}

#[test]
fn invalid_rates_and_a_rate_with_rounds_options_are_one_line_errors() {
    for (args, text) in [
        (
            &["--rate", "0"][..],
            r#"invalid --rate "0": expected a whole number from 1 to 1000000"#,
        ),
        (
            &["--rate", "abc"][..],
            r#"invalid --rate "abc": expected a whole number from 1 to 1000000"#,
        ),
        (
            &["--rate", "1000001"][..],
            r#"invalid --rate "1000001": expected a whole number from 1 to 1000000"#,
        ),
        (
            &["--rate", "10", "--concurrency", "5"][..],
            "the argument '--rate <N>' cannot be used with '--concurrency <CONCURRENCY>'",
        ),
        (
            &["--concurrency", "5", "--rate", "10"][..],
            "cannot be used with",
        ),
        (
            &["--rate", "10", "--rounds", "3"][..],
            "the argument '--rate <N>' cannot be used with '--rounds <ROUNDS>'",
        ),
    ] {
        assert_one_line_error(run(CLIENT, args, &[]), 2, text);
    }
}

#[test]
fn invalid_server_durations_and_addresses_name_the_variable_and_value() {
    for (env, text) in [
        (
            ("MAX_CONNECTION_AGE", "ten"),
            r#"invalid MAX_CONNECTION_AGE "ten": expected a duration"#,
        ),
        (
            ("MAX_CONNECTION_AGE_GRACE", "-1s"),
            r#"invalid MAX_CONNECTION_AGE_GRACE "-1s""#,
        ),
        (
            ("RESPONSE_DELAY", "1 fortnight"),
            r#"invalid RESPONSE_DELAY "1 fortnight""#,
        ),
        (
            ("LISTEN_ADDR", "localhost"),
            r#"invalid LISTEN_ADDR "localhost": expected an address"#,
        ),
        (("METRICS_ADDR", "9090"), r#"invalid METRICS_ADDR "9090""#),
    ] {
        assert_one_line_error(run(SERVER, &[], &[env]), 2, text);
    }
    assert_one_line_error(
        run(SERVER, &["--listen", "::"], &[]),
        2,
        r#"invalid --listen "::""#,
    );
}

#[test]
fn a_taken_port_fails_at_start_with_a_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert_one_line_error(
        run(SERVER, &["--listen", &addr, "--metrics-addr", "off"], &[]),
        1,
        &format!("cannot listen for grpc on {addr}: address already in use"),
    );
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    assert_one_line_error(
        run(SERVER, &["--listen", &free, "--metrics-addr", &addr], &[]),
        1,
        &format!("cannot listen for metrics on {addr}: address already in use"),
    );
}

#[test]
fn fail_on_error_exits_non_zero_when_rpcs_fail() {
    // Nothing listens on this address: every RPC fails UNAVAILABLE.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("ipv4:127.0.0.1:{port}");
    let (code, out, stderr) = run(
        CLIENT,
        &[
            &target,
            "--rounds",
            "1",
            "--fail-on-error",
            "--output",
            "json",
        ],
        &[("RUST_LOG", "off")],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("10 of 10 RPCs failed"), "{stderr}");
    assert!(
        out.contains(r#""errors_by_code":{"Unavailable":10}"#),
        "{out}"
    );
    let (code, _, _) = run(CLIENT, &[&target, "--rounds", "1"], &[("RUST_LOG", "off")]);
    assert_eq!(
        code, 0,
        "without --fail-on-error a failed RPC is counted, not fatal"
    );
}

#[test]
fn an_authority_that_is_not_a_host_is_a_one_line_error_naming_the_flag() {
    for bad in [
        "http://hello.example.com",
        "hello.example.com/path",
        "user@hello",
        "",
        "a b",
    ] {
        assert_one_line_error(
            run(
                CLIENT,
                &["localhost:1", "--authority", bad, "--rounds", "1"],
                &[],
            ),
            2,
            "--authority",
        );
    }
}
