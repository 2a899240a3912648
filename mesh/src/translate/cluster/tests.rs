//! The outbound clusters, field by field, against what Istio 1.30 writes (`cluster.rs` names the
//! Istio functions).

use envoy_types::pb::{
    envoy::config::cluster::v3::cluster,
    google::protobuf::{Duration, UInt32Value},
};

use crate::translate::test_support::{sidecar, zero};

#[test]
fn each_service_gets_an_eds_cluster_with_istio_s_limits_balancing_and_timeouts() {
    let r = sidecar(vec![]);
    assert_eq!(r.clusters.len(), 3);
    assert_eq!(r.endpoints.len(), 3);
    assert_eq!(r.listeners.len(), 1, "one listener per port");
    let c = &r.clusters[0];
    assert_eq!(c.name, "outbound|50051||server.default.svc.cluster.local");
    assert_eq!(
        c.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32
        ))
    );
    let eds = c.eds_cluster_config.as_ref().unwrap();
    assert_eq!(eds.service_name, c.name);
    assert_eq!(
        eds.eds_config.as_ref().unwrap().initial_fetch_timeout,
        zero()
    );
    assert_eq!(
        c.connect_timeout,
        Some(Duration {
            seconds: 10,
            nanos: 0
        })
    );
    assert_eq!(c.lb_policy, cluster::LbPolicy::LeastRequest as i32);
    assert!(c.common_lb_config.is_some());
    let thresholds = &c.circuit_breakers.as_ref().unwrap().thresholds;
    assert_eq!(thresholds.len(), 1);
    let max = Some(UInt32Value { value: u32::MAX });
    let t = &thresholds[0];
    assert_eq!(
        (
            &t.max_connections,
            &t.max_pending_requests,
            &t.max_requests,
            &t.max_retries
        ),
        (&max, &max, &max, &max)
    );
    assert!(
        !t.track_remaining,
        "DISABLE_TRACK_REMAINING_CB_METRICS is true"
    );
    assert_eq!(t.retry_budget, None);
    assert!(
        c.typed_extension_protocol_options
            .contains_key("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
    );
    assert_eq!(r.endpoints[0].cluster_name, c.name);
}
