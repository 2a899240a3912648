//! The servers: a Deployment per version, and the Services the clients, the proxies and the
//! static sidecar resolve.

use std::collections::BTreeMap;

use hello_apps::server::config as server_config;
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{
            Container, EnvVar, GRPCAction, PodSpec, Probe, Service, ServicePort, ServiceSpec,
        },
    },
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::{
    APP_UID, CLUSTER_MAX_CONNECTION_AGE, CLUSTER_MAX_CONNECTION_AGE_GRACE, GRPC_APP_PROTOCOL,
    GRPC_PORT, GRPC_PORT_NAME, Images, METRICS_PORT, METRICS_PORT_NAME, PROXY, Pod, SERVER,
    SERVER_ACCOUNT, SERVER_CONTAINER, SERVER_PODS, SERVER_TERMINATION_GRACE_SECONDS, deployment,
    env, has_static_sidecar, initial_proxies, labels, meta, namespace, pod_name_env, port,
    requests, restricted, selector,
};
use crate::harness::scenario::{Exposure, Scenario};

/// The server's environment: its identity and version, then the scenario's `server_env` with
/// the cluster's max connection age in place of the local twin's.
fn server_env(scenario: &Scenario, version: &str) -> Vec<EnvVar> {
    let mut vars = vec![pod_name_env(), env(server_config::VERSION, version)];
    for &(name, value) in &scenario.server_env {
        // The explicit substitution: the scenario carries the local twin's ages.
        let value = match name {
            server_config::MAX_CONNECTION_AGE => CLUSTER_MAX_CONNECTION_AGE,
            server_config::MAX_CONNECTION_AGE_GRACE => CLUSTER_MAX_CONNECTION_AGE_GRACE,
            _ => value,
        };
        vars.push(env(name, value));
    }
    vars
}

pub(super) fn server_deployment(
    scenario: &Scenario,
    version: &str,
    replicas: u32,
    images: &Images,
) -> Deployment {
    let select = [("app", SERVER), ("version", version)];
    let container = Container {
        name: SERVER_CONTAINER.to_owned(),
        image: Some(images.server.clone()),
        ports: Some(vec![
            port(GRPC_PORT_NAME, GRPC_PORT),
            port(METRICS_PORT_NAME, METRICS_PORT),
        ]),
        env: Some(server_env(scenario, version)),
        // The server serves grpc.health.v1 and reports NOT_SERVING while it drains.
        readiness_probe: Some(Probe {
            grpc: Some(GRPCAction {
                port: i32::from(GRPC_PORT),
                service: None,
            }),
            period_seconds: Some(2),
            ..Probe::default()
        }),
        security_context: Some(restricted(APP_UID)),
        resources: Some(requests("10m", "16Mi")),
        ..Container::default()
    };
    deployment(
        &format!("{SERVER}-{version}"),
        &namespace(scenario.name),
        replicas,
        &select,
        Pod {
            labels: labels(&select),
            annotations: BTreeMap::new(),
            spec: PodSpec {
                service_account_name: Some(SERVER_ACCOUNT.to_owned()),
                automount_service_account_token: Some(false),
                termination_grace_period_seconds: Some(SERVER_TERMINATION_GRACE_SECONDS),
                containers: vec![container],
                ..PodSpec::default()
            },
        },
    )
}

/// A gRPC Service on port 50051; headless ones (`clusterIP: None`) resolve to every ready pod.
fn service(name: &str, ns: &str, select: &[(&str, &str)], headless: bool) -> Service {
    Service {
        metadata: meta(name, ns, labels(&[])),
        spec: Some(ServiceSpec {
            selector: Some(selector(select)),
            cluster_ip: headless.then(|| "None".to_owned()),
            ports: Some(vec![ServicePort {
                name: Some(GRPC_PORT_NAME.to_owned()),
                port: i32::from(GRPC_PORT),
                target_port: Some(IntOrString::String(GRPC_PORT_NAME.to_owned())),
                app_protocol: Some(GRPC_APP_PROTOCOL.to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The Service `server` every client calls: the servers exposed as `exposure` says, or, in proxy
/// mode, the proxies (always a ClusterIP: the lesson is that the client is pinned to one of them).
pub(super) fn server_service_typed(scenario: &Scenario, exposure: Exposure) -> Service {
    let ns = namespace(scenario.name);
    if initial_proxies(scenario).is_some() {
        service(SERVER, &ns, &[("app", PROXY)], false)
    } else {
        service(
            SERVER,
            &ns,
            &[("app", SERVER)],
            exposure == Exposure::Headless,
        )
    }
}

/// The scenario's Services: `server`, one per version, and the headless ones its Envoys resolve.
pub(super) fn services(scenario: &Scenario) -> Vec<Service> {
    let ns = namespace(scenario.name);
    let proxies = initial_proxies(scenario).is_some();
    let mut services = vec![server_service_typed(scenario, scenario.exposure)];
    for (version, _) in &scenario.versions {
        let name = format!("{SERVER}-{version}");
        let select = [("app", SERVER), ("version", version)];
        services.push(service(&name, &ns, &select, false));
    }
    if proxies {
        services.push(service(SERVER_PODS, &ns, &[("app", SERVER)], true));
    }
    if has_static_sidecar(scenario) {
        for (version, _) in &scenario.versions {
            let name = format!("{SERVER}-{version}-pods");
            let select = [("app", SERVER), ("version", version)];
            services.push(service(&name, &ns, &select, true));
        }
    }
    services
}
