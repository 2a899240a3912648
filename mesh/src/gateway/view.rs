//! A kind-neutral view of a route, so that validation and flattening are written once for
//! `HTTPRoute` and `GRPCRoute`.
//!
//! The view applies the defaults of the CRDs where the typed objects leave fields empty: an
//! `HTTPRoute` without rules has one rule, a rule without matches has one match (`PathPrefix /`
//! for `HTTPRoute`, everything for `GRPCRoute`).

use gateway_api::grpcroutes as grpc;
use gateway_api::httproutes as http;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::object::RouteObject;
use crate::model::RouteKind;

pub(super) struct RouteView<'a> {
    pub kind: RouteKind,
    /// `GRPCRoute default/canary`.
    pub label: String,
    pub namespace: String,
    /// Empty when absent.
    pub name: String,
    pub created: Option<&'a Time>,
    pub hostnames: usize,
    pub parents: Vec<ParentView<'a>>,
    /// `false` when `spec.rules` is absent (an `HTTPRoute` then has one default rule).
    pub rules_given: bool,
    pub rules: Vec<RuleView<'a>>,
}

pub(super) struct ParentView<'a> {
    pub group: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub name: &'a str,
    pub namespace: Option<&'a str>,
    pub port: Option<i32>,
    pub section_name: Option<&'a str>,
}

pub(super) struct RuleView<'a> {
    pub name: Option<&'a str>,
    /// `false` when the matches are the default one (then they have no fields to check).
    pub matches_given: bool,
    pub matches: Vec<MatchView<'a>>,
    pub backends: Vec<BackendView<'a>>,
    pub filters: Vec<FilterView<'a>>,
    pub has_timeouts: bool,
}

pub(super) struct MatchView<'a> {
    pub target: Target<'a>,
    /// HTTP method (`HTTPRoute` only).
    pub method: Option<&'static str>,
    pub headers: Vec<HeaderView<'a>>,
    pub query_params: usize,
}

/// What a match says about the request's `:path`.
pub(super) enum Target<'a> {
    /// A `GRPCRoute` match without `method`: every call.
    AnyCall,
    /// A `GRPCRoute` method match; empty strings count as absent.
    Method {
        service: Option<&'a str>,
        method: Option<&'a str>,
        regex: bool,
    },
    /// An `HTTPRoute` path match.
    Path { kind: PathKind, value: &'a str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PathKind {
    Exact,
    Prefix,
    Regex,
}

pub(super) struct HeaderView<'a> {
    pub name: &'a str,
    pub value: &'a str,
    pub regex: bool,
}

pub(super) struct BackendView<'a> {
    pub group: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub name: &'a str,
    pub namespace: Option<&'a str>,
    pub port: Option<i32>,
    pub weight: Option<i32>,
    pub filters: usize,
}

pub(super) struct FilterView<'a> {
    pub type_name: &'static str,
    pub request_header_modifier: Option<ModifierView<'a>>,
    /// The per-type configuration fields that are set (`requestMirror`, ...), other than
    /// `requestHeaderModifier`.
    pub other_configs: Vec<&'static str>,
}

#[derive(Default)]
pub(super) struct ModifierView<'a> {
    pub set: Vec<(&'a str, &'a str)>,
    pub add: Vec<(&'a str, &'a str)>,
    pub remove: Vec<&'a str>,
}

const DEFAULT_PATH: &str = "/";

