//! The recorder's [`Ops`]: each call writes its [`Step`] down and answers as a cluster that does
//! what it is asked would.

use std::{collections::BTreeMap, sync::atomic::Ordering, time::Duration};

use futures::StreamExt as _;
use hello_apps::client::{Summary, SummaryKind};
use k8s_openapi::{
    api::core::v1::ConfigMap,
    jiff::{SignedDuration, Timestamp},
};
use kube::api::DynamicObject;
use serde_json::{Value, json};

use super::{Deployed, Recorder, Step, merge_patch};
use crate::{
    cluster::objects::{self, ambient},
    harness::kind::{
        CONFIG_DUMP_COMMAND, ISTIO_PROXY_CONTAINER, mesh_config,
        ops::{LogLines, Ops, PodInfo},
        route_status,
    },
};

impl Ops for Recorder {
    fn context(&self) -> &str {
        &self.context
    }

    fn kind_cluster(&self) -> Option<&str> {
        self.kind.as_deref()
    }

    fn now(&self) -> Timestamp {
        let elapsed = objects::CLIENT_INTERVAL * self.ticks.load(Ordering::SeqCst);
        let elapsed = SignedDuration::try_from(elapsed).unwrap_or(SignedDuration::ZERO);
        self.epoch.checked_add(elapsed).unwrap_or(self.epoch)
    }

    fn note(&self, text: &str) {
        self.record(Step::Note(text.to_owned()));
    }

    async fn server_version(&self) -> anyhow::Result<String> {
        self.record(Step::Read(format!(
            "the API server's version (kube context {})",
            self.context
        )));
        Ok("<version>".into())
    }

