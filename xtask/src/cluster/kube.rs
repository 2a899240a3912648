//! Talking to the harness's Kubernetes cluster with kube-rs: choosing the context, server-side apply,
//! waits with deadlines, scaling and restarting Deployments, logs, exec, and tearing down our namespaces.
//!
//! Every write goes through one field manager, [`FIELD_MANAGER`]. Every wait is a
//! `kube::runtime::wait::await_condition` inside `tokio::time::timeout`. Errors are one line each and
//! name the object they concern.

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use ::kube::{
    Api, Client, Config, ResourceExt,
    api::{
        AttachParams, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams, Patch,
        PatchParams,
    },
    config::{KubeConfigOptions, Kubeconfig},
    discovery::{ApiCapabilities, ApiResource, Discovery, Scope},
    runtime::wait::{Condition, await_condition, conditions},
};
use anyhow::{Context as _, anyhow, bail};
use futures::{AsyncBufReadExt as _, Stream, StreamExt as _};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Namespace, Pod, Service},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use tokio::io::AsyncReadExt as _;

#[cfg(any(test, feature = "testing"))]
pub mod mock;
#[cfg(test)]
mod tests;

/// The one field manager of every write this harness makes.
pub const FIELD_MANAGER: &str = "grpc-mesh-lab";

/// The label that marks the namespaces (and other objects) this harness owns.
const PART_OF_KEY: &str = "app.kubernetes.io/part-of";
const PART_OF_VALUE: &str = "grpc-mesh-lab";

/// The pod-template annotation `kubectl rollout restart` sets; changing it rolls the pods.
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// How long one `exec` may take: it is a request, not a wait, but a command must not hang the harness.
const EXEC_DEADLINE: Duration = Duration::from_secs(60);

/// Which kube context to use: the harness's own `kind-<cluster>` unless `explicit` names one.
///
/// Never the current context by default: a harness that tears namespaces down must not act on whatever
/// cluster the user last pointed kubectl at.
pub fn select_context(
    kubeconfig: &Kubeconfig,
    cluster: &str,
    explicit: Option<&str>,
) -> anyhow::Result<String> {
    select_context_in(kubeconfig, &kubeconfig_location(), cluster, explicit)
}

/// [`select_context`] with the kubeconfig's location (for the error message) given: pure.
fn select_context_in(
    kubeconfig: &Kubeconfig,
    location: &str,
    cluster: &str,
    explicit: Option<&str>,
) -> anyhow::Result<String> {
    let has = |name: &str| kubeconfig.contexts.iter().any(|c| c.name == name);
    match explicit {
        Some(name) if has(name) => Ok(name.to_owned()),
        Some(name) => bail!("kube context {name} not found in {location}"),
        None => {
            let name = format!("kind-{cluster}");
            if has(&name) {
                Ok(name)
            } else {
                bail!("kube context {name} not found: create the cluster with `cargo xtask up`")
            }
        }
    }
}

/// Where the kubeconfig is read from, as kube-rs does: `KUBECONFIG` (a path list), else `~/.kube/config`.
fn kubeconfig_location() -> String {
    match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(list) => list.to_string_lossy().into_owned(),
        None => default_kubeconfig_path()
            .map_or_else(|| "~/.kube/config".to_owned(), |p| p.display().to_string()),
    }
}

fn default_kubeconfig_path() -> Option<PathBuf> {
    std::env::home_dir().map(|home| home.join(".kube").join("config"))
}

/// A client for exactly one kube context, with the API discovery it has needed so far.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    pub context: String,
    /// Discovery is run on first need and again when a kind is unknown (e.g. right after its CRD was installed).
    discovery: Arc<tokio::sync::Mutex<Option<Discovery>>>,
}

