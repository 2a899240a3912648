//! What the recorder writes down: one [`Step`] per call of the backend, as the dry run prints it.

use std::{fmt, time::Duration};

/// One thing the backend did, as the dry run prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Something the user should know (a note of the backend, or where a phase starts).
    Note(String),
    /// A read that decides what happens next.
    Read(String),
    BuildImages,
    LoadImages {
        cluster: String,
    },
    /// Server-side apply of these objects (`Kind namespace/name`), in order.
    Apply {
        why: String,
        objects: Vec<String>,
    },
    WaitRollout {
        namespace: String,
        name: String,
        deadline: Duration,
    },
    Scale {
        namespace: String,
        name: String,
        replicas: u32,
    },
    Restart {
        namespace: String,
        name: String,
    },
    DeletePod {
        namespace: String,
        pod: String,
    },
    StopContainer {
        node: String,
        container_id: String,
    },
    DeleteNamespace {
        namespace: String,
        deadline: Duration,
    },
    DeleteService {
        namespace: String,
        name: String,
        deadline: Duration,
    },
    Exec {
        namespace: String,
        pod: String,
        container: String,
        command: String,
    },
    FollowLogs {
        namespace: String,
        pod: String,
        container: String,
    },
    PodGet {
        namespace: String,
        pod: String,
        port: u16,
        path: String,
    },
    PortForwardGet {
        namespace: String,
        pod: String,
        port: u16,
        path: String,
    },
    PatchConfigMap {
        namespace: String,
        name: String,
        what: String,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |d: &Duration| d.as_secs();
        match self {
            Step::Note(text) => write!(f, "note: {text}"),
            Step::Read(text) => write!(f, "read: {text}"),
            // The same words as `up`'s steps: one description of the images.
            Step::BuildImages => write!(f, "{}", crate::cluster::plan::Step::BuildImages),
            Step::LoadImages { cluster } => write!(
                f,
                "{}",
                crate::cluster::plan::Step::LoadImages {
                    cluster: cluster.clone()
                }
            ),
            Step::Apply { why, objects } => {
                f.write_str(&crate::cluster::plan::apply_heading(why))?;
                for o in objects {
                    write!(f, "\n    {o}")?;
                }
                Ok(())
            }
            Step::WaitRollout {
                namespace,
                name,
                deadline,
            } => write!(
                f,
                "wait: deployment {namespace}/{name} rolled out (up to {}s)",
                secs(deadline)
            ),
            Step::Scale {
                namespace,
                name,
                replicas,
            } => write!(f, "scale: deployment {namespace}/{name} to {replicas}"),
            Step::Restart { namespace, name } => write!(
                f,
                "restart: deployment {namespace}/{name}, pod by pod (pod template annotation kubectl.kubernetes.io/restartedAt)"
            ),
            Step::DeletePod { namespace, pod } => write!(
                f,
                "delete: pod {namespace}/{pod} with grace period 0 (the kubelet still sends SIGTERM and waits 2s)"
            ),
            Step::StopContainer { node, container_id } => write!(
                f,
                "run: docker exec {node} crictl stop --timeout 0 {container_id} (SIGKILL)"
            ),
            Step::DeleteNamespace {
                namespace,
                deadline,
            } => write!(
                f,
                "delete: namespace {namespace} if it exists, and wait until it is gone (up to {}s)",
                secs(deadline)
            ),
            Step::DeleteService {
                namespace,
                name,
                deadline,
            } => write!(
                f,
                "delete: service {namespace}/{name}, and wait until it is gone (up to {}s)",
                secs(deadline)
            ),
            Step::Exec {
                namespace,
                pod,
                container,
                command,
            } => write!(
                f,
                "exec: `{command}` in {namespace}/{pod} container {container}"
            ),
            Step::FollowLogs {
                namespace,
                pod,
                container,
            } => write!(
                f,
                "follow: the log of {namespace}/{pod} container {container}, with timestamps"
            ),
            Step::PodGet {
                namespace,
                pod,
                port,
                path,
            } => write!(
                f,
                "read: {namespace}/{pod} port {port} /{path} (through the API server's pod proxy)"
            ),
            Step::PortForwardGet {
                namespace,
                pod,
                port,
                path,
            } => write!(
                f,
                "read: {namespace}/{pod} port {port} /{path} (through a port forward: it listens on the pod's localhost)"
            ),
            Step::PatchConfigMap {
                namespace,
                name,
                what,
            } => write!(f, "patch: configmap {namespace}/{name}: {what}"),
        }
    }
}

/// The steps of a dry run, one numbered line each.
pub struct Steps(pub Vec<Step>);

impl fmt::Display for Steps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            writeln!(f, "{:>2}. {step}", i + 1)?;
        }
        Ok(())
    }
}