    async fn deployment_image(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<Option<String>> {
        self.record(Step::Read(format!(
            "deployment {namespace}/{name}, which must exist"
        )));
        Ok(Some("<image>".into()))
    }

    async fn build_images(&self) -> anyhow::Result<objects::Images> {
        self.record(Step::BuildImages);
        Ok(crate::cluster::images::placeholders().objects())
    }

    async fn load_images(&self, kind_cluster: &str) -> anyhow::Result<()> {
        self.record(Step::LoadImages {
            cluster: kind_cluster.to_owned(),
        });
        Ok(())
    }

    async fn apply(&self, why: &str, objects: &[DynamicObject]) -> anyhow::Result<()> {
        self.record(Step::Apply {
            why: why.to_owned(),
            objects: objects.iter().map(crate::cluster::plan::label).collect(),
        });
        let mut state = self.state.lock().unwrap();
        for object in objects {
            let value = serde_json::to_value(object)?;
            let key = format!(
                "{}/{}",
                object.metadata.namespace.as_deref().unwrap_or_default(),
                object.metadata.name.as_deref().unwrap_or_default()
            );
            match value["kind"].as_str() {
                Some("Deployment") => {
                    let template = value["spec"]["template"].clone();
                    let labels = serde_json::from_value(template["metadata"]["labels"].clone())
                        .unwrap_or_default();
                    let spec = &template["spec"];
                    let containers = ["initContainers", "containers"]
                        .into_iter()
                        .flat_map(|k| spec[k].as_array().cloned().unwrap_or_default())
                        .filter_map(|c| c["name"].as_str().map(str::to_owned))
                        .collect();
                    let replicas = value["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
                    let deployed = state.deployments.entry(key).or_insert_with(|| Deployed {
                        template: Value::Null,
                        labels: BTreeMap::new(),
                        containers: Vec::new(),
                        pods: Vec::new(),
                        next: 1,
                    });
                    if deployed.template != Value::Null && deployed.template != template {
                        deployed.replace_all();
                    }
                    deployed.template = template;
                    deployed.labels = labels;
                    deployed.containers = containers;
                    deployed.scale(replicas);
                }
                Some("Service") => {
                    state.services.insert(key, value);
                }
                Some("HTTPRoute" | "GRPCRoute") => {
                    state.routes.insert(key, value);
                }
                Some("Namespace") => {
                    let name = object.metadata.name.clone().unwrap_or_default();
                    state.namespaces.insert(name, value);
                }
                // istiod's deployment controller makes the waypoint's Deployment, named after it.
                Some("Gateway") => {
                    let ns = object.metadata.namespace.clone().unwrap_or_default();
                    let name = object.metadata.name.clone().unwrap_or_default();
                    if value["spec"]["gatewayClassName"] == ambient::WAYPOINT_CLASS {
                        let deployed = state
                            .deployments
                            .entry(format!("{ns}/{name}"))
                            .or_insert_with(|| Deployed {
                                template: Value::Null,
                                labels: [(ambient::GATEWAY_NAME_LABEL.to_owned(), name.clone())]
                                    .into(),
                                containers: vec![ISTIO_PROXY_CONTAINER.to_owned()],
                                pods: Vec::new(),
                                next: 1,
                            });
                        deployed.scale(1);
                    }
                    state.gateways.insert(key, value);
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn wait_rollout(
        &self,
        namespace: &str,
        name: &str,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        self.record(Step::WaitRollout {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            deadline,
        });
        Ok(())
    }

    async fn scale(&self, namespace: &str, name: &str, replicas: u32) -> anyhow::Result<()> {
        self.record(Step::Scale {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            replicas,
        });
        if let Some(d) = self
            .state
            .lock()
            .unwrap()
            .deployments
            .get_mut(&format!("{namespace}/{name}"))
        {
            d.scale(replicas as usize);
        }
        Ok(())
    }

    async fn restart(&self, namespace: &str, name: &str) -> anyhow::Result<()> {
        self.record(Step::Restart {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        });
        if let Some(d) = self
            .state
            .lock()
            .unwrap()
            .deployments
            .get_mut(&format!("{namespace}/{name}"))
        {
            d.replace_all();
        }
        Ok(())
    }

    async fn pods(&self, namespace: &str, selector: &str) -> anyhow::Result<Vec<PodInfo>> {
        self.record(Step::Read(format!("pods {selector} in {namespace}")));
        Ok(self.pods_of(namespace, selector))
    }

    async fn delete_pod(&self, namespace: &str, pod: &str) -> anyhow::Result<()> {
        self.record(Step::DeletePod {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
        });
        // Its ReplicaSet makes a new one.
        let mut state = self.state.lock().unwrap();
        let prefix = format!("{namespace}/");
        for (key, d) in &mut state.deployments {
            let Some(name) = key.strip_prefix(&prefix) else {
                continue;
            };
            if let Some(i) = d.pods.iter().position(|n| format!("{name}-pod{n}") == pod) {
                d.pods.remove(i);
                d.make(1);
            }
        }
        Ok(())
    }

    async fn stop_container(&self, node: &str, container_id: &str) -> anyhow::Result<()> {
        self.record(Step::StopContainer {
            node: node.to_owned(),
            container_id: container_id.to_owned(),
        });
        // The kubelet restarts the container in the same pod (the id names the pod, see `pods_of`).
        if let Some((pod, _container)) = container_id
            .strip_prefix("<id of ")
            .and_then(|rest| rest.strip_suffix('>'))
            .and_then(|rest| rest.split_once('/'))
        {
            *self
                .state
                .lock()
                .unwrap()
                .restarts
                .entry(pod.to_owned())
                .or_default() += 1;
        }
        Ok(())
    }

    async fn delete_namespace(&self, namespace: &str, deadline: Duration) -> anyhow::Result<()> {
        self.record(Step::DeleteNamespace {
            namespace: namespace.to_owned(),
            deadline,
        });
        let mut state = self.state.lock().unwrap();
        let prefix = format!("{namespace}/");
        state.deployments.retain(|key, _| !key.starts_with(&prefix));
        state.services.retain(|key, _| !key.starts_with(&prefix));
        state.routes.retain(|key, _| !key.starts_with(&prefix));
        state.gateways.retain(|key, _| !key.starts_with(&prefix));
        state.namespaces.remove(namespace);
        Ok(())
    }

    async fn delete_service(
        &self,
        namespace: &str,
        name: &str,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        self.record(Step::DeleteService {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            deadline,
        });
        self.state
            .lock()
            .unwrap()
            .services
            .remove(&format!("{namespace}/{name}"));
        Ok(())
    }

    async fn get(
        &self,
        why: &str,
        _api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<Option<Value>> {
        self.record(Step::Read(why.to_owned()));
        let state = self.state.lock().unwrap();
        let key = format!("{namespace}/{name}");
        match kind {
            "DaemonSet" => Ok((key
                == format!("{}/{}", ambient::ISTIO_NAMESPACE, ambient::ZTUNNEL))
            .then(|| {
                json!({ "apiVersion": "apps/v1", "kind": "DaemonSet",
                    "metadata": { "name": name, "namespace": namespace } })
            })),
            "Gateway" => Ok(state.gateways.get(&key).map(|gateway| {
                let mut gateway = gateway.clone();
                gateway["metadata"]["generation"] = json!(1);
                gateway["status"] = json!({ "conditions": [
                    { "type": "Accepted", "status": "True", "observedGeneration": 1,
                      "reason": "Accepted", "message": "Resource accepted" },
                    { "type": "Programmed", "status": "True", "observedGeneration": 1,
                      "reason": "Programmed", "message": "Resource programmed" }] });
                gateway
            })),
            _ => Ok(state.routes.get(&key).map(|route| {
                let mut route = route.clone();
                route["metadata"]["generation"] = json!(1);
                let mut status = route_status::istio_status(&route["spec"]["parentRefs"], 1, &[]);
                if Recorder::ambient(&state, namespace) {
                    status = route_status::with_waypoints(
                        status,
                        1,
                        Recorder::uses_waypoint(&state, namespace, objects::SERVER),
                    );
                }
                route["status"] = status;
                route
            })),
        }
    }

    async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: &[&str],
    ) -> anyhow::Result<String> {
        self.record(Step::Exec {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            container: container.to_owned(),
            command: command.join(" "),
        });
        if command == CONFIG_DUMP_COMMAND {
            let waypoint = pod.starts_with(&format!("{}-pod", ambient::WAYPOINT));
            Ok(self.config_dump(namespace, waypoint).to_string())
        } else {
            Ok(String::new())
        }
    }

    async fn follow_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> anyhow::Result<LogLines> {
        self.record(Step::FollowLogs {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            container: container.to_owned(),
        });
        let clock = self.clone();
        let every = objects::CLIENT_INTERVAL;
        let lines = futures::stream::unfold(1u32, move |n| {
            let clock = clock.clone();
            async move {
                // One line per turn of the scheduler, so that the reader of the summaries keeps up.
                tokio::task::yield_now().await;
                clock.ticks.fetch_add(1, Ordering::SeqCst);
                let mut summary = Summary::empty(SummaryKind::Summary);
                summary.t = f64::from(n) * every.as_secs_f64();
                let line = serde_json::to_string(&summary)
                    .map(|json| format!("{:.9} {json}", clock.now()))
                    .map_err(anyhow::Error::from);
                Some((line, n + 1))
            }
        });
        Ok(lines.boxed())
    }

    async fn pod_http_get(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        path: &str,
    ) -> anyhow::Result<String> {
        self.record(Step::PodGet {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            port,
            path: path.to_owned(),
        });
        Ok(String::new())
    }

    async fn port_forward_get(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        path: &str,
    ) -> anyhow::Result<String> {
        self.record(Step::PortForwardGet {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            port,
            path: path.to_owned(),
        });
        Ok(self.ztunnel_dump().to_string())
    }

    async fn config_map(&self, namespace: &str, name: &str) -> anyhow::Result<Option<ConfigMap>> {
        self.record(Step::Read(format!("configmap {namespace}/{name}")));
        let state = self.state.lock().unwrap();
        Ok(
            (namespace == mesh_config::NAMESPACE && name == mesh_config::CONFIG_MAP)
                .then(|| state.mesh.clone()),
        )
    }

    async fn patch_config_map(
        &self,
        namespace: &str,
        name: &str,
        what: &str,
        patch: &Value,
    ) -> anyhow::Result<()> {
        self.record(Step::PatchConfigMap {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            what: what.to_owned(),
        });
        if namespace == mesh_config::NAMESPACE && name == mesh_config::CONFIG_MAP {
            let mut state = self.state.lock().unwrap();
            let mut value = serde_json::to_value(&state.mesh)?;
            merge_patch(&mut value, patch);
            state.mesh = serde_json::from_value(value)?;
        }
        Ok(())
    }
}
