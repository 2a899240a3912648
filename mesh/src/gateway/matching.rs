//! How one route match becomes a [`Match`] of the model, and how specific it is (the first part
//! of Gateway API precedence).

use std::cmp::Reverse;

use super::view::{MatchView, PathKind, Target};
use crate::model::{HeaderMatch, Match, StringMatch};

/// Any one path segment: the part of a gRPC path that a method match leaves open.
const ANY_SEGMENT: &str = "[^/]+";

/// The `:path` condition of a `GRPCRoute` method match.
///
/// Exact service and method give `/svc/method`; a missing part is any one segment; the
/// `RegularExpression` type puts each part's pattern in a group of its own.
pub(super) fn grpc_path(
    service: Option<&str>,
    method: Option<&str>,
    regex: bool,
) -> Option<StringMatch> {
    let path = match (service, method, regex) {
        (None, None, _) => return None,
        (Some(service), Some(method), false) => StringMatch::Exact(format!("/{service}/{method}")),
        (Some(service), None, false) => {
            StringMatch::Regex(format!("/{}/{ANY_SEGMENT}", regex::escape(service)))
        }
        (None, Some(method), false) => {
            StringMatch::Regex(format!("/{ANY_SEGMENT}/{}", regex::escape(method)))
        }
        (service, method, true) => StringMatch::Regex(format!(
            "/(?:{})/(?:{})",
            service.unwrap_or(ANY_SEGMENT),
            method.unwrap_or(ANY_SEGMENT)
        )),
    };
    Some(path)
}

/// The model's match for a route match, and the header names dropped because an earlier header
/// match of the same match has the same name (the API says the later ones are ignored).
pub(super) fn model_match(view: &MatchView<'_>) -> (Match, Vec<String>) {
    let path = match &view.target {
        Target::AnyCall => None,
        Target::Method {
            service,
            method,
            regex,
        } => grpc_path(*service, *method, *regex),
        Target::Path { kind, value } => Some(match kind {
            PathKind::Exact => StringMatch::Exact((*value).to_owned()),
            PathKind::Prefix => StringMatch::PathPrefix((*value).to_owned()),
            PathKind::Regex => StringMatch::Regex((*value).to_owned()),
        }),
    };
    let mut headers: Vec<HeaderMatch> = Vec::new();
    let mut dropped = Vec::new();
    for header in &view.headers {
        let name = header.name.to_ascii_lowercase();
        if headers.iter().any(|h| h.name == name) {
            dropped.push(name);
            continue;
        }
        let value = header.value.to_owned();
        headers.push(HeaderMatch {
            name,
            value: if header.regex {
                StringMatch::Regex(value)
            } else {
                StringMatch::Exact(value)
            },
        });
    }
    let matched = Match {
        path,
        method: view.method.map(str::to_owned),
        headers,
    };
    (matched, dropped)
}

/// How specific a match is; smaller sorts first (wins).
///
/// `GRPCRoute`: more characters in the service, then in the method, then more header matches.
/// `HTTPRoute`: an `Exact` path, then a `RegularExpression` path (its place is left to
/// implementations; here above prefixes, so that the default `PathPrefix /` of another rule
/// cannot hide it), then `PathPrefix`; longer paths first within each; then a method match,
/// more header matches, more query parameter matches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Specificity {
    Grpc {
        service_chars: Reverse<usize>,
        method_chars: Reverse<usize>,
        headers: Reverse<usize>,
    },
    Http {
        path_kind: u8,
        path_chars: Reverse<usize>,
        has_method: Reverse<bool>,
        headers: Reverse<usize>,
        query_params: Reverse<usize>,
    },
}

pub(super) fn specificity(view: &MatchView<'_>, distinct_headers: usize) -> Specificity {
    let chars = |s: Option<&str>| s.map_or(0, |s| s.chars().count());
    match &view.target {
        Target::AnyCall => Specificity::Grpc {
            service_chars: Reverse(0),
            method_chars: Reverse(0),
            headers: Reverse(distinct_headers),
        },
        Target::Method {
            service, method, ..
        } => Specificity::Grpc {
            service_chars: Reverse(chars(*service)),
            method_chars: Reverse(chars(*method)),
            headers: Reverse(distinct_headers),
        },
        Target::Path { kind, value } => Specificity::Http {
            path_kind: match kind {
                PathKind::Exact => 0,
                PathKind::Regex => 1,
                PathKind::Prefix => 2,
            },
            path_chars: Reverse(value.chars().count()),
            has_method: Reverse(view.method.is_some()),
            headers: Reverse(distinct_headers),
            query_params: Reverse(view.query_params),
        },
    }
}
