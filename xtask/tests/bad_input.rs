//! Bad input to `cargo xtask`, case by case: each is refused with one `xtask: error:` line (or clap's one
//! `error:` line for a bad flag) that names the problem, a non-zero exit, and nothing started or applied.
//! (The apps' own bad input is in `apps/tests/bad_input.rs`; the route loader's every rule in
//! `mesh/tests/gateway.rs`.)

use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

struct Refusal {
    code: i32,
    /// The error lines of stderr (`xtask: error:` or clap's `error:`).
    errors: Vec<String>,
    stderr: String,
}

fn xtask(args: &[&str], env: &[(&str, &str)]) -> Refusal {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut command = Command::new(XTASK);
    command.args(args).current_dir(root).stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("run xtask");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let errors = stderr
        .lines()
        .filter(|l| l.starts_with("xtask: error:") || l.starts_with("error:"))
        .map(str::to_owned)
        .collect();
    Refusal {
        code: out.status.code().unwrap_or(-1),
        errors,
        stderr,
    }
}

/// One error line containing `names`, exit `code`, and no twin, Envoy or cluster touched.
fn assert_refused(what: &str, refusal: &Refusal, code: i32, names: &str) {
    assert_eq!(refusal.code, code, "{what}: {}", refusal.stderr);
    assert_eq!(
        refusal.errors.len(),
        1,
        "{what}: one error line: {}",
        refusal.stderr
    );
    assert!(
        refusal.errors[0].contains(names),
        "{what}: the error names {names:?}: {}",
        refusal.errors[0]
    );
    assert!(
        !refusal.stderr.contains("twin on") && !refusal.stderr.contains("==> deploying"),
        "{what}: nothing was started: {}",
        refusal.stderr
    );
}

const ROUTE_HEAD: &str =
    "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: bad}\nspec:\n";
const PARENT: &str = "  parentRefs: [{group: \"\", kind: Service, name: server}]\n";

fn grpc_route(rules: &str) -> String {
    format!("{ROUTE_HEAD}{PARENT}  rules:\n{rules}")
}

fn backend(weight: &str) -> String {
    format!("    backendRefs: [{{name: server-v1, port: 50051, weight: {weight}}}]\n")
}

#[test]
fn every_bad_route_file_is_refused_in_one_line_naming_the_problem_before_anything_starts() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bad-routes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "malformed yaml",
            "kind: GRPCRoute\nspec: [unclosed\n".into(),
            "malformed yaml",
        ),
        (
            "an unknown kind",
            "apiVersion: gateway.networking.k8s.io/v1\nkind: TCPRoute\nmetadata: {name: x}\n"
                .into(),
            "unknown kind \"TCPRoute\"",
        ),
        (
            "a route with no parentRefs",
            format!("{ROUTE_HEAD}  rules:\n  - {}", backend("1").trim_start()),
            "spec.parentRefs: needs at least one parentRef",
        ),
        (
            "a method match with neither service nor method",
            grpc_route(&format!(
                "  - matches: [{{method: {{}}}}]\n{}",
                backend("1")
            )),
            "spec.rules[0].matches[0].method",
        ),
        (
            "an invalid regular expression",
            grpc_route(&format!(
                "  - matches: [{{headers: [{{type: RegularExpression, name: x-canary, value: \"(\"}}]}}]\n{}",
                backend("1")
            )),
            "spec.rules[0].matches[0].headers[0].value: invalid regular expression",
        ),
        (
            "a weight below 0",
            grpc_route(&format!("  - {}", backend("-1").trim_start())),
            "weight: -1 is out of range (0 to 1000000)",
        ),
        (
            "a weight above 1,000,000",
            grpc_route(&format!("  - {}", backend("1000001").trim_start())),
            "weight: 1000001 is out of range (0 to 1000000)",
        ),
        (
            "two objects with the same name",
            format!(
                "{}---\n{}",
                grpc_route(&format!("  - {}", backend("1").trim_start())),
                grpc_route(&format!("  - {}", backend("1").trim_start()))
            ),
            "GRPCRoute default/bad: defined twice",
        ),
    ];
    for (i, (what, yaml, names)) in cases.iter().enumerate() {
        let file = dir.join(format!("{i}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        let refusal = xtask(
            &[
                "experiment",
                "--local",
                "--debug",
                "--routes",
                file.to_str().unwrap(),
            ],
            &[],
        );
        assert_refused(what, &refusal, 1, names);
        assert!(refusal.errors[0].starts_with("xtask: error:"), "{what}");
    }
}

