//! Every demo on the local twin, end to end: `cargo xtask demo <scenario> --local --json`, with
//! real processes, our DNS and control plane, and a real Envoy.

use std::time::Duration;

use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(240);

mod common;

use common::{Run, Watched};

/// A run that must start nothing.
fn xtask(args: &[&str]) -> Run {
    common::xtask(args, LIMIT)
}

/// A run on the twin: it names its twin, the scan finds the twin's servers and client while it runs
/// (and Envoy where a phase has one in the path), and nothing of it is left afterwards.
fn on_the_twin(args: &[&str]) -> Watched {
    let watched = common::xtask_watched(args, LIMIT);
    watched.assert_nothing_left(&["hello-server", "hello-client"]);
    watched
}

/// The JSON document of a run on the twin, checked against what the scan saw.
fn document(watched: &Watched, json: &str, name: &str) -> Value {
    let run = &watched.run;
    assert_eq!(run.code, 0, "{name} failed: {}", run.stderr);
    let doc: Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("one JSON document ({e}): {json}"));
    assert_eq!(doc["scenario"], name);
    assert_eq!(doc["backend"], "local");
    // ztunnel alone is the mesh at L4: no Envoy.
    let meshed = phases(&doc)
        .iter()
        .any(|p| p["mesh"] == true && p["dataplane"] != "ztunnel");
    assert_eq!(
        watched.saw("envoy"),
        meshed,
        "envoy runs exactly where a phase has an Envoy in the path: {:?}",
        watched.seen
    );
    doc
}

fn demo(scenario: &str) -> Value {
    let watched = on_the_twin(&["demo", scenario, "--local", "--json", "--debug"]);
    document(&watched, &watched.run.stdout, scenario)
}

/// A demo run as a user runs it, with its table on stdout; the JSON document comes from the report
/// directory (`report.json` beside `index.html`). Returns the document, the table and the page.
fn demo_with_table(scenario: &str) -> (Value, String, String) {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("demo-{scenario}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let watched = on_the_twin(&[
        "demo",
        scenario,
        "--local",
        "--debug",
        "--report",
        dir.to_str().unwrap(),
    ]);
    let json = std::fs::read_to_string(dir.join("report.json")).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; the run said: {}",
            dir.join("report.json").display(),
            watched.run.stderr
        )
    });
    let doc = document(&watched, &json, scenario);
    let page = std::fs::read_to_string(dir.join("index.html")).unwrap();
    (doc, watched.run.stdout.clone(), page)
}

/// The lesson is in the JSON document, at the end of the table (wrapped) and on the page (escaped).
fn assert_lesson_everywhere(doc: &Value, table: &str, page: &str, says: &[&str]) -> String {
    let lesson = doc["lesson"]
        .as_str()
        .expect("the document carries the lesson");
    for words in says {
        assert!(
            lesson.contains(words),
            "the lesson says {words:?}: {lesson}"
        );
    }
    let flat = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat(table).ends_with(&flat(lesson)),
        "the table ends with the lesson: {table}"
    );
    let escaped = lesson
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    assert!(page.contains(&escaped), "the page shows the lesson: {page}");
    lesson.to_owned()
}

fn phases(doc: &Value) -> &Vec<Value> {
    doc["phases"].as_array().unwrap()
}

fn count(phase: &Value, server: &str) -> u64 {
    phase["by_server"][server]
        .as_u64()
        .unwrap_or_else(|| panic!("{server} missing from {phase}"))
}

fn share(phase: &Value, version: &str) -> f64 {
    phase["shares_by_version"][version].as_f64().unwrap_or(0.0)
}

#[test]
fn clusterip_pins_the_client_to_one_pod() {
    let doc = demo("clusterip");
    let p = &phases(&doc)[0];
    assert_eq!(p["mesh"], false);
    let busy: Vec<_> = p["by_server"]
        .as_object()
        .unwrap()
        .values()
        .filter(|v| v.as_u64() > Some(0))
        .collect();
    assert_eq!(busy.len(), 1, "{p}");
    assert!((p["jain"].as_f64().unwrap() - 0.333).abs() < 0.01, "{p}");
    for key in [
        "rpcs",
        "ok",
        "errors",
        "errors_by_code",
        "by_version",
        "shares_by_version",
        "latency_ms",
    ] {
        assert!(p.get(key).is_some(), "{key} missing: {p}");
    }
    assert!(
        p.get("weights").is_none(),
        "no weights where the phase sets none: {p}"
    );
}

