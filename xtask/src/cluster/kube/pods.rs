//! Pods: listing the live ones, following a container's log, a GET through the pod proxy or a port
//! forward, exec, and deleting a pod.

use std::{fmt::Write as _, time::Duration};

use ::kube::{
    Api,
    api::{AttachParams, DeleteParams, ListParams, LogParams},
};
use anyhow::{Context as _, anyhow, bail};
use futures::{AsyncBufReadExt as _, Stream, StreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use tokio::io::AsyncReadExt as _;

use super::{Cluster, api_error, one_line, seconds};

/// How long one `exec` may take: it is a request, not a wait, but a command must not hang the harness.
const EXEC_DEADLINE: Duration = Duration::from_secs(60);

impl Cluster {
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

    /// The pods matching `selector` (a label selector) that are not terminating, in the API server's order: a
    /// terminating pod is on its way out, and nothing here reads, counts or kills it.
    pub async fn pods(&self, namespace: &str, selector: &str) -> anyhow::Result<Vec<Pod>> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let mut pods = api
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(api_error)
            .with_context(|| format!("list pods {selector} in namespace {namespace}"))?
            .items;
        pods.retain(|p| p.metadata.deletion_timestamp.is_none());
        Ok(pods)
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

    /// A plain-text GET of `path` on a pod's `port` through a port forward (what `kubectl port-forward`
    /// and `istioctl ztunnel-config` do): the connection is made inside the pod's network namespace, so
    /// a listener on the pod's localhost answers, which the pod proxy cannot reach (ztunnel's admin,
    /// `127.0.0.1:15000`). One HTTP/1.1 request; a status other than 200 is an error.
    pub async fn port_forward_get(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        path: &str,
    ) -> anyhow::Result<String> {
        let what = format!(
            "get /{} from {namespace}/{pod} port {port} (port forward)",
            path.trim_start_matches('/')
        );
        tokio::time::timeout(
            EXEC_DEADLINE,
            self.port_forward_get_inner(namespace, pod, port, path),
        )
        .await
        .map_err(|_elapsed| anyhow!("{what}: no answer after {}", seconds(EXEC_DEADLINE)))?
        .with_context(|| what)
    }

    async fn port_forward_get_inner(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        path: &str,
    ) -> anyhow::Result<String> {
        use http_body_util::BodyExt as _;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let mut forwarder = api.portforward(pod, &[port]).await.map_err(api_error)?;
        let stream = forwarder
            .take_stream(port)
            .context("no stream for the port")?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .context("http handshake")?;
        let driver = tokio::spawn(connection);
        let request = http::Request::get(format!("/{}", path.trim_start_matches('/')))
            .header(http::header::HOST, "localhost")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .context("build the request")?;
        let response = sender
            .send_request(request)
            .await
            .context("send the request")?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .context("read the answer")?
            .to_bytes();
        drop(sender);
        driver.abort();
        forwarder.abort();
        let text = String::from_utf8(body.to_vec()).context("the answer is not utf-8")?;
        if !status.is_success() {
            bail!("{status}: {}", one_line(&text));
        }
        Ok(text)
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
}
