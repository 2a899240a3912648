//! What the cluster backend does to a cluster, as one small interface with two implementations:
//! [`Live`] acts (the Kubernetes API through `cluster/kube.rs`, `docker exec` into kind's nodes, the
//! image build), and [`Recorder`](super::recorder::Recorder) writes each call down and answers as a
//! cluster that does what it is asked would, so that `demo --dry-run` prints what a real run does.
//!
//! Everything the backend decides (which pod, which wait, what counts) stays in `kind.rs`, above this
//! line; everything here is one request.

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context as _;
use futures::{StreamExt as _, future::BoxFuture, stream::BoxStream};
use k8s_openapi::{
    api::core::v1::{ConfigMap, Pod},
    jiff::Timestamp,
};
use kube::api::DynamicObject;
use serde_json::Value;

use crate::cluster::{kube::Cluster, objects};

/// A followed container log, line by line.
pub type LogLines = BoxStream<'static, anyhow::Result<String>>;

/// The parts of a pod the backend looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub name: String,
    /// The node it was scheduled to (`spec.nodeName`); in kind, also the node's container name.
    pub node: Option<String>,
    pub created: Option<Timestamp>,
    /// `status.phase` is `Running`.
    pub running: bool,
    /// The pod's `Ready` condition is `True`.
    pub ready: bool,
    pub containers: Vec<ContainerInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub name: String,
    /// `<runtime>://<id>`, as the pod's status gives it.
    pub id: Option<String>,
    pub restart_count: i32,
    pub ready: bool,
}

impl PodInfo {
    /// From a pod as the API server returns it.
    pub fn from_pod(pod: &Pod) -> PodInfo {
        let status = pod.status.as_ref();
        let containers = status
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
            .map(|c| ContainerInfo {
                name: c.name.clone(),
                id: c.container_id.clone(),
                restart_count: c.restart_count,
                ready: c.ready,
            })
            .collect();
        PodInfo {
            name: pod.metadata.name.clone().unwrap_or_default(),
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
            running: status.and_then(|s| s.phase.as_deref()) == Some("Running"),
            ready: status
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            containers,
        }
    }

    pub fn container(&self, name: &str) -> Option<&ContainerInfo> {
        self.containers.iter().find(|c| c.name == name)
    }
}

