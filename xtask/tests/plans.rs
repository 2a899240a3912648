//! Golden tests of the `--dry-run` plans: what `up`, `up-istio`, `down` and each cluster demo would
//! run and apply. Regenerate after an intended change with `UPDATE_GOLDEN=1 cargo test -p xtask --test plans`.

use std::{path::PathBuf, process::Command, sync::OnceLock};

use xtask::{cluster::fetch, harness::scenario};

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The pinned Gateway API CRDs, found as `cargo xtask up` finds them (`GATEWAY_API_CRDS`,
/// `.tools/`, or downloaded there), so that every plan lists the same objects.
fn crds() -> &'static PathBuf {
    static CRDS: OnceLock<PathBuf> = OnceLock::new();
    CRDS.get_or_init(|| {
        fetch::crds(&root(), &|name| std::env::var(name).ok()).unwrap_or_else(|e| panic!("{e:#}"))
    })
}

fn dry_run(args: &[&str]) -> String {
    let crds = crds();
    let out = Command::new(XTASK)
        .args(args)
        .env("GATEWAY_API_CRDS", crds)
        .current_dir(root())
        .output()
        .expect("run xtask");
    assert!(
        out.status.success(),
        "xtask {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/plans")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing: run UPDATE_GOLDEN=1 cargo test -p xtask --test plans",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "the {name} plan changed; if that was intended, run UPDATE_GOLDEN=1 cargo test -p xtask --test plans"
    );
}

#[test]
fn the_up_istio_plan_creates_the_cluster_loads_images_installs_crds_then_istio() {
    let plan = dry_run(&["up-istio", "--dry-run"]);
    assert!(
        plan.contains("run: kind create cluster --name grpc-mesh-lab --config kind-config.yaml"),
        "{plan}"
    );
    assert!(
        plan.contains("CustomResourceDefinition grpcroutes.gateway.networking.k8s.io"),
        "{plan}"
    );
    assert!(
        plan.contains("run: istioctl install -y -f mesh/istio/istio.yaml --set tag=1.30.5 --context kind-grpc-mesh-lab"),
        "{plan}"
    );
    golden("up-istio", &plan);
}

#[test]
fn the_up_istio_ambient_plan_installs_the_ambient_file_then_waits_for_istiod_istio_cni_and_ztunnel()
{
    let plan = dry_run(&["up-istio", "--ambient", "--dry-run"]);
    assert!(
        plan.contains(
            "run: istioctl install -y -f mesh/istio/istio-ambient.yaml --set tag=1.30.5 --context kind-grpc-mesh-lab"
        ),
        "{plan}"
    );
    let install = steps_with(&plan, "run: istioctl install")[0];
    let istiod = steps_with(&plan, "wait: deployment istio-system/istiod rolled out")[0];
    let cni = steps_with(
        &plan,
        "wait: daemonset istio-system/istio-cni-node rolled out",
    )[0];
    let ztunnel = steps_with(&plan, "wait: daemonset istio-system/ztunnel rolled out")[0];
    assert!(install < istiod && istiod < cni && cni < ztunnel, "{plan}");
    assert!(
        plan.contains("run: kind create cluster --name grpc-mesh-lab --config kind-config.yaml"),
        "the same kind cluster: {plan}"
    );
    let sidecar = dry_run(&["up-istio", "--dry-run"]);
    assert!(!sidecar.contains("daemonset"), "{sidecar}");
    assert!(sidecar.contains("-f mesh/istio/istio.yaml"), "{sidecar}");
    assert!(
        sidecar.contains("istio-cni and ztunnel removed"),
        "{sidecar}"
    );
    golden("up-istio-ambient", &plan);
}

#[test]
fn the_up_plan_has_no_istio() {
    let plan = dry_run(&["up", "--dry-run"]);
    assert!(!plan.contains("istioctl"), "{plan}");
    golden("up", &plan);
}

#[test]
fn the_up_plan_loads_every_image_a_demo_runs_into_kind_the_envoy_image_included() {
    let plan = dry_run(&["up", "--dry-run"]);
    assert!(
        plan.contains(
            "run: kind load docker-image grpc-mesh-lab/hello-server:<content-hash> grpc-mesh-lab/hello-client:<content-hash> grpc-mesh-lab/envoy:<content-hash> --name grpc-mesh-lab"
        ),
        "{plan}"
    );
    assert!(!plan.contains("envoyproxy/"), "{plan}");
}

