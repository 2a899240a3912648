//! What the API server's schema (and its CEL rules) would refuse, plus what this harness does not
//! support; the first problem found is the error.

use std::collections::HashMap;

use super::error::{GatewayError, Violation};
use super::matching::grpc_path;
use super::object::RouteObject;
use super::view::{BackendView, FilterView, MatchView, PathKind, RouteView, Target};
use crate::model::{RouteKind, StringMatch};

/// CRD limits.
const MAX_PARENT_REFS: usize = 32;
const MAX_RULES: usize = 16;
const MAX_MATCHES_PER_RULE: usize = 64;
const MAX_MATCHES_PER_ROUTE: usize = 128;
const MAX_HEADER_MATCHES: usize = 16;
const MAX_BACKEND_REFS: usize = 16;
const MAX_FILTERS: usize = 16;
const MAX_HEADER_CHANGES: usize = 16;
const MAX_WEIGHT: i64 = 1_000_000;
const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;
const MAX_HEADER_NAME: usize = 256;
const MAX_HEADER_VALUE: usize = 4096;
const MAX_PATH: usize = 1024;
const MAX_GRPC_NAME: usize = 1024;

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
const SERVICE: &str = "Service";
const REQUEST_HEADER_MODIFIER: &str = "RequestHeaderModifier";

/// Checks every object, then that no two share kind, namespace and name.
pub(super) fn validate(objects: &[RouteObject]) -> Result<(), GatewayError> {
    for object in objects {
        validate_object(object)?;
    }
    let mut seen: HashMap<(&str, String, String), usize> = HashMap::new();
    for (index, object) in objects.iter().enumerate() {
        let key = (object.kind(), object.namespace(), object.name());
        if let Some(first) = seen.insert(key, index) {
            return Err(GatewayError::Duplicate {
                object: object.label(),
                places: format!("objects {} and {} of the list", first + 1, index + 1),
            });
        }
    }
    Ok(())
}

/// Reports a violation at a field of one object.
struct Checker {
    object: String,
}

impl Checker {
    fn fail(&self, field: impl Into<String>, violation: Violation) -> GatewayError {
        GatewayError::Invalid {
            object: self.object.clone(),
            field: field.into(),
            violation,
        }
    }

    fn check(
        &self,
        ok: bool,
        field: impl Into<String>,
        violation: impl FnOnce() -> Violation,
    ) -> Result<(), GatewayError> {
        if ok {
            Ok(())
        } else {
            Err(self.fail(field, violation()))
        }
    }

    fn at_most(&self, field: &str, count: usize, max: usize) -> Result<(), GatewayError> {
        self.check(count <= max, field, || Violation::TooMany { count, max })
    }

    fn regex(&self, field: &str, pattern: &str) -> Result<(), GatewayError> {
        compile(pattern).map(drop).map_err(|reason| {
            self.fail(
                field,
                Violation::BadRegex {
                    pattern: pattern.to_owned(),
                    reason,
                },
            )
        })
    }

    fn dns_label(&self, field: &str, value: &str) -> Result<(), GatewayError> {
        self.check(
            is_dns_label(value) && value.len() <= MAX_LABEL,
            field,
            || Violation::BadName {
                value: value.to_owned(),
                what: "namespace (lowercase RFC 1123 label)",
            },
        )
    }

    fn object_name(
        &self,
        field: &str,
        value: &str,
        what: &'static str,
    ) -> Result<(), GatewayError> {
        self.check(
            value.len() <= MAX_NAME && value.split('.').all(is_dns_label),
            field,
            || Violation::BadName {
                value: value.to_owned(),
                what,
            },
        )
    }

    fn header_name(&self, field: &str, name: &str) -> Result<(), GatewayError> {
        self.check(is_header_name(name), field, || {
            Violation::BadHeaderName(name.to_owned())
        })
    }

    fn header_value(&self, field: &str, value: &str) -> Result<(), GatewayError> {
        self.check(!value.is_empty(), field, || Violation::Empty)?;
        self.check(value.len() <= MAX_HEADER_VALUE, field, || {
            Violation::TooLong {
                max: MAX_HEADER_VALUE,
            }
        })
    }
}