impl<'a> RouteView<'a> {
    pub fn of(object: &'a RouteObject) -> Self {
        let metadata = object.metadata();
        let base = |hostnames: &Option<Vec<String>>| RouteView {
            kind: object.route_kind(),
            label: object.label(),
            namespace: object.namespace(),
            name: object.name(),
            created: metadata.creation_timestamp.as_ref(),
            hostnames: hostnames.as_ref().map_or(0, Vec::len),
            parents: Vec::new(),
            rules_given: false,
            rules: Vec::new(),
        };
        match object {
            RouteObject::Http(route) => {
                let spec = &route.spec;
                let mut view = base(&spec.hostnames);
                view.parents = spec
                    .parent_refs
                    .iter()
                    .flatten()
                    .map(|p| ParentView {
                        group: p.group.as_deref(),
                        kind: p.kind.as_deref(),
                        name: &p.name,
                        namespace: p.namespace.as_deref(),
                        port: p.port,
                        section_name: p.section_name.as_deref(),
                    })
                    .collect();
                view.rules_given = spec.rules.is_some();
                view.rules = match &spec.rules {
                    Some(rules) => rules.iter().map(http_rule).collect(),
                    None => vec![RuleView {
                        name: None,
                        matches_given: false,
                        matches: vec![default_http_match()],
                        backends: Vec::new(),
                        filters: Vec::new(),
                        has_timeouts: false,
                    }],
                };
                view
            }
            RouteObject::Grpc(route) => {
                let spec = &route.spec;
                let mut view = base(&spec.hostnames);
                view.parents = spec
                    .parent_refs
                    .iter()
                    .flatten()
                    .map(|p| ParentView {
                        group: p.group.as_deref(),
                        kind: p.kind.as_deref(),
                        name: &p.name,
                        namespace: p.namespace.as_deref(),
                        port: p.port,
                        section_name: p.section_name.as_deref(),
                    })
                    .collect();
                view.rules_given = spec.rules.is_some();
                view.rules = spec.rules.iter().flatten().map(grpc_rule).collect();
                view
            }
        }
    }
}

fn default_http_match() -> MatchView<'static> {
    MatchView {
        target: Target::Path {
            kind: PathKind::Prefix,
            value: DEFAULT_PATH,
        },
        method: None,
        headers: Vec::new(),
        query_params: 0,
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

fn http_rule(rule: &http::HttpRouteRules) -> RuleView<'_> {
    let given = rule.matches.as_ref().is_some_and(|m| !m.is_empty());
    RuleView {
        name: rule.name.as_deref(),
        matches_given: given,
        matches: if given {
            rule.matches.iter().flatten().map(http_match).collect()
        } else {
            vec![default_http_match()]
        },
        backends: rule
            .backend_refs
            .iter()
            .flatten()
            .map(|b| BackendView {
                group: b.group.as_deref(),
                kind: b.kind.as_deref(),
                name: &b.name,
                namespace: b.namespace.as_deref(),
                port: b.port,
                weight: b.weight,
                filters: b.filters.as_ref().map_or(0, Vec::len),
            })
            .collect(),
        filters: rule.filters.iter().flatten().map(http_filter).collect(),
        has_timeouts: rule.timeouts.is_some(),
    }
}

fn http_match(m: &http::HttpRouteRulesMatches) -> MatchView<'_> {
    use http::{HttpRouteRulesMatchesHeadersType as H, HttpRouteRulesMatchesPathType as P};
    let (kind, value) = match &m.path {
        None => (PathKind::Prefix, DEFAULT_PATH),
        Some(path) => (
            match path.r#type {
                None | Some(P::PathPrefix) => PathKind::Prefix,
                Some(P::Exact) => PathKind::Exact,
                Some(P::RegularExpression) => PathKind::Regex,
            },
            path.value.as_deref().unwrap_or(DEFAULT_PATH),
        ),
    };
    MatchView {
        target: Target::Path { kind, value },
        method: m.method.as_ref().map(http_method),
        headers: m
            .headers
            .iter()
            .flatten()
            .map(|h| HeaderView {
                name: &h.name,
                value: &h.value,
                regex: matches!(h.r#type, Some(H::RegularExpression)),
            })
            .collect(),
        query_params: m.query_params.as_ref().map_or(0, Vec::len),
    }
}

fn http_method(method: &http::HttpRouteRulesMatchesMethod) -> &'static str {
    use http::HttpRouteRulesMatchesMethod as M;
    match method {
        M::Get => "GET",
        M::Head => "HEAD",
        M::Post => "POST",
        M::Put => "PUT",
        M::Delete => "DELETE",
        M::Connect => "CONNECT",
        M::Options => "OPTIONS",
        M::Trace => "TRACE",
        M::Patch => "PATCH",
    }
}

