//! Reads: an object of any kind as JSON, a ConfigMap, a CRD's bundle version, the Deployments and
//! their images, our namespaces, the API server's version.

use ::kube::{
    Api, ResourceExt,
    api::{DynamicObject, GroupVersionKind, ListParams},
};
use anyhow::Context as _;
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Namespace},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};

use super::{Cluster, api_error, wait::replicas_ready};
use crate::cluster::objects::{PART_OF, PART_OF_LABEL};

impl Cluster {
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
            .list(&ListParams::default().labels(&format!("{PART_OF_LABEL}={PART_OF}")))
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
