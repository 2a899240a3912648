//! A kill on the cluster: SIGKILL on the node where kind allows it, else a delete with grace period 0,
//! and the wait for that pod (or its replacement) to serve again.

use anyhow::{Context as _, bail};

use super::{
    Kind,
    ops::{Ops, PodInfo},
};
use crate::{cluster::objects, output::progress};

impl<O: Ops> Kind<O> {
    /// Kills the oldest running pod of a version for real: on kind, its server container gets SIGKILL
    /// on its node (`crictl stop --timeout 0`), the kubelet restarts it in the same pod, and the wait is
    /// for that pod's container to have restarted and be ready again. Elsewhere the pod is deleted with
    /// grace period 0, which is a 2s graceful stop (a warning says so), and the wait is for a
    /// replacement pod to be ready. Neither waits on the Deployment's status: a container restart does
    /// not change it, so it can still read "complete" while the pod is down.
    pub(super) async fn kill(&mut self, version: &str) -> anyhow::Result<()> {
        let selector = format!("app={},version={version}", objects::SERVER);
        let mut pods = self.ops.pods(&self.namespace, &selector).await?;
        let before = pods.iter().filter(|p| p.ready).count();
        pods.retain(|p| p.running);
        pods.sort_by_key(|p| (p.created, p.name.clone()));
        let victim = pods.first().cloned().with_context(|| {
            format!(
                "no running pod matches {selector} in namespace {}",
                self.namespace
            )
        })?;
        let container = victim.container(objects::SERVER_CONTAINER);
        match (self.ops.kind_cluster(), &victim.node, container) {
            (Some(_), Some(node), Some(c)) => {
                let id = c.id.as_deref().with_context(|| {
                    format!(
                        "pod {}/{} has no container id for {}",
                        self.namespace,
                        victim.name,
                        objects::SERVER_CONTAINER
                    )
                })?;
                let id = id.split_once("://").map_or(id, |(_, id)| id);
                let restarts = c.restart_count;
                self.ops.stop_container(node, id).await?;
                progress(&format!(
                    "  killed {} of {} (SIGKILL on node {node})",
                    objects::SERVER_CONTAINER,
                    victim.name
                ));
                self.wait_restarted(&selector, &victim.name, restarts)
                    .await?;
            }
            (kind, _, _) => {
                let why = match kind {
                    Some(_) => format!(
                        "pod {} has no node or no {} container",
                        victim.name,
                        objects::SERVER_CONTAINER
                    ),
                    None => format!("kube context {} is not a kind cluster", self.ops.context()),
                };
                self.warnings.push(format!(
                    "{why}: {} was deleted with grace period 0 instead of killed; the kubelet still sends SIGTERM and SIGKILLs only after 2s, so the server drained (a graceful stop, not a kill)",
                    victim.name
                ));
                self.ops.delete_pod(&self.namespace, &victim.name).await?;
                progress(&format!("  deleted {} with grace period 0", victim.name));
                self.wait_replaced(&selector, &victim.name, before).await?;
            }
        }
        self.refresh_servers().await
    }

    /// Until the pod's server container has restarted (its restart count above `restarts`) and the pod
    /// is ready again.
    pub(super) async fn wait_restarted(
        &self,
        selector: &str,
        pod: &str,
        restarts: i32,
    ) -> anyhow::Result<()> {
        progress(&format!(
            "  waiting for {pod} to serve again (up to {}s)",
            self.deadlines.rollout.as_secs()
        ));
        let back = |p: &PodInfo| {
            p.ready
                && p.container(objects::SERVER_CONTAINER)
                    .is_some_and(|c| c.restart_count > restarts && c.ready)
        };
        let found = self
            .poll_pods(selector, |pods| {
                pods.iter().find(|p| p.name == pod).is_some_and(back)
            })
            .await?;
        if let Err(pods) = found {
            let state = pods.iter().find(|p| p.name == pod).map_or_else(
                || "gone".to_owned(),
                |p| {
                    let count = p
                        .container(objects::SERVER_CONTAINER)
                        .map_or(0, |c| c.restart_count);
                    format!("restart count {count}, ready {}", p.ready)
                },
            );
            bail!(
                "pod {}/{pod}: {} not serving again after {}s ({state})",
                self.namespace,
                objects::SERVER_CONTAINER,
                self.deadlines.rollout.as_secs()
            );
        }
        Ok(())
    }

    /// Until the deleted pod is gone and as many pods as were ready before are ready again.
    pub(super) async fn wait_replaced(
        &self,
        selector: &str,
        pod: &str,
        ready: usize,
    ) -> anyhow::Result<()> {
        progress(&format!(
            "  waiting for a pod to replace {pod} (up to {}s)",
            self.deadlines.rollout.as_secs()
        ));
        let found = self
            .poll_pods(selector, |pods| {
                pods.iter().all(|p| p.name != pod)
                    && pods.iter().filter(|p| p.ready).count() >= ready
            })
            .await?;
        if let Err(pods) = found {
            bail!(
                "no pod replaced {}/{pod} after {}s ({} of {ready} ready)",
                self.namespace,
                self.deadlines.rollout.as_secs(),
                pods.iter().filter(|p| p.ready && p.name != pod).count()
            );
        }
        Ok(())
    }

    /// Lists the pods until `done` holds (`Ok`) or the rollout deadline passes (`Err` with the last list).
    pub(super) async fn poll_pods(
        &self,
        selector: &str,
        done: impl Fn(&[PodInfo]) -> bool,
    ) -> anyhow::Result<Result<(), Vec<PodInfo>>> {
        let deadline = tokio::time::Instant::now() + self.deadlines.rollout;
        loop {
            let pods = self.ops.pods(&self.namespace, selector).await?;
            if done(&pods) {
                return Ok(Ok(()));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Err(pods));
            }
            tokio::time::sleep(self.deadlines.retry).await;
        }
    }
}
