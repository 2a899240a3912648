//! `cargo xtask up` and `cargo xtask up-istio`: the kind cluster, the app images, the Gateway API
//! CRDs and (up-istio) Istio with client-only sidecar injection.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kube::api::DynamicObject;
use sha2::Digest;
use xshell::{Shell, cmd};

use crate::{
    plan::{Plan, Step},
    project, versions,
};

/// What `up` and `up-istio` were asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub cluster: String,
    pub node_image: Option<String>,
    /// `Some(version)` for up-istio.
    pub istio: Option<String>,
    pub dry_run: bool,
    /// An existing cluster's context to install into, instead of the harness's kind cluster.
    pub context: Option<String>,
}

impl Options {
    pub fn from(up: &crate::flags::Up, istio: Option<String>) -> Options {
        Options {
            cluster: up.cluster.clone(),
            node_image: up.node_image.clone(),
            istio,
            dry_run: up.dry_run,
            context: up.context.clone(),
        }
    }
}

/// The Gateway API CRDs: `GATEWAY_API_CRDS`, else the cached download in `.tools/`, else `None`
/// (they will be downloaded).
pub fn local_crds(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(path) = env(versions::GATEWAY_API_CRDS_VAR).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let cached = cached_crds();
    cached.exists().then_some(cached)
}

fn cached_crds() -> PathBuf {
    project::root().join(".tools").join(format!(
        "gateway-api-{}-standard-install.yaml",
        versions::GATEWAY_API_VERSION
    ))
}

/// Reads a CRD bundle into objects, after checking its checksum.
pub fn read_crds(path: &Path) -> anyhow::Result<Vec<DynamicObject>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the gateway api crds at {}", path.display()))?;
    let digest: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if digest != versions::GATEWAY_API_CRDS_SHA256 {
        bail!(
            "{} is not the gateway api {} standard bundle (sha256 {digest}, expected {})",
            path.display(),
            versions::GATEWAY_API_VERSION,
            versions::GATEWAY_API_CRDS_SHA256
        );
    }
    let text = String::from_utf8(bytes).context("the gateway api crds are not utf-8")?;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        use serde::Deserialize;
        let value = serde_yaml::Value::deserialize(doc)?;
        if value.is_null() {
            continue;
        }
        out.push(
            serde_yaml::from_value(value)
                .context("cannot read an object of the gateway api crds")?,
        );
    }
    Ok(out)
}

/// The CRD names in a bundle.
pub fn crd_names(objects: &[DynamicObject]) -> Vec<String> {
    objects
        .iter()
        .filter(|o| {
            o.types
                .as_ref()
                .is_some_and(|t| t.kind == "CustomResourceDefinition")
        })
        .filter_map(|o| o.metadata.name.clone())
        .collect()
}

