//! `cargo xtask status`: the pinned versions, the tools found, the cluster's state (Kubernetes,
//! Gateway API CRDs, Istio) and what the demos have deployed. It changes nothing; a cluster that
//! is not there is a state to report, not an error.

use std::fmt::Write as _;

use xshell::cmd;

use crate::{cluster::kube::Cluster, cluster::versions};

/// A Deployment's name with its ready and wanted replicas.
pub type DeploymentState = (String, i32, i32);

/// What the cluster holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ClusterState {
    pub context: String,
    pub kubernetes: String,
    /// The bundle version of the installed Gateway API CRDs (HTTPRoute's), if any.
    pub gateway_api: Option<String>,
    /// istiod's image, if Istio is installed.
    pub istiod: Option<String>,
    /// Each of the harness's namespaces, with its Deployments: (name, ready, wanted).
    pub namespaces: Vec<(String, Vec<DeploymentState>)>,
}

/// Reads the cluster's state (GETs and LISTs only).
pub async fn gather(cluster: &Cluster) -> anyhow::Result<ClusterState> {
    let mut state = ClusterState {
        context: cluster.context.clone(),
        kubernetes: cluster.server_version().await?,
        gateway_api: cluster
            .crd_bundle_version("httproutes.gateway.networking.k8s.io")
            .await?,
        istiod: cluster.deployment_image("istio-system", "istiod").await?,
        namespaces: Vec::new(),
    };
    for namespace in cluster.owned_namespaces().await? {
        let deployments = cluster.deployments(&namespace).await?;
        state.namespaces.push((namespace, deployments));
    }
    Ok(state)
}

/// The cluster's part of the report.
pub fn render(state: &ClusterState) -> String {
    let mut out = String::new();
    let pinned_istio = format!(":{}", versions::ISTIO_VERSION);
    // The ambient profile's images are the distroless variant of the same tag.
    let pinned_distroless = format!("{pinned_istio}-distroless");
    writeln!(out, "cluster (kube context {})", state.context).unwrap();
    writeln!(out, "  kubernetes    {}", state.kubernetes).unwrap();
    let gateway = match &state.gateway_api {
        Some(v) if v == versions::GATEWAY_API_VERSION => v.clone(),
        Some(v) => format!(
            "{v} (the pinned version is {})",
            versions::GATEWAY_API_VERSION
        ),
        None => "not installed (run `cargo xtask up`)".to_owned(),
    };
    writeln!(out, "  gateway api   {gateway}").unwrap();
    let istio = match &state.istiod {
        Some(image) if image.ends_with(&pinned_istio) || image.ends_with(&pinned_distroless) => {
            format!("istiod {image}")
        }
        Some(image) => format!(
            "istiod {image} (the pinned version is {})",
            versions::ISTIO_VERSION
        ),
        None => "not installed (run `cargo xtask up-istio` for the mesh demos)".to_owned(),
    };
    writeln!(out, "  istio         {istio}").unwrap();
    if state.namespaces.is_empty() {
        writeln!(out, "  demos         none deployed").unwrap();
    }
    for (namespace, deployments) in &state.namespaces {
        writeln!(out, "  namespace {namespace}").unwrap();
        for (name, ready, wanted) in deployments {
            writeln!(out, "    {name:<18} {ready}/{wanted} ready").unwrap();
        }
    }
    out
}

/// The pinned versions and the tools found on this machine.
fn local_part(sh: &xshell::Shell) -> String {
    let mut out = String::new();
    writeln!(out, "pinned versions").unwrap();
    writeln!(out, "  kind node     {}", versions::KIND_NODE_IMAGE).unwrap();
    writeln!(out, "  kind          {} or newer", versions::KIND_VERSION).unwrap();
    writeln!(out, "  istio         {}", versions::ISTIO_VERSION).unwrap();
    writeln!(
        out,
        "  gateway api   {} (standard channel)",
        versions::GATEWAY_API_VERSION
    )
    .unwrap();
    writeln!(out, "tools").unwrap();
    let docker = match crate::cluster::images::docker_available(sh) {
        Ok(()) => "running".to_owned(),
        Err(err) => format!("{err:#}"),
    };
    writeln!(out, "  docker        {docker}").unwrap();
    let kind = cmd!(sh, "kind version")
        .quiet()
        .ignore_stderr()
        .read()
        .map_or_else(|_| "not found".to_owned(), |v| v.trim().to_owned());
    writeln!(out, "  kind          {kind}").unwrap();
    let root = crate::project::root();
    let tools = crate::cluster::istioctl::tools_bin(&root, versions::ISTIO_VERSION);
    let istioctl = match crate::cluster::istioctl::version_of(sh, std::path::Path::new("istioctl"))
    {
        Ok(version) => format!("{version} (on PATH)"),
        Err(_) if tools.is_file() => format!("{} (in .tools/)", versions::ISTIO_VERSION),
        Err(_) => "not found (`cargo xtask up-istio` downloads it)".to_owned(),
    };
    writeln!(out, "  istioctl      {istioctl}").unwrap();
    out
}

