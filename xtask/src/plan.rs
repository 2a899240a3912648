//! What a cluster command will do, as a list of steps: printed by `--dry-run`, executed otherwise.
//! Both walk the same list, so a dry run shows exactly what a real run does.

use std::fmt;

use kube::api::DynamicObject;

/// One step of a cluster command.
pub enum Step {
    /// An external program, with its arguments.
    Run { program: String, args: Vec<String> },
    /// Build the app images (their tags are the content hash, known once built).
    BuildImages,
    /// Load the app images into the kind cluster's nodes.
    LoadImages { cluster: String },
    /// Server-side apply of these objects, in order.
    Apply {
        why: String,
        objects: Vec<DynamicObject>,
    },
    /// Wait until these CRDs are established.
    WaitCrds(Vec<String>),
    /// Wait until a Deployment has rolled out.
    WaitRollout { namespace: String, name: String },
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

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Run { program, args } => write!(f, "run: {program} {}", args.join(" ")),
            Step::BuildImages => {
                write!(
                    f,
                    "build images: grpc-mesh-lab/hello-server and grpc-mesh-lab/hello-client, tagged with their content hash"
                )
            }
            Step::LoadImages { cluster } => write!(
                f,
                "run: kind load docker-image <both images> --name {cluster}"
            ),
            Step::Apply { why, objects } => {
                write!(
                    f,
                    "apply ({why}, server-side, field manager grpc-mesh-lab):"
                )?;
                for o in objects {
                    write!(f, "\n    {}", label(o))?;
                }
                Ok(())
            }
            Step::WaitCrds(names) => write!(f, "wait: CRDs established: {}", names.join(", ")),
            Step::WaitRollout { namespace, name } => {
                write!(f, "wait: deployment {namespace}/{name} rolled out")
            }
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

/// Runs a plan's steps in order, with progress. `context` is the kube context to act on (`None`:
/// the harness's own `kind-<cluster>`); `istioctl` the binary to use for istioctl steps.
pub async fn execute(
    sh: &xshell::Shell,
    plan: &Plan,
    cluster: &str,
    context: Option<&str>,
    istioctl: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut kube: Option<crate::cluster::kube::Cluster> = None;
    let mut images: Option<crate::images::Images> = None;
    let total = plan.0.len();
    for (i, step) in plan.0.iter().enumerate() {
        if matches!(step, Step::Note(_)) {
            continue;
        }
        eprintln!(
            "==> [{}/{total}] {}",
            i + 1,
            step.to_string().lines().next().unwrap_or_default()
        );
        match step {
            Step::Note(_) => {}
            Step::Run { program, args } => {
                if program == "kind"
                    && args.first().is_some_and(|a| a == "create")
                    && kind_cluster_exists(sh, cluster)?
                {
                    eprintln!("    the cluster {cluster} exists: kept");
                    continue;
                }
                let program = match (program.as_str(), istioctl) {
                    ("istioctl", Some(bin)) => bin.display().to_string(),
                    _ => program.clone(),
                };
                let root = crate::project::root();
                let _dir = sh.push_dir(&root);
                xshell::cmd!(sh, "{program} {args...}")
                    .run()
                    .with_context(|| format!("{program} failed"))?;
            }
            Step::BuildImages => images = Some(crate::images::build(sh, false)?),
            Step::LoadImages { cluster } => {
                let built = match &images {
                    Some(images) => images,
                    None => anyhow::bail!("the images must be built before they are loaded"),
                };
                crate::images::load_into_kind(sh, built, cluster)?;
            }
            Step::Apply { objects, .. } => {
                connect(&mut kube, cluster, context)
                    .await?
                    .apply(objects)
                    .await?
            }
            Step::WaitCrds(names) => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                connect(&mut kube, cluster, context)
                    .await?
                    .wait_crds_established(&names, std::time::Duration::from_secs(60))
                    .await?;
            }
            Step::WaitRollout { namespace, name } => {
                connect(&mut kube, cluster, context)
                    .await?
                    .wait_rollout(namespace, name, std::time::Duration::from_secs(300))
                    .await?;
            }
        }
    }
    Ok(())
}

async fn connect<'a>(
    kube: &'a mut Option<crate::cluster::kube::Cluster>,
    cluster: &str,
    context: Option<&str>,
) -> anyhow::Result<&'a crate::cluster::kube::Cluster> {
    if kube.is_none() {
        *kube = Some(crate::cluster::kube::connect(cluster, context).await?);
    }
    Ok(kube.as_ref().expect("set above"))
}

fn kind_cluster_exists(sh: &xshell::Shell, cluster: &str) -> anyhow::Result<bool> {
    let out = xshell::cmd!(sh, "kind get clusters")
        .quiet()
        .ignore_stderr()
        .read()
        .unwrap_or_default();
    Ok(out.lines().any(|l| l.trim() == cluster))
}
