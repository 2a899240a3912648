//! The waypoint, against what Istio 1.30 writes for a Service with `istio.io/use-waypoint`
//! (`waypoint.rs` names the Istio functions).

use envoy_types::pb::envoy::{
    config::{cluster::v3::cluster, route::v3::route_action},
    extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, http_connection_manager,
    },
};
use prost::Message;

use super::*;
use crate::{
    model::RetryPolicy,
    translate::{
        ISTIO_DEFAULT_RETRY_ON, Role, cluster_name, resources,
        test_support::{action, attached, backend, cluster_of, grpc, service, zero},
    },
};

const ADDR: &str = "127.0.0.9:50051";
const SERVER: &str = "inbound-vip|50051|http|server.default.svc.cluster.local";

fn waypoint_with(service_name: &str, routes: Vec<ServiceRoutes>, mesh: &MeshConfig) -> Resources {
    let mut server = service("server");
    server.endpoints = vec![
        "127.0.0.3:50051".parse().unwrap(),
        "127.0.0.4:50051".parse().unwrap(),
    ];
    let services = [server, service("server-v1"), service("server-v2")];
    resources(
        &Role::Waypoint {
            addr: ADDR.parse().unwrap(),
            service: service_name.into(),
        },
        &services,
        &routes,
        mesh,
    )
}

fn waypoint(routes: Vec<ServiceRoutes>) -> Resources {
    waypoint_with("server", routes, &MeshConfig::default())
}

/// The connection manager of the listener's one filter chain.
fn hcm(r: &Resources) -> HttpConnectionManager {
    let [listener] = &r.listeners[..] else {
        panic!("one listener: {:?}", r.listeners)
    };
    let [chain] = &listener.filter_chains[..] else {
        panic!("one filter chain")
    };
    let Some(envoy_types::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(any)) =
        &chain.filters[0].config_type
    else {
        panic!("a typed config")
    };
    HttpConnectionManager::decode(any.value.as_slice()).unwrap()
}

fn inline_routes(r: &Resources) -> envoy_types::pb::envoy::config::route::v3::RouteConfiguration {
    match hcm(r).route_specifier {
        Some(http_connection_manager::RouteSpecifier::RouteConfig(c)) => c,
        other => panic!("routes inline, not {other:?}"),
    }
}

#[test]
fn the_waypoint_listens_where_ztunnel_sends_with_one_chain_named_after_the_service() {
    let r = waypoint(Vec::new());
    let [listener] = &r.listeners[..] else {
        panic!("one listener")
    };
    assert_eq!(listener.name, "main_internal");
    assert_eq!(
        listener.address,
        Some(crate::translate::socket_address(ADDR.parse().unwrap()))
    );
    assert_eq!(listener.filter_chains[0].name, SERVER);
    assert_eq!(
        listener.filter_chains[0].filters[0].name,
        "envoy.filters.network.http_connection_manager"
    );
}

#[test]
fn the_routes_are_inline_not_over_rds_with_the_sidecar_s_connection_manager_settings() {
    let r = waypoint(Vec::new());
    assert!(r.routes.is_empty(), "no RDS: {:?}", r.routes);
    let hcm = hcm(&r);
    let config = inline_routes(&r);
    assert_eq!(config.name, SERVER);
    assert_eq!(config.validate_clusters.map(|v| v.value), Some(false));
    let names: Vec<_> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "envoy.filters.http.grpc_stats",
            "envoy.filters.http.fault",
            "envoy.filters.http.cors",
            "envoy.filters.http.router"
        ]
    );
    assert_eq!(hcm.stream_idle_timeout, zero());
    assert_eq!(hcm.use_remote_address.map(|v| v.value), Some(false));
    assert!(
        !hcm.stat_prefix.contains(['|', '.', ':']),
        "{}",
        hcm.stat_prefix
    );
}

#[test]
fn one_virtual_host_named_after_the_port_takes_every_domain() {
    let config = inline_routes(&waypoint(Vec::new()));
    let [host] = &config.virtual_hosts[..] else {
        panic!("one virtual host: {:?}", config.virtual_hosts)
    };
    assert_eq!(host.name, "inbound|http|50051");
    assert_eq!(host.domains, ["*"]);
    assert!(host.include_request_attempt_count);
}

