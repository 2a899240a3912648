//! Tearing down: a namespace this harness owns, or a Service, each deleted and waited for until it
//! is gone.

use std::time::Duration;

use ::kube::{
    Api, ResourceExt,
    api::DeleteParams,
    runtime::wait::{await_condition, conditions},
};
use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{Namespace, Service};

use super::{Cluster, api_error, seconds};
use crate::cluster::objects::{PART_OF, PART_OF_LABEL};

impl Cluster {
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
        if found.labels().get(PART_OF_LABEL).map(String::as_str) != Some(PART_OF) {
            bail!(
                "refusing to delete namespace {namespace}: it lacks the label {PART_OF_LABEL}={PART_OF}"
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
}
