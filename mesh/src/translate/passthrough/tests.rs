//! Headless Services in a sidecar, against what Istio 1.30 writes (`passthrough.rs` names the Istio
//! functions).

use std::net::SocketAddr;

use super::*;
use crate::{
    model::MeshConfig,
    translate::{
        resources,
        test_support::{self, host},
    },
};

/// The demos' Service `name`, headless or not.
fn service(name: &str, headless: bool) -> Service {
    Service {
        headless,
        ..test_support::service(name)
    }
}

fn passthrough(listen: &str, pod: &str) -> Passthrough {
    Passthrough {
        listen: listen.parse().unwrap(),
        original_dst: pod.parse().unwrap(),
    }
}

fn sidecar(services: &[Service], passthrough: Vec<Passthrough>) -> Resources {
    resources(
        &Role::Sidecar {
            ip: "127.0.0.2".parse().unwrap(),
            passthrough,
        },
        services,
        &[],
        &MeshConfig::default(),
    )
}

fn cluster<'a>(r: &'a Resources, service: &str) -> &'a Cluster {
    let name = cluster_name(service, "default", 50051);
    r.clusters.iter().find(|c| c.name == name).unwrap()
}

fn discovery(c: &Cluster) -> Option<cluster::ClusterDiscoveryType> {
    c.cluster_discovery_type.clone()
}

#[test]
fn a_headless_service_gets_an_original_dst_cluster_without_endpoints() {
    let r = sidecar(
        &[service("server", true), service("server-v1", false)],
        vec![],
    );
    let c = cluster(&r, "server");
    assert_eq!(
        discovery(c),
        Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::OriginalDst as i32
        ))
    );
    assert_eq!(c.lb_policy, cluster::LbPolicy::ClusterProvided as i32);
    assert!(c.eds_cluster_config.is_none() && c.load_assignment.is_none());
    let name = cluster_name("server", "default", 50051);
    assert!(
        r.endpoints.iter().all(|e| e.cluster_name != name),
        "no endpoints are sent for it"
    );
}

#[test]
fn a_cluster_ip_service_keeps_its_eds_cluster_and_endpoints() {
    let r = sidecar(
        &[service("server", true), service("server-v1", false)],
        vec![],
    );
    let c = cluster(&r, "server-v1");
    assert_eq!(
        discovery(c),
        Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32
        ))
    );
    let name = cluster_name("server-v1", "default", 50051);
    assert!(r.endpoints.iter().any(|e| e.cluster_name == name));
}

#[test]
fn a_headless_service_s_virtual_host_also_answers_its_pod_host_names() {
    let r = sidecar(
        &[service("server", true), service("server-v1", false)],
        vec![],
    );
    let vh = host(&r, "server");
    let fqdn = format!("*.server.default.svc.{CLUSTER_DOMAIN}");
    assert!(vh.domains.iter().any(|d| d == &fqdn), "{:?}", vh.domains);
    assert!(
        vh.domains.iter().any(|d| d == "*.server"),
        "{:?}",
        vh.domains
    );
    assert!(
        host(&r, "server-v1")
            .domains
            .iter()
            .all(|d| !d.starts_with('*')),
        "a ClusterIP Service gets no wildcard"
    );
}

#[test]
fn each_intercepted_address_gets_a_copy_of_the_port_s_listener_that_remembers_the_pod() {
    let services = [service("server", true)];
    let plain = sidecar(&services, vec![]);
    let p = passthrough("127.0.1.10:50051", "127.0.0.10:50051");
    let r = sidecar(&services, vec![p.clone()]);
    assert_eq!(r.listeners.len(), plain.listeners.len() + 1);
    let l = r
        .listeners
        .iter()
        .find(|l| l.name == listener_name(&p))
        .unwrap();
    assert_eq!(l.address, Some(socket_address(p.listen)));
    let filters = &l.filter_chains[0].filters;
    assert_eq!(filters[0].name, "envoy.filters.network.set_filter_state");
    let Some(filter::ConfigType::TypedConfig(typed)) = &filters[0].config_type else {
        panic!("a typed config")
    };
    let config = <SetFilterState as prost::Message>::decode(typed.value.as_slice()).unwrap();
    let value = &config.on_new_connection[0];
    assert_eq!(
        value.key,
        Some(filter_state_value::Key::ObjectKey(ORIGINAL_DST_KEY.into()))
    );
    let Some(filter_state_value::Value::FormatString(f)) = &value.value else {
        panic!("a format string")
    };
    let Some(substitution_format_string::Format::TextFormatSource(source)) = &f.format else {
        panic!("a text format")
    };
    assert_eq!(
        source.specifier,
        Some(data_source::Specifier::InlineString(
            "127.0.0.10:50051".into()
        ))
    );
    // The rest of the chain is the sidecar's own listener, unchanged.
    assert_eq!(
        &filters[1..],
        &plain.listeners[0].filter_chains[0].filters[..]
    );
}

#[test]
fn a_proxy_is_not_a_sidecar_and_balances_a_headless_service() {
    let addr: SocketAddr = "127.0.0.3:50051".parse().unwrap();
    let r = resources(
        &Role::Proxy {
            addr,
            service: "server".into(),
        },
        &[service("server", true)],
        &[],
        &MeshConfig::default(),
    );
    assert_eq!(
        discovery(cluster(&r, "server")),
        Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32
        ))
    );
}