/// Reads the kubeconfig (`KUBECONFIG` or `~/.kube/config`), selects the context as [`select_context`] does, and
/// builds a client for exactly that context.
pub async fn connect(cluster: &str, explicit: Option<&str>) -> anyhow::Result<Cluster> {
    connect_with(
        read_kubeconfig()?,
        &kubeconfig_location(),
        cluster,
        explicit,
    )
    .await
}

/// [`connect`] over a kubeconfig already read from `location`.
async fn connect_with(
    kubeconfig: Kubeconfig,
    location: &str,
    cluster: &str,
    explicit: Option<&str>,
) -> anyhow::Result<Cluster> {
    let context = select_context_in(&kubeconfig, location, cluster, explicit)?;
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .with_context(|| format!("load kube context {context}"))?;
    let client = Client::try_from(config)
        .with_context(|| format!("build a client for kube context {context}"))?;
    Ok(Cluster::from_client(client, &context))
}

/// The kubeconfig; none at all (no `KUBECONFIG`, no `~/.kube/config`) reads as an empty one, so that a fresh
/// machine gets the "create the cluster" hint rather than a file error.
fn read_kubeconfig() -> anyhow::Result<Kubeconfig> {
    let from_env = std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty());
    if !from_env && default_kubeconfig_path().is_none_or(|p| !p.exists()) {
        return Ok(Kubeconfig::default());
    }
    Kubeconfig::read().with_context(|| format!("read kubeconfig {}", kubeconfig_location()))
}

impl Cluster {
    /// A cluster over a ready client (tests use one pointed at a mock API server).
    pub fn from_client(client: Client, context: &str) -> Cluster {
        Cluster {
            client,
            context: context.to_owned(),
            discovery: Arc::default(),
        }
    }

