//! Waits, each inside a deadline: CRDs established, a Deployment or a DaemonSet rolled out.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use ::kube::{
    Api,
    runtime::wait::{Condition, await_condition, conditions},
};
use anyhow::{Context as _, bail};
use k8s_openapi::{
    api::apps::v1::{DaemonSet, Deployment},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};

use super::{Cluster, seconds};

impl Cluster {
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
}

impl Cluster {
    /// Waits until a DaemonSet runs an updated, available pod on every node it wants one on, for its
    /// current generation (what `kubectl rollout status daemonset` checks).
    pub async fn wait_daemonset(
        &self,
        namespace: &str,
        name: &str,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), namespace);
        let last_seen = Arc::new(Mutex::new(None::<DaemonSet>));
        let condition = {
            let last_seen = Arc::clone(&last_seen);
            move |d: Option<&DaemonSet>| {
                last_seen.lock().unwrap().clone_from(&d.cloned());
                daemonset_complete(d)
            }
        };
        match tokio::time::timeout(deadline, await_condition(api, name, condition)).await {
            Ok(result) => {
                result.with_context(|| format!("wait for daemonset {namespace}/{name}"))?;
                Ok(())
            }
            Err(_elapsed) => {
                let state = match last_seen
                    .lock()
                    .unwrap()
                    .as_ref()
                    .and_then(|d| d.status.as_ref())
                {
                    Some(s) => format!(
                        "{}/{} pods ready",
                        s.number_ready, s.desired_number_scheduled
                    ),
                    None => "not found".to_owned(),
                };
                bail!(
                    "daemonset {namespace}/{name} not ready after {}: {state}",
                    seconds(deadline)
                )
            }
        }
    }
}

/// A DaemonSet has rolled out when the controller has seen its generation and every node it wants
/// runs an updated, available pod.
fn daemonset_complete(daemonset: Option<&DaemonSet>) -> bool {
    let Some(d) = daemonset else { return false };
    let Some(status) = &d.status else {
        return false;
    };
    let wanted = status.desired_number_scheduled;
    status.observed_generation >= d.metadata.generation
        && wanted > 0
        && status.updated_number_scheduled.unwrap_or(0) >= wanted
        && status.number_available.unwrap_or(0) >= wanted
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
pub(super) fn replicas_ready(d: &Deployment) -> (i32, i32) {
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let ready = d
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    (ready, wanted)
}
