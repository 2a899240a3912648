//! How one route match becomes a [`Match`] of the model, as Istio 1.30 converts it
//! (`pilot/pkg/config/kube/gateway/conversion.go`: `createURIMatch`, `createGRPCURIMatch`,
//! `createHeadersMatch`), and where it sorts among the entries of a Service (`sortHTTPRoutes`).

use std::cmp::Reverse;

use super::view::{MatchView, PathKind, Target};
use crate::model::{HeaderMatch, Match, StringMatch};

/// Any one path segment: the part of a gRPC path that a method-only match leaves open.
const ANY_SEGMENT: &str = "[^/]+";

/// The `:path` condition of a `GRPCRoute` method match, as `createGRPCURIMatch` writes it.
///
/// Exact service and method give `/svc/method`; an Exact service alone the prefix `/svc/`; an
/// Exact method alone the regex `/[^/]+/method`. A `RegularExpression` match concatenates the
/// patterns as they are, without grouping: `/svc/.+`, `/[^/]+/method`, `/svc/method`.
pub(super) fn grpc_path(
    service: Option<&str>,
    method: Option<&str>,
    regex: bool,
) -> Option<StringMatch> {
    let path = match (service, method, regex) {
        (None, None, _) => return None,
        (Some(service), Some(method), false) => StringMatch::Exact(format!("/{service}/{method}")),
        (Some(service), None, false) => StringMatch::PathPrefix(format!("/{service}/")),
        (Some(service), None, true) => StringMatch::Regex(format!("/{service}/.+")),
        (None, Some(method), _) => StringMatch::Regex(format!("/{ANY_SEGMENT}/{method}")),
        (Some(service), Some(method), true) => StringMatch::Regex(format!("/{service}/{method}")),
    };
    Some(path)
}

/// The `:path` condition of an `HTTPRoute` path match: a `PathPrefix` loses one trailing `/`
/// (unless it is `/`), as the Gateway API says a trailing `/` is ignored.
fn http_path(kind: PathKind, value: &str) -> StringMatch {
    match kind {
        PathKind::Exact => StringMatch::Exact(value.to_owned()),
        PathKind::Prefix if value == "/" => StringMatch::PathPrefix(value.to_owned()),
        PathKind::Prefix => {
            StringMatch::PathPrefix(value.strip_suffix('/').unwrap_or(value).to_owned())
        }
        PathKind::Regex => StringMatch::Regex(value.to_owned()),
    }
}

/// The model's match for a route match. Header matches are kept under the name as written (the CRD
/// refuses a name given twice; `Foo` and `foo` are two names to it and to Istio, and both must then
/// match), sorted by name as Istio sorts Envoy's header matchers.
pub(super) fn model_match(view: &MatchView<'_>) -> Match {
    let path = match &view.target {
        Target::AnyCall => None,
        Target::Method {
            service,
            method,
            regex,
        } => grpc_path(*service, *method, *regex),
        Target::Path { kind, value } => Some(http_path(*kind, value)),
    };
    let mut headers: Vec<HeaderMatch> = view
        .headers
        .iter()
        .map(|header| {
            let value = header.value.to_owned();
            HeaderMatch {
                name: header.name.to_owned(),
                value: if header.regex {
                    StringMatch::Regex(value)
                } else {
                    StringMatch::Exact(value)
                },
            }
        })
        .collect();
    headers.sort_by(|a, b| a.name.cmp(&b.name));
    Match {
        path,
        method: view.method.map(str::to_owned),
        headers,
    }
}

/// Where an entry sorts among the entries of one Service; smaller sorts first. Istio's
/// `sortHTTPRoutes` (a stable sort, over routes ordered by creation time): entries with a match
/// before entries without one; then the path kind, `Exact` before `PathPrefix` before
/// `RegularExpression` before none; then the longer path (in bytes, as Istio wrote it); then a
/// method match; then more header matches. (Istio then counts query parameter matches, which the
/// twin refuses.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct SortKey {
    no_match: bool,
    path_rank: Reverse<i8>,
    path_len: Reverse<usize>,
    has_method: Reverse<bool>,
    headers: Reverse<usize>,
}

/// The sort key of an entry. `has_match` is false for a rule without matches (a GRPCRoute rule
/// without `matches`) unless the parentRef names a port: Istio then gives the rule a match on the
/// port alone, and it sorts as a match without a path.
pub(super) fn sort_key(matched: &Match, has_match: bool) -> SortKey {
    let (rank, len) = match &matched.path {
        None => (-1, 0),
        Some(StringMatch::Exact(p)) => (3, p.len()),
        Some(StringMatch::PathPrefix(p)) => (2, p.len()),
        Some(StringMatch::Regex(p)) => (1, p.len()),
    };
    SortKey {
        no_match: !has_match,
        path_rank: Reverse(rank),
        path_len: Reverse(len),
        has_method: Reverse(matched.method.is_some()),
        headers: Reverse(matched.headers.len()),
    }
}

/// Whether the Envoy route of a match catches every request (Istio's `IsCatchAllRoute`): the
/// prefix `/` or the regex `.*`, or no path at all, without header or method conditions. Istio
/// programs nothing after such a route.
pub(super) fn is_catch_all(matched: &Match) -> bool {
    let any_path = match &matched.path {
        None => true,
        Some(StringMatch::PathPrefix(p)) => p == "/",
        Some(StringMatch::Regex(r)) => r == ".*",
        Some(StringMatch::Exact(_)) => false,
    };
    any_path && matched.headers.is_empty() && matched.method.is_none()
}