    /// Server-side apply of each object in order, with field manager [`FIELD_MANAGER`], forcing conflicts.
    ///
    /// Each object needs `apiVersion` and `kind`; its resource is found through API discovery (cached, and run
    /// again when a kind is unknown). Namespaced objects go to their `metadata.namespace`, which is required.
    /// Stops at the first failure.
    pub async fn apply(&self, objects: &[DynamicObject]) -> anyhow::Result<()> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for object in objects {
            let (gvk, what) = describe(object)?;
            let name = object
                .metadata
                .name
                .as_deref()
                .with_context(|| format!("apply {what}: no metadata.name"))?;
            let (resource, caps) = self
                .resolve(&gvk)
                .await
                .with_context(|| format!("apply {what}"))?;
            let api: Api<DynamicObject> = match caps.scope {
                Scope::Cluster => Api::all_with(self.client.clone(), &resource),
                Scope::Namespaced => {
                    let namespace = object.metadata.namespace.as_deref().with_context(|| {
                        format!("apply {what}: namespaced, but has no metadata.namespace")
                    })?;
                    Api::namespaced_with(self.client.clone(), namespace, &resource)
                }
            };
            api.patch(name, &params, &Patch::Apply(object))
                .await
                .map_err(api_error)
                .with_context(|| format!("apply {what}"))?;
        }
        Ok(())
    }

    /// The resource serving `gvk`, from the cached discovery, or from a fresh one when the kind is unknown.
    async fn resolve(
        &self,
        gvk: &GroupVersionKind,
    ) -> anyhow::Result<(ApiResource, ApiCapabilities)> {
        let mut cached = self.discovery.lock().await;
        if let Some(found) = cached.as_ref().and_then(|d| d.resolve_gvk(gvk)) {
            return Ok(found);
        }
        let fresh = Discovery::new(self.client.clone())
            .run()
            .await
            .map_err(api_error)
            .context("discover the cluster's api resources")?;
        let found = fresh.resolve_gvk(gvk);
        *cached = Some(fresh);
        found.ok_or_else(|| {
            let api_version = gvk.api_version();
            anyhow!(
                "the cluster serves no kind {} in {api_version} (is its crd installed?)",
                gvk.kind
            )
        })
    }

    /// Waits until each named CRD is established, then drops the cached discovery so that the next
    /// [`Cluster::apply`] discovers their kinds.
    pub async fn wait_crds_established(
        &self,
        names: &[&str],
        deadline: Duration,
    ) -> anyhow::Result<()> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let pending = Arc::new(Mutex::new(
            names
                .iter()
                .map(|n| (*n).to_owned())
                .collect::<BTreeSet<_>>(),
        ));
        let waits = names.iter().map(|name| {
            let (api, pending) = (api.clone(), Arc::clone(&pending));
            async move {
                await_condition(api, name, conditions::is_crd_established())
                    .await
                    .with_context(|| format!("wait for crd {name}"))?;
                pending.lock().unwrap().remove(*name);
                anyhow::Ok(())
            }
        });
        match tokio::time::timeout(deadline, futures::future::try_join_all(waits)).await {
            Ok(result) => result.map(drop)?,
            Err(_elapsed) => {
                let pending = pending
                    .lock()
                    .unwrap()
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ");
                bail!(
                    "crds not established after {}: {pending}",
                    seconds(deadline)
                );
            }
        }
        *self.discovery.lock().await = None;
        Ok(())
    }

    /// Waits until the Deployment's rollout is complete: `is_deployment_completed` (its Progressing condition
    /// says NewReplicaSetAvailable) for the current generation, with every wanted replica updated and available.
    pub async fn wait_rollout(
        &self,
        namespace: &str,
        deployment: &str,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let last_seen = Arc::new(Mutex::new(None::<Deployment>));
        let condition = {
            let last_seen = Arc::clone(&last_seen);
            move |d: Option<&Deployment>| {
                last_seen.lock().unwrap().clone_from(&d.cloned());
                rollout_complete(d)
            }
        };
        match tokio::time::timeout(deadline, await_condition(api, deployment, condition)).await {
            Ok(result) => {
                result.with_context(|| format!("wait for deployment {namespace}/{deployment}"))?;
                Ok(())
            }
            Err(_elapsed) => {
                let state = match last_seen.lock().unwrap().as_ref() {
                    Some(d) => {
                        let (ready, wanted) = replicas_ready(d);
                        format!("{ready}/{wanted} replicas ready")
                    }
                    None => "not found".to_owned(),
                };
                bail!(
                    "deployment {namespace}/{deployment} not ready after {}: {state}",
                    seconds(deadline)
                )
            }
        }
    }

    /// Sets the Deployment's replicas: a JSON merge patch of the `scale` subresource, under [`FIELD_MANAGER`].
    ///
    /// Not server-side apply: an apply by the same manager that names only `spec.replicas` would drop that
    /// manager's claim on every other field of the Deployment (and delete the fields only it owned). A merge
    /// patch of `/scale` is what `kubectl scale` does: it can change nothing but the replica count, and the next
    /// forced apply of the manifest takes the count back.
    pub async fn scale(
        &self,
        namespace: &str,
        deployment: &str,
        replicas: u32,
    ) -> anyhow::Result<()> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let patch = serde_json::json!({ "spec": { "replicas": replicas } });
        api.patch_scale(deployment, &update_params(), &Patch::Merge(&patch))
            .await
            .map_err(api_error)
            .with_context(|| format!("scale deployment {namespace}/{deployment} to {replicas}"))?;
        Ok(())
    }

    /// Rolls the Deployment's pods as `kubectl rollout restart` does: a merge patch of the pod-template
    /// annotation `kubectl.kubernetes.io/restartedAt` (not an apply, for the reason given at [`Cluster::scale`]).
    pub async fn restart(&self, namespace: &str, deployment: &str) -> anyhow::Result<()> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let now = k8s_openapi::jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let patch = serde_json::json!({
            "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: now } } } }
        });
        api.patch(deployment, &update_params(), &Patch::Merge(&patch))
            .await
            .map_err(api_error)
            .with_context(|| format!("restart deployment {namespace}/{deployment}"))?;
        Ok(())
    }

    /// Lines of the logs of the first pod matching `selector` (running pods first, then by name), following;
    /// the stream ends when the API server closes it, which it does when the container stops or the pod goes.
    pub async fn follow_logs(
        &self,
        namespace: &str,
        selector: &str,
        container: &str,
    ) -> anyhow::Result<impl Stream<Item = anyhow::Result<String>> + Send + use<>> {
        let pod = self.pick_pod(namespace, selector).await?;
        self.follow_pod_logs(namespace, &pod, container, false)
            .await
    }

    /// The pod matching `selector` that logs are read from: not terminating, running pods first, then the
    /// newest, then by name.
    pub async fn pick_pod(&self, namespace: &str, selector: &str) -> anyhow::Result<String> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let mut pods = self.live_pods(&api, namespace, selector).await?;
        pods.sort_by_key(|p| {
            (
                !is_running(p),
                std::cmp::Reverse(p.metadata.creation_timestamp.clone()),
                p.name_any(),
            )
        });
        pods.first()
            .map(ResourceExt::name_any)
            .with_context(|| format!("no pod matches {selector} in namespace {namespace}"))
    }

    /// Lines of one pod's container logs, following, from the start. With `timestamps` each line starts with
    /// the time the container runtime wrote it (RFC 3339 with nanoseconds) and a space, as the kubelet adds it.
    pub async fn follow_pod_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        timestamps: bool,
    ) -> anyhow::Result<impl Stream<Item = anyhow::Result<String>> + Send + use<>> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = LogParams {
            container: Some(container.to_owned()),
            follow: true,
            timestamps,
            ..LogParams::default()
        };
        let what = format!("logs of {namespace}/{pod} container {container}");
        let lines = api
            .log_stream(pod, &params)
            .await
            .map_err(api_error)
            .with_context(|| format!("follow {what}"))?
            .lines();
        Ok(lines.map(move |line| line.with_context(|| format!("read {what}"))))
    }

    /// Deletes a pod with grace period 0. The pod object goes at once and its ReplicaSet makes a new one, but
    /// the kubelet still stops the containers gracefully: SIGTERM, then SIGKILL after its minimum grace of 2s
    /// (`minimumGracePeriodInSeconds` in `pkg/kubelet/kuberuntime`). Not a SIGKILL.
    pub async fn delete_pod(&self, namespace: &str, pod: &str) -> anyhow::Result<()> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        api.delete(pod, &DeleteParams::default().grace_period(0))
            .await
            .map_err(api_error)
            .with_context(|| format!("delete pod {namespace}/{pod}"))?;
        Ok(())
    }

    /// The pods matching `selector` (a label selector) that are not terminating, in the API server's order.
    pub async fn pods(&self, namespace: &str, selector: &str) -> anyhow::Result<Vec<Pod>> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        self.live_pods(&api, namespace, selector).await
    }

    /// Names of the pods matching `selector` (a label selector) that are not terminating, sorted.
    pub async fn pod_names(&self, namespace: &str, selector: &str) -> anyhow::Result<Vec<String>> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let mut names: Vec<String> = self
            .live_pods(&api, namespace, selector)
            .await?
            .iter()
            .map(ResourceExt::name_any)
            .collect();
        names.sort();
        Ok(names)
    }

    /// A plain-text GET of `path` on a pod's `port`, through the API server's pod proxy (what
    /// `kubectl get --raw /api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/<path>` does).
    pub async fn pod_http_get(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        path: &str,
    ) -> anyhow::Result<String> {
        let uri = format!(
            "/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy/{}",
            path.trim_start_matches('/')
        );
        let request = http::Request::get(&uri)
            .body(Vec::new())
            .with_context(|| format!("build a request for {uri}"))?;
        self.client
            .request_text(request)
            .await
            .map_err(api_error)
            .with_context(|| format!("get {path} from {namespace}/{pod} port {port}"))
    }

    /// The pods matching `selector` that are not terminating: a terminating pod is on its way out,
    /// and nothing here reads, counts or kills it.
    async fn live_pods(
        &self,
        api: &Api<Pod>,
        namespace: &str,
        selector: &str,
    ) -> anyhow::Result<Vec<Pod>> {
        let mut pods = api
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(api_error)
            .with_context(|| format!("list pods {selector} in namespace {namespace}"))?
            .items;
        pods.retain(|p| p.metadata.deletion_timestamp.is_none());
        Ok(pods)
    }

    /// Runs a command in a container (websocket exec) and returns its stdout; fails when the command does.
    ///
    /// Used to read the Istio sidecar's Envoy config dump (`pilot-agent request GET config_dump`).
    pub async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: &[&str],
    ) -> anyhow::Result<String> {
        let what = format!(
            "exec `{}` in {namespace}/{pod} container {container}",
            command.join(" ")
        );
        tokio::time::timeout(
            EXEC_DEADLINE,
            self.exec_inner(namespace, pod, container, command),
        )
        .await
        .map_err(|_elapsed| anyhow!("{what}: no exit after {}", seconds(EXEC_DEADLINE)))?
        .with_context(|| what)
    }

    async fn exec_inner(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: &[&str],
    ) -> anyhow::Result<String> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = AttachParams::default()
            .container(container)
            .stdin(false)
            .stdout(true)
            .stderr(true)
            .max_stdout_buf_size(64 * 1024);
        let command: Vec<String> = command.iter().map(|c| (*c).to_owned()).collect();
        let mut process = api.exec(pod, command, &params).await.map_err(api_error)?;
        let mut stdout = process.stdout().context("no stdout")?;
        let mut stderr = process.stderr().context("no stderr")?;
        let status = process.take_status().context("no exit status")?;
        // Both pipes are read at once: a full stderr pipe would stall stdout.
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (read_out, read_err) =
            tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        read_out.context("read stdout")?;
        read_err.context("read stderr")?;
        let status = status.await;
        process.join().await.context("finish the exec session")?;
        if let Some(status) = status
            && status.status.as_deref() == Some("Failure")
        {
            let mut message = status.message.unwrap_or_else(|| "failed".to_owned());
            if let Some(first) = String::from_utf8_lossy(&err)
                .lines()
                .find(|l| !l.trim().is_empty())
            {
                write!(message, "; stderr: {}", first.trim()).unwrap();
            }
            bail!("{}", one_line(&message));
        }
        String::from_utf8(out).context("stdout is not utf-8")
    }

    /// Deletes a namespace this harness owns (label `app.kubernetes.io/part-of=grpc-mesh-lab`) and waits until it
    /// is gone. Refuses any other namespace; one that does not exist is already done.
    pub async fn delete_namespace(
        &self,
        namespace: &str,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let Some(found) = api
            .get_opt(namespace)
            .await
            .map_err(api_error)
            .with_context(|| format!("get namespace {namespace}"))?
        else {
            return Ok(());
        };
        if found.labels().get(PART_OF_KEY).map(String::as_str) != Some(PART_OF_VALUE) {
            bail!(
                "refusing to delete namespace {namespace}: it lacks the label {PART_OF_KEY}={PART_OF_VALUE}"
            );
        }
        let uid = found.uid().unwrap_or_default();
        // A namespace already terminating answers the DELETE with itself, as any object does whose deletion is
        // pending (since kubernetes/kubernetes#84122, 1.17). Servers before that answered 409 Conflict ("The
        // system is ensuring all content is removed..."): the deletion is under way all the same.
        match api.delete(namespace, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(::kube::Error::Api(status)) if status.is_not_found() => return Ok(()),
            Err(::kube::Error::Api(status)) if status.code == 409 => {}
            Err(err) => {
                return Err(api_error(err))
                    .with_context(|| format!("delete namespace {namespace}"));
            }
        }
        match tokio::time::timeout(
            deadline,
            await_condition(api, namespace, conditions::is_deleted(&uid)),
        )
        .await
        {
            Ok(result) => {
                result.with_context(|| format!("wait for namespace {namespace} to go"))?;
                Ok(())
            }
            Err(_elapsed) => bail!(
                "namespace {namespace} still terminating after {}",
                seconds(deadline)
            ),
        }
    }

    /// Deletes a Service and waits until it is gone (a new one of that name can then be created with another
    /// `clusterIP`, which an update may not change). One that does not exist is already done.
    pub async fn delete_service(
        &self,
        namespace: &str,
        name: &str,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
        let Some(found) = api
            .get_opt(name)
            .await
            .map_err(api_error)
            .with_context(|| format!("get service {namespace}/{name}"))?
        else {
            return Ok(());
        };
        let uid = found.uid().unwrap_or_default();
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(::kube::Error::Api(status)) if status.is_not_found() => return Ok(()),
            Err(err) => {
                return Err(api_error(err))
                    .with_context(|| format!("delete service {namespace}/{name}"));
            }
        }
        match tokio::time::timeout(
            deadline,
            await_condition(api, name, conditions::is_deleted(&uid)),
        )
        .await
        {
            Ok(result) => {
                result.with_context(|| format!("wait for service {namespace}/{name} to go"))?;
                Ok(())
            }
            Err(_elapsed) => bail!(
                "service {namespace}/{name} still there after {}",
                seconds(deadline)
            ),
        }
    }

    /// An object of any kind the cluster serves, as JSON (`None`: no such object).
    pub async fn get_json(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<Option<serde_json::Value>> {
        let what = format!("{kind} {namespace}/{name}");
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, _caps) = self
            .resolve(&gvk)
            .await
            .with_context(|| format!("get {what}"))?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        let found = api
            .get_opt(name)
            .await
            .map_err(api_error)
            .with_context(|| format!("get {what}"))?;
        found
            .map(|o| serde_json::to_value(o).with_context(|| format!("read {what}")))
            .transpose()
    }

    /// A ConfigMap (`None`: no such ConfigMap).
    pub async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<Option<ConfigMap>> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        api.get_opt(name)
            .await
            .map_err(api_error)
            .with_context(|| format!("get configmap {namespace}/{name}"))
    }

    /// A JSON merge patch of a ConfigMap under [`FIELD_MANAGER`] (not an apply: the ConfigMap belongs to
    /// whoever installed it, and this changes only the fields the patch names).
    pub async fn patch_config_map(
        &self,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> anyhow::Result<()> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        api.patch(name, &update_params(), &Patch::Merge(patch))
            .await
            .map_err(api_error)
            .with_context(|| format!("patch configmap {namespace}/{name}"))?;
        Ok(())
    }

    /// The `gateway.networking.k8s.io/bundle-version` of an installed CRD (`None`: not installed, or no such
    /// annotation).
    pub async fn crd_bundle_version(&self, name: &str) -> anyhow::Result<Option<String>> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let crd = api
            .get_opt(name)
            .await
            .map_err(api_error)
            .with_context(|| format!("get crd {name}"))?;
        Ok(crd.map(|c| {
            c.annotations()
                .get("gateway.networking.k8s.io/bundle-version")
                .cloned()
                .unwrap_or_else(|| "(no bundle version)".to_owned())
        }))
    }

    /// The image of a Deployment's first container (`None`: no such Deployment).
    pub async fn deployment_image(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<Option<String>> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let found = api
            .get_opt(name)
            .await
            .map_err(api_error)
            .with_context(|| format!("get deployment {namespace}/{name}"))?;
        Ok(found.map(|d| {
            d.spec
                .and_then(|s| s.template.spec)
                .and_then(|s| s.containers.into_iter().next())
                .and_then(|c| c.image)
                .unwrap_or_default()
        }))
    }

    /// The namespaces this harness owns (label `app.kubernetes.io/part-of=grpc-mesh-lab`), sorted.
    pub async fn owned_namespaces(&self) -> anyhow::Result<Vec<String>> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let list = api
            .list(&ListParams::default().labels(&format!("{PART_OF_KEY}={PART_OF_VALUE}")))
            .await
            .map_err(api_error)
            .context("list namespaces")?;
        let mut names: Vec<String> = list.items.iter().map(ResourceExt::name_any).collect();
        names.sort();
        Ok(names)
    }

    /// The Deployments of a namespace with their (ready, wanted) replicas, sorted by name.
    pub async fn deployments(&self, namespace: &str) -> anyhow::Result<Vec<(String, i32, i32)>> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(api_error)
            .with_context(|| format!("list deployments in namespace {namespace}"))?;
        let mut out: Vec<(String, i32, i32)> = list
            .items
            .iter()
            .map(|d| {
                let (ready, wanted) = replicas_ready(d);
                (d.name_any(), ready, wanted)
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// The API server's version, e.g. `v1.35.0`.
    pub async fn server_version(&self) -> anyhow::Result<String> {
        let info = self
            .client
            .apiserver_version()
            .await
            .map_err(api_error)
            .with_context(|| {
                format!(
                    "get the api server version of kube context {}",
                    self.context
                )
            })?;
        Ok(info.git_version)
    }
}

/// The group/version/kind of an object, and how errors name it: `Deployment gml-x/server-v1`.
fn describe(object: &DynamicObject) -> anyhow::Result<(GroupVersionKind, String)> {
    let name = object.metadata.name.as_deref().unwrap_or("<unnamed>");
    let path = match &object.metadata.namespace {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_owned(),
    };
    let types = object
        .types
        .as_ref()
        .with_context(|| format!("apply {path}: no apiVersion and kind"))?;
    let gvk = GroupVersionKind::try_from(types)
        .with_context(|| format!("apply {path}: bad apiVersion"))?;
    let what = format!("{} {path}", gvk.kind);
    Ok((gvk, what))
}

/// Params of the (non-apply) patches: the same field manager as the applies.
fn update_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

/// A rollout is complete when `is_deployment_completed` holds for the generation the controller has seen,
/// that generation is the current one, and every wanted replica is updated and available (as
/// `kubectl rollout status` checks). Without the generation check, the status of the previous rollout would
/// pass for the one just started.
fn rollout_complete(deployment: Option<&Deployment>) -> bool {
    let Some(d) = deployment else { return false };
    let Some(status) = &d.status else {
        return false;
    };
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    conditions::is_deployment_completed().matches_object(Some(d))
        && status.observed_generation >= d.metadata.generation
        && status.updated_replicas.unwrap_or(0) >= wanted
        && status.available_replicas.unwrap_or(0) >= wanted
        && status.replicas.unwrap_or(0) <= status.updated_replicas.unwrap_or(0)
}

/// (ready, wanted) replicas of a Deployment.
fn replicas_ready(d: &Deployment) -> (i32, i32) {
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let ready = d
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    (ready, wanted)
}

fn is_running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// A client error as one line: an API server's refusal reads `422 Invalid: <its message>`.
fn api_error(err: ::kube::Error) -> anyhow::Error {
    match err {
        ::kube::Error::Api(status) => {
            let message = one_line(&status.message);
            match status.reason.as_str() {
                // kube-rs's reason when the body was not a Status (a proxy's page, say): the text says it all
                "" | "Failed to parse error data" => anyhow!("{} {message}", status.code),
                reason => anyhow!("{} {reason}: {message}", status.code),
            }
        }
        other => anyhow::Error::new(other),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A deadline as the errors print it: `120s`, `0.3s`.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