/// `cargo xtask status`.
pub fn run(flags: &crate::flags::Status) -> anyhow::Result<()> {
    let sh = crate::project::shell()?;
    print!("{}", local_part(&sh));
    let runtime = tokio::runtime::Runtime::new()?;
    let state = runtime.block_on(async {
        let cluster =
            crate::cluster::kube::connect(&flags.cluster, flags.context.as_deref()).await?;
        gather(&cluster).await
    });
    match state {
        Ok(state) => print!("{}", render(&state)),
        // Nothing to look at is an answer, not a failure.
        Err(err) => println!("cluster\n  not reachable: {err:#}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cluster::kube::mock::{self, Mock, Reply};

    #[tokio::test]
    async fn gather_reads_versions_istio_and_the_harness_namespaces_with_gets_and_lists_only() {
        let mock = Mock::start().await;
        mock.on(
            "GET",
            "/version",
            Reply::Json(
                200,
                json!({ "major": "1", "minor": "35", "gitVersion": "v1.35.8", "gitCommit": "", "gitTreeState": "",
                    "buildDate": "", "goVersion": "", "compiler": "", "platform": "linux/amd64" }),
            ),
        );
        mock.on(
            "GET",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/httproutes.gateway.networking.k8s.io",
            Reply::Json(
                200,
                json!({ "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                    "metadata": { "name": "httproutes.gateway.networking.k8s.io",
                        "annotations": { "gateway.networking.k8s.io/bundle-version": "v1.5.1" } },
                    "spec": { "group": "gateway.networking.k8s.io", "scope": "Namespaced",
                        "names": { "plural": "httproutes", "kind": "HTTPRoute" }, "versions": [] } }),
            ),
        );
        mock.on(
            "GET",
            "/api/v1/namespaces",
            Reply::Json(
                200,
                mock::list(
                    "v1",
                    "NamespaceList",
                    vec![json!({ "metadata": { "name": "gml-grpcroute" } })],
                ),
            ),
        );
        let deployment = |name: &str, ready: i32, wanted: i32| {
            json!({ "metadata": { "name": name, "namespace": "gml-grpcroute" },
                "spec": { "replicas": wanted, "selector": {}, "template": {} },
                "status": { "readyReplicas": ready } })
        };
        mock.on(
            "GET",
            "/apis/apps/v1/namespaces/gml-grpcroute/deployments",
            Reply::Json(
                200,
                mock::list(
                    "apps/v1",
                    "DeploymentList",
                    vec![
                        deployment("server-v2", 1, 2),
                        deployment("client-mesh-on", 1, 1),
                    ],
                ),
            ),
        );
        // no istiod: the mock answers 404

        let state = gather(&mock.cluster()).await.unwrap();
        assert_eq!(
            state,
            ClusterState {
                context: "kind-mock".into(),
                kubernetes: "v1.35.8".into(),
                gateway_api: Some("v1.5.1".into()),
                istiod: None,
                namespaces: vec![(
                    "gml-grpcroute".into(),
                    vec![("client-mesh-on".into(), 1, 1), ("server-v2".into(), 1, 2)]
                )],
            }
        );
        let calls = mock.calls();
        assert!(
            calls.iter().all(|c| c.method == "GET"),
            "status changes nothing: {calls:#?}"
        );
        let namespaces = calls
            .iter()
            .find(|c| c.path == "/api/v1/namespaces")
            .unwrap();
        assert_eq!(
            namespaces.param("labelSelector"),
            Some("app.kubernetes.io/part-of=grpc-mesh-lab")
        );
        assert!(
            calls
                .iter()
                .any(|c| c.path == "/apis/apps/v1/namespaces/istio-system/deployments/istiod")
        );
    }

    #[test]
    fn render_says_what_is_missing_and_how_to_get_it() {
        let text = render(&ClusterState {
            context: "kind-grpc-mesh-lab".into(),
            kubernetes: "v1.35.8".into(),
            gateway_api: Some("v1.4.0".into()),
            istiod: None,
            namespaces: Vec::new(),
        });
        assert!(
            text.contains("gateway api   v1.4.0 (the pinned version is v1.5.1)"),
            "{text}"
        );
        assert!(
            text.contains("istio         not installed (run `cargo xtask up-istio`"),
            "{text}"
        );
        assert!(text.contains("demos         none deployed"), "{text}");
    }

    #[test]
    fn the_ambient_profile_s_distroless_istiod_is_the_pinned_version_and_another_tag_is_not() {
        let state = |image: String| ClusterState {
            context: "kind-grpc-mesh-lab".into(),
            kubernetes: "v1.35.8".into(),
            gateway_api: Some("v1.5.1".into()),
            istiod: Some(image),
            namespaces: Vec::new(),
        };
        let distroless = format!(
            "docker.io/istio/pilot:{}-distroless",
            versions::ISTIO_VERSION
        );
        let text = render(&state(distroless.clone()));
        assert!(text.contains(&format!("istiod {distroless}\n")), "{text}");
        let text = render(&state("docker.io/istio/pilot:1.29.0-distroless".into()));
        assert!(text.contains("(the pinned version is"), "{text}");
    }

    #[test]
    fn render_lists_each_demo_namespace_with_its_deployments() {
        let text = render(&ClusterState {
            context: "kind-grpc-mesh-lab".into(),
            kubernetes: "v1.35.8".into(),
            gateway_api: Some("v1.5.1".into()),
            istiod: Some(format!("docker.io/istio/pilot:{}", versions::ISTIO_VERSION)),
            namespaces: vec![("gml-canary".into(), vec![("server-v1".into(), 2, 2)])],
        });
        assert!(
            text.contains(&format!(
                "istio         istiod docker.io/istio/pilot:{}\n",
                versions::ISTIO_VERSION
            )),
            "{text}"
        );
        assert!(
            text.contains("  namespace gml-canary\n    server-v1          2/2 ready\n"),
            "{text}"
        );
    }
}
