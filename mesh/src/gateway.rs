//! Gateway API routes for the mesh twin.
//!
//! The demos' `HTTPRoute`/`GRPCRoute` YAML (the same files a user could `kubectl apply`) is
//! loaded into typed objects ([`load`], [`parse`]), checked as the API server would check it and
//! against what this harness supports, and handed on as one validated set ([`Routes`]: the loader
//! and [`Routes::new`] are the only ways to make one), then flattened into the route model: for
//! each parent Service, one list of [`RouteEntry`](crate::model::RouteEntry)s in the order Istio
//! programs them ([`route_table`]), which the control plane maps onto Envoy routes one to one.
//!
//! Only mesh (GAMMA) attachment is supported: a route's parents are Services
//! (`group: ""`, `kind: Service`), never Gateways.
//!
//! What Istio 1.30 does with mesh routes, the twin does too (see [`route_table_for`]): HTTPRoutes
//! and GRPCRoutes attached to one Service are merged and ordered as Istio orders them, one group
//! of routes per Service wins, rules after a catch-all are dropped, and a backendRef to a Service
//! that does not exist gets HTTP 500. Where Istio departs from the Gateway API specification, the
//! twin follows Istio and its warnings say what the client will see.
//!
//! Choices left to the twin:
//! - The client runs in namespace `default` unless [`route_table_for`] names another.
//! - `hostnames` are ignored, with a warning (GEP-1426 says meshes should not use them).
//! - Fields a route kind does not have are refused, as `kubectl apply` does by default.

mod error;
mod matching;
mod object;
mod parse;
mod routes;
mod table;
mod validate;
mod view;
mod weights;

use std::path::Path;

pub use error::{GatewayError, Violation};
pub use gateway_api::grpcroutes::GrpcRoute;
pub use gateway_api::httproutes::HttpRoute;
pub use object::{DEFAULT_NAMESPACE, RouteObject};
pub use routes::Routes;
pub use table::Warning;

use crate::model::{Service, ServiceRoutes};

/// Loads every object from a YAML file, or from every `*.yaml`/`*.yml` file of a directory
/// (sorted by file name, not recursive), multi-document aware. Validates everything (including
/// that no object is defined twice) and returns all objects or the first error: nothing partial.
pub fn load(path: &Path) -> Result<Routes, GatewayError> {
    parse::load(path)
}

/// Like [`load`], from text; `origin` names the file in errors.
pub fn parse(text: &str, origin: &str) -> Result<Routes, GatewayError> {
    parse::parse(text, origin)
}

/// The routes a client in namespace `default` uses for each Service, in the order its sidecar
/// programs them: [`route_table_for`] with [`DEFAULT_NAMESPACE`].
pub fn route_table(
    objects: &[RouteObject],
    services: &[Service],
) -> (Vec<ServiceRoutes>, Vec<Warning>) {
    table::route_table(objects, services, DEFAULT_NAMESPACE)
}

/// The routes a client in `client_namespace` uses for each Service, as Istio 1.30 programs its
/// sidecar: at most one [`ServiceRoutes`] per Service (in the order of `services`), the first
/// of Istio's VirtualServices for it (one per route namespace and parentRef port: those in the
/// client's namespace first, then the oldest), with the HTTPRoute and GRPCRoute entries merged
/// in Istio's order and nothing after the first entry that matches every call.
///
/// `services` are the Services that exist: backendRefs and parentRefs that resolve to none of
/// them (or to a wrong port) give warnings, not errors, as the API does. Every route, rule or
/// entry that is left out gives a warning that says why. The objects are expected to be valid;
/// invalid parts are skipped, never a panic.
pub fn route_table_for(
    objects: &[RouteObject],
    services: &[Service],
    client_namespace: &str,
) -> (Vec<ServiceRoutes>, Vec<Warning>) {
    table::route_table(objects, services, client_namespace)
}
