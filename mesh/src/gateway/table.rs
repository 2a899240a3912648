//! Which routes a client's sidecar uses for each Service, in which order: what Istio 1.30 makes of
//! mesh (GAMMA) routes.
//!
//! Istio turns each route attached to a Service into a VirtualService keyed by the route's
//! namespace, the parentRef's port (when it names one) and the Service's host, and merges the
//! HTTPRoutes and GRPCRoutes of one key into one list: routes by creation time, then each rule
//! split into one entry per match, then a stable sort (`pilot/pkg/config/kube/gateway/`
//! `route_collections.go`: `mergeHTTPRoutes`; `conversion.go`: `sortHTTPRoutes`;
//! `controller.go` merges the two kinds). A sidecar then takes, for each Service, the first
//! VirtualService that names it (those of its own namespace first, then by creation time,
//! namespace and name) and ignores the others (`pilot/pkg/model/virtualservice.go`:
//! `SelectVirtualServices`; `pilot/pkg/networking/core/httproute.go`: a second virtual host of
//! the same name is dropped), and programs its entries up to the first one that matches every
//! request (`route/route.go`: `BuildHTTPRoutesForVirtualService`).

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::matching::{SortKey, is_catch_all, model_match, sort_key};
use super::object::RouteObject;
use super::view::{RouteView, RuleView};
use crate::model::{Backend, HeaderModifier, RouteEntry, RouteKind, Service, ServiceRoutes};
use crate::translate::CLUSTER_DOMAIN;

/// Something that does not stop the routes from being used but will surprise: an unknown
/// backend, a route ignored because of another, a field the twin ignores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning(pub String);

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What gRPC clients see for the HTTP status Envoy answers with (gRPC's HTTP to gRPC status
/// mapping, which Envoy applies to its own replies to gRPC requests).
fn seen_as(status: u16) -> &'static str {
    match status {
        404 => "HTTP 404, which gRPC clients see as UNIMPLEMENTED",
        _ => "HTTP 500, which gRPC clients see as UNKNOWN",
    }
}

/// Istio's key of a mesh VirtualService: the routes' namespace, the parent Service (namespace,
/// name) and the parentRef's port, if any.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    route_namespace: String,
    service_namespace: String,
    service: String,
    port: Option<u16>,
}

impl Key {
    fn host(&self) -> String {
        format!(
            "{}.{}.svc.{CLUSTER_DOMAIN}",
            self.service, self.service_namespace
        )
    }

    /// The merged VirtualService's name: the key with `/` as `~`.
    fn virtual_service(&self) -> String {
        match self.port {
            Some(port) => format!("{}~{port}~{}", self.route_namespace, self.host()),
            None => format!("{}~{}", self.route_namespace, self.host()),
        }
    }
}

/// One entry of a route, with what places it.
struct Candidate {
    entry: RouteEntry,
    /// False for a rule without matches (a GRPCRoute's).
    has_match: bool,
}

/// A route ready to be placed on its parents.
struct Prepared {
    label: String,
    namespace: String,
    name: String,
    created: Option<Time>,
    parents: Vec<Key>,
    entries: Vec<Candidate>,
}

/// A merged VirtualService.
struct Group {
    key: Key,
    /// The creation time of its oldest route (Istio's merged VirtualService keeps it).
    created: Option<Time>,
    /// Its routes, oldest first.
    routes: Vec<usize>,
    entries: Vec<RouteEntry>,
}