/// One request each; see the module documentation. Futures are `Send` so that the log follower can run
/// as a task of its own.
pub trait Ops: Clone + Send + Sync + 'static {
    /// The kube context acted on.
    fn context(&self) -> &str;
    /// The kind cluster behind the context, when the context is `kind-<name>`: its nodes are containers
    /// on this machine, reachable with `docker exec`.
    fn kind_cluster(&self) -> Option<&str>;
    /// The time now, on the clock the cluster's log timestamps are compared with.
    fn now(&self) -> Timestamp;
    /// Something the user should know about this run (a fallback taken, an assumption made).
    fn note(&self, text: &str);

    fn server_version(&self) -> impl Future<Output = anyhow::Result<String>> + Send;
    /// The image of a Deployment's first container (`None`: no such Deployment).
    fn deployment_image(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = anyhow::Result<Option<String>>> + Send;
    /// Builds the app images (cached by content hash) and names them, with the Envoy image.
    fn build_images(&self) -> impl Future<Output = anyhow::Result<objects::Images>> + Send;
    /// Loads the built images into every node of a kind cluster.
    fn load_images(&self, kind_cluster: &str) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Server-side apply, in order; `why` says what the objects are for.
    fn apply(
        &self,
        why: &str,
        objects: &[DynamicObject],
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    fn wait_rollout(
        &self,
        namespace: &str,
        name: &str,
        deadline: Duration,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    fn scale(
        &self,
        namespace: &str,
        name: &str,
        replicas: u32,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Rolls a Deployment's pods, as `kubectl rollout restart` does.
    fn restart(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// The pods matching a label selector that are not terminating.
    fn pods(
        &self,
        namespace: &str,
        selector: &str,
    ) -> impl Future<Output = anyhow::Result<Vec<PodInfo>>> + Send;
    /// Deletes a pod with grace period 0 (which the kubelet still turns into SIGTERM and 2s).
    fn delete_pod(
        &self,
        namespace: &str,
        pod: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Stops a container on a kind node with SIGKILL: `docker exec <node> crictl stop --timeout 0 <id>`.
    fn stop_container(
        &self,
        node: &str,
        container_id: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Deletes one of the harness's namespaces and waits until it is gone.
    fn delete_namespace(
        &self,
        namespace: &str,
        deadline: Duration,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Deletes a Service and waits until it is gone.
    fn delete_service(
        &self,
        namespace: &str,
        name: &str,
        deadline: Duration,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// An object as JSON (`None`: not found); `why` says what is read in it.
    fn get(
        &self,
        why: &str,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = anyhow::Result<Option<Value>>> + Send;
    /// Runs a command in a container; its stdout.
    fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: &[&str],
    ) -> impl Future<Output = anyhow::Result<String>> + Send;
    /// A container's log, following, each line prefixed with its timestamp and a space.
    fn follow_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> impl Future<Output = anyhow::Result<LogLines>> + Send;
    /// A plain-text GET on a pod's port through the API server's pod proxy.
    fn pod_http_get(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        path: &str,
    ) -> impl Future<Output = anyhow::Result<String>> + Send;
    /// A plain-text GET on a pod's port through a port forward: reaches a listener on the pod's
    /// localhost, which the pod proxy cannot (ztunnel's admin).
    fn port_forward_get(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        path: &str,
    ) -> impl Future<Output = anyhow::Result<String>> + Send;
    fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = anyhow::Result<Option<ConfigMap>>> + Send;
    /// A JSON merge patch of a ConfigMap; `what` says what it changes.
    fn patch_config_map(
        &self,
        namespace: &str,
        name: &str,
        what: &str,
        patch: &Value,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Runs a command in a kind node's container: `(node, argv)`.
pub type NodeRunner =
    Arc<dyn Fn(String, Vec<String>) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// `docker exec <node> <argv...>`, arguments passed as they are (no shell).
pub fn docker_exec() -> NodeRunner {
    Arc::new(|node: String, argv: Vec<String>| {
        Box::pin(async move {
            let what = format!("docker exec {node} {}", argv.join(" "));
            let out = tokio::process::Command::new("docker")
                .arg("exec")
                .arg(&node)
                .args(&argv)
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .with_context(|| format!("run {what}"))?;
            if !out.status.success() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                anyhow::bail!(
                    "{what} failed ({}): {}",
                    out.status,
                    stderr.split_whitespace().collect::<Vec<_>>().join(" ")
                );
            }
            Ok(())
        })
    })
}

/// The real thing: a cluster through its API, and kind's nodes through `docker exec`.
#[derive(Clone)]
pub struct Live {
    pub cluster: Cluster,
    kind: Option<String>,
    nodes: NodeRunner,
    built: Arc<std::sync::Mutex<Option<crate::cluster::images::Images>>>,
}

impl Live {
    /// `nodes` runs commands in kind's node containers (tests pass their own).
    pub fn new(cluster: Cluster, nodes: NodeRunner) -> Live {
        let kind = cluster.context.strip_prefix("kind-").map(str::to_owned);
        Live {
            cluster,
            kind,
            nodes,
            built: Arc::default(),
        }
    }
}

/// The `crictl` arguments that stop a container with SIGKILL: containerd's CRI stop with timeout 0
/// skips the stop signal and kills (`internal/cri/server/container_stop.go`, `stopContainer`).
pub fn crictl_stop(container_id: &str) -> Vec<String> {
    ["crictl", "stop", "--timeout", "0", container_id]
        .map(str::to_owned)
        .into()
}

impl Ops for Live {
    fn context(&self) -> &str {
        &self.cluster.context
    }

    fn kind_cluster(&self) -> Option<&str> {
        self.kind.as_deref()
    }

    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn note(&self, text: &str) {
        eprintln!("warning: {text}");
    }

    async fn server_version(&self) -> anyhow::Result<String> {
        self.cluster.server_version().await
    }

    async fn deployment_image(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<Option<String>> {
        self.cluster.deployment_image(namespace, name).await
    }

    async fn build_images(&self) -> anyhow::Result<objects::Images> {
        let built = tokio::task::block_in_place(|| {
            let sh = crate::project::shell()?;
            crate::cluster::images::build(&sh, false)
        })?;
        let images = built.objects();
        *self.built.lock().unwrap() = Some(built);
        Ok(images)
    }

    async fn load_images(&self, kind_cluster: &str) -> anyhow::Result<()> {
        let built = self
            .built
            .lock()
            .unwrap()
            .clone()
            .context("the images must be built before they are loaded")?;
        tokio::task::block_in_place(|| {
            let sh = crate::project::shell()?;
            crate::cluster::images::load_into_kind(&sh, &built, kind_cluster)
        })
    }

    async fn apply(&self, _why: &str, objects: &[DynamicObject]) -> anyhow::Result<()> {
        self.cluster.apply(objects).await
    }

    async fn wait_rollout(
        &self,
        namespace: &str,
        name: &str,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        self.cluster.wait_rollout(namespace, name, deadline).await
    }

    async fn scale(&self, namespace: &str, name: &str, replicas: u32) -> anyhow::Result<()> {
        self.cluster.scale(namespace, name, replicas).await
    }

    async fn restart(&self, namespace: &str, name: &str) -> anyhow::Result<()> {
        self.cluster.restart(namespace, name).await
    }

    async fn pods(&self, namespace: &str, selector: &str) -> anyhow::Result<Vec<PodInfo>> {
        let pods = self.cluster.pods(namespace, selector).await?;
        Ok(pods.iter().map(PodInfo::from_pod).collect())
    }

    async fn delete_pod(&self, namespace: &str, pod: &str) -> anyhow::Result<()> {
        self.cluster.delete_pod(namespace, pod).await
    }

    async fn stop_container(&self, node: &str, container_id: &str) -> anyhow::Result<()> {
        (self.nodes)(node.to_owned(), crictl_stop(container_id)).await
    }

    async fn delete_namespace(&self, namespace: &str, deadline: Duration) -> anyhow::Result<()> {
        self.cluster.delete_namespace(namespace, deadline).await
    }

    async fn delete_service(
        &self,
        namespace: &str,
        name: &str,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        self.cluster.delete_service(namespace, name, deadline).await
    }

    async fn get(
        &self,
        _why: &str,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<Option<Value>> {
        self.cluster
            .get_json(api_version, kind, namespace, name)
            .await
    }

    async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: &[&str],
    ) -> anyhow::Result<String> {
        self.cluster.exec(namespace, pod, container, command).await
    }

    async fn follow_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> anyhow::Result<LogLines> {
        let lines = self
            .cluster
            .follow_pod_logs(namespace, pod, container, true)
            .await?;
        Ok(lines.boxed())
    }

    async fn pod_http_get(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        path: &str,
    ) -> anyhow::Result<String> {
        self.cluster.pod_http_get(namespace, pod, port, path).await
    }

    async fn port_forward_get(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        path: &str,
    ) -> anyhow::Result<String> {
        self.cluster
            .port_forward_get(namespace, pod, port, path)
            .await
    }

    async fn config_map(&self, namespace: &str, name: &str) -> anyhow::Result<Option<ConfigMap>> {
        self.cluster.config_map(namespace, name).await
    }

    async fn patch_config_map(
        &self,
        namespace: &str,
        name: &str,
        _what: &str,
        patch: &Value,
    ) -> anyhow::Result<()> {
        self.cluster.patch_config_map(namespace, name, patch).await
    }
}