#[test]
fn headless_balances_but_the_new_pods_of_a_scale_up_get_nothing() {
    let doc = demo("headless");
    let [before, after] = &phases(&doc)[..] else {
        panic!("two phases")
    };
    for i in 0..3 {
        assert!(count(before, &format!("server-v1-{i}")) > 0, "{before}");
    }
    assert_eq!(count(after, "server-v1-3"), 0, "{after}");
    assert_eq!(count(after, "server-v1-4"), 0, "{after}");
}

#[test]
fn max_connection_age_brings_the_new_pods_in() {
    let doc = demo("maxage");
    let p = phases(&doc);
    let last = p.last().unwrap();
    for i in 0..5 {
        assert!(count(last, &format!("server-v1-{i}")) > 0, "{last}");
    }
    assert!(last["jain"].as_f64().unwrap() > 0.9, "{last}");
    let just_scaled = &p[1];
    let new = count(just_scaled, "server-v1-3") + count(just_scaled, "server-v1-4");
    assert!(
        (new as f64) < 0.1 * just_scaled["ok"].as_f64().unwrap(),
        "right after the scale-up: {just_scaled}"
    );
    assert!(
        p.iter().all(|ph| ph["errors"] == 0),
        "GOAWAY loses no RPC: {doc}"
    );
}

#[test]
fn a_server_side_proxy_balances_but_new_proxies_idle() {
    let doc = demo("server-proxy");
    let p = phases(&doc);
    for i in 0..5 {
        assert!(count(&p[1], &format!("server-v1-{i}")) > 0, "{}", p[1]);
    }
    let proxies = &p[2]["by_proxy"];
    assert!(proxies["proxy-0"].as_u64().unwrap() > 0, "{proxies}");
    assert_eq!(proxies["proxy-1"], 0, "{proxies}");
    assert_eq!(proxies["proxy-2"], 0, "{proxies}");
}

#[test]
fn a_sidecar_sends_to_new_pods_at_once() {
    let doc = demo("sidecar");
    let after = &phases(&doc)[1];
    assert_eq!(after["mesh"], true);
    for i in 0..5 {
        assert!(count(after, &format!("server-v1-{i}")) > 0, "{after}");
    }
}

/// The 100/0 → ... → 0/100 progressions: each phase's v2 share follows its weight.
fn assert_follows_weights(doc: &Value) {
    for p in phases(doc) {
        let v2 = p["weights"]["v2"].as_f64().unwrap() / 100.0;
        let got = share(p, "v2");
        match v2 {
            0.0 => assert_eq!(got, 0.0, "{p}"),
            1.0 => assert_eq!(got, 1.0, "{p}"),
            w => assert!((got - w).abs() < 0.1, "v2 share {got} for weight {w}: {p}"),
        }
    }
}

#[test]
fn canary_weights_in_a_static_sidecar_split_traffic() {
    assert_follows_weights(&demo("canary"));
}

#[test]
fn xds_pushes_each_weight_without_losing_an_rpc() {
    let doc = demo("xds");
    assert_follows_weights(&doc);
    assert!(phases(&doc).iter().all(|p| p["errors"] == 0), "{doc}");
}

#[test]
fn the_httproute_progression_follows_its_weights() {
    assert_follows_weights(&demo("httproute"));
}

#[test]
fn the_grpcroute_routes_by_method_and_header_then_by_weight() {
    let doc = demo("grpcroute");
    let p = phases(&doc);
    assert_eq!(share(&p[0], "v1"), 1.0, "SayHello: {}", p[0]);
    assert_eq!(share(&p[1], "v2"), 1.0, "SayHelloAgain: {}", p[1]);
    assert_eq!(share(&p[2], "v2"), 1.0, "x-canary: {}", p[2]);
    let v2 = share(&p[3], "v2");
    assert!((0.02..0.2).contains(&v2), "90/10: {}", p[3]);
}