#[test]
#[allow(deprecated, reason = "Istio sets max_grpc_timeout")]
fn without_routes_the_default_route_goes_to_the_service_s_own_inbound_vip_cluster() {
    let r = waypoint(Vec::new());
    let config = inline_routes(&r);
    let route = &config.virtual_hosts[0].routes[0];
    assert_eq!(config.virtual_hosts[0].routes.len(), 1);
    assert_eq!(route.name, "default");
    assert_eq!(cluster_of(route), SERVER);
    let a = action(route);
    assert_eq!((a.timeout, a.max_grpc_timeout), (zero(), zero()));
    assert_eq!(
        a.retry_policy.as_ref().map(|p| p.retry_on.as_str()),
        Some(ISTIO_DEFAULT_RETRY_ON)
    );
    let own = r
        .clusters
        .iter()
        .find(|c| c.name == SERVER)
        .expect("its cluster");
    assert_eq!(own.lb_policy, cluster::LbPolicy::LeastRequest as i32);
    assert_eq!(
        own.eds_cluster_config
            .as_ref()
            .map(|e| e.service_name.as_str()),
        Some(SERVER)
    );
    let endpoints = r
        .endpoints
        .iter()
        .find(|e| e.cluster_name == SERVER)
        .expect("its endpoints");
    assert_eq!(endpoints.endpoints[0].lb_endpoints.len(), 2);
}

#[test]
fn the_attached_routes_send_to_the_backends_outbound_clusters_with_their_weights() {
    let r = waypoint(attached(vec![grpc(vec![
        backend("server-v1", 90),
        backend("server-v2", 10),
    ])]));
    let config = inline_routes(&r);
    let routes = &config.virtual_hosts[0].routes;
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].name, "default.r.0");
    let Some(route_action::ClusterSpecifier::WeightedClusters(w)) =
        &action(&routes[0]).cluster_specifier
    else {
        panic!("weighted clusters")
    };
    let split: Vec<_> = w
        .clusters
        .iter()
        .map(|c| (c.name.clone(), c.weight.map(|w| w.value)))
        .collect();
    assert_eq!(
        split,
        [
            (cluster_name("server-v1", "default", 50051), Some(90)),
            (cluster_name("server-v2", "default", 50051), Some(10)),
        ]
    );
    for name in ["server-v1", "server-v2"] {
        let outbound = cluster_name(name, "default", 50051);
        assert!(r.clusters.iter().any(|c| c.name == outbound), "{outbound}");
    }
}

#[test]
fn the_mesh_s_default_retry_policy_reaches_the_waypoint_s_routes() {
    let mesh = MeshConfig {
        default_http_retry_policy: Some(RetryPolicy {
            attempts: 3,
            retry_on: "reset,connect-failure".into(),
        }),
    };
    let r = waypoint_with("server", Vec::new(), &mesh);
    let config = inline_routes(&r);
    let policy = action(&config.virtual_hosts[0].routes[0])
        .retry_policy
        .clone()
        .unwrap();
    assert_eq!(policy.retry_on, "reset,connect-failure");
    assert_eq!(policy.num_retries.map(|n| n.value), Some(3));
}

#[test]
fn a_waypoint_for_a_service_that_does_not_exist_has_no_listener() {
    let r = waypoint_with("nope", Vec::new(), &MeshConfig::default());
    assert!(r.listeners.is_empty());
    assert!(
        r.clusters
            .iter()
            .all(|c| !c.name.starts_with("inbound-vip|"))
    );
}

#[test]
fn the_inbound_vip_name_carries_port_name_and_namespace() {
    let svc = Service {
        name: "api".into(),
        namespace: "shop".into(),
        port: 8080,
        ..service("api")
    };
    assert_eq!(
        inbound_vip(&svc),
        "inbound-vip|8080|http|api.shop.svc.cluster.local"
    );
}