fn http_filter(filter: &http::HttpRouteRulesFilters) -> FilterView<'_> {
    use http::HttpRouteRulesFiltersType as T;
    let type_name = match filter.r#type {
        T::RequestHeaderModifier => "RequestHeaderModifier",
        T::ResponseHeaderModifier => "ResponseHeaderModifier",
        T::RequestMirror => "RequestMirror",
        T::RequestRedirect => "RequestRedirect",
        T::UrlRewrite => "URLRewrite",
        T::ExtensionRef => "ExtensionRef",
        T::Cors => "CORS",
    };
    let others = [
        ("cors", filter.cors.is_some()),
        ("extensionRef", filter.extension_ref.is_some()),
        ("requestMirror", filter.request_mirror.is_some()),
        ("requestRedirect", filter.request_redirect.is_some()),
        (
            "responseHeaderModifier",
            filter.response_header_modifier.is_some(),
        ),
        ("urlRewrite", filter.url_rewrite.is_some()),
    ];
    FilterView {
        type_name,
        request_header_modifier: filter
            .request_header_modifier
            .as_ref()
            .map(|m| ModifierView {
                set: m
                    .set
                    .iter()
                    .flatten()
                    .map(|h| (h.name.as_str(), h.value.as_str()))
                    .collect(),
                add: m
                    .add
                    .iter()
                    .flatten()
                    .map(|h| (h.name.as_str(), h.value.as_str()))
                    .collect(),
                remove: m.remove.iter().flatten().map(String::as_str).collect(),
            }),
        other_configs: others
            .iter()
            .filter(|(_, set)| *set)
            .map(|(name, _)| *name)
            .collect(),
    }
}

fn grpc_rule(rule: &grpc::GrpcRouteRules) -> RuleView<'_> {
    let given = rule.matches.as_ref().is_some_and(|m| !m.is_empty());
    RuleView {
        name: rule.name.as_deref(),
        matches_given: given,
        matches: if given {
            rule.matches.iter().flatten().map(grpc_match).collect()
        } else {
            vec![MatchView {
                target: Target::AnyCall,
                method: None,
                headers: Vec::new(),
                query_params: 0,
            }]
        },
        backends: rule
            .backend_refs
            .iter()
            .flatten()
            .map(|b| BackendView {
                group: b.group.as_deref(),
                kind: b.kind.as_deref(),
                name: &b.name,
                namespace: b.namespace.as_deref(),
                port: b.port,
                weight: b.weight,
                filters: b.filters.as_ref().map_or(0, Vec::len),
            })
            .collect(),
        filters: rule.filters.iter().flatten().map(grpc_filter).collect(),
        has_timeouts: false,
    }
}

fn grpc_match(m: &grpc::GrpcRouteRulesMatches) -> MatchView<'_> {
    use grpc::{GrpcRouteRulesMatchesHeadersType as H, GrpcRouteRulesMatchesMethodType as M};
    MatchView {
        target: match &m.method {
            None => Target::AnyCall,
            Some(method) => Target::Method {
                service: non_empty(&method.service),
                method: non_empty(&method.method),
                regex: matches!(method.r#type, Some(M::RegularExpression)),
            },
        },
        method: None,
        headers: m
            .headers
            .iter()
            .flatten()
            .map(|h| HeaderView {
                name: &h.name,
                value: &h.value,
                regex: matches!(h.r#type, Some(H::RegularExpression)),
            })
            .collect(),
        query_params: 0,
    }
}

fn grpc_filter(filter: &grpc::GrpcRouteRulesFilters) -> FilterView<'_> {
    use grpc::GrpcRouteRulesFiltersType as T;
    let type_name = match filter.r#type {
        T::RequestHeaderModifier => "RequestHeaderModifier",
        T::ResponseHeaderModifier => "ResponseHeaderModifier",
        T::RequestMirror => "RequestMirror",
        T::ExtensionRef => "ExtensionRef",
    };
    let others = [
        ("extensionRef", filter.extension_ref.is_some()),
        ("requestMirror", filter.request_mirror.is_some()),
        (
            "responseHeaderModifier",
            filter.response_header_modifier.is_some(),
        ),
    ];
    FilterView {
        type_name,
        request_header_modifier: filter
            .request_header_modifier
            .as_ref()
            .map(|m| ModifierView {
                set: m
                    .set
                    .iter()
                    .flatten()
                    .map(|h| (h.name.as_str(), h.value.as_str()))
                    .collect(),
                add: m
                    .add
                    .iter()
                    .flatten()
                    .map(|h| (h.name.as_str(), h.value.as_str()))
                    .collect(),
                remove: m.remove.iter().flatten().map(String::as_str).collect(),
            }),
        other_configs: others
            .iter()
            .filter(|(_, set)| *set)
            .map(|(name, _)| *name)
            .collect(),
    }
}
