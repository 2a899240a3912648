//! Envoy configurations for the twin: bootstrap for an xDS-fed Envoy, and the files of a static
//! one (the seed's sidecar with a hand-written configuration, changed by restarting it).

use std::{net::SocketAddr, path::Path};

use envoy_types::pb::envoy::{
    config::{
        cluster::v3::{Cluster, cluster},
        listener::v3::{Filter, filter},
    },
    extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, http_connection_manager,
    },
    service::discovery::v3::DiscoveryResponse,
};
use prost::Message;
use serde_json::{Value, json};

use crate::translate::{self, CLUSTER_TYPE, LISTENER_TYPE, Resources};

/// The static cluster through which Envoy reaches our control plane.
pub const XDS_CLUSTER: &str = "xds-grpc";

fn http2_cluster(name: &str, addr: SocketAddr) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} }
            }
        },
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                "socket_address": { "address": addr.ip().to_string(), "port_value": addr.port() }
            }}}]}]
        }
    })
}

/// A bootstrap whose listeners and clusters (and through them routes and endpoints) come over ADS
/// from the control plane at `xds`.
pub fn ads_bootstrap(xds: SocketAddr) -> Value {
    let ads = json!({ "ads": {}, "resource_api_version": "V3" });
    json!({
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{ "envoy_grpc": { "cluster_name": XDS_CLUSTER } }],
                "set_node_on_first_message_only": true
            },
            "lds_config": ads,
            "cds_config": ads
        },
        "static_resources": { "clusters": [http2_cluster(XDS_CLUSTER, xds)] }
    })
}

/// Writes `resources` as files a static Envoy reads at start (listeners with their routes inline,
/// clusters with their endpoints inline) and returns the bootstrap that points at them.
pub fn static_bootstrap(resources: &Resources, dir: &Path) -> std::io::Result<Value> {
    let routes = |name: &str| resources.routes.iter().find(|r| r.name == name).cloned();
    let listeners: Vec<_> = resources
        .listeners
        .iter()
        .map(|l| {
            let mut l = l.clone();
            for chain in &mut l.filter_chains {
                for f in &mut chain.filters {
                    inline_routes(f, &routes);
                }
            }
            translate::any(&l)
        })
        .collect();
    let clusters: Vec<_> = resources
        .clusters
        .iter()
        .map(|c| {
            let mut c: Cluster = c.clone();
            c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Static as i32,
            ));
            c.eds_cluster_config = None;
            c.load_assignment = resources
                .endpoints
                .iter()
                .find(|e| e.cluster_name == c.name)
                .cloned();
            translate::any(&c)
        })
        .collect();
    let write = |file: &str, type_url: &str, resources| -> std::io::Result<String> {
        let response = DiscoveryResponse {
            version_info: "static".into(),
            type_url: type_url.into(),
            resources,
            ..Default::default()
        };
        let path = dir.join(file);
        std::fs::write(&path, response.encode_to_vec())?;
        Ok(path.display().to_string())
    };
    std::fs::create_dir_all(dir)?;
    let lds = write("static-lds.pb", LISTENER_TYPE, listeners)?;
    let cds = write("static-cds.pb", CLUSTER_TYPE, clusters)?;
    Ok(json!({
        "dynamic_resources": {
            "lds_config": { "path_config_source": { "path": lds }, "resource_api_version": "V3" },
            "cds_config": { "path_config_source": { "path": cds }, "resource_api_version": "V3" }
        }
    }))
}

fn inline_routes(
    f: &mut Filter,
    routes: &dyn Fn(&str) -> Option<envoy_types::pb::envoy::config::route::v3::RouteConfiguration>,
) {
    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        return;
    };
    let Ok(mut hcm) = HttpConnectionManager::decode(any.value.as_slice()) else {
        return;
    };
    if let Some(http_connection_manager::RouteSpecifier::Rds(rds)) = &hcm.route_specifier
        && let Some(rc) = routes(&rds.route_config_name)
    {
        hcm.route_specifier = Some(http_connection_manager::RouteSpecifier::RouteConfig(rc));
        f.config_type = Some(filter::ConfigType::TypedConfig(translate::any(&hcm)));
    }
}
