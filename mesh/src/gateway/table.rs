//! Flattening the routes attached to each Service into entries in Gateway API precedence order.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::matching::{Specificity, model_match, specificity};
use super::object::RouteObject;
use super::view::{RouteView, RuleView};
use crate::model::{Backend, HeaderModifier, RouteEntry, RouteKind, Service, ServiceRoutes};

/// Something that does not stop the routes from being used but will surprise: an unknown
/// backend, a route ignored because of another, a field the twin ignores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning(pub String);

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parent Service and port (`None`: every port).
type Parent = (String, String, Option<u16>);

/// Where a route sits among routes of equal specificity: older first (absent timestamps
/// last), then by `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Age {
    no_timestamp: bool,
    created: Option<Time>,
    full_name: String,
}

/// One entry with what decides its place.
struct Ranked {
    specificity: Specificity,
    rule: usize,
    matched: usize,
    entry: RouteEntry,
}

/// A route ready to be placed on its parents.
struct Prepared {
    kind: RouteKind,
    label: String,
    age: Age,
    parents: Vec<Parent>,
    entries: Vec<Ranked>,
}

pub(super) fn route_table(
    objects: &[RouteObject],
    services: &[Service],
) -> (Vec<ServiceRoutes>, Vec<Warning>) {
    let mut warnings = Vec::new();
    let routes: Vec<Prepared> = objects
        .iter()
        .map(|object| prepare(&RouteView::of(object), services, &mut warnings))
        .collect();

    let mut attached: BTreeMap<Parent, BTreeSet<usize>> = BTreeMap::new();
    for (index, route) in routes.iter().enumerate() {
        for parent in &route.parents {
            attached.entry(parent.clone()).or_default().insert(index);
        }
    }
    // A route attached to every port of a Service also applies to each port that has routes
    // of its own.
    let every_port: Vec<(Parent, BTreeSet<usize>)> = attached
        .iter()
        .filter(|((_, _, port), _)| port.is_none())
        .map(|(parent, routes)| (parent.clone(), routes.clone()))
        .collect();
    for ((namespace, service, _), routes) in every_port {
        for ((ns, name, port), ids) in attached.iter_mut() {
            if port.is_some() && *ns == namespace && *name == service {
                ids.extend(routes.iter().copied());
            }
        }
    }

    let mut table = Vec::new();
    for ((namespace, service, port), ids) in attached {
        let has_grpc = ids.iter().any(|&i| routes[i].kind == RouteKind::Grpc);
        let mut ranked: Vec<(&Age, &Ranked)> = Vec::new();
        for &i in &ids {
            let route = &routes[i];
            if has_grpc && route.kind == RouteKind::Http {
                warnings.push(Warning(format!(
                    "{}: ignored on Service {namespace}/{service}{}: a GRPCRoute is attached to the same Service and port, and GRPCRoute takes precedence over HTTPRoute (GAMMA route type conflict)",
                    route.label,
                    port.map(|p| format!(" port {p}")).unwrap_or_default()
                )));
                continue;
            }
            ranked.extend(route.entries.iter().map(|entry| (&route.age, entry)));
        }
        ranked.sort_by(|(age_a, a), (age_b, b)| {
            (&a.specificity, *age_a, a.rule, a.matched).cmp(&(
                &b.specificity,
                *age_b,
                b.rule,
                b.matched,
            ))
        });
        if ranked.is_empty() {
            continue;
        }
        table.push(ServiceRoutes {
            service,
            namespace,
            port,
            entries: ranked.into_iter().map(|(_, r)| r.entry.clone()).collect(),
        });
    }
    (table, warnings)
}