#[test]
fn ambient_shows_ztunnel_pinned_the_waypoint_balanced_and_weighted_and_the_sidecar_beside_it() {
    let (doc, table, page) = demo_with_table("ambient");
    let p = phases(&doc);
    let planes: Vec<_> = p.iter().map(|p| p["dataplane"].as_str().unwrap()).collect();
    assert_eq!(
        planes,
        ["ztunnel", "waypoint", "waypoint", "waypoint", "sidecar"],
        "{doc}"
    );
    for phase in p {
        let name = phase["name"].as_str().unwrap();
        let plane = phase["dataplane"].as_str().unwrap();
        assert!(name.contains(plane), "{name} names {plane}");
        assert_eq!(phase["errors"], 0, "{phase}");
        assert!(
            phase["latency_ms"]["p99"].as_f64().unwrap() > 0.0,
            "{phase}"
        );
        assert!(
            table.contains(&format!("{name}  [mesh on, {plane}]")),
            "the table names the data plane of {name}: {table}"
        );
        assert!(
            page.contains(&format!("{name} (mesh on, {plane})")),
            "the page names the data plane of {name}"
        );
    }
    // ztunnel alone: one connection, one pod of four, whatever the route says.
    let pinned = &p[0];
    assert_eq!(busy(pinned), 1, "{pinned}");
    assert!(
        (pinned["jain"].as_f64().unwrap() - 0.25).abs() < 0.01,
        "{pinned}"
    );
    // The waypoint applies the GRPCRoute: SayHello to v1, balanced over its two pods.
    assert_eq!(share(&p[1], "v1"), 1.0, "{}", p[1]);
    assert_eq!(busy(&p[1]), 2, "{}", p[1]);
    let v2 = share(&p[2], "v2");
    assert!((0.03..0.17).contains(&v2), "90/10: {}", p[2]);
    for phase in &p[3..] {
        let v2 = share(phase, "v2");
        assert!((0.4..0.6).contains(&v2), "50/50: {phase}");
        assert!(phase["jain"].as_f64().unwrap() > 0.9, "{phase}");
    }
    assert_lesson_everywhere(
        &doc,
        &table,
        &page,
        &["add a waypoint", "balance in the client", "hop"],
    );
}

#[test]
fn compare_shows_mesh_off_pinned_and_mesh_on_balanced() {
    let doc = demo("compare");
    let [off, on] = &phases(&doc)[..] else {
        panic!("two phases")
    };
    assert_eq!(
        (off["mesh"].as_bool(), on["mesh"].as_bool()),
        (Some(false), Some(true))
    );
    assert!(off["jain"].as_f64().unwrap() < 0.4, "{off}");
    assert!(on["jain"].as_f64().unwrap() > 0.9, "{on}");
}

fn mesh_off_then_on(doc: &Value) -> (&Value, &Value) {
    let [off, on] = &phases(doc)[..] else {
        panic!("two phases: {doc}")
    };
    assert_eq!(
        (off["mesh"].as_bool(), on["mesh"].as_bool()),
        (Some(false), Some(true))
    );
    (off, on)
}

/// RPCs by pod whose name is not in `old`.
fn on_new_pods(phase: &Value, old: &[&str]) -> u64 {
    phase["by_server"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| !old.contains(&name.as_str()))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum()
}

#[test]
fn a_rolling_restart_under_load_loses_no_rpc_with_the_sidecar_and_moves_traffic_to_the_new_pods() {
    let doc = demo("rolling-restart");
    let (off, on) = mesh_off_then_on(&doc);
    assert_eq!(on["errors"], 0, "{on}");
    // mesh off: whatever happens is measured; our client retries what a GOAWAY refused, so it loses
    // nothing either
    assert_eq!(off["errors"], 0, "{off}");
    // every pod was replaced during each phase: the new pods carry most of it
    let first = ["server-v1-0", "server-v1-1", "server-v1-2"];
    assert!(
        on_new_pods(off, &first) * 2 > off["rpcs"].as_u64().unwrap(),
        "{off}"
    );
    let second = ["server-v1-3", "server-v1-4", "server-v1-5"];
    assert!(
        on_new_pods(on, &second) * 2 > on["rpcs"].as_u64().unwrap(),
        "{on}"
    );
    assert_eq!(
        on["changes"],
        serde_json::json!(["restarting server-v1, pod by pod"])
    );
}