#[test]
fn the_down_plan_checks_kind_then_deletes_only_the_harness_cluster() {
    let plan = dry_run(&["down", "--dry-run"]);
    assert!(
        plan.contains(" 2. run: kind delete cluster --name grpc-mesh-lab\n"),
        "{plan}"
    );
    golden("down", &plan);
    let other = dry_run(&["down", "--dry-run", "--cluster", "other-lab"]);
    assert!(
        other.contains("run: kind delete cluster --name other-lab\n")
            && !other.contains("grpc-mesh-lab"),
        "{other}"
    );
}

#[test]
fn down_without_kind_says_how_to_get_it_in_one_line_and_runs_nothing() {
    // A PATH with docker (running: down checks it first) and no kind. The cluster name is one
    // nobody has, so that this test can never delete a real cluster.
    let dir = std::env::temp_dir().join(format!("gml-plans-nokind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let docker = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("docker"))
                .find(|p| p.is_file())
        })
        .expect("docker on PATH");
    let link = dir.join("docker");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(docker, &link).unwrap();
    let out = Command::new(XTASK)
        .args(["down", "--cluster", "gml-test-no-such-cluster"])
        .env("PATH", &dir)
        .current_dir(root())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim(),
        "xtask: error: kind not found: install kind v0.33.0 or newer (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
    );
}

#[test]
fn overriding_a_version_changes_the_plan() {
    let plan = dry_run(&[
        "up-istio",
        "--dry-run",
        "--istio-version",
        "1.30.4",
        "--node-image",
        "kindest/node:v1.35.0",
    ]);
    assert!(plan.contains("--set tag=1.30.4"), "{plan}");
    assert!(plan.contains("--image kindest/node:v1.35.0"), "{plan}");
}

#[test]
fn every_demo_has_a_cluster_plan_that_applies_its_objects_and_measures_each_phase() {
    for scenario in scenario::names() {
        let plan = dry_run(&["demo", scenario, "--dry-run"]);
        assert!(
            plan.contains(&format!("Namespace gml-{scenario}")),
            "{scenario}: {plan}"
        );
        let phases = plan.matches("note: phase ").count();
        assert!(phases > 0, "{scenario}: {plan}");
        assert_eq!(
            plan.matches("measuring").count(),
            phases,
            "{scenario}: every phase is measured: {plan}"
        );
        golden(&format!("demo-{scenario}"), &plan);
    }
}

#[test]
fn every_demo_golden_plan_belongs_to_a_scenario_of_the_table_and_each_scenario_has_one() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/plans");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            Some(name.strip_prefix("demo-")?.strip_suffix(".txt")?.to_owned())
        })
        .collect();
    files.sort();
    let mut names = scenario::names();
    names.sort_unstable();
    assert_eq!(files, names, "golden plans in {}", dir.display());
}

/// The line numbers of the steps containing `text`.
fn steps_with(plan: &str, text: &str) -> Vec<usize> {
    plan.lines()
        .filter(|l| l.contains(text))
        .filter_map(|l| l.trim_start().split_once(". ")?.0.parse().ok())
        .collect()
}

#[test]
fn the_httproute_plan_reads_the_route_status_then_the_sidecar_before_measuring_and_applies_each_weight()
 {
    let plan = dry_run(&["demo", "httproute", "--dry-run"]);
    assert!(
        plan.contains("Deployment gml-httproute/client-mesh-on"),
        "{plan}"
    );
    assert_eq!(
        plan.matches("apply (the route with new weights").count(),
        4,
        "{plan}"
    );
    let status = steps_with(
        &plan,
        "read: HTTPRoute gml-httproute/server's status from istio.io/gateway-controller",
    );
    let dumps = steps_with(
        &plan,
        "exec: `pilot-agent request GET config_dump` in gml-httproute/client-mesh-on-",
    );
    let measured = steps_with(&plan, "note: measuring");
    assert_eq!(
        (status.len(), dumps.len(), measured.len()),
        (4, 4, 4),
        "{plan}"
    );
    for phase in 0..4 {
        assert!(
            status[phase] < dumps[phase] && dumps[phase] < measured[phase],
            "phase {}: status, then the dump, then measuring: {plan}",
            phase + 1
        );
    }
}

#[test]
fn the_kill_plan_sigkills_a_container_on_its_node_and_waits_for_that_pod_not_the_deployment() {
    let plan = dry_run(&["demo", "kill", "--dry-run"]);
    let kills = steps_with(
        &plan,
        "run: docker exec <node> crictl stop --timeout 0 <id of server-v1-pod1/hello-server> (SIGKILL)",
    );
    assert_eq!(kills.len(), 3, "one a phase: {plan}");
    let rollouts = steps_with(&plan, "wait: deployment gml-kill/server-v1 rolled out");
    assert!(
        rollouts.iter().all(|r| r < &kills[0]),
        "no rollout wait after a kill: {plan}"
    );
    assert!(!plan.contains("grace period 0"), "{plan}");
}