fn validate_object(object: &RouteObject) -> Result<(), GatewayError> {
    let view = RouteView::of(object);
    let c = Checker {
        object: view.label.clone(),
    };

    c.check(!view.name.is_empty(), "metadata.name", || {
        Violation::Required
    })?;
    c.object_name(
        "metadata.name",
        &view.name,
        "name (lowercase RFC 1123 subdomain)",
    )?;
    if object
        .metadata()
        .namespace
        .as_deref()
        .is_some_and(|n| !n.is_empty())
    {
        c.dns_label("metadata.namespace", &view.namespace)?;
    }

    validate_parents(&c, &view)?;

    let rules = &view.rules;
    if view.kind == RouteKind::Http && view.rules_given {
        c.check(!rules.is_empty(), "spec.rules", || Violation::NoRules)?;
    }
    c.at_most("spec.rules", rules.len(), MAX_RULES)?;
    let all_matches: usize = rules
        .iter()
        .filter(|rule| rule.matches_given)
        .map(|rule| rule.matches.len())
        .sum();
    c.check(all_matches <= MAX_MATCHES_PER_ROUTE, "spec.rules", || {
        Violation::TooManyMatchesInAll { count: all_matches }
    })?;

    let mut rule_names: HashMap<&str, usize> = HashMap::new();
    for (r, rule) in rules.iter().enumerate() {
        let at = format!("spec.rules[{r}]");
        if let Some(name) = rule.name {
            c.object_name(
                &format!("{at}.name"),
                name,
                "rule name (lowercase RFC 1123 subdomain)",
            )?;
            c.check(
                rule_names.insert(name, r).is_none(),
                format!("{at}.name"),
                || Violation::DuplicateRuleName(name.to_owned()),
            )?;
        }
        if rule.matches_given {
            c.at_most(
                &format!("{at}.matches"),
                rule.matches.len(),
                MAX_MATCHES_PER_RULE,
            )?;
            for (m, matched) in rule.matches.iter().enumerate() {
                validate_match(&c, &format!("{at}.matches[{m}]"), matched)?;
            }
        }
        c.at_most(
            &format!("{at}.backendRefs"),
            rule.backends.len(),
            MAX_BACKEND_REFS,
        )?;
        for (b, backend) in rule.backends.iter().enumerate() {
            validate_backend(&c, &format!("{at}.backendRefs[{b}]"), backend)?;
        }
        c.at_most(&format!("{at}.filters"), rule.filters.len(), MAX_FILTERS)?;
        let mut modifier_at = None;
        for (f, filter) in rule.filters.iter().enumerate() {
            let field = format!("{at}.filters[{f}]");
            validate_filter(&c, &field, filter)?;
            if let Some(first) = modifier_at {
                return Err(c.fail(field, Violation::RepeatedFilter(first)));
            }
            modifier_at = Some(f);
        }
        c.check(!rule.has_timeouts, format!("{at}.timeouts"), || {
            Violation::TimeoutsUnsupported
        })?;
    }
    Ok(())
}

fn validate_parents(c: &Checker, view: &RouteView<'_>) -> Result<(), GatewayError> {
    c.check(!view.parents.is_empty(), "spec.parentRefs", || {
        Violation::NoParentRefs
    })?;
    c.at_most("spec.parentRefs", view.parents.len(), MAX_PARENT_REFS)?;
    let mut seen: Vec<(&str, &str, Option<i32>)> = Vec::new();
    for (p, parent) in view.parents.iter().enumerate() {
        let at = format!("spec.parentRefs[{p}]");
        // The CRD defaults a parentRef to a Gateway.
        let group = parent.group.unwrap_or(GATEWAY_GROUP);
        let kind = parent.kind.unwrap_or("Gateway");
        c.check(group.is_empty() && kind == SERVICE, &at, || {
            Violation::NotAService {
                group: group.to_owned(),
                kind: kind.to_owned(),
            }
        })?;
        c.check(!parent.name.is_empty(), format!("{at}.name"), || {
            Violation::Required
        })?;
        if let Some(namespace) = parent.namespace {
            c.dns_label(&format!("{at}.namespace"), namespace)?;
        }
        if let Some(port) = parent.port {
            port_in_range(c, &format!("{at}.port"), port)?;
        }
        c.check(
            parent.section_name.is_none(),
            format!("{at}.sectionName"),
            || Violation::SectionNameUnsupported,
        )?;
        let key = (
            parent.namespace.unwrap_or(&view.namespace),
            parent.name,
            parent.port,
        );
        if let Some(first) = seen.iter().position(|k| *k == key) {
            return Err(c.fail(at, Violation::DuplicateParent(first)));
        }
        seen.push(key);
    }
    Ok(())
}