#[test]
fn a_pod_killed_under_load_fails_what_was_in_flight_unless_the_mesh_retries_on_reset() {
    let (doc, table, page) = demo_with_table("kill");
    let [off, on, retry] = &phases(&doc)[..] else {
        panic!("three phases: {doc}")
    };
    assert_eq!(
        [off, on, retry].map(|p| p["mesh"].as_bool()),
        [Some(false), Some(true), Some(true)]
    );
    assert!(retry["name"].as_str().unwrap().contains("retry"), "{retry}");
    for phase in [off, on, retry] {
        let errors = phase["errors"].as_u64().unwrap();
        // the client keeps 10 RPCs in flight: no more can fail with the killed pod
        assert!(errors <= 10, "{phase}");
        assert_eq!(
            phase["errors_by_code"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            if errors == 0 {
                vec![]
            } else {
                vec!["Unavailable"]
            },
            "{phase}"
        );
        assert!(phase["rpcs"].as_u64().unwrap() > 50 * errors, "{phase}");
        assert_eq!(
            phase["changes"],
            serde_json::json!(["killing a server-v1 pod (SIGKILL)"]),
            "{phase}"
        );
    }
    // Istio's default retries may leave the RPCs in flight failed; with reset, none fails
    assert_eq!(retry["errors"], 0, "{retry}");
    assert_lesson_everywhere(
        &doc,
        &table,
        &page,
        &["reset", "defaultHttpRetryPolicy", "loses nothing"],
    );
    for p in [off, on, retry] {
        assert!(table.contains(p["name"].as_str().unwrap()), "{table}");
    }
}

#[test]
fn a_scale_down_under_load_loses_nothing_in_flight_and_the_removed_pods_stop_getting_rpcs() {
    let doc = demo("scale-down");
    let (off, on) = mesh_off_then_on(&doc);
    // the client on its own hears GOAWAY and finds the pods gone from DNS already
    assert_eq!(off["errors"], 0, "{off}");
    // the sidecar may still send new RPCs to the leaving pods until istiod's push reaches it; what
    // fails is a refused connection after Istio's two retries, never an RPC in flight
    let errors = on["errors"].as_u64().unwrap();
    assert!(errors <= 10, "{on}");
    assert!(
        on["errors_by_code"]
            .as_object()
            .unwrap()
            .keys()
            .all(|code| code == "Unavailable"),
        "{on}"
    );
    assert!(on["rpcs"].as_u64().unwrap() > 100 * errors, "{on}");
    let removed = count(off, "server-v1-2") + count(off, "server-v1-3") + count(off, "server-v1-4");
    assert!(removed * 10 < off["rpcs"].as_u64().unwrap(), "{off}");
}

#[test]
fn a_headless_service_leaves_a_pick_first_client_pinned_behind_its_sidecar_and_the_clusterip_is_balanced()
 {
    let (doc, table, page) = demo_with_table("headless-sidecar");
    let [headless, clusterip] = &phases(&doc)[..] else {
        panic!("two phases: {doc}")
    };
    for p in [headless, clusterip] {
        assert_eq!(p["mesh"], true, "{p}");
        assert_eq!(p["errors"], 0, "{p}");
    }
    assert_eq!(
        busy(headless),
        1,
        "passed through to the one pod picked: {headless}"
    );
    assert!(
        (headless["jain"].as_f64().unwrap() - 0.333).abs() < 0.01,
        "{headless}"
    );
    assert_eq!(busy(clusterip), 3, "balanced by the sidecar: {clusterip}");
    assert!(clusterip["jain"].as_f64().unwrap() > 0.9, "{clusterip}");
    assert_lesson_everywhere(&doc, &table, &page, &["passthrough", "pick_first"]);
}

/// How many pods got RPCs in a phase.
fn busy(phase: &Value) -> usize {
    phase["by_server"]
        .as_object()
        .unwrap()
        .values()
        .filter(|v| v.as_u64() > Some(0))
        .count()
}

#[test]
fn a_pick_first_experiment_through_a_headless_service_with_the_mesh_on_stays_on_one_pod() {
    let watched = on_the_twin(&[
        "experiment",
        "--local",
        "--debug",
        "--json",
        "--exposure",
        "headless",
        "--lb",
        "pick_first",
        "--rpcs",
        "200",
    ]);
    let doc = document(&watched, &watched.run.stdout, "experiment");
    let p = &phases(&doc)[0];
    assert_eq!(p["name"], "mesh on: headless Service, pick_first");
    assert_eq!(busy(p), 1, "{p}");
}

#[test]
fn an_experiment_in_ambient_mode_ignores_the_route_with_ztunnel_alone_and_follows_it_through_a_waypoint()
 {
    let routes = format!("{}/../gateway/grpcroute.yaml", env!("CARGO_MANIFEST_DIR"));
    let run = |mesh: &str| {
        let watched = on_the_twin(&[
            "experiment",
            "--local",
            "--debug",
            "--json",
            "--servers",
            "v1=2,v2=2",
            "--routes",
            &routes,
            "--method",
            "SayHelloAgain",
            "--mesh",
            mesh,
            "--rpcs",
            "200",
        ]);
        let doc = document(&watched, &watched.run.stdout, "experiment");
        phases(&doc)[0].clone()
    };
    let waypoint = run("waypoint");
    assert_eq!(waypoint["dataplane"], "waypoint", "{waypoint}");
    assert_eq!(
        share(&waypoint, "v2"),
        1.0,
        "SayHelloAgain goes to v2: {waypoint}"
    );
    assert_eq!(busy(&waypoint), 2, "{waypoint}");
    let ztunnel = run("ztunnel");
    assert_eq!(ztunnel["dataplane"], "ztunnel", "{ztunnel}");
    assert_eq!(busy(&ztunnel), 1, "one connection, one pod: {ztunnel}");
}

#[test]
fn an_experiment_runs_the_users_routes_and_servers() {
    let routes = format!("{}/../gateway/httproute.yaml", env!("CARGO_MANIFEST_DIR"));
    let watched = on_the_twin(&[
        "experiment",
        "--local",
        "--debug",
        "--json",
        "--servers",
        "v1=2,v2=1",
        "--routes",
        &routes,
        "--rpcs",
        "300",
    ]);
    let doc = document(&watched, &watched.run.stdout, "experiment");
    let p = &phases(&doc)[0];
    assert!(p["rpcs"].as_u64().unwrap() >= 300, "{p}");
    assert_eq!(share(p, "v1"), 1.0, "the route sends 100/0: {p}");
    assert_eq!(p["by_server"].as_object().unwrap().len(), 3, "{p}");
}

#[test]
fn a_warning_is_printed_once_and_kept_in_the_phase_it_arose_in() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("warning-route-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("route.yaml");
    std::fs::write(
        &file,
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: missing}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: server}]\n  rules:\n  - backendRefs:\n    - {name: server-v1, port: 50051, weight: 1}\n    - {name: server-v3, port: 50051, weight: 1}\n",
    )
    .unwrap();
    let watched = on_the_twin(&[
        "experiment",
        "--local",
        "--debug",
        "--json",
        "--rpcs",
        "200",
        "--routes",
        file.to_str().unwrap(),
    ]);
    let doc = document(&watched, &watched.run.stdout, "experiment");
    let warnings = phases(&doc)[0]["warnings"].as_array().unwrap().clone();
    assert_eq!(warnings.len(), 1, "{doc}");
    let warning = warnings[0].as_str().unwrap();
    assert!(warning.contains("server-v3"), "{warning}");
    let printed: Vec<_> = watched
        .run
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(
        printed,
        [format!("warning: {warning}")],
        "{}",
        watched.run.stderr
    );
}