#[test]
fn bad_durations_counts_and_names_are_usage_errors_naming_the_flag() {
    let cases: [(&str, &[&str], &str); 10] = [
        (
            "a duration without a unit",
            &["experiment", "--local", "--duration", "3"],
            "--duration",
        ),
        (
            "a zero duration",
            &["experiment", "--local", "--duration", "0s"],
            "--duration",
        ),
        (
            "zero concurrency",
            &["experiment", "--local", "--concurrency", "0"],
            "--concurrency",
        ),
        (
            "zero rpcs",
            &["experiment", "--local", "--rpcs", "0"],
            "--rpcs",
        ),
        (
            "zero hello servers",
            &["hello", "--servers", "0"],
            "--servers",
        ),
        (
            "too many hello servers",
            &["hello", "--servers", "51"],
            "--servers",
        ),
        (
            "an unknown method",
            &["experiment", "--local", "--method", "Nope"],
            "--method",
        ),
        ("an unknown lb policy", &["hello", "--lb", "random"], "--lb"),
        (
            "a dry run of a local demo (a plan belongs to the cluster)",
            &["demo", "kill", "--local", "--dry-run"],
            "'--local' cannot be used with '--dry-run'",
        ),
        (
            "an unknown exposure",
            &["experiment", "--local", "--exposure", "nodeport"],
            "--exposure",
        ),
    ];
    for (what, args, names) in cases {
        assert_refused(what, &xtask(args, &[]), 2, names);
    }
}

#[test]
fn bad_server_counts_are_usage_errors_naming_the_flag_and_why() {
    for (servers, why) in [
        ("v1=0", "0 replicas: expected 1 to 50"),
        ("v1=abc", "\"abc\" is not a replica count"),
        ("V1=3", "\"V1\" is not a valid version label"),
    ] {
        let refusal = xtask(
            &["experiment", "--local", "--debug", "--servers", servers],
            &[],
        );
        assert_refused(
            servers,
            &refusal,
            2,
            &format!("xtask: error: invalid value '{servers}' for '--servers <SERVERS>': {why}"),
        );
    }
}

#[test]
fn an_unknown_scenario_is_a_usage_error_naming_the_known_ones() {
    for command in ["demo", "manifests"] {
        let refusal = xtask(&[command, "nope"], &[]);
        assert_refused(
            command,
            &refusal,
            2,
            "xtask: error: invalid value 'nope' for '<SCENARIO>' [possible values: clusterip, headless, maxage,",
        );
        assert!(
            refusal.errors[0].ends_with(", kill, scale-down]"),
            "{command}: every name: {}",
            refusal.errors[0]
        );
    }
}

#[test]
fn an_envoy_that_is_not_there_is_refused_before_any_pod_starts() {
    let refusal = xtask(
        &["demo", "sidecar", "--local", "--debug"],
        &[("ENVOY_BIN", "/nonexistent/envoy")],
    );
    assert_refused(
        "ENVOY_BIN missing",
        &refusal,
        1,
        "ENVOY_BIN is set to /nonexistent/envoy, which does not exist",
    );
}

#[test]
fn a_docker_that_does_not_answer_stops_up_before_anything_is_created() {
    let refusal = xtask(
        &["up"],
        &[
            ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
            ("KUBECONFIG", "/nonexistent/kubeconfig"),
        ],
    );
    assert_refused("docker not running", &refusal, 1, "docker is not running");
    assert!(
        !refusal.stderr.contains("==> ["),
        "no step ran: {}",
        refusal.stderr
    );
}
