//! The client: one Deployment per arrangement, running the phase's workload against the target
//! its mesh gives it, with the static sidecar's Envoy beside it where the mesh is one.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentStrategy},
        core::v1::{Container, HTTPGetAction, PodSpec, Probe},
    },
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::{
    APP_UID, CLIENT_ACCOUNT, CLIENT_CONTAINER, CLIENT_ENVOY, CLIENT_INTERVAL,
    CONFIG_HASH_ANNOTATION, GRPC_PORT, INJECT_LABEL, Images, Pod, READY_PORT_NAME, SERVER,
    STATIC_SIDECAR_STARTUP_SECONDS, client_name, deployment, labels, namespace, pod_name_env, port,
    proxies::{envoy_container, envoy_volume},
    requests, restricted,
};
use crate::{
    cluster::envoy_static,
    harness::scenario::{Client, Mesh, Scenario},
};

/// The phase's client: its target depends only on the mesh, its workload on [`Client`].
pub(super) fn client_deployment(
    scenario: &Scenario,
    client: &Client,
    mesh: Mesh,
    images: &Images,
    config_hash: Option<&str>,
) -> Deployment {
    let name = client_name(mesh);
    let target = match mesh {
        Mesh::StaticSidecar => format!("ipv4:127.0.0.1:{}", envoy_static::SIDECAR_PORT),
        Mesh::Off | Mesh::Sidecar | Mesh::Proxy(_) | Mesh::Ztunnel | Mesh::Waypoint => {
            format!("dns:///{SERVER}:{GRPC_PORT}")
        }
    };
    let mut args = vec![target];
    args.extend(
        [
            "--output",
            "json",
            "--interval",
            &humantime::format_duration(CLIENT_INTERVAL).to_string(),
            "--lb",
            client.lb,
            "--method",
            client.method,
            "--concurrency",
            &client.concurrency.to_string(),
        ]
        .map(str::to_owned),
    );
    for (key, value) in &client.headers {
        args.extend(["--header".to_owned(), format!("{key}={value}")]);
    }
    let container = Container {
        name: CLIENT_CONTAINER.to_owned(),
        image: Some(images.client.clone()),
        args: Some(args),
        env: Some(vec![pod_name_env()]),
        security_context: Some(restricted(APP_UID)),
        resources: Some(requests("10m", "16Mi")),
        ..Container::default()
    };
    let select = [("app", name)];
    let mut template_labels = labels(&select);
    let mut annotations = BTreeMap::new();
    let mut spec = PodSpec {
        service_account_name: Some(CLIENT_ACCOUNT.to_owned()),
        containers: vec![container],
        ..PodSpec::default()
    };
    match mesh {
        Mesh::Sidecar => {
            // Istio injects only pods that opt in.
            template_labels.insert(INJECT_LABEL.to_owned(), "true".to_owned());
            // The client's first RPCs must find the sidecar ready (implied with native sidecars).
            annotations.insert(
                "proxy.istio.io/config".to_owned(),
                r#"{"holdApplicationUntilProxyStarts": true}"#.to_owned(),
            );
        }
        Mesh::StaticSidecar => {
            // A native sidecar (an init container that keeps running): it starts before the
            // client and stops after it, so no RPC finds it missing.
            // Its startup probe holds the client until Envoy is initialized and listens: without
            // one the kubelet starts the next container as soon as the sidecar's process runs.
            spec.init_containers = Some(vec![Container {
                restart_policy: Some("Always".to_owned()),
                ports: Some(vec![port(READY_PORT_NAME, envoy_static::READY_PORT)]),
                startup_probe: Some(Probe {
                    http_get: Some(HTTPGetAction {
                        path: Some(envoy_static::READY_PATH.to_owned()),
                        port: IntOrString::String(READY_PORT_NAME.to_owned()),
                        ..HTTPGetAction::default()
                    }),
                    period_seconds: Some(1),
                    failure_threshold: Some(STATIC_SIDECAR_STARTUP_SECONDS),
                    ..Probe::default()
                }),
                ..envoy_container(images)
            }]);
            spec.volumes = Some(vec![envoy_volume(CLIENT_ENVOY)]);
            if let Some(hash) = config_hash {
                annotations.insert(CONFIG_HASH_ANNOTATION.to_owned(), hash.to_owned());
            }
        }
        Mesh::Off | Mesh::Proxy(_) | Mesh::Ztunnel | Mesh::Waypoint => {}
    }
    let mut deployment = deployment(
        name,
        &namespace(scenario.name),
        1,
        &select,
        Pod {
            labels: template_labels,
            annotations,
            spec,
        },
    );
    // One client at a time: the old one stops before the new one starts, so that no two
    // clients' RPCs are ever counted together.
    if let Some(spec) = &mut deployment.spec {
        spec.strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".to_owned()),
            ..DeploymentStrategy::default()
        });
    }
    deployment
}