fn validate_match(c: &Checker, at: &str, matched: &MatchView<'_>) -> Result<(), GatewayError> {
    match &matched.target {
        Target::AnyCall => {}
        Target::Method {
            service,
            method,
            regex,
        } => {
            let field = format!("{at}.method");
            c.check(service.is_some() || method.is_some(), &field, || {
                Violation::NeedsServiceOrMethod
            })?;
            for (part, value) in [("service", service), ("method", method)] {
                let Some(value) = value else { continue };
                let part_field = format!("{field}.{part}");
                c.check(value.len() <= MAX_GRPC_NAME, &part_field, || {
                    Violation::TooLong { max: MAX_GRPC_NAME }
                })?;
                if *regex {
                    c.regex(&part_field, value)?;
                } else if part == "service" {
                    c.check(is_grpc_service(value), &part_field, || {
                        Violation::BadServiceName((*value).to_owned())
                    })?;
                } else {
                    c.check(is_grpc_method(value), &part_field, || {
                        Violation::BadMethodName((*value).to_owned())
                    })?;
                }
            }
            if let Some(StringMatch::Regex(pattern)) = grpc_path(*service, *method, *regex) {
                c.regex(&field, &pattern)?;
            }
        }
        Target::Path { kind, value } => {
            let field = format!("{at}.path.value");
            c.check(value.len() <= MAX_PATH, &field, || Violation::TooLong {
                max: MAX_PATH,
            })?;
            if *kind == PathKind::Regex {
                c.regex(&field, value)?;
            } else if let Some(problem) = path_problem(value) {
                return Err(c.fail(
                    field,
                    Violation::BadPath {
                        value: (*value).to_owned(),
                        problem,
                    },
                ));
            }
        }
    }
    c.at_most(
        &format!("{at}.headers"),
        matched.headers.len(),
        MAX_HEADER_MATCHES,
    )?;
    for (h, header) in matched.headers.iter().enumerate() {
        let field = format!("{at}.headers[{h}]");
        c.header_name(&format!("{field}.name"), header.name)?;
        unique(c, &format!("{field}.name"), header.name, h, |i| {
            matched.headers[i].name
        })?;
        c.header_value(&format!("{field}.value"), header.value)?;
        if header.regex {
            c.regex(&format!("{field}.value"), header.value)?;
        }
    }
    c.check(
        matched.query_params == 0,
        format!("{at}.queryParams"),
        || Violation::QueryParamsUnsupported,
    )
}

fn validate_backend(c: &Checker, at: &str, backend: &BackendView<'_>) -> Result<(), GatewayError> {
    // The CRD defaults a backendRef to a core Service.
    let group = backend.group.unwrap_or("");
    let kind = backend.kind.unwrap_or(SERVICE);
    c.check(group.is_empty() && kind == SERVICE, at, || {
        Violation::BackendNotAService {
            group: group.to_owned(),
            kind: kind.to_owned(),
        }
    })?;
    c.check(!backend.name.is_empty(), format!("{at}.name"), || {
        Violation::Required
    })?;
    if let Some(namespace) = backend.namespace {
        c.dns_label(&format!("{at}.namespace"), namespace)?;
    }
    // The CRD requires a port on a Service backendRef.
    let Some(port) = backend.port else {
        return Err(c.fail(format!("{at}.port"), Violation::Required));
    };
    port_in_range(c, &format!("{at}.port"), port)?;
    if let Some(weight) = backend.weight {
        let weight = i64::from(weight);
        c.check(
            (0..=MAX_WEIGHT).contains(&weight),
            format!("{at}.weight"),
            || Violation::OutOfRange {
                value: weight,
                min: 0,
                max: MAX_WEIGHT,
            },
        )?;
    }
    c.check(backend.filters == 0, format!("{at}.filters"), || {
        Violation::BackendFiltersUnsupported
    })
}

