//! What a cluster command does, step by step. `up`, `up-istio` and `down` walk their steps once,
//! through a [`Runner`]: the [`Real`] runner does each step, the [`Recorder`] writes it down, and
//! `--dry-run` prints what the recorder saw. There is no second description of a command to
//! drift from what it does.

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use kube::api::DynamicObject;

use crate::cluster::{fetch, images, kube::FIELD_MANAGER, versions};

/// One step of a cluster command.
pub enum Step {
    /// An external program, with its arguments, run in the project root.
    Run { program: String, args: Vec<String> },
    /// Check what a command needs, before it changes anything: the kube context `context` (when
    /// named) in the kubeconfig, Docker running, and kind (when `kind`).
    CheckTools { kind: bool, context: Option<String> },
    /// Find istioctl `version`: on `PATH`, in `.tools/`, or downloaded there, checked.
    Istioctl { version: String },
    /// `kind create cluster` with these arguments, unless the kind cluster `name` exists.
    CreateCluster {
        name: String,
        args: Vec<String>,
        node_image: String,
    },
    /// `kind delete cluster --name <name>`, when kind lists the cluster.
    DeleteCluster { name: String },
    /// Build the images a demo runs (their tags are the content hash, known once built).
    BuildImages,
    /// Load the built images into the kind cluster's nodes.
    LoadImages { cluster: String },
    /// Download the Gateway API CRDs to `to` (relative to the project root), kept only when
    /// their content matches the pinned checksum.
    DownloadCrds { to: PathBuf },
    /// Apply the objects of the CRD bundle at `path` once it is checked, then wait until its CRDs
    /// are established (a bundle that is only downloaded by an earlier step).
    ApplyCrdBundle { path: PathBuf },
    /// Server-side apply of these objects, in order.
    Apply {
        why: String,
        objects: Vec<DynamicObject>,
    },
    /// Wait until these CRDs are established.
    WaitCrds(Vec<String>),
    /// Wait until a Deployment has rolled out.
    WaitRollout { namespace: String, name: String },
    /// Wait until a DaemonSet runs an updated, ready pod on every node it wants.
    WaitDaemonSet { namespace: String, name: String },
    /// Something the user should know (printed, never executed).
    Note(String),
}

impl Step {
    pub fn run(program: &str, args: &[&str]) -> Step {
        Step::Run {
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// Whether the real runner announces the step before doing it (checks speak only when they
    /// fail, so that a refused command prints one line).
    fn announced(&self) -> bool {
        !matches!(
            self,
            Step::Note(_) | Step::CheckTools { .. } | Step::Istioctl { .. }
        )
    }
}

/// Identifies an object in a plan: `Kind namespace/name` or `Kind name`.
pub fn label(o: &DynamicObject) -> String {
    let kind = o.types.as_ref().map_or("?", |t| t.kind.as_str());
    let name = o.metadata.name.as_deref().unwrap_or("?");
    match &o.metadata.namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// How a plan introduces a server-side apply (the objects follow, one per line).
pub fn apply_heading(why: &str) -> String {
    format!("apply ({why}, server-side, field manager {FIELD_MANAGER}):")
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Run { program, args } => write!(f, "run: {program} {}", args.join(" ")),
            Step::CheckTools { kind, context } => {
                write!(f, "check: ")?;
                if let Some(context) = context {
                    write!(f, "the kube context {context} exists, ")?;
                }
                write!(f, "docker is running")?;
                if *kind {
                    write!(f, ", kind {} or newer", versions::KIND_VERSION)?;
                }
                Ok(())
            }
            Step::Istioctl { version } => write!(
                f,
                "find istioctl {version}: on PATH (`istioctl version --remote=false -o json`), else .tools/istio-{version}/istioctl, else downloaded there from the istio release and checked against its published .sha256"
            ),
            Step::CreateCluster {
                name,
                args,
                node_image,
            } => write!(
                f,
                "run: kind {}\n    skipped when the kind cluster {name} exists; node image {node_image}",
                args.join(" ")
            ),
            Step::DeleteCluster { name } => write!(
                f,
                "run: kind delete cluster --name {name}\n    only when `kind get clusters` lists {name}; nothing else is deleted"
            ),
            Step::BuildImages => {
                let names: Vec<String> = images::placeholders()
                    .all()
                    .iter()
                    .map(|i| format!("{}/{}", images::REPOSITORY, i.name))
                    .collect();
                write!(
                    f,
                    "build images: {}, tagged with their content hash",
                    names.join(", ")
                )
            }
            Step::LoadImages { cluster } => write!(
                f,
                "run: kind {}",
                images::kind_load_args(&images::placeholders(), cluster).join(" ")
            ),
            Step::DownloadCrds { to } => write!(
                f,
                "download: {} to {}\n    kept only when its content has sha256 {} (`grep -v -e '^#' -e '^$' FILE | sha256sum`)",
                fetch::GATEWAY_API_CRDS_URL,
                to.display(),
                fetch::GATEWAY_API_CRDS_SHA256
            ),
            Step::ApplyCrdBundle { path } => write!(
                f,
                "apply (every object of {}: Gateway API {} standard channel, server-side, field manager {FIELD_MANAGER})\n    then wait: its CRDs established",
                path.display(),
                fetch::GATEWAY_API_VERSION
            ),
            Step::Apply { why, objects } => {
                f.write_str(&apply_heading(why))?;
                for o in objects {
                    write!(f, "\n    {}", label(o))?;
                }
                Ok(())
            }
            Step::WaitCrds(names) => write!(f, "wait: CRDs established: {}", names.join(", ")),
            Step::WaitRollout { namespace, name } => {
                write!(f, "wait: deployment {namespace}/{name} rolled out")
            }
            Step::WaitDaemonSet { namespace, name } => write!(
                f,
                "wait: daemonset {namespace}/{name} rolled out (an updated, ready pod on every node)"
            ),
            Step::Note(text) => write!(f, "note: {text}"),
        }
    }
}

/// A whole plan, one step per line.
pub struct Plan(pub Vec<Step>);

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            writeln!(f, "{:>2}. {step}", i + 1)?;
        }
        Ok(())
    }
}

