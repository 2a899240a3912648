//! Trust, but verify: does a client's sidecar hold the routes the demo applied?
//!
//! Istio has a known issue where a mesh route is sometimes not applied to a sidecar, and a demo that
//! measures a route the sidecar never received teaches the wrong lesson. So before a phase is measured the
//! demo reads the sidecar's Envoy configuration dump and looks, in the virtual host of the parent Service,
//! for every traffic split the route objects ask for.
//!
//! A split is compared in lowest terms: weights 90/10 and 9/1 are the same split, and a backend with weight 0
//! is no part of it (Istio leaves such backends out).

use std::collections::BTreeMap;

use mesh::{gateway::RouteObject, model};
use serde_json::Value;

/// Backend Service name → weight, in lowest terms.
pub type Split = BTreeMap<String, u64>;

/// The splits the routes attached to Service `parent` ask for, one per route entry that sends traffic
/// anywhere, without repeats, in the order Istio programs them: what a client in the Service's namespace
/// (the demo's client) gets, with the entries Istio leaves out (those after a catch-all, those of a second
/// VirtualService for the Service) left out too.
pub fn expected(objects: &[RouteObject], services: &[model::Service], parent: &str) -> Vec<Split> {
    let client_namespace = services
        .iter()
        .find(|s| s.name == parent)
        .map_or(mesh::gateway::DEFAULT_NAMESPACE, |s| s.namespace.as_str());
    let (table, _warnings) = mesh::gateway::route_table_for(objects, services, client_namespace);
    let mut out: Vec<Split> = Vec::new();
    for routes in table.iter().filter(|r| r.service == parent) {
        for entry in &routes.entries {
            let split = lowest_terms(
                entry
                    .backends
                    .iter()
                    .map(|b| (b.service.clone(), u64::from(b.weight))),
            );
            if !split.is_empty() && !out.contains(&split) {
                out.push(split);
            }
        }
    }
    out
}

/// The splits of the routes of the virtual host serving `host` (e.g. `server.gml-x.svc.cluster.local`) in an
/// Envoy config dump (`/config_dump`, as `pilot-agent request GET config_dump` prints it); `None` when no
/// virtual host serves it.
pub fn found(dump: &Value, host: &str) -> Option<Vec<Split>> {
    let with_port = format!("{host}:");
    let serves = |vh: &&Value| {
        vh["domains"].as_array().is_some_and(|domains| {
            domains
                .iter()
                .filter_map(Value::as_str)
                .any(|d| d == host || d.starts_with(&with_port))
        })
    };
    let mut hosts = route_configs(dump)
        .flat_map(|rc| rc["virtual_hosts"].as_array().into_iter().flatten())
        .filter(serves)
        .peekable();
    hosts.peek()?;
    Some(splits_of(hosts))
}

/// The splits of the routes of these virtual hosts, without repeats.
fn splits_of<'a>(hosts: impl Iterator<Item = &'a Value>) -> Vec<Split> {
    let mut out = Vec::new();
    for vh in hosts {
        for route in vh["routes"].as_array().into_iter().flatten() {
            let action = &route["route"];
            let split = if let Some(cluster) = action["cluster"].as_str() {
                lowest_terms([(service_of(cluster), 1)])
            } else {
                lowest_terms(
                    action["weighted_clusters"]["clusters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| {
                            let name = c["name"].as_str()?;
                            // Envoy leaves a weight out of its JSON when it is 0.
                            Some((service_of(name), c["weight"].as_u64().unwrap_or(0)))
                        }),
                )
            };
            if !split.is_empty() && !out.contains(&split) {
                out.push(split);
            }
        }
    }
    out
}

/// The route configuration a waypoint serves a Service's HTTP port with:
/// `inbound-vip|50051|http|server.gml-x.svc.cluster.local` (istio `release-1.30`,
/// `pilot/pkg/networking/core/listener_waypoint.go`, `buildWaypointInboundHTTPRouteConfig`: named after
/// the port's inbound-VIP cluster, one virtual host `inbound|http|<port>` for every domain).
pub fn waypoint_route_config(fqdn: &str, port: u16) -> String {
    format!("inbound-vip|{port}|http|{fqdn}")
}

