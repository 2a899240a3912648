//! What the control plane knows and translates into Envoy configuration: Services with their
//! endpoints, and routes attached to Services (Gateway API's GAMMA "mesh" attachment).
//!
//! Routes here are already validated, and each Service's routes are already flattened into
//! [`RouteEntry`]s in the order Istio programs them ([`crate::gateway::route_table`]), so that the
//! translation into Envoy is a plain mapping.

use std::net::SocketAddr;

/// A Kubernetes Service as the mesh sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `server`, `server-v1`, ...
    pub name: String,
    pub namespace: String,
    /// The service port, e.g. 50051.
    pub port: u16,
    /// Ready pod addresses (pod IP and target port).
    pub endpoints: Vec<SocketAddr>,
    /// A headless Service (`clusterIP: None`): Istio sends a sidecar's requests for it to the
    /// pod address the client chose (an `ORIGINAL_DST` cluster), instead of balancing over EDS.
    pub headless: bool,
}

/// Istio's `meshConfig.defaultHttpRetryPolicy`: the retry policy of every route that sets none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try (`attempts`).
    pub attempts: u32,
    /// Envoy's `retry_on` conditions, comma separated (`retryOn`).
    pub retry_on: String,
}

/// The mesh-wide settings istiod reads from its mesh configuration that change a sidecar's
/// configuration. The default is Istio's own default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MeshConfig {
    /// `None`: Istio's built-in default retry policy.
    pub default_http_retry_policy: Option<RetryPolicy>,
}

/// The kind of route an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKind {
    Http,
    Grpc,
}

/// How a string is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringMatch {
    Exact(String),
    /// Path prefix, on `/`-separated segments as Gateway API defines `PathPrefix`, written as Istio
    /// keeps it: an HTTPRoute prefix without its trailing `/`, a GRPCRoute service match as
    /// `/<service>/` (Envoy gets both without the trailing `/`, as `path_separated_prefix`).
    PathPrefix(String),
    /// RE2-style regular expression, matching the whole value (already checked to compile).
    Regex(String),
}

/// One header condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    /// As written in the route (Envoy compares header names without regard to case).
    pub name: String,
    pub value: StringMatch,
}

/// One way a request can match an entry: all conditions must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Match {
    /// The HTTP/2 `:path`. GRPCRoute method matches are expressed as paths here
    /// (`/hello.v1.Greeter/SayHello`, or a regex for partial matches).
    pub path: Option<StringMatch>,
    /// HTTP method (HTTPRoute only), e.g. `POST`.
    pub method: Option<String>,
    pub headers: Vec<HeaderMatch>,
}

/// A weighted destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// The Service name; it may not exist (then its share of traffic gets HTTP 500, as Istio answers).
    pub service: String,
    pub namespace: String,
    pub port: Option<u16>,
    /// Gateway API weight: default 1, 0 means no traffic.
    pub weight: u32,
}

/// Header changes applied to requests (Gateway API `RequestHeaderModifier`), as Istio hands them
/// to Envoy: names in lower case, each name once, sorted, without `host` and pseudo-headers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderModifier {
    pub set: Vec<(String, String)>,
    pub add: Vec<(String, String)>,
    pub remove: Vec<String>,
    /// A `host` set or added: Istio rewrites the request's authority to it instead.
    pub host_rewrite: Option<String>,
}

/// One (match, rule) pair of a route, in precedence order within its Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    pub kind: RouteKind,
    /// `GRPCRoute default/canary rule 0 match 1`: for logs, warnings and errors.
    pub name: String,
    /// The Envoy route name Istio gives it: the rule's name, else `<namespace>.<route>.<rule>`.
    pub route_name: String,
    pub matched: Match,
    pub backends: Vec<Backend>,
    pub request_headers: HeaderModifier,
}

/// The routes a client's sidecar uses for one parent Service, in the order Istio programs them.
/// An empty list means no route is attached: traffic goes to the Service itself, as without a
/// mesh route.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceRoutes {
    pub service: String,
    pub namespace: String,
    /// The parentRef port the routes were attached with; `None`: every port of the Service.
    pub port: Option<u16>,
    /// The name of the VirtualService Istio generates for them, e.g.
    /// `default~server.default.svc.cluster.local`.
    pub virtual_service: String,
    pub entries: Vec<RouteEntry>,
}