/// What a cluster command acts through: one call per step.
// Used with concrete runners only, inside this crate: no `Send` bound is needed on its futures.
#[allow(async_fn_in_trait)]
pub trait Runner {
    /// Does `step` (the recorder writes it down instead).
    async fn act(&mut self, step: Step) -> anyhow::Result<()>;
}

/// Writes every step down: a dry run.
#[derive(Default)]
pub struct Recorder {
    steps: Vec<Step>,
}

impl Recorder {
    /// The steps seen, in order.
    pub fn plan(self) -> Plan {
        Plan(self.steps)
    }
}

impl Runner for Recorder {
    async fn act(&mut self, step: Step) -> anyhow::Result<()> {
        self.steps.push(step);
        Ok(())
    }
}

/// Does every step, announcing it on stderr with the number `--dry-run` gives it: Docker, kind, istioctl and curl as programs run in
/// the project root, the images through [`images`], and the Kubernetes API through
/// `cluster/kube.rs`, on the kube context `kind-<cluster>` unless `context` names another.
pub struct Real {
    sh: xshell::Shell,
    cluster: String,
    context: Option<String>,
    kube: Option<crate::cluster::kube::Cluster>,
    images: Option<images::Images>,
    istioctl: Option<PathBuf>,
    /// Steps seen so far: the progress lines carry the numbers `--dry-run` prints.
    seen: usize,
}

/// The longest wait for CRDs to be established, and for a Deployment to roll out.
const CRDS_ESTABLISHED: Duration = Duration::from_secs(60);
const ROLLOUT: Duration = Duration::from_secs(300);

impl Real {
    pub fn new(cluster: &str, context: Option<&str>) -> anyhow::Result<Real> {
        Ok(Real {
            sh: crate::project::shell()?,
            cluster: cluster.to_owned(),
            context: context.map(str::to_owned),
            kube: None,
            images: None,
            istioctl: None,
            seen: 0,
        })
    }

    async fn kube(&mut self) -> anyhow::Result<&crate::cluster::kube::Cluster> {
        if self.kube.is_none() {
            self.kube =
                Some(crate::cluster::kube::connect(&self.cluster, self.context.as_deref()).await?);
        }
        Ok(self.kube.as_ref().expect("set above"))
    }

    fn kind_clusters(&self) -> anyhow::Result<Vec<String>> {
        let out = xshell::cmd!(self.sh, "kind get clusters")
            .quiet()
            .ignore_stderr()
            .read()
            .context("kind get clusters failed")?;
        Ok(out.lines().map(|l| l.trim().to_owned()).collect())
    }
}

