//! `cargo xtask up` and `cargo xtask up-istio`: the kind cluster, the images a demo runs, the
//! Gateway API CRDs and (up-istio) Istio with client-only sidecar injection.
//!
//! The command is one walk over its steps ([`walk`]) through a [`Runner`]: the real one, or the
//! recorder whose steps `--dry-run` prints.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kube::api::DynamicObject;

use crate::cluster::fetch::{self, CrdSource};
use crate::{
    cluster::plan::{Real, Recorder, Runner, Step},
    cluster::versions,
    project,
};

/// What `up` and `up-istio` were asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub cluster: String,
    pub node_image: Option<String>,
    /// `Some(version)` for up-istio.
    pub istio: Option<String>,
    /// up-istio `--ambient`: the ambient profile (istio-cni and ztunnel too).
    pub ambient: bool,
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
            ambient: false,
            dry_run: up.dry_run,
            context: up.context.clone(),
        }
    }
}

/// Reads a CRD bundle into objects, after checking its content against the pinned checksum.
pub fn read_crds(path: &Path) -> anyhow::Result<Vec<DynamicObject>> {
    let bytes = fetch::read_checked_crds(path)?;
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

/// The Gateway API CRDs of a run, resolved before anything else so that a wrong bundle is refused
/// before anything changes.
pub enum Crds {
    /// Read and checked: the objects to apply.
    Objects(Vec<DynamicObject>),
    /// Not here yet: downloaded by the run to this path (relative to the project root).
    Download(PathBuf),
}

impl Crds {
    /// From `GATEWAY_API_CRDS`, else the checked copy in `.tools/`, else to be downloaded.
    pub fn resolve(env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Crds> {
        match fetch::locate_crds(&project::root(), env) {
            CrdSource::Named(path) | CrdSource::Cached(path) => {
                Ok(Crds::Objects(read_crds(&path)?))
            }
            CrdSource::Download(to) => Ok(Crds::Download(crate::cluster::plan::shown(&to))),
        }
    }
}

/// Istio's install configuration: sidecars only, or ambient mode.
pub const ISTIO_SIDECAR_CONFIG: &str = "mesh/istio/istio.yaml";
pub const ISTIO_AMBIENT_CONFIG: &str = "mesh/istio/istio-ambient.yaml";

/// The DaemonSets of ambient mode in `istio-system`, each waited for after the install: istio-cni's
/// node agent (`manifests/charts/istio-cni`, `istio-cni-node`) and ztunnel (`manifests/charts/ztunnel`).
pub const AMBIENT_DAEMONSETS: [&str; 2] = ["istio-cni-node", "ztunnel"];

/// `up` (and `up-istio` when `options.istio` is set), one step at a time through `runner`.
pub async fn walk<R: Runner>(runner: &mut R, options: &Options, crds: Crds) -> anyhow::Result<()> {
    let context = options
        .context
        .clone()
        .unwrap_or_else(|| format!("kind-{}", options.cluster));
    runner
        .act(Step::CheckTools {
            kind: options.context.is_none(),
            context: options.context.clone(),
        })
        .await?;
    if let Some(version) = &options.istio {
        runner
            .act(Step::Istioctl {
                version: version.clone(),
            })
            .await?;
    }
    match &options.context {
        None => {
            let mut args = [
                "create",
                "cluster",
                "--name",
                &options.cluster,
                "--config",
                "kind-config.yaml",
                "--wait",
                "120s",
            ]
            .map(str::to_owned)
            .to_vec();
            if let Some(image) = &options.node_image {
                args.extend(["--image".to_owned(), image.clone()]);
            }
            runner
                .act(Step::CreateCluster {
                    name: options.cluster.clone(),
                    args,
                    node_image: options.node_image.clone().unwrap_or_else(|| {
                        format!("{} (kind-config.yaml)", versions::KIND_NODE_IMAGE)
                    }),
                })
                .await?;
            runner.act(Step::BuildImages).await?;
            runner
                .act(Step::LoadImages {
                    cluster: options.cluster.clone(),
                })
                .await?;
        }
        Some(context) => {
            runner
                .act(Step::Note(format!(
                    "installs into the existing cluster of kube context {context}: no kind cluster is created, and the images are built but not loaded (its nodes must be able to pull them)"
                )))
                .await?;
            runner.act(Step::BuildImages).await?;
        }
    }
    match crds {
        Crds::Objects(objects) => {
            let names = crd_names(&objects);
            runner
                .act(Step::Apply {
                    why: format!(
                        "Gateway API {} standard channel",
                        versions::GATEWAY_API_VERSION
                    ),
                    objects,
                })
                .await?;
            runner.act(Step::WaitCrds(names)).await?;
        }
        Crds::Download(to) => {
            runner.act(Step::DownloadCrds { to: to.clone() }).await?;
            runner.act(Step::ApplyCrdBundle { path: to }).await?;
        }
    }
    if let Some(version) = &options.istio {
        let config = if options.ambient {
            ISTIO_AMBIENT_CONFIG
        } else {
            ISTIO_SIDECAR_CONFIG
        };
        runner
            .act(Step::Note(if options.ambient {
                format!("ambient mode ({config}): istiod, istio-cni and ztunnel, sidecars still injected where a pod asks; replaces a sidecar-only install of the same IstioOperator name (istioctl install prunes what the new file leaves out)")
            } else {
                format!("sidecars only ({config}): istiod; replaces an ambient install of the same IstioOperator name, istio-cni and ztunnel removed (istioctl install prunes what the new file leaves out)")
            }))
            .await?;
        runner
            .act(Step::run(
                "istioctl",
                &[
                    "install",
                    "-y",
                    "-f",
                    config,
                    "--set",
                    &format!("tag={version}"),
                    "--context",
                    &context,
                ],
            ))
            .await?;
        runner
            .act(Step::WaitRollout {
                namespace: "istio-system".into(),
                name: "istiod".into(),
            })
            .await?;
        if options.ambient {
            for name in AMBIENT_DAEMONSETS {
                runner
                    .act(Step::WaitDaemonSet {
                        namespace: "istio-system".into(),
                        name: name.into(),
                    })
                    .await?;
            }
        }
    }
    Ok(())
}

/// `cargo xtask up`: the kind cluster and the Gateway API CRDs.
pub fn run(flags: &crate::flags::Up) -> anyhow::Result<()> {
    execute(&Options::from(flags, None))
}

/// `cargo xtask up-istio`: `up`, then Istio.
pub fn run_istio(flags: &crate::flags::UpIstio) -> anyhow::Result<()> {
    execute(&Options {
        ambient: flags.ambient,
        ..Options::from(&flags.up, Some(flags.istio_version.clone()))
    })
}

/// The walk through the recorder (`--dry-run`, printed) or the real runner.
fn execute(options: &Options) -> anyhow::Result<()> {
    let crds = Crds::resolve(&|v| std::env::var(v).ok())?;
    let runtime = tokio::runtime::Runtime::new()?;
    if options.dry_run {
        let mut recorder = Recorder::default();
        runtime.block_on(walk(&mut recorder, options, crds))?;
        print!("{}", recorder.plan());
        return Ok(());
    }
    let mut real = Real::new(&options.cluster, options.context.as_deref())?;
    runtime.block_on(walk(&mut real, options, crds))?;
    match &options.context {
        None => eprintln!(
            "==> cluster {} is up (context kind-{})",
            options.cluster, options.cluster
        ),
        Some(context) => eprintln!("==> installed into kube context {context}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CRDs as `cargo xtask up` finds them: `GATEWAY_API_CRDS`, `.tools/`, or downloaded.
    fn pinned_crds() -> PathBuf {
        fetch::crds(&project::root(), &|v| std::env::var(v).ok())
            .unwrap_or_else(|err| panic!("{err:#}"))
    }

    fn options(istio: Option<&str>, context: Option<&str>) -> Options {
        Options {
            cluster: "grpc-mesh-lab".into(),
            node_image: None,
            istio: istio.map(str::to_owned),
            ambient: false,
            dry_run: true,
            context: context.map(str::to_owned),
        }
    }

    fn recorded(options: &Options, crds: Crds) -> String {
        let mut recorder = Recorder::default();
        futures::executor::block_on(walk(&mut recorder, options, crds)).unwrap();
        recorder.plan().to_string()
    }

    #[test]
    fn the_pinned_crd_bundle_reads_into_eight_crds_and_their_policy() {
        let objects = read_crds(&pinned_crds()).unwrap();
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
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn gateway_api_crds_names_a_local_copy() {
        let env = |name: &str| (name == "GATEWAY_API_CRDS").then(|| "/x/crds.yaml".to_owned());
        assert_eq!(
            fetch::locate_crds(&project::root(), &env),
            CrdSource::Named(PathBuf::from("/x/crds.yaml"))
        );
    }

    #[test]
    fn without_a_copy_the_plan_downloads_the_crds_into_tools_then_applies_them() {
        let plan = recorded(
            &options(None, None),
            Crds::Download(PathBuf::from(
                ".tools/gateway-api-v1.5.1-standard-install.yaml",
            )),
        );
        let steps: Vec<&str> = plan.lines().filter(|l| !l.starts_with("    ")).collect();
        assert_eq!(
            steps,
            [
                " 1. check: docker is running, kind v0.33.0 or newer",
                " 2. run: kind create cluster --name grpc-mesh-lab --config kind-config.yaml --wait 120s",
                " 3. build images: grpc-mesh-lab/hello-server, grpc-mesh-lab/hello-client, grpc-mesh-lab/envoy, tagged with their content hash",
                " 4. run: kind load docker-image grpc-mesh-lab/hello-server:<content-hash> grpc-mesh-lab/hello-client:<content-hash> grpc-mesh-lab/envoy:<content-hash> --name grpc-mesh-lab",
                " 5. download: https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.5.1/standard-install.yaml to .tools/gateway-api-v1.5.1-standard-install.yaml",
                " 6. apply (every object of .tools/gateway-api-v1.5.1-standard-install.yaml: Gateway API v1.5.1 standard channel, server-side, field manager grpc-mesh-lab)",
            ],
            "{plan}"
        );
        assert!(
            plan.contains(&format!(
                "content has sha256 {}",
                fetch::GATEWAY_API_CRDS_SHA256
            )),
            "{plan}"
        );
    }

    #[test]
    fn up_istio_finds_istioctl_before_it_creates_anything() {
        let plan = recorded(&options(Some("1.30.5"), None), Crds::Objects(Vec::new()));
        let istioctl = plan.find("find istioctl 1.30.5").expect("an istioctl step");
        let create = plan.find("run: kind create").expect("a create step");
        assert!(istioctl < create, "{plan}");
    }
}