#[test]
fn the_kill_plan_on_another_context_loads_no_image_and_says_its_kill_is_a_grace_0_delete() {
    let plan = dry_run(&["demo", "kill", "--dry-run", "--context", "staging"]);
    assert!(!plan.contains("kind load"), "{plan}");
    assert!(
        plan.contains("note: staging is not a kind context: its nodes must be able to pull"),
        "{plan}"
    );
    assert_eq!(
        plan.matches("delete: pod gml-kill/server-v1-pod1 with grace period 0 (the kubelet still sends SIGTERM and waits 2s)")
            .count(),
        1,
        "the first kill deletes pod1; its replacement is pod2: {plan}"
    );
    assert!(!plan.contains("crictl"), "{plan}");
}

#[test]
fn the_compare_plan_stops_the_mesh_off_client_before_the_mesh_on_one_starts() {
    let plan = dry_run(&["demo", "compare", "--dry-run"]);
    let stop = plan
        .find("scale: deployment gml-compare/client-mesh-off to 0")
        .expect("the mesh-off client is scaled to zero");
    let stopped = plan[stop..]
        .find("wait: deployment gml-compare/client-mesh-off rolled out")
        .map(|i| i + stop)
        .expect("and waited for");
    let start = plan
        .find("    Deployment gml-compare/client-mesh-on")
        .expect("the mesh-on client is applied");
    assert!(stop < stopped && stopped < start, "{plan}");
}

#[test]
fn a_phase_that_changes_the_service_under_the_same_client_starts_a_new_client_pod() {
    // Applying the same client spec again starts no pod: without a restart the client would keep
    // its connections from the headless phase and the ClusterIP phase would measure them.
    let plan = dry_run(&["demo", "headless-sidecar", "--dry-run"]);
    let recreated = plan
        .find("delete: service gml-headless-sidecar/server")
        .expect("the Service is recreated for the second phase");
    let restart = plan
        .find("restart: deployment gml-headless-sidecar/client-mesh-on")
        .expect("the running client gets a new pod");
    let follow = plan
        .find("follow: the log of gml-headless-sidecar/client-mesh-on-pod2")
        .expect("and the new pod's log is followed");
    assert!(recreated < restart && restart < follow, "{plan}");
}

/// A kubeconfig whose only context (the current one) is somebody's production cluster.
fn foreign_kubeconfig(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gml-plans-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\ncurrent-context: prod-eu\n\
         clusters: [{name: prod-eu, cluster: {server: 'https://127.0.0.1:1'}}]\n\
         users: [{name: prod-eu, user: {}}]\n\
         contexts: [{name: prod-eu, context: {cluster: prod-eu, user: prod-eu}}]\n",
    )
    .unwrap();
    path
}

#[test]
fn a_demo_on_the_cluster_refuses_the_current_context_when_it_is_not_the_harness_s() {
    let out = Command::new(XTASK)
        .args(["demo", "clusterip"])
        .env("KUBECONFIG", foreign_kubeconfig("demo"))
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "xtask: error: kube context kind-grpc-mesh-lab not found: create the cluster with `cargo xtask up`"
    );
}

#[test]
fn a_named_context_that_does_not_exist_is_refused_before_anything_is_built() {
    let out = Command::new(XTASK)
        .args(["up-istio", "--context", "staging"])
        .env("KUBECONFIG", foreign_kubeconfig("up"))
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.trim()
            .starts_with("xtask: error: kube context staging not found in "),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn up_istio_into_a_named_context_skips_kind_and_installs_crds_then_istio_there() {
    let plan = dry_run(&["up-istio", "--dry-run", "--context", "staging"]);
    assert!(!plan.contains("run: kind"), "{plan}");
    assert!(plan.contains("--context staging"), "{plan}");
    golden("up-istio-context", &plan);
}

#[test]
fn status_without_the_cluster_reports_the_pinned_versions_and_what_is_missing() {
    let out = Command::new(XTASK)
        .args(["status"])
        .env("KUBECONFIG", foreign_kubeconfig("status"))
        .current_dir(root())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("istio         1.30.5"), "{text}");
    assert!(text.contains("gateway api   v1.5.1"), "{text}");
    assert!(
        text.contains(
            "not reachable: kube context kind-grpc-mesh-lab not found: create the cluster with `cargo xtask up`"
        ),
        "{text}"
    );
}