impl Runner for Real {
    async fn act(&mut self, step: Step) -> anyhow::Result<()> {
        self.seen += 1;
        if step.announced() {
            eprintln!(
                "==> [{}] {}",
                self.seen,
                step.to_string().lines().next().unwrap_or_default()
            );
        }
        let root = crate::project::root();
        match step {
            Step::Note(_) => {}
            Step::CheckTools { kind, context } => {
                if context.is_some() {
                    // The named context must exist before anything is built or installed.
                    self.kube().await?;
                }
                images::docker_available(&self.sh)?;
                if kind {
                    check_kind(&self.sh)?;
                }
            }
            Step::Istioctl { version } => {
                self.istioctl = Some(crate::cluster::istioctl::find(&self.sh, &root, &version)?);
            }
            Step::CreateCluster { name, args, .. } => {
                if self.kind_clusters()?.contains(&name) {
                    eprintln!("    the kind cluster {name} exists: kept");
                } else {
                    xshell::cmd!(self.sh, "kind {args...}")
                        .run()
                        .context("kind create cluster failed")?;
                }
            }
            Step::DeleteCluster { name } => {
                if self.kind_clusters()?.contains(&name) {
                    xshell::cmd!(self.sh, "kind delete cluster --name {name}")
                        .run()
                        .context("kind delete cluster failed")?;
                } else {
                    eprintln!("    no kind cluster named {name}: nothing to delete");
                }
            }
            Step::Run { program, args } => {
                let program = match (program.as_str(), &self.istioctl) {
                    ("istioctl", Some(bin)) => bin.display().to_string(),
                    ("istioctl", None) => bail!("istioctl is run before it was found"),
                    _ => program,
                };
                xshell::cmd!(self.sh, "{program} {args...}")
                    .run()
                    .with_context(|| format!("{program} failed"))?;
            }
            Step::BuildImages => self.images = Some(images::build(&self.sh, false)?),
            Step::LoadImages { cluster } => {
                let Some(built) = &self.images else {
                    bail!("the images must be built before they are loaded");
                };
                images::load_into_kind(&self.sh, built, &cluster)?;
            }
            Step::DownloadCrds { to } => {
                fetch::download_crds(fetch::GATEWAY_API_CRDS_URL, &root.join(to))?;
            }
            Step::ApplyCrdBundle { path } => {
                let objects = crate::up::read_crds(&root.join(path))?;
                let names = crate::up::crd_names(&objects);
                let kube = self.kube().await?;
                kube.apply(&objects).await?;
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                kube.wait_crds_established(&names, CRDS_ESTABLISHED).await?;
            }
            Step::Apply { objects, .. } => self.kube().await?.apply(&objects).await?,
            Step::WaitCrds(names) => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                self.kube()
                    .await?
                    .wait_crds_established(&names, CRDS_ESTABLISHED)
                    .await?;
            }
            Step::WaitRollout { namespace, name } => {
                self.kube()
                    .await?
                    .wait_rollout(&namespace, &name, ROLLOUT)
                    .await?;
            }
            Step::WaitDaemonSet { namespace, name } => {
                self.kube()
                    .await?
                    .wait_daemonset(&namespace, &name, ROLLOUT)
                    .await?;
            }
        }
        Ok(())
    }
}

/// kind must run; older than [`versions::KIND_VERSION`] is a warning (its node images may not
/// boot).
fn check_kind(sh: &xshell::Shell) -> anyhow::Result<()> {
    let kind = xshell::cmd!(sh, "kind version")
        .quiet()
        .ignore_stderr()
        .read()
        .map_err(|_| {
            anyhow::anyhow!(
                "kind not found: install kind {} or newer (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)",
                versions::KIND_VERSION
            )
        })?;
    if let Some(found) = kind.split_whitespace().find(|w| w.starts_with('v'))
        && version_less(found, versions::KIND_VERSION)
    {
        eprintln!(
            "warning: kind {found} is older than {}: its node images may not boot",
            versions::KIND_VERSION
        );
    }
    Ok(())
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

/// The path of `path` below the project root, for a plan (absolute when outside it).
pub fn shown(path: &Path) -> PathBuf {
    path.strip_prefix(crate::project::root())
        .unwrap_or(path)
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_less("v0.9.0", "v0.33.0"));
        assert!(!version_less("v0.33.0", "v0.33.0"));
        assert!(!version_less("v1.0.0", "v0.33.0"));
    }

    #[tokio::test]
    async fn the_recorder_keeps_every_step_in_order_and_prints_them_numbered() {
        let mut recorder = Recorder::default();
        recorder
            .act(Step::DeleteCluster { name: "lab".into() })
            .await
            .unwrap();
        recorder.act(Step::run("echo", &["a", "b"])).await.unwrap();
        assert_eq!(
            recorder.plan().to_string(),
            " 1. run: kind delete cluster --name lab\n    only when `kind get clusters` lists lab; nothing else is deleted\n 2. run: echo a b\n"
        );
    }

    #[test]
    fn the_load_step_names_every_image_a_demo_runs() {
        let step = Step::LoadImages {
            cluster: "lab".into(),
        };
        assert_eq!(
            step.to_string(),
            "run: kind load docker-image grpc-mesh-lab/hello-server:<content-hash> grpc-mesh-lab/hello-client:<content-hash> grpc-mesh-lab/envoy:<content-hash> --name lab"
        );
    }
}