fn prepare(view: &RouteView<'_>, services: &[Service], warnings: &mut Vec<Warning>) -> Prepared {
    let label = &view.label;
    let warn = |warnings: &mut Vec<Warning>, text: String| {
        warnings.push(Warning(format!("{label}: {text}")));
    };
    let find = |namespace: &str, name: &str| {
        services
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
    };

    if view.hostnames > 0 {
        warn(
            warnings,
            "spec.hostnames is ignored: a mesh (GAMMA) route matches the traffic of its parent Service".to_owned(),
        );
    }

    let mut parents = Vec::new();
    for parent in &view.parents {
        let is_service = parent.group == Some("") && parent.kind == Some("Service");
        let Some(port) = parent.port.map(u16::try_from).transpose().ok() else {
            continue;
        };
        if !is_service || parent.name.is_empty() {
            continue;
        }
        let namespace = parent.namespace.unwrap_or(&view.namespace).to_owned();
        if namespace != view.namespace {
            warn(
                warnings,
                format!(
                    "parent Service {namespace}/{} is in another namespace (a consumer route): the twin applies it to every client, where a mesh applies it only to clients in namespace {}",
                    parent.name, view.namespace
                ),
            );
        }
        match find(&namespace, parent.name) {
            None => warn(
                warnings,
                format!(
                    "parent Service {namespace}/{} does not exist: the route applies to no traffic",
                    parent.name
                ),
            ),
            Some(service) => {
                if let Some(port) = port.filter(|p| *p != service.port) {
                    warn(
                        warnings,
                        format!(
                            "parentRef port {port} is not the port of Service {namespace}/{} ({}): the route applies to no traffic",
                            parent.name, service.port
                        ),
                    );
                }
            }
        }
        let key = (namespace, parent.name.to_owned(), port);
        if !parents.contains(&key) {
            parents.push(key);
        }
    }

    if view.kind == RouteKind::Grpc && view.rules.is_empty() {
        warn(
            warnings,
            "has no rules, so it routes nothing (the twin treats its parent Services as if no route were attached)".to_owned(),
        );
    }

    let failure = match view.kind {
        RouteKind::Grpc => "UNAVAILABLE",
        RouteKind::Http => "HTTP 500",
    };
    let several_rules = view.rules.len() > 1;
    let mut entries = Vec::new();
    for (r, rule) in view.rules.iter().enumerate() {
        let rule_prefix = if several_rules {
            format!("rule {r}: ")
        } else {
            String::new()
        };
        let backends = backends(view, rule);
        let total: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
        if total == 0 {
            warn(
                warnings,
                format!(
                    "rule {r} has no backendRef with a weight above 0: all its traffic will get {failure}"
                ),
            );
        }
        for backend in &backends {
            let shown = if backend.namespace == view.namespace {
                backend.service.clone()
            } else {
                format!("{}/{}", backend.namespace, backend.service)
            };
            let share = share(backend.weight, total);
            match find(&backend.namespace, &backend.service) {
                None => warn(
                    warnings,
                    format!(
                        "{rule_prefix}backendRef {shown} does not exist: its share ({share}) of traffic will get {failure}"
                    ),
                ),
                Some(service) => {
                    if let Some(port) = backend.port.filter(|p| *p != service.port) {
                        warn(
                            warnings,
                            format!(
                                "{rule_prefix}backendRef {shown} port {port} is not the Service's port ({}): its share ({share}) of traffic will get {failure}",
                                service.port
                            ),
                        );
                    }
                }
            }
        }
        let request_headers = request_headers(rule);
        for (m, matched) in rule.matches.iter().enumerate() {
            let (model, dropped) = model_match(matched);
            for name in dropped {
                warn(
                    warnings,
                    format!(
                        "rule {r} match {m}: header {name} is matched twice: only the first is used"
                    ),
                );
            }
            entries.push(Ranked {
                specificity: specificity(matched, model.headers.len()),
                rule: r,
                matched: m,
                entry: RouteEntry {
                    kind: view.kind,
                    name: format!("{label} rule {r} match {m}"),
                    matched: model,
                    backends: backends.clone(),
                    request_headers: request_headers.clone(),
                },
            });
        }
    }

    Prepared {
        kind: view.kind,
        label: label.clone(),
        age: Age {
            no_timestamp: view.created.is_none(),
            created: view.created.cloned(),
            full_name: format!("{}/{}", view.namespace, view.name),
        },
        parents,
        entries,
    }
}

/// Weight defaults to 1; the namespace to the route's. Weight 0 backends stay (the translator
/// drops them).
fn backends(view: &RouteView<'_>, rule: &RuleView<'_>) -> Vec<Backend> {
    rule.backends
        .iter()
        .map(|b| Backend {
            service: b.name.to_owned(),
            namespace: b.namespace.unwrap_or(&view.namespace).to_owned(),
            port: b.port.and_then(|p| u16::try_from(p).ok()),
            weight: b.weight.map_or(1, |w| u32::try_from(w).unwrap_or(0)),
        })
        .collect()
}

/// The rule's `RequestHeaderModifier`, header names in lower case.
fn request_headers(rule: &RuleView<'_>) -> HeaderModifier {
    let pairs = |list: &[(&str, &str)]| {
        list.iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), (*value).to_owned()))
            .collect()
    };
    rule.filters
        .iter()
        .find_map(|f| f.request_header_modifier.as_ref())
        .map(|m| HeaderModifier {
            set: pairs(&m.set),
            add: pairs(&m.add),
            remove: m.remove.iter().map(|n| n.to_ascii_lowercase()).collect(),
        })
        .unwrap_or_default()
}

/// `5%`, `33.3%`.
fn share(weight: u32, total: u64) -> String {
    if total == 0 {
        return "0%".to_owned();
    }
    let percent = f64::from(weight) * 100.0 / total as f64;
    let rounded = (percent * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}%")
    } else {
        format!("{rounded:.1}%")
    }
}
