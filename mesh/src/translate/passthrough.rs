//! Headless Services in a sidecar, as Istio 1.30 configures them: passthrough, not balancing.
//!
//! Istio reads a Service with `clusterIP: None` as resolution `Passthrough`
//! (`pilot/pkg/serviceregistry/kube/conversion.go`, `ConvertService`), and a sidecar's cluster for
//! it is `ORIGINAL_DST` unless `PILOT_ENABLE_EDS_FOR_HEADLESS_SERVICES` is set, which defaults to
//! false (`pilot/pkg/networking/core/cluster.go`, `convertResolution`; `pilot/pkg/features/xds.go`).
//! Such a cluster has no endpoints and `lb_policy: CLUSTER_PROVIDED`
//! (`cluster_traffic_policy.go`, `applyLoadBalancer`): the request goes to the address the client
//! connected to before iptables redirected the connection to the sidecar. An HTTP port of a
//! headless Service is served by the sidecar's ordinary `0.0.0.0_<port>` listener and route
//! configuration (`listener.go`, `buildSidecarOutboundListeners`: "HTTP services can happily reside
//! on 0.0.0.0:PORT and use the wildcard route match to get to the appropriate IP through original
//! dst clusters"), whose virtual host for the Service also answers `*.<name>` for pod host names
//! (`httproute.go`, `generateVirtualHostDomains`; those wildcards the route translation has not
//! written already are added here).
//!
//! The twin has no iptables. Each [`Passthrough`] of the sidecar role stands for one intercepted
//! destination: a listener on its own loopback address, a copy of the sidecar's listener for that
//! port, which records the original destination on the connection (the filter state object
//! `envoy.network.transport_socket.original_dst_address` that Envoy's `ORIGINAL_DST` cluster reads
//! before anything else). From there on the request takes Istio's path: same route configuration,
//! same virtual host, an `ORIGINAL_DST` cluster.

use envoy_types::pb::envoy::{
    config::{
        cluster::v3::{Cluster, cluster},
        core::v3::{DataSource, SubstitutionFormatString, data_source, substitution_format_string},
        listener::v3::{Filter, Listener, filter},
    },
    extensions::filters::{
        common::set_filter_state::v3::{FilterStateValue, filter_state_value},
        network::set_filter_state::v3::Config as SetFilterState,
    },
};

use super::{CLUSTER_DOMAIN, Passthrough, Resources, Role, any, cluster_name, socket_address};
use crate::model::Service;

/// The filter state object Envoy's `ORIGINAL_DST` cluster takes the destination from.
pub const ORIGINAL_DST_KEY: &str = "envoy.network.transport_socket.original_dst_address";

/// The name of the listener that intercepts connections to `p.listen`.
pub fn listener_name(p: &Passthrough) -> String {
    format!("passthrough_{}", p.listen)
}

/// Rewrites a sidecar's resources for its headless Services and adds its intercepting listeners;
/// any other role is left as it is.
pub(super) fn apply(role: &Role, services: &[Service], out: &mut Resources) {
    let Role::Sidecar { passthrough, .. } = role else {
        return;
    };
    for svc in services.iter().filter(|s| s.headless) {
        let name = cluster_name(&svc.name, &svc.namespace, svc.port);
        for c in out.clusters.iter_mut().filter(|c| c.name == name) {
            original_dst(c);
        }
        out.endpoints.retain(|e| e.cluster_name != name);
        let fqdn = format!("{}.{}.svc.{CLUSTER_DOMAIN}", svc.name, svc.namespace);
        for vh in out
            .routes
            .iter_mut()
            .flat_map(|r| r.virtual_hosts.iter_mut())
        {
            let names_service = vh.domains.iter().any(|d| {
                d == &fqdn
                    || d.strip_prefix(fqdn.as_str())
                        .is_some_and(|p| p.starts_with(':'))
            });
            if names_service {
                let wildcards: Vec<String> = vh
                    .domains
                    .iter()
                    .filter(|d| !d.starts_with('*'))
                    .map(|d| format!("*.{d}"))
                    .filter(|w| !vh.domains.contains(w))
                    .collect();
                vh.domains.extend(wildcards);
            }
        }
    }
    let templates: Vec<Listener> = out.listeners.clone();
    for p in passthrough {
        let Some(template) = templates
            .iter()
            .find(|l| listener_port(l) == Some(u32::from(p.original_dst.port())))
        else {
            continue;
        };
        let mut l = template.clone();
        l.name = listener_name(p);
        l.address = Some(socket_address(p.listen));
        for chain in &mut l.filter_chains {
            chain.filters.insert(0, remember_original_dst(p));
        }
        out.listeners.push(l);
    }
}

/// The port a listener listens on.
fn listener_port(l: &Listener) -> Option<u32> {
    use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
    match l.address.as_ref()?.address.as_ref()? {
        address::Address::SocketAddress(sa) => match sa.port_specifier.as_ref()? {
            socket_address::PortSpecifier::PortValue(port) => Some(*port),
            socket_address::PortSpecifier::NamedPort(_) => None,
        },
        _ => None,
    }
}

/// An outbound cluster turned into Istio's cluster for a headless Service: `ORIGINAL_DST`,
/// `CLUSTER_PROVIDED`, no endpoints; everything else (protocol options, circuit breakers, timeouts)
/// stays as for any outbound cluster.
fn original_dst(c: &mut Cluster) {
    c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
        cluster::DiscoveryType::OriginalDst as i32,
    ));
    c.eds_cluster_config = None;
    c.load_assignment = None;
    c.lb_policy = cluster::LbPolicy::ClusterProvided as i32;
    c.lb_config = None;
    c.load_balancing_policy = None;
}

/// A network filter that records `p.original_dst` as the connection's original destination.
fn remember_original_dst(p: &Passthrough) -> Filter {
    let config = SetFilterState {
        on_new_connection: vec![FilterStateValue {
            key: Some(filter_state_value::Key::ObjectKey(ORIGINAL_DST_KEY.into())),
            value: Some(filter_state_value::Value::FormatString(
                SubstitutionFormatString {
                    format: Some(substitution_format_string::Format::TextFormatSource(
                        DataSource {
                            specifier: Some(data_source::Specifier::InlineString(
                                p.original_dst.to_string(),
                            )),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }],
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.set_filter_state".into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(&config))),
    }
}

#[cfg(test)]
mod tests;