pub(super) fn route_table(
    objects: &[RouteObject],
    services: &[Service],
    client_namespace: &str,
) -> (Vec<ServiceRoutes>, Vec<Warning>) {
    let mut warnings = Vec::new();
    let routes: Vec<Prepared> = objects
        .iter()
        .map(|object| prepare(&RouteView::of(object), services, &mut warnings))
        .collect();

    let mut by_key: BTreeMap<Key, Vec<usize>> = BTreeMap::new();
    for (index, route) in routes.iter().enumerate() {
        for key in &route.parents {
            by_key.entry(key.clone()).or_default().push(index);
        }
    }
    let groups: Vec<Group> = by_key
        .into_iter()
        .map(|(key, members)| merge(key, members, &routes))
        .filter(|group| !group.entries.is_empty())
        .collect();

    let labels = |group: &Group| {
        group
            .routes
            .iter()
            .map(|&i| routes[i].label.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut table = Vec::new();
    for service in services {
        let mut candidates: Vec<&Group> = Vec::new();
        for group in groups.iter().filter(|g| {
            g.key.service_namespace == service.namespace
                && g.key.service == service.name
                && g.key.port.is_none_or(|p| p == service.port)
        }) {
            let route_namespace = &group.key.route_namespace;
            if *route_namespace == service.namespace || route_namespace == client_namespace {
                candidates.push(group);
            } else {
                warnings.push(Warning(format!(
                    "{}: parent Service {}/{} is in another namespace (a consumer route): Istio applies it only to clients in namespace {route_namespace}, and the client is in {client_namespace}",
                    labels(group),
                    service.namespace,
                    service.name
                )));
            }
        }
        // The sidecar's own namespace first, then creation time, namespace and name.
        candidates.sort_by(|a, b| {
            let rank = |g: &Group| {
                (
                    g.key.route_namespace != client_namespace,
                    g.created.clone(),
                    g.key.route_namespace.clone(),
                    g.key.virtual_service(),
                )
            };
            rank(a).cmp(&rank(b))
        });
        let Some((winner, others)) = candidates.split_first() else {
            continue;
        };
        for other in others {
            let why = if winner.key.route_namespace == client_namespace
                && other.key.route_namespace != client_namespace
            {
                "it is in the client's namespace"
            } else {
                "older routes first, then by namespace and name"
            };
            warnings.push(Warning(format!(
                "{}: ignored for calls to Service {}/{}: Istio gives a sidecar one VirtualService per Service, and {} (from {}) comes before {} ({why})",
                labels(other),
                service.namespace,
                service.name,
                winner.key.virtual_service(),
                labels(winner),
                other.key.virtual_service(),
            )));
        }
        let mut entries = Vec::new();
        for entry in &winner.entries {
            let catch_all = is_catch_all(&entry.matched);
            entries.push(entry.clone());
            if catch_all {
                break;
            }
        }
        if let Some(last) = entries.last() {
            for dropped in &winner.entries[entries.len()..] {
                warnings.push(Warning(format!(
                    "{}: never used: it comes after {}, which matches every call, and Istio programs nothing after such a route",
                    dropped.name, last.name
                )));
            }
        }
        table.push(ServiceRoutes {
            service: service.name.clone(),
            namespace: service.namespace.clone(),
            port: winner.key.port,
            virtual_service: winner.key.virtual_service(),
            entries,
        });
    }
    (table, warnings)
}

/// Merges the routes of one key: oldest first (an absent timestamp counts as the oldest, as
/// Go's zero time does), then by namespace and name; their entries in order, then sorted.
fn merge(key: Key, mut members: Vec<usize>, routes: &[Prepared]) -> Group {
    members.sort_by(|&a, &b| {
        let rank = |r: &Prepared| (r.created.clone(), r.namespace.clone(), r.name.clone());
        rank(&routes[a]).cmp(&rank(&routes[b]))
    });
    let mut entries: Vec<(SortKey, &RouteEntry)> = members
        .iter()
        .flat_map(|&i| &routes[i].entries)
        .map(|c| {
            // A parentRef port gives every rule a match (on the port), even one without matches.
            let has_match = c.has_match || key.port.is_some();
            (sort_key(&c.entry.matched, has_match), &c.entry)
        })
        .collect();
    entries.sort_by_key(|(sort, _)| *sort);
    Group {
        created: members.first().and_then(|&i| routes[i].created.clone()),
        key,
        entries: entries.into_iter().map(|(_, e)| e.clone()).collect(),
        routes: members,
    }
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
        let key = Key {
            route_namespace: view.namespace.clone(),
            service_namespace: namespace,
            service: parent.name.to_owned(),
            port,
        };
        if !parents.contains(&key) {
            parents.push(key);
        }
    }

    if view.kind == RouteKind::Grpc && view.rules.is_empty() {
        warn(
            warnings,
            "has no rules, so it routes nothing (its parent Services are treated as if no route were attached)".to_owned(),
        );
    }

    let several_rules = view.rules.len() > 1;
    let mut entries = Vec::new();
    for (r, rule) in view.rules.iter().enumerate() {
        let rule_prefix = if several_rules {
            format!("rule {r}: ")
        } else {
            String::new()
        };
        let backends = backends(view, rule);
        warn_about_backends(view, r, &rule_prefix, &backends, services, &mut |text| {
            warn(warnings, text)
        });
        let request_headers = request_headers(rule, &mut |text| {
            warn(warnings, format!("{rule_prefix}{text}"));
        });
        let route_name = rule.name.map_or_else(
            || format!("{}.{}.{r}", view.namespace, view.name),
            str::to_owned,
        );
        // HTTPRoute rules always have matches (the CRD's default: PathPrefix /).
        let has_match = rule.matches_given || view.kind == RouteKind::Http;
        for (m, matched) in rule.matches.iter().enumerate() {
            entries.push(Candidate {
                has_match,
                entry: RouteEntry {
                    kind: view.kind,
                    name: format!("{label} rule {r} match {m}"),
                    route_name: route_name.clone(),
                    matched: model_match(matched),
                    backends: backends.clone(),
                    request_headers: request_headers.clone(),
                },
            });
        }
    }

    Prepared {
        label: label.clone(),
        namespace: view.namespace.clone(),
        name: view.name.clone(),
        created: view.created.cloned(),
        parents,
        entries,
    }
}

/// Says what the calls a rule sends nowhere get: Istio keeps a backendRef to a Service that does
/// not exist (or to a port it does not have) and answers 500 for its share; a rule without
/// backendRefs gets 404 in an HTTPRoute, 500 in a GRPCRoute; all weights 0 get 500.
fn warn_about_backends(
    view: &RouteView<'_>,
    r: usize,
    rule_prefix: &str,
    backends: &[Backend],
    services: &[Service],
    warn: &mut dyn FnMut(String),
) {
    let grpc_spec = if view.kind == RouteKind::Grpc {
        " (the GRPCRoute spec asks for UNAVAILABLE, so a client that retries only UNAVAILABLE will not retry these)"
    } else {
        ""
    };
    let total: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
    if total == 0 {
        let (what, status) = if backends.is_empty() {
            let status = if view.kind == RouteKind::Http {
                404
            } else {
                500
            };
            ("no backendRefs", status)
        } else {
            ("no backendRef with a weight above 0", 500)
        };
        warn(format!(
            "rule {r} has {what}: all its calls get {}{grpc_spec}",
            seen_as(status)
        ));
    }
    for backend in backends {
        let shown = if backend.namespace == view.namespace {
            backend.service.clone()
        } else {
            format!("{}/{}", backend.namespace, backend.service)
        };
        let share = share(backend.weight, total);
        let problem = match services
            .iter()
            .find(|s| s.namespace == backend.namespace && s.name == backend.service)
        {
            None => format!("backendRef {shown} does not exist"),
            Some(service) => match backend.port.filter(|p| *p != service.port) {
                Some(port) => format!(
                    "backendRef {shown} port {port} is not the Service's port ({})",
                    service.port
                ),
                None => continue,
            },
        };
        warn(format!(
            "{rule_prefix}{problem}: its share ({share}) of calls gets {}{grpc_spec}",
            seen_as(500)
        ));
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

/// The rule's `RequestHeaderModifier` as Istio hands it to Envoy (`conversion.go`:
/// `headerListToMap`; `route/route.go`: `TranslateHeadersOperations`): names in lower case, a
/// name given again (in any case) ignored, sorted by name; `host` becomes the authority rewrite
/// (a `set` one winning over an `add` one) and is neither set, added nor removed.
fn request_headers(rule: &RuleView<'_>, warn: &mut dyn FnMut(String)) -> HeaderModifier {
    let Some(m) = rule
        .filters
        .iter()
        .find_map(|f| f.request_header_modifier.as_ref())
    else {
        return HeaderModifier::default();
    };
    let mut host_rewrite = None;
    let mut list = |what: &str, pairs: &[(&str, &str)], warn: &mut dyn FnMut(String)| {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut host = None;
        for (name, value) in pairs {
            let name = name.to_ascii_lowercase();
            if out.iter().any(|(n, _)| *n == name) || (name == "host" && host.is_some()) {
                warn(format!(
                    "RequestHeaderModifier {what}s header {name} twice (names are case-insensitive): only the first is used"
                ));
                continue;
            }
            if name == "host" {
                host = Some((*value).to_owned());
                continue;
            }
            out.push((name, (*value).to_owned()));
        }
        out.sort();
        if let Some(host) = host {
            host_rewrite.get_or_insert(host);
        }
        out
    };
    // `set` first: its host wins.
    let set = list("set", &m.set, warn);
    let add = list("add", &m.add, warn);
    let remove = m
        .remove
        .iter()
        .filter(|name| {
            let host = name.eq_ignore_ascii_case("host");
            if host {
                warn("RequestHeaderModifier cannot remove host: Istio leaves it out".to_owned());
            }
            !host
        })
        .map(|name| (*name).to_owned())
        .collect();
    HeaderModifier {
        set,
        add,
        remove,
        host_rewrite,
    }
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
