//! Talking to the harness's Kubernetes cluster with kube-rs: choosing the context, server-side apply,
//! waits with deadlines, scaling and restarting Deployments, logs, exec, and tearing down our namespaces.
//!
//! Every write goes through one field manager, [`FIELD_MANAGER`]. Every wait is a
//! `kube::runtime::wait::await_condition` inside `tokio::time::timeout`. Errors are one line each and
//! name the object they concern.
//!
//! [`Cluster`]'s methods live by concern: choosing the context and connecting (`kube/context.rs`),
//! writes (`write.rs`), waits (`wait.rs`), pods (`pods.rs`), deletions (`delete.rs`), reads (`read.rs`).

use std::{sync::Arc, time::Duration};

use ::kube::{
    Client,
    api::GroupVersionKind,
    discovery::{ApiCapabilities, ApiResource, Discovery},
};
use anyhow::{Context as _, anyhow};

mod context;
mod delete;
#[cfg(any(test, feature = "testing"))]
pub mod mock;
mod pods;
mod read;
#[cfg(test)]
mod tests;
mod wait;
mod write;

pub use context::{connect, select_context};

/// The one field manager of every write this harness makes.
pub const FIELD_MANAGER: &str = "grpc-mesh-lab";

/// A client for exactly one kube context, with the API discovery it has needed so far.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    pub context: String,
    /// Discovery is run on first need and again when a kind is unknown (e.g. right after its CRD was installed).
    discovery: Arc<tokio::sync::Mutex<Option<Discovery>>>,
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
