//! Why route objects are refused: one line naming the file or the object, the field and the
//! reason.

use std::path::PathBuf;

/// A route file or object that cannot be used. Its `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A file or directory could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A YAML document does not parse.
    #[error("{origin}: document {document}: malformed yaml: {message}")]
    MalformedYaml {
        origin: String,
        document: usize,
        message: String,
    },

    /// A YAML document is not a mapping (a Kubernetes object).
    #[error(
        "{origin}: document {document}: not a Kubernetes object (expected a mapping with apiVersion and kind)"
    )]
    NotAnObject { origin: String, document: usize },

    /// A document has no `kind`.
    #[error("{origin}: document {document}: missing kind (expected HTTPRoute or GRPCRoute)")]
    MissingKind { origin: String, document: usize },

    /// A document is of a kind other than HTTPRoute or GRPCRoute.
    #[error(
        "{origin}: document {document}: unknown kind {kind:?} (expected HTTPRoute or GRPCRoute)"
    )]
    UnknownKind {
        origin: String,
        document: usize,
        kind: String,
    },

    /// A route's `apiVersion` is missing or not one this harness reads.
    #[error(
        "{origin}: document {document}: {kind}: {} (expected {expected})",
        describe_api_version(api_version.as_deref())
    )]
    UnknownApiVersion {
        origin: String,
        document: usize,
        kind: &'static str,
        api_version: Option<String>,
        expected: &'static str,
    },

    /// A field has the wrong type or a value outside its enumeration (as the API server's schema
    /// check would say).
    #[error("{origin}: document {document}: {object}: {}", at(field, message))]
    Schema {
        origin: String,
        document: usize,
        object: String,
        /// The YAML path, e.g. `spec.rules[0].backendRefs[0].weight`; empty for the whole object.
        field: String,
        message: String,
    },

    /// A field that the route kind does not have (often a typo, which would otherwise be
    /// silently ignored).
    #[error("{origin}: document {document}: {object}: {field}: unknown field")]
    UnknownField {
        origin: String,
        document: usize,
        object: String,
        field: String,
    },

    /// A route without `metadata.name`, found while reading a file.
    #[error("{origin}: document {document}: {kind}: metadata.name: is required")]
    MissingName {
        origin: String,
        document: usize,
        kind: &'static str,
    },

    /// Two objects with the same kind, namespace and name.
    #[error("{object}: defined twice ({places})")]
    Duplicate {
        /// `HTTPRoute default/a`.
        object: String,
        /// Where: `gateway/a.yaml, gateway/b.yaml`.
        places: String,
    },

    /// A field of a route breaks a rule of the API or is beyond what this harness supports.
    #[error("{object}: {field}: {violation}")]
    Invalid {
        /// `GRPCRoute default/canary`.
        object: String,
        /// `spec.rules[0].matches[0].method`.
        field: String,
        violation: Violation,
    },

    /// [`set_weights`](crate::gateway::set_weights) was given a backend the route does not have.
    #[error("{object}: no backendRef named {name:?} in any rule")]
    UnknownBackend { object: String, name: String },
}

/// What is wrong with a field of a route (the reason of [`GatewayError::Invalid`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("is required")]
    Required,

    #[error("is empty")]
    Empty,

    #[error("is longer than {max} characters")]
    TooLong { max: usize },

    #[error("has {count} items, more than the {max} allowed")]
    TooMany { count: usize, max: usize },

    #[error("has {count} matches over all rules, more than the 128 allowed")]
    TooManyMatchesInAll { count: usize },

    #[error("{value} is out of range ({min} to {max})")]
    OutOfRange { value: i64, min: i64, max: i64 },

    #[error("{value:?} is not a valid {what}")]
    BadName { value: String, what: &'static str },

    #[error(
        "needs at least one parentRef to a Service: this harness supports only mesh (GAMMA) attachment"
    )]
    NoParentRefs,

    #[error(
        "refers to a {kind} (group {group:?}): only a Service (group \"\", kind Service) can be a parent, as this harness supports only mesh (GAMMA) attachment"
    )]
    NotAService { group: String, kind: String },

    #[error("sectionName (a Service port name) is not supported: use port")]
    SectionNameUnsupported,

    #[error("refers to the same Service and port as spec.parentRefs[{0}]")]
    DuplicateParent(usize),

    #[error("needs at least one rule")]
    NoRules,

    #[error("rule name {0:?} is used twice")]
    DuplicateRuleName(String),

    #[error("needs a service or a method")]
    NeedsServiceOrMethod,

    #[error(
        "{0:?} is not a valid gRPC service name for an Exact match (use type RegularExpression for patterns)"
    )]
    BadServiceName(String),

    #[error(
        "{0:?} is not a valid gRPC method name for an Exact match (use type RegularExpression for patterns)"
    )]
    BadMethodName(String),

    #[error("invalid regular expression {pattern:?}: {reason}")]
    BadRegex { pattern: String, reason: String },

    #[error("{value:?} {problem}")]
    BadPath {
        value: String,
        problem: &'static str,
    },

    #[error("{0:?} is not a valid HTTP header name")]
    BadHeaderName(String),

    /// A list keyed by name (the CRD's `listType=map`, or a `set`) names the same entry twice.
    #[error("{name:?} is already given by [{first}]")]
    DuplicateName { name: String, first: usize },

    /// Istio refuses the route: a header value with a control character other than tab.
    #[error("header value has a control character (Istio refuses the route)")]
    BadHeaderValue,

    #[error(
        "query parameter matches are not supported (the twin routes on path, method and headers)"
    )]
    QueryParamsUnsupported,

    #[error("timeouts are not supported by the twin")]
    TimeoutsUnsupported,

    #[error("filter type {0} is not supported (only RequestHeaderModifier)")]
    UnsupportedFilter(&'static str),

    #[error("filters on a backendRef are not supported (put a RequestHeaderModifier on the rule)")]
    BackendFiltersUnsupported,

    #[error("a RequestHeaderModifier filter is already given by filters[{0}]")]
    RepeatedFilter(usize),

    #[error("filter type RequestHeaderModifier needs requestHeaderModifier")]
    FilterMissingConfig,

    #[error("must not be set on a filter of type {0}")]
    FilterExtraConfig(&'static str),

    #[error(
        "refers to a {kind} (group {group:?}): only Service backends (group \"\", kind Service) are supported"
    )]
    BackendNotAService { group: String, kind: String },
}

fn describe_api_version(api_version: Option<&str>) -> String {
    match api_version {
        Some(version) => format!("unknown apiVersion {version:?}"),
        None => "missing apiVersion".to_owned(),
    }
}

fn at(field: &str, message: &str) -> String {
    if field.is_empty() {
        message.to_owned()
    } else {
        format!("{field}: {message}")
    }
}

/// Squeezes a message from another library onto one line.
pub(super) fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
