//! `cargo xtask bench --quick --json`, end to end: real hello-server pods, a real Envoy sidecar
//! fed by our control plane, the bare tonic server the bench builds, and hello-client. Checks the
//! document's shape and arithmetic, never its timings (benchmarks measure, tests don't time).

use std::time::Duration;

use serde_json::Value;

/// Includes the first debug build of the bare tonic server.
const LIMIT: Duration = Duration::from_secs(600);

mod common;

use common::Run;

fn xtask(args: &[&str]) -> Run {
    common::xtask(args, LIMIT)
}

/// No process the bench started survives it: no server pod on the twin's addresses, no Envoy or
/// bare server started with a file of its work directory, no hello-client with its client id
/// (the work directory's name).
fn assert_nothing_left(stderr: &str) {
    let (block, work_dir) =
        common::twin_of(stderr).unwrap_or_else(|| panic!("no line names the twin: {stderr}"));
    let client_id = work_dir.rsplit('/').next().unwrap();
    assert!(client_id.starts_with("bench-"), "{work_dir}");
    common::assert_no_process_left(&block, &[&work_dir, client_id]);
}

fn number(doc: &Value, path: &str) -> f64 {
    let mut v = doc;
    for key in path.split('.') {
        v = v
            .get(key)
            .unwrap_or_else(|| panic!("{path}: no {key:?} in {doc}"));
    }
    let x = v
        .as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number: {v}"));
    assert!(
        x.is_finite() && x > 0.0,
        "{path} is {x}, not a positive number"
    );
    x
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

/// `ratio` is `a / b`, up to the rounding of the three numbers.
fn assert_quotient(ratio: f64, a: f64, b: f64, what: &str) {
    assert!(
        (ratio - a / b).abs() <= 1e-3 * (a / b).max(1.0),
        "{what}: {ratio} is not {a} / {b}"
    );
}

#[test]
fn a_quick_bench_measures_every_figure_and_leaves_no_process() {
    let run = xtask(&["bench", "--quick", "--json", "--debug"]);
    assert_nothing_left(&run.stderr);
    assert_eq!(run.code, 0, "bench failed: {}", run.stderr);
    let doc: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON document ({e}): {}", run.stdout));

    assert_eq!(
        keys(&doc),
        [
            "duration_s",
            "latency_1000rps_ms",
            "machine",
            "propagation_ms",
            "server",
            "sidecar_cpu_s_per_1000_rpcs",
            "sidecar_rss_mb",
            "throughput"
        ]
    );
    assert_eq!(
        keys(&doc["throughput"]),
        ["direct_rps", "ratio", "sidecar_rps"]
    );
    assert_eq!(
        keys(&doc["latency_1000rps_ms"]),
        [
            "added_p99",
            "added_p99_waypoint",
            "direct",
            "sidecar",
            "waypoint"
        ]
    );
    assert_eq!(
        keys(&doc["propagation_ms"]),
        ["first_median", "settled_max", "settled_median"]
    );
    assert_eq!(keys(&doc["server"]), ["bare_rps", "hello_rps", "ratio"]);
    assert_eq!(keys(&doc["machine"]), ["cpus", "kernel", "model"]);

    let direct = number(&doc, "throughput.direct_rps");
    let sidecar = number(&doc, "throughput.sidecar_rps");
    assert_quotient(
        number(&doc, "throughput.ratio"),
        sidecar,
        direct,
        "throughput",
    );

    let mut p99 = [0.0; 3];
    for (i, path) in ["direct", "sidecar", "waypoint"].into_iter().enumerate() {
        assert_eq!(
            keys(&doc["latency_1000rps_ms"][path]),
            ["p50", "p90", "p99"]
        );
        let p = |q: &str| number(&doc, &format!("latency_1000rps_ms.{path}.{q}"));
        let (p50, p90) = (p("p50"), p("p90"));
        p99[i] = p("p99");
        assert!(
            p50 <= p90 && p90 <= p99[i],
            "{path}: {p50} {p90} {}",
            p99[i]
        );
    }
    // A difference of two noisy medians: on a busy machine a quick run can make it negative, so
    // it is only checked to be the difference.
    for (key, path) in [("added_p99", 1), ("added_p99_waypoint", 2)] {
        let added = doc["latency_1000rps_ms"][key]
            .as_f64()
            .filter(|x| x.is_finite())
            .unwrap_or_else(|| panic!("{key} is not a finite number: {doc}"));
        assert!(
            (added - (p99[path] - p99[0])).abs() <= 1e-3,
            "{key} {added} is not {} - {}",
            p99[path],
            p99[0]
        );
    }

    number(&doc, "sidecar_cpu_s_per_1000_rpcs");
    number(&doc, "sidecar_rss_mb");

    let first = number(&doc, "propagation_ms.first_median");
    let settled = number(&doc, "propagation_ms.settled_median");
    let worst = number(&doc, "propagation_ms.settled_max");
    assert!(settled <= worst, "settled median {settled} > max {worst}");
    assert!(first > 0.0);

    let hello = number(&doc, "server.hello_rps");
    let bare = number(&doc, "server.bare_rps");
    assert_quotient(number(&doc, "server.ratio"), hello, bare, "server");

    assert!(doc["machine"]["cpus"].as_u64().is_some_and(|n| n > 0));
    for key in ["model", "kernel"] {
        assert!(
            doc["machine"][key].as_str().is_some_and(|s| !s.is_empty()),
            "machine.{key}: {}",
            doc["machine"]
        );
    }
    number(&doc, "duration_s");

    // Progress on stderr, the document alone on stdout.
    assert!(run.stderr.contains("==> "), "{}", run.stderr);
    assert_eq!(run.stdout.trim().lines().count(), 1, "{}", run.stdout);
}
