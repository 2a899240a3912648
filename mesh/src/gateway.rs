//! Gateway API routes for the mesh twin.
//!
//! The demos' `HTTPRoute`/`GRPCRoute` YAML (the same files a user could `kubectl apply`) is
//! loaded into typed objects ([`load`], [`parse`]), checked as the API server would check it and
//! against what this harness supports ([`validate`]), and flattened into the route model: for
//! each parent Service, one list of [`RouteEntry`](crate::model::RouteEntry)s in Gateway API
//! precedence order ([`route_table`]), which the control plane maps onto Envoy routes one to one.
//!
//! Only mesh (GAMMA) attachment is supported: a route's parents are Services
//! (`group: ""`, `kind: Service`), never Gateways.
//!
//! Choices the specification leaves open, made here:
//! - `HTTPRoute` `RegularExpression` paths rank after `Exact` paths and before `PathPrefix` paths
//!   (so that a catch-all `PathPrefix /` cannot hide them); longer patterns first.
//! - `GRPCRoute` `RegularExpression` method matches count the characters of their patterns.
//! - When a `GRPCRoute` and an `HTTPRoute` attach to the same Service and port, the
//!   `GRPCRoute` wins and the `HTTPRoute` is ignored there, with a warning (GEP-1426).
//! - Consumer routes (a parent Service in another namespace) apply to every client, with a
//!   warning: the twin does not know the clients' namespaces.
//! - `hostnames` are ignored, with a warning (GEP-1426 says meshes should not use them).
//! - Fields a route kind does not have are refused, as `kubectl apply` does by default.

mod error;
mod matching;
mod object;
mod parse;
mod table;
mod validate;
mod view;
mod weights;

use std::path::Path;

pub use error::{GatewayError, Violation};
pub use gateway_api::grpcroutes::GrpcRoute;
pub use gateway_api::httproutes::HttpRoute;
pub use object::{DEFAULT_NAMESPACE, RouteObject};
pub use table::Warning;

use crate::model::{Service, ServiceRoutes};

/// Loads every object from a YAML file, or from every `*.yaml`/`*.yml` file of a directory
/// (sorted by file name, not recursive), multi-document aware. Validates everything (including
/// that no object is defined twice) and returns all objects or the first error: nothing partial.
pub fn load(path: &Path) -> Result<Vec<RouteObject>, GatewayError> {
    parse::load(path)
}

/// Like [`load`], from text; `origin` names the file in errors.
pub fn parse(text: &str, origin: &str) -> Result<Vec<RouteObject>, GatewayError> {
    parse::parse(text, origin)
}

/// Checks objects (for instance built in code) as [`load`] does.
pub fn validate(objects: &[RouteObject]) -> Result<(), GatewayError> {
    validate::validate(objects)
}

/// Flattens the routes attached to each parent Service into entries in Gateway API precedence
/// order, one [`ServiceRoutes`] per parent Service and port that has routes (sorted by
/// namespace, name, then port, every-port first). The entries for a given port include those
/// of the routes attached to every port of the Service.
///
/// `services` are the Services that exist: backendRefs and parentRefs that resolve to none of
/// them (or to a wrong port) give warnings, not errors, as the API does. The objects are
/// expected to be valid; invalid parts are skipped, never a panic.
pub fn route_table(
    objects: &[RouteObject],
    services: &[Service],
) -> (Vec<ServiceRoutes>, Vec<Warning>) {
    table::route_table(objects, services)
}

/// Sets the weights of the backendRefs of every rule of a route, by backend Service name (for
/// demos that step weights). A name the route does not have, or a weight above 1,000,000, is an
/// error, and then nothing changes.
pub fn set_weights(object: &mut RouteObject, weights: &[(&str, u32)]) -> Result<(), GatewayError> {
    weights::set_weights(object, weights)
}
