//! The cluster's own Envoys: the proxies in front of the servers (Deployment `proxy`) and the
//! static sidecar beside the client, each reading a bootstrap of `envoy_static.rs` from a
//! ConfigMap whose hash its pod template names.

use anyhow::Context as _;
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{
            ConfigMap, ConfigMapVolumeSource, Container, PodSpec, Probe, TCPSocketAction, Volume,
            VolumeMount,
        },
    },
    apimachinery::pkg::util::intstr::IntOrString,
};
use serde_json::Value;

use super::{
    CLIENT_ENVOY, CLUSTER_DOMAIN, CONFIG_HASH_ANNOTATION, ENVOY_CONCURRENCY, ENVOY_CONFIG_DIR,
    ENVOY_CONFIG_FILE, ENVOY_CONFIG_VOLUME, ENVOY_CONTAINER, ENVOY_UID, GRPC_PORT, GRPC_PORT_NAME,
    Images, PROXY, PROXY_CONFIG, Pod, SERVER_PODS, deployment, labels, meta, namespace, port,
    requests, restricted,
    routes::{route_objects, sidecar_upstreams},
};
use crate::{
    cluster::{
        envoy_static::{self, Upstream},
        sha256,
    },
    harness::scenario::Scenario,
};

/// What a static Envoy resolves for a headless Service of the namespace.
pub(super) fn upstream(service: &str, ns: &str, port: u16) -> Upstream {
    Upstream {
        name: service.to_owned(),
        host: format!("{service}.{ns}.svc.{CLUSTER_DOMAIN}"),
        port,
    }
}

/// The proxies in front of the servers: their ConfigMap `proxy-envoy` (every server pod, through
/// the headless Service `server-pods`) and their Deployment, whose pod template names its hash.
pub(super) fn proxies(ns: &str, replicas: u32, images: &Images) -> (ConfigMap, Deployment) {
    let (config, hash) = envoy_config_map(
        PROXY_CONFIG,
        ns,
        &envoy_static::proxy(&upstream(SERVER_PODS, ns, GRPC_PORT)),
    );
    (config, proxy_deployment(ns, replicas, &hash, images))
}

/// A ConfigMap holding an Envoy bootstrap, and the SHA-256 (hex) of that content.
fn envoy_config_map(name: &str, ns: &str, bootstrap: &Value) -> (ConfigMap, String) {
    let text = format!("{bootstrap:#}\n");
    let hash = sha256::hex(text.as_bytes());
    let config = ConfigMap {
        metadata: meta(name, ns, labels(&[])),
        data: Some([(ENVOY_CONFIG_FILE.to_owned(), text)].into()),
        ..ConfigMap::default()
    };
    (config, hash)
}

/// An Envoy container reading its bootstrap from the volume [`ENVOY_CONFIG_VOLUME`].
pub(super) fn envoy_container(images: &Images) -> Container {
    Container {
        name: ENVOY_CONTAINER.to_owned(),
        image: Some(images.envoy.clone()),
        command: Some(vec!["envoy".to_owned()]),
        args: Some(
            [
                "-c",
                &format!("{ENVOY_CONFIG_DIR}/{ENVOY_CONFIG_FILE}"),
                "--concurrency",
                ENVOY_CONCURRENCY,
                "--log-level",
                "warn",
                // A new configuration is a new pod, never a hot restart.
                "--disable-hot-restart",
            ]
            .map(str::to_owned)
            .into(),
        ),
        volume_mounts: Some(vec![VolumeMount {
            name: ENVOY_CONFIG_VOLUME.to_owned(),
            mount_path: ENVOY_CONFIG_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        security_context: Some(restricted(ENVOY_UID)),
        resources: Some(requests("50m", "64Mi")),
        ..Container::default()
    }
}

pub(super) fn envoy_volume(config_map: &str) -> Volume {
    Volume {
        name: ENVOY_CONFIG_VOLUME.to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.to_owned(),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn proxy_deployment(ns: &str, replicas: u32, config_hash: &str, images: &Images) -> Deployment {
    let select = [("app", PROXY)];
    let container = Container {
        ports: Some(vec![port(GRPC_PORT_NAME, envoy_static::PROXY_PORT)]),
        // Envoy opens its listener once its clusters have resolved.
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String(GRPC_PORT_NAME.to_owned()),
                ..TCPSocketAction::default()
            }),
            period_seconds: Some(2),
            ..Probe::default()
        }),
        ..envoy_container(images)
    };
    deployment(
        PROXY,
        ns,
        replicas,
        &select,
        Pod {
            labels: labels(&select),
            annotations: [(CONFIG_HASH_ANNOTATION.to_owned(), config_hash.to_owned())].into(),
            spec: PodSpec {
                service_account_name: Some(PROXY.to_owned()),
                automount_service_account_token: Some(false),
                containers: vec![container],
                volumes: Some(vec![envoy_volume(PROXY_CONFIG)]),
                ..PodSpec::default()
            },
        },
    )
}

/// The static sidecar's ConfigMap for these weights, and the hash of its content.
pub(super) fn client_envoy_config(
    scenario: &Scenario,
    weights: Option<&[(&str, u32)]>,
) -> anyhow::Result<(ConfigMap, String)> {
    let ns = namespace(scenario.name);
    let routes = route_objects(scenario, weights)?;
    let upstreams = sidecar_upstreams(scenario, &routes).with_context(|| {
        format!(
            "scenario {}: no static sidecar configuration",
            scenario.name
        )
    })?;
    Ok(envoy_config_map(
        CLIENT_ENVOY,
        &ns,
        &envoy_static::sidecar(&upstreams),
    ))
}