/// The steps of `up` (and of `up-istio` when `options.istio` is set).
pub fn plan(options: &Options, crds: Option<Vec<DynamicObject>>) -> Plan {
    let context = options
        .context
        .clone()
        .unwrap_or_else(|| format!("kind-{}", options.cluster));
    let mut steps = vec![Step::Note(format!(
        "checks first: docker is running{}{}",
        if options.context.is_none() {
            format!(", kind ({} or newer)", versions::KIND_VERSION)
        } else {
            String::new()
        },
        if options.istio.is_some() {
            ", istioctl (downloaded into .tools/ with its checksum when absent)"
        } else {
            ""
        }
    ))];
    let mut create = vec![
        "create",
        "cluster",
        "--name",
        &options.cluster,
        "--config",
        "kind-config.yaml",
        "--wait",
        "120s",
    ];
    if let Some(image) = &options.node_image {
        create.extend(["--image", image]);
    }
    match &options.context {
        None => {
            steps.push(Step::Note(format!(
                "kind create is skipped when the cluster {} exists; node image {}",
                options.cluster,
                options
                    .node_image
                    .as_deref()
                    .unwrap_or(versions::KIND_NODE_IMAGE)
            )));
            steps.push(Step::run("kind", &create));
            steps.push(Step::BuildImages);
            steps.push(Step::LoadImages {
                cluster: options.cluster.clone(),
            });
        }
        Some(context) => {
            steps.push(Step::Note(format!(
                "installs into the existing cluster of kube context {context}: no kind cluster is created, and the images are built but not loaded (its nodes must be able to pull them)"
            )));
            steps.push(Step::BuildImages);
        }
    }
    match crds {
        Some(objects) => {
            let names = crd_names(&objects);
            steps.push(Step::Apply {
                why: format!(
                    "Gateway API {} standard channel",
                    versions::GATEWAY_API_VERSION
                ),
                objects,
            });
            steps.push(Step::WaitCrds(names));
        }
        None => {
            let to = cached_crds();
            let to = to
                .strip_prefix(project::root())
                .unwrap_or(&to)
                .display()
                .to_string();
            steps.push(Step::run(
                "curl",
                &["-fsSL", "-o", &to, versions::GATEWAY_API_CRDS_URL],
            ));
            steps.push(Step::Note(format!(
                "the download must have sha256 {}; then its objects are applied and the CRDs waited for",
                versions::GATEWAY_API_CRDS_SHA256
            )));
        }
    }
    if let Some(version) = &options.istio {
        steps.push(Step::run(
            "istioctl",
            &[
                "install",
                "-y",
                "-f",
                "mesh/istio/istio.yaml",
                "--set",
                &format!("tag={version}"),
                "--context",
                &context,
            ],
        ));
        steps.push(Step::WaitRollout {
            namespace: "istio-system".into(),
            name: "istiod".into(),
        });
    }
    Plan(steps)
}

/// Checks the tools a plan needs, up front, with how to get each.
pub fn check_tools(
    sh: &Shell,
    istio: Option<&str>,
    needs_kind: bool,
) -> anyhow::Result<Option<PathBuf>> {
    crate::images::docker_available(sh)?;
    if !needs_kind {
        return istio.map(|v| istioctl(sh, v)).transpose();
    }
    let kind = cmd!(sh, "kind version").quiet().ignore_stderr().read().map_err(|_| {
        anyhow::anyhow!("kind not found: install kind {} or newer (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)", versions::KIND_VERSION)
    })?;
    if let Some(found) = kind.split_whitespace().find(|w| w.starts_with('v'))
        && version_less(found, versions::KIND_VERSION)
    {
        eprintln!(
            "warning: kind {found} is older than {}: its node images may not boot",
            versions::KIND_VERSION
        );
    }
    istio.map(|v| istioctl(sh, v)).transpose()
}

