//! The scenario's route objects: its route file from `gateway/`, put in the demo namespace and
//! labelled, with the weights of a step; and the weighted split a static sidecar makes of them.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use kube::api::DynamicObject;
use mesh::gateway::{self, RouteObject};

use super::{PART_OF, PART_OF_LABEL, SERVER, namespace, proxies::upstream, to_dynamic};
use crate::{cluster::envoy_static::Upstream, harness::scenario::Scenario};

/// The scenario's route objects (none without a route file) in the demo namespace, with these
/// weights applied by backend Service name (for [`Action::Weights`](crate::harness::scenario::Action)).
pub fn routes(
    scenario: &Scenario,
    weights: Option<&[(&str, u32)]>,
) -> anyhow::Result<Vec<DynamicObject>> {
    Ok(route_objects(scenario, weights)?
        .iter()
        .map(|object| match object {
            RouteObject::Http(route) => to_dynamic(route),
            RouteObject::Grpc(route) => to_dynamic(route),
        })
        .collect())
}

/// The scenario's route objects (none without a route file), typed, in the demo namespace and
/// labelled, with these weights applied by backend Service name.
pub fn route_objects(
    scenario: &Scenario,
    weights: Option<&[(&str, u32)]>,
) -> anyhow::Result<Vec<RouteObject>> {
    let Some(source) = &scenario.routes else {
        return Ok(Vec::new());
    };
    let mut routes = source.load()?;
    if let Some(weights) = weights {
        routes = routes.with_weights(weights)?;
    }
    let mut objects = routes.into_objects();
    let ns = namespace(scenario.name);
    for object in &mut objects {
        let metadata = match object {
            RouteObject::Http(route) => &mut route.metadata,
            RouteObject::Grpc(route) => &mut route.metadata,
        };
        metadata.namespace = Some(ns.clone());
        metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(PART_OF_LABEL.to_owned(), PART_OF.to_owned());
    }
    Ok(objects)
}

/// The weighted backends of the route file, as the static sidecar can express them: one
/// `HTTPRoute` with one rule, no matches and no filters, whose backends are the scenario's
/// `server-<version>` Services (each reached through its headless `server-<version>-pods`).
pub(super) fn sidecar_upstreams(
    scenario: &Scenario,
    routes: &[RouteObject],
) -> anyhow::Result<Vec<(Upstream, u32)>> {
    let unsupported = "a static sidecar expresses one HTTPRoute with one rule, without matches \
                       or filters, splitting by weight";
    let [RouteObject::Http(route)] = routes else {
        bail!(
            "{unsupported}: the route file has {} object(s)",
            routes.len()
        );
    };
    let [rule] = route.spec.rules.as_deref().unwrap_or_default() else {
        bail!(
            "{unsupported}: HTTPRoute {} has several rules",
            route_name(route)
        );
    };
    if rule.matches.as_ref().is_some_and(|m| !m.is_empty())
        || rule.filters.as_ref().is_some_and(|f| !f.is_empty())
    {
        bail!(
            "{unsupported}: HTTPRoute {} has matches or filters",
            route_name(route)
        );
    }
    let ns = namespace(scenario.name);
    let mut upstreams = Vec::new();
    for backend in rule.backend_refs.iter().flatten() {
        let known = scenario
            .versions
            .iter()
            .any(|(v, _)| backend.name == format!("{SERVER}-{v}"));
        if !known {
            bail!(
                "backend {} of HTTPRoute {} is none of the scenario's server-<version> Services",
                backend.name,
                route_name(route)
            );
        }
        let port = backend
            .port
            .and_then(|p| u16::try_from(p).ok())
            .with_context(|| format!("backend {} has no valid port", backend.name))?;
        // Gateway API: an unset weight is 1; the loader refuses negative ones.
        let weight = u32::try_from(backend.weight.unwrap_or(1)).unwrap_or(0);
        let mut target = upstream(&format!("{}-pods", backend.name), &ns, port);
        target.name.clone_from(&backend.name);
        upstreams.push((target, weight));
    }
    if upstreams.iter().all(|(_, weight)| *weight == 0) {
        bail!(
            "every backend of HTTPRoute {} has weight 0 (Envoy needs some traffic to send somewhere)",
            route_name(route)
        );
    }
    Ok(upstreams)
}

fn route_name(route: &gateway::HttpRoute) -> &str {
    route.metadata.name.as_deref().unwrap_or("<no name>")
}
