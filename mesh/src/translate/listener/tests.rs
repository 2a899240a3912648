//! The outbound listener, field by field, against what Istio 1.30 writes (`listener.rs` names the
//! Istio functions).

use envoy_types::pb::{
    envoy::{
        config::listener::v3::filter,
        extensions::filters::network::http_connection_manager::v3::{
            HttpConnectionManager, http_connection_manager,
        },
    },
    google::protobuf::BoolValue,
};
use prost::Message;

use crate::translate::{
    Resources,
    test_support::{sidecar, zero},
};

fn hcm(r: &Resources) -> HttpConnectionManager {
    let Some(filter::ConfigType::TypedConfig(any)) =
        &r.listeners[0].filter_chains[0].filters[0].config_type
    else {
        panic!("a typed filter")
    };
    HttpConnectionManager::decode(any.value.as_slice()).unwrap()
}

#[test]
fn the_listener_runs_istio_s_connection_manager_and_upstream_filter_chain() {
    let r = sidecar(vec![]);
    assert_eq!(r.listeners[0].name, "127.0.0.2_50051");
    let hcm = hcm(&r);
    let filters: Vec<&str> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        filters,
        [
            "envoy.filters.http.grpc_stats",
            "envoy.filters.http.fault",
            "envoy.filters.http.cors",
            "envoy.filters.http.router"
        ]
    );
    assert_eq!(hcm.stream_idle_timeout, zero());
    assert_eq!(hcm.normalize_path, Some(BoolValue { value: true }));
    assert_eq!(
        hcm.path_with_escaped_slashes_action,
        http_connection_manager::PathWithEscapedSlashesAction::KeepUnchanged as i32
    );
    assert_eq!(hcm.use_remote_address, Some(BoolValue { value: false }));
    assert_eq!(hcm.upgrade_configs.len(), 1);
    assert_eq!(hcm.upgrade_configs[0].upgrade_type, "websocket");
    assert_eq!(hcm.stat_prefix, "127_0_0_2_50051");
    let Some(http_connection_manager::RouteSpecifier::Rds(rds)) = &hcm.route_specifier else {
        panic!("rds")
    };
    assert_eq!(rds.route_config_name, "50051");
    assert_eq!(
        rds.config_source.as_ref().unwrap().initial_fetch_timeout,
        zero()
    );
}
