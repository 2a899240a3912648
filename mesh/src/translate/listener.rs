//! The outbound HTTP listener of a sidecar, with the connection manager Istio 1.30 writes
//! (`pilot/pkg/networking/core/listener_builder.go`: `buildHTTPConnectionManager`) and the HTTP
//! filters of its chain that upstream Envoy has (`pilot/pkg/xds/filters/filters.go`: `GrpcStats`,
//! `Fault`, `Cors`, `BuildRouterFilter`).
//!
//! Istio's own filters are not in upstream Envoy and so not here: `istio.metadata_exchange` (before
//! all others), `istio.alpn` (after `grpc_stats`) and `istio.stats` (after `cors`). Each RPC
//! through the twin's sidecar passes through the others, as in Istio.

use std::net::SocketAddr;

use envoy_types::pb::{
    envoy::{
        config::{
            listener::v3::{Filter, FilterChain, Listener, filter},
            route::v3::RouteConfiguration,
        },
        extensions::filters::{
            http::{
                cors::v3::Cors,
                fault::v3::HttpFault,
                grpc_stats::v3::{FilterConfig as GrpcStats, filter_config},
                router::v3::Router,
            },
            network::http_connection_manager::v3::{
                HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
            },
        },
    },
    google::protobuf::{BoolValue, Duration},
};
use prost::{Message, Name};

use super::{ads_source, any, socket_address};

/// The HTTP filters of Istio's outbound chain that upstream Envoy has, in Istio's order, the
/// router last. Their names and configurations are Istio's.
pub(super) fn http_filters() -> Vec<HttpFilter> {
    fn named<M: Message + Name>(name: &str, config: &M) -> HttpFilter {
        HttpFilter {
            name: name.to_owned(),
            config_type: Some(http_filter::ConfigType::TypedConfig(any(config))),
            ..Default::default()
        }
    }
    let grpc_stats = GrpcStats {
        emit_filter_state: true,
        per_method_stat_specifier: Some(filter_config::PerMethodStatSpecifier::StatsForAllMethods(
            BoolValue { value: false },
        )),
        ..Default::default()
    };
    vec![
        named("envoy.filters.http.grpc_stats", &grpc_stats),
        named("envoy.filters.http.fault", &HttpFault::default()),
        named("envoy.filters.http.cors", &Cors::default()),
        named("envoy.filters.http.router", &Router::default()),
    ]
}

/// The connection manager of an outbound HTTP listener: routes over RDS, and Istio's settings
/// that change what a request meets: no stream idle timeout, path normalization (the default
/// `pathNormalization` of the mesh config), escaped slashes kept, the client's address not used
/// (`PILOT_SIDECAR_USE_REMOTE_ADDRESS` defaults to false), websocket upgrades allowed.
pub(super) fn connection_manager(stat_prefix: &str, route_name: &str) -> HttpConnectionManager {
    let mut rds_source = ads_source();
    rds_source.initial_fetch_timeout = Some(zero());
    HttpConnectionManager {
        stat_prefix: stat_prefix.to_owned(),
        codec_type: http_connection_manager::CodecType::Auto as i32,
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            route_config_name: route_name.to_owned(),
            config_source: Some(rds_source),
        })),
        http_filters: http_filters(),
        stream_idle_timeout: Some(zero()),
        normalize_path: Some(BoolValue { value: true }),
        path_with_escaped_slashes_action:
            http_connection_manager::PathWithEscapedSlashesAction::KeepUnchanged as i32,
        use_remote_address: Some(BoolValue { value: false }),
        upgrade_configs: vec![http_connection_manager::UpgradeConfig {
            upgrade_type: "websocket".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn zero() -> Duration {
    Duration {
        seconds: 0,
        nanos: 0,
    }
}

/// A listener at `addr` whose one filter chain is an HTTP connection manager reading the route
/// configuration `route_name`.
pub(super) fn listener(name: &str, addr: SocketAddr, route_name: &str) -> Listener {
    // Dots and colons would split the stat name into segments.
    let hcm = connection_manager(&name.replace(['.', ':'], "_"), route_name);
    Listener {
        name: name.to_owned(),
        address: Some(socket_address(addr)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(any(&hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A listener at `addr` whose one filter chain, `chain`, is an HTTP connection manager with the
/// route configuration inline, as a waypoint's per-Service chains are (no RDS).
pub(super) fn inline_listener(
    name: &str,
    addr: SocketAddr,
    chain: &str,
    routes: RouteConfiguration,
) -> Listener {
    let mut hcm = connection_manager(&chain.replace(['.', ':', '|'], "_"), &routes.name);
    hcm.route_specifier = Some(http_connection_manager::RouteSpecifier::RouteConfig(routes));
    Listener {
        name: name.to_owned(),
        address: Some(socket_address(addr)),
        filter_chains: vec![FilterChain {
            name: chain.to_owned(),
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(any(&hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