#[test]
fn an_invalid_route_file_is_refused_in_one_line_before_anything_starts() {
    let dir = std::env::temp_dir().join(format!("xtask-bad-route-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: bad}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: server}]\n  rules:\n  - matches: [{method: {}}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    )
    .unwrap();
    let run = xtask(&[
        "experiment",
        "--local",
        "--debug",
        "--routes",
        file.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1);
    let errors: Vec<_> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("xtask: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(
        errors[0].contains("GRPCRoute default/bad: spec.rules[0].matches[0].method"),
        "{}",
        errors[0]
    );
    assert!(
        !run.stderr.contains("twin on"),
        "nothing was started: {}",
        run.stderr
    );
}

#[test]
fn an_unknown_scenario_is_a_one_line_usage_error() {
    let run = xtask(&["demo", "nope", "--local"]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with("xtask: error: invalid value 'nope' for '<SCENARIO>' [possible values: "),
        "{}",
        run.stderr
    );
}

#[test]
fn demo_help_lists_every_scenario() {
    let run = xtask(&["demo", "--help"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for name in xtask::harness::scenario::names() {
        assert!(run.stdout.contains(name), "{name}: {}", run.stdout);
    }
}

#[test]
fn demo_duration_sets_how_long_each_phase_is_measured() {
    let measuring = |args: &[&str]| -> Vec<String> {
        let run = xtask(&[&["demo", "maxage", "--dry-run"], args].concat());
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.stdout
            .lines()
            .filter_map(|l| l.find("note: measuring ").map(|at| l[at..].to_owned()))
            .collect()
    };
    let own = measuring(&[]);
    assert_eq!(own.len(), 4, "a note per phase: {own:?}");
    assert!(own.iter().any(|l| l.contains("measuring 12s")), "{own:?}");
    assert_eq!(
        measuring(&["--duration", "7s"]),
        vec!["note: measuring 7s from the client's JSON summaries in its log"; 4]
    );
    let watched = on_the_twin(&[
        "demo",
        "clusterip",
        "--local",
        "--debug",
        "--json",
        "--duration",
        "500ms",
    ]);
    let doc = document(&watched, &watched.run.stdout, "clusterip");
    let rpcs = phases(&doc)[0]["rpcs"].as_u64().unwrap();
    assert!(rpcs > 0, "{doc}");
}

#[test]
fn editing_the_route_file_during_an_experiment_pushes_it_live() {
    let dir = std::env::temp_dir().join(format!("xtask-live-route-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("route.yaml");
    let route = |v1: u32, v2: u32| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: live}}\nspec:\n  parentRefs: [{{group: \"\", kind: Service, name: server}}]\n  rules:\n  - backendRefs:\n    - {{name: server-v1, port: 50051, weight: {v1}}}\n    - {{name: server-v2, port: 50051, weight: {v2}}}\n"
        )
    };
    std::fs::write(&file, route(100, 0)).unwrap();
    let mut edited = false;
    let watched = common::xtask_watched_with(
        &[
            "experiment",
            "--local",
            "--debug",
            "--json",
            "--servers",
            "v1=1,v2=1",
            "--duration",
            "4s",
            "--routes",
            file.to_str().unwrap(),
        ],
        LIMIT,
        |line| {
            if !edited && line.contains("phase 1/1") {
                std::fs::write(&file, route(0, 100)).unwrap();
                edited = true;
            }
        },
    );
    watched.assert_nothing_left(&["hello-server", "hello-client", "envoy"]);
    let stderr = &watched.run.stderr;
    assert!(stderr.contains("changed: pushed to the mesh"), "{stderr}");
    let doc = document(&watched, &watched.run.stdout, "experiment");
    let p = &phases(&doc)[0];
    assert!(
        share(p, "v2") > 0.2,
        "after the edit v2 gets the traffic: {p}"
    );
    assert_eq!(p["errors"], 0, "{p}");
}

#[test]
fn every_run_on_the_twin_names_its_work_directory_at_the_start() {
    let watched = on_the_twin(&["demo", "clusterip", "--local", "--debug", "--json"]);
    let stderr = &watched.run.stderr;
    let first = stderr
        .lines()
        .position(|l| l.contains("==> twin on 127."))
        .unwrap_or_else(|| panic!("no line names the twin: {stderr}"));
    let phase = stderr
        .lines()
        .position(|l| l.contains("phase 1/1"))
        .unwrap();
    assert!(first < phase, "before the first phase: {stderr}");
    let (_, work_dir) = watched.twin.clone().unwrap();
    assert!(work_dir.contains("/target/twin/clusterip-"), "{work_dir}");
    assert!(
        std::path::Path::new(&work_dir)
            .join("server-v1-0.log")
            .is_file(),
        "the pods' logs are in {work_dir}"
    );
}
