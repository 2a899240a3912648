//! Writes: server-side apply of any object, and the merge patches (scale, restart, a ConfigMap),
//! all under [`FIELD_MANAGER`].

use ::kube::{
    Api,
    api::{DynamicObject, GroupVersionKind, Patch, PatchParams},
    discovery::Scope,
};
use anyhow::Context as _;
use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};

use super::{Cluster, FIELD_MANAGER, api_error};

/// The pod-template annotation `kubectl rollout restart` sets; changing it rolls the pods.
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

impl Cluster {
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
