//! Outbound clusters and their endpoints, as Istio 1.30 shapes a sidecar's outbound cluster for a
//! Service port (`pilot/pkg/networking/core/cluster_builder.go`: `buildCluster`,
//! `maybeApplyEdsConfig`, `setUpstreamProtocol`; `cluster_traffic_policy.go`:
//! `applyConnectionPool`, `getDefaultCircuitBreakerThresholds`, `defaultLBAlgorithm`).

use std::net::SocketAddr;

use envoy_types::pb::{
    envoy::config::{
        cluster::v3::{CircuitBreakers, Cluster, circuit_breakers, cluster},
        endpoint::v3::{
            ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
        },
    },
    google::protobuf::{Duration, UInt32Value},
};

use super::{ads_source, http2_options, socket_address};

/// `meshConfig.connectTimeout`'s default (`pkg/config/mesh/mesh.go`: `DefaultMeshConfig`).
pub const CONNECT_TIMEOUT_SECONDS: i64 = 10;

/// An EDS cluster for a Service port: least request balancing, Istio's circuit breakers, HTTP/2
/// to the pods (the Services' port has `appProtocol: grpc`, which Istio reads as HTTP/2).
pub(super) fn eds_cluster(name: &str) -> Cluster {
    let mut eds_config = ads_source();
    eds_config.initial_fetch_timeout = Some(Duration {
        seconds: 0,
        nanos: 0,
    });
    Cluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(eds_config),
            service_name: name.to_owned(),
        }),
        connect_timeout: Some(Duration {
            seconds: CONNECT_TIMEOUT_SECONDS,
            nanos: 0,
        }),
        lb_policy: cluster::LbPolicy::LeastRequest as i32,
        common_lb_config: Some(cluster::CommonLbConfig::default()),
        circuit_breakers: Some(circuit_breakers()),
        typed_extension_protocol_options: http2_options(),
        ..Default::default()
    }
}

/// Istio's default thresholds on every outbound cluster: no limit on connections, pending
/// requests, requests and concurrent retries (Envoy's own default allows 3 retries at once, which
/// fails requests during pod churn), without tracking the remaining capacity
/// (`DISABLE_TRACK_REMAINING_CB_METRICS` defaults to true in `pilot/pkg/features/pilot.go`).
pub(super) fn circuit_breakers() -> CircuitBreakers {
    let max = || Some(UInt32Value { value: u32::MAX });
    CircuitBreakers {
        thresholds: vec![circuit_breakers::Thresholds {
            max_connections: max(),
            max_pending_requests: max(),
            max_requests: max(),
            max_retries: max(),
            track_remaining: false,
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub(super) fn load_assignment(cluster: &str, endpoints: &[SocketAddr]) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: cluster.to_owned(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: endpoints
                .iter()
                .map(|addr| LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(socket_address(*addr)),
                        ..Default::default()
                    })),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