fn validate_filter(c: &Checker, at: &str, filter: &FilterView<'_>) -> Result<(), GatewayError> {
    c.check(filter.type_name == REQUEST_HEADER_MODIFIER, at, || {
        Violation::UnsupportedFilter(filter.type_name)
    })?;
    if let Some(other) = filter.other_configs.first() {
        return Err(c.fail(
            format!("{at}.{other}"),
            Violation::FilterExtraConfig(filter.type_name),
        ));
    }
    let Some(modifier) = &filter.request_header_modifier else {
        return Err(c.fail(at, Violation::FilterMissingConfig));
    };
    let at = format!("{at}.requestHeaderModifier");
    for (list, changes) in [("set", &modifier.set), ("add", &modifier.add)] {
        c.at_most(&format!("{at}.{list}"), changes.len(), MAX_HEADER_CHANGES)?;
        for (i, (name, value)) in changes.iter().enumerate() {
            c.header_name(&format!("{at}.{list}[{i}].name"), name)?;
            unique(c, &format!("{at}.{list}[{i}].name"), name, i, |j| {
                changes[j].0
            })?;
            let field = format!("{at}.{list}[{i}].value");
            c.header_value(&field, value)?;
            c.check(is_header_value(value), field, || Violation::BadHeaderValue)?;
        }
    }
    c.at_most(
        &format!("{at}.remove"),
        modifier.remove.len(),
        MAX_HEADER_CHANGES,
    )?;
    for (i, name) in modifier.remove.iter().enumerate() {
        c.header_name(&format!("{at}.remove[{i}]"), name)?;
        unique(c, &format!("{at}.remove[{i}]"), name, i, |j| {
            modifier.remove[j]
        })?;
    }
    Ok(())
}

/// The API server refuses a list keyed by name (`listType=map`, `listType=set`) that holds a name
/// twice (exactly: `Foo` and `foo` are two names to it).
fn unique<'a>(
    c: &Checker,
    field: &str,
    name: &str,
    index: usize,
    name_at: impl Fn(usize) -> &'a str,
) -> Result<(), GatewayError> {
    match (0..index).find(|&i| name_at(i) == name) {
        Some(first) => Err(c.fail(
            field,
            Violation::DuplicateName {
                name: name.to_owned(),
                first,
            },
        )),
        None => Ok(()),
    }
}

/// A header value Istio accepts (`conversion.go`: `isValidHeaderValue`): tab and visible
/// characters, no other control character.
fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

fn port_in_range(c: &Checker, field: &str, port: i32) -> Result<(), GatewayError> {
    c.check((1..=65535).contains(&port), field, || {
        Violation::OutOfRange {
            value: i64::from(port),
            min: 1,
            max: 65535,
        }
    })
}

/// Compiles a pattern the way the translator's regexes will be used (whole-value matches), and
/// says why it does not compile, on one line.
pub(super) fn compile(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern).map_err(|error| match &error {
        // The syntax message draws a caret under the pattern; keep its last line, the reason.
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|line| line.trim().strip_prefix("error:"))
            .map_or_else(
                || super::error::one_line(text),
                |reason| reason.trim().to_owned(),
            ),
        other => super::error::one_line(&other.to_string()),
    })
}

/// A lowercase RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
fn is_dns_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// An HTTP header name (an RFC 7230 token), as the CRD's pattern allows.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_HEADER_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_identifier(value: &str) -> bool {
    let mut chars = value.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A gRPC service name for an Exact match: dotted identifiers, an optional leading dot.
fn is_grpc_service(value: &str) -> bool {
    let value = value.strip_prefix('.').unwrap_or(value);
    value.split('.').all(is_identifier)
}

/// A gRPC method name for an Exact match.
fn is_grpc_method(value: &str) -> bool {
    is_identifier(value)
}

/// What the CRD refuses in an `Exact` or `PathPrefix` path value.
fn path_problem(value: &str) -> Option<&'static str> {
    if !value.starts_with('/') {
        return Some("must start with '/'");
    }
    for (needle, problem) in [
        ("//", "must not contain '//'"),
        ("/./", "must not contain '/./'"),
        ("/../", "must not contain '/../'"),
        ("%2f", "must not contain '%2f'"),
        ("%2F", "must not contain '%2F'"),
        ("#", "must not contain '#'"),
    ] {
        if value.contains(needle) {
            return Some(problem);
        }
    }
    if value.ends_with("/..") {
        return Some("must not end with '/..'");
    }
    if value.ends_with("/.") {
        return Some("must not end with '/.'");
    }
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let escaped = bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit));
            if !escaped {
                return Some("has a '%' not followed by two hex digits");
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-/._~!$&'()*+,;=:@".contains(&b)) {
            return Some("has a character not allowed in a path (escape it as %XX)");
        }
        i += 1;
    }
    None
}