/// `a < b` for `v1.2.3`-style versions.
fn version_less(a: &str, b: &str) -> bool {
    let parse = |v: &str| -> Vec<u64> {
        v.trim_start_matches('v')
            .split('.')
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    parse(a) < parse(b)
}

/// istioctl of `version`: on PATH when it is that version, else in `.tools/`, else downloaded there
/// after checking the published SHA-256.
pub fn istioctl(sh: &Shell, version: &str) -> anyhow::Result<PathBuf> {
    if let Ok(out) = cmd!(sh, "istioctl version --remote=false --short")
        .quiet()
        .ignore_stderr()
        .read()
        && out.trim() == version
    {
        return Ok(PathBuf::from("istioctl"));
    }
    let dir = project::root()
        .join(".tools")
        .join(format!("istio-{version}"));
    let bin = dir.join("istioctl");
    if bin.is_file() {
        return Ok(bin);
    }
    let (url, sum_url) = versions::istioctl_url(version)?;
    eprintln!("==> downloading istioctl {version} into .tools/");
    let tmp = project::root()
        .join(".tools")
        .join(format!("istioctl-{version}.tar.gz.partial"));
    std::fs::create_dir_all(&dir)?;
    cmd!(sh, "curl -fsSL -o {tmp} {url}")
        .run()
        .with_context(|| format!("cannot download {url}"))?;
    let published = cmd!(sh, "curl -fsSL {sum_url}")
        .read()
        .with_context(|| format!("cannot download {sum_url}"))?;
    let expected = published
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    let bytes = std::fs::read(&tmp)?;
    let got: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if got != expected {
        let _ = std::fs::remove_file(&tmp);
        bail!(
            "istioctl {version} download has sha256 {got}, but {sum_url} says {expected}: not installed"
        );
    }
    cmd!(sh, "tar -xzf {tmp} -C {dir}")
        .run()
        .context("cannot unpack istioctl")?;
    let _ = std::fs::remove_file(&tmp);
    if !bin.is_file() {
        bail!("the istioctl {version} archive has no istioctl binary");
    }
    Ok(bin)
}

/// `cargo xtask up` / `up-istio`.
pub fn main(options: &Options) -> anyhow::Result<()> {
    let sh = project::shell()?;
    let crds = match local_crds(&|v| std::env::var(v).ok()) {
        Some(path) => Some(read_crds(&path)?),
        None => None,
    };
    let plan = plan(options, crds);
    if options.dry_run {
        print!("{plan}");
        return Ok(());
    }
    let runtime = tokio::runtime::Runtime::new()?;
    if let Some(context) = &options.context {
        // The named context must exist before anything is built or installed.
        runtime.block_on(crate::cluster::kube::connect(
            &options.cluster,
            Some(context),
        ))?;
    }
    let istioctl = check_tools(&sh, options.istio.as_deref(), options.context.is_none())?;
    runtime.block_on(crate::plan::execute(
        &sh,
        &plan,
        &options.cluster,
        options.context.as_deref(),
        istioctl.as_deref(),
    ))?;
    if crd_step_missing(&plan) {
        // The CRDs were downloaded by the plan: apply them now that they are here.
        let objects = read_crds(&cached_crds())?;
        let names = crd_names(&objects);
        let rest = Plan(vec![
            Step::Apply {
                why: format!(
                    "Gateway API {} standard channel",
                    versions::GATEWAY_API_VERSION
                ),
                objects,
            },
            Step::WaitCrds(names),
        ]);
        runtime.block_on(crate::plan::execute(
            &sh,
            &rest,
            &options.cluster,
            options.context.as_deref(),
            istioctl.as_deref(),
        ))?;
    }
    match &options.context {
        None => eprintln!(
            "==> cluster {} is up (context kind-{})",
            options.cluster, options.cluster
        ),
        Some(context) => eprintln!("==> installed into kube context {context}"),
    }
    Ok(())
}

fn crd_step_missing(plan: &Plan) -> bool {
    !plan.0.iter().any(|s| matches!(s, Step::WaitCrds(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared_crds() -> PathBuf {
        project::root().join("../shared/gateway-api/v1.5.1/standard-install.yaml")
    }

    #[test]
    fn the_pinned_crd_bundle_reads_into_eight_crds_and_their_policy() {
        let objects = read_crds(&shared_crds()).unwrap();
        let names = crd_names(&objects);
        assert_eq!(names.len(), 8, "{names:?}");
        assert!(names.contains(&"grpcroutes.gateway.networking.k8s.io".to_owned()));
        assert!(
            objects.len() > names.len(),
            "the bundle's admission policy is applied too"
        );
    }

    #[test]
    fn a_bundle_with_another_checksum_is_refused() {
        let dir = std::env::temp_dir().join(format!("xtask-crds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("crds.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n",
        )
        .unwrap();
        let err = read_crds(&file).unwrap_err().to_string();
        assert!(
            err.contains("is not the gateway api v1.5.1 standard bundle"),
            "{err}"
        );
    }

    #[test]
    fn gateway_api_crds_names_a_local_copy() {
        let env = |name: &str| (name == "GATEWAY_API_CRDS").then(|| "/x/crds.yaml".to_owned());
        assert_eq!(local_crds(&env), Some(PathBuf::from("/x/crds.yaml")));
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_less("v0.9.0", "v0.33.0"));
        assert!(!version_less("v0.33.0", "v0.33.0"));
        assert!(!version_less("v1.0.0", "v0.33.0"));
    }
}