/// The splits a waypoint's Envoy holds for a Service, from its config dump: its inbound HTTP routes are
/// inline in its listeners, not in RDS, so the route configuration named [`waypoint_route_config`] is
/// looked for anywhere in the dump. `None` when the waypoint has none for the Service.
pub fn found_waypoint(dump: &Value, fqdn: &str, port: u16) -> Option<Vec<Split>> {
    let name = waypoint_route_config(fqdn, port);
    let mut configs = Vec::new();
    named_route_configs(dump, &name, &mut configs);
    let first = configs.first()?;
    Some(splits_of(
        first["virtual_hosts"].as_array().into_iter().flatten(),
    ))
}

/// Every object of `value` named `name` that has virtual hosts (a route configuration), depth first.
fn named_route_configs<'a>(value: &'a Value, name: &str, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            if map.get("name").and_then(Value::as_str) == Some(name)
                && map.get("virtual_hosts").is_some_and(Value::is_array)
            {
                out.push(value);
            }
            for v in map.values() {
                named_route_configs(v, name, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                named_route_configs(v, name, out);
            }
        }
        _ => {}
    }
}

/// Checks that a waypoint's dump holds every expected split for the Service `fqdn`; the error says what is
/// missing, in one line.
pub fn check_waypoint(
    dump: &Value,
    fqdn: &str,
    port: u16,
    expected: &[Split],
) -> Result<(), String> {
    let Some(found) = found_waypoint(dump, fqdn, port) else {
        return Err(format!(
            "the waypoint has no route configuration {}",
            waypoint_route_config(fqdn, port)
        ));
    };
    compare("the waypoint", fqdn, expected, &found)
}

/// Checks that the dump holds every expected split for `host`; the error says what is missing, in one line.
pub fn check(dump: &Value, host: &str, expected: &[Split]) -> Result<(), String> {
    let Some(found) = found(dump, host) else {
        return Err(format!("the sidecar has no route for {host}"));
    };
    compare("the sidecar", host, expected, &found)
}

/// What of `expected` is not in `found`, in one line naming the proxy (`the sidecar`, `the waypoint`).
fn compare(proxy: &str, host: &str, expected: &[Split], found: &[Split]) -> Result<(), String> {
    let missing: Vec<String> = expected
        .iter()
        .filter(|split| !found.contains(split))
        .map(show)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{proxy}'s routes for {host} lack {} (it has {})",
            missing.join(", "),
            if found.is_empty() {
                "none".to_owned()
            } else {
                found.iter().map(show).collect::<Vec<_>>().join(", ")
            }
        ))
    }
}

/// `server-v1=9 server-v2=1`
pub fn show(split: &Split) -> String {
    split
        .iter()
        .map(|(service, weight)| format!("{service}={weight}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every `route_config` of the dump's `RoutesConfigDump`, static and dynamic.
pub fn route_configs(dump: &Value) -> impl Iterator<Item = &Value> {
    dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["@type"]
                .as_str()
                .is_some_and(|t| t.ends_with("RoutesConfigDump"))
        })
        .flat_map(|c| {
            ["static_route_configs", "dynamic_route_configs"]
                .into_iter()
                .flat_map(move |key| c[key].as_array().into_iter().flatten())
        })
        .map(|entry| &entry["route_config"])
}

/// The Service a cluster sends to: `outbound|50051||server-v1.gml-x.svc.cluster.local` (a sidecar's, or a
/// waypoint's for a Service it does not serve) or `inbound-vip|50051|http|server-v1.gml-x.svc.cluster.local`
/// (a waypoint's for a Service attached to it) → `server-v1`; any other name is taken as it is.
fn service_of(cluster: &str) -> String {
    let mut parts = cluster.split('|');
    match (parts.next(), parts.nth(2)) {
        (Some("outbound" | "inbound-vip"), Some(host)) => {
            host.split('.').next().unwrap_or(host).to_owned()
        }
        _ => cluster.to_owned(),
    }
}

/// The weights divided by their greatest common divisor, without the zero ones.
fn lowest_terms(weights: impl IntoIterator<Item = (String, u64)>) -> Split {
    let mut split = Split::new();
    for (service, weight) in weights {
        if weight > 0 {
            *split.entry(service).or_default() += weight;
        }
    }
    let divisor = split.values().copied().fold(0, gcd);
    if divisor > 1 {
        for weight in split.values_mut() {
            *weight /= divisor;
        }
    }
    split
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests;
