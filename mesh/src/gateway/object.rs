//! A route object as loaded: a typed `HTTPRoute` or `GRPCRoute` of the Gateway API.

use gateway_api::grpcroutes::GrpcRoute;
use gateway_api::httproutes::HttpRoute;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::model::RouteKind;

/// The namespace of an object that names none (as `kubectl apply` would use without `-n`).
pub const DEFAULT_NAMESPACE: &str = "default";

/// One route object, as loaded from YAML (see [`crate::gateway::load`]).
#[derive(Debug, Clone, PartialEq)]
pub enum RouteObject {
    Http(HttpRoute),
    Grpc(GrpcRoute),
}

impl RouteObject {
    /// `HTTPRoute` or `GRPCRoute`.
    pub fn kind(&self) -> &'static str {
        match self {
            RouteObject::Http(_) => "HTTPRoute",
            RouteObject::Grpc(_) => "GRPCRoute",
        }
    }

    /// The kind as the route model names it.
    pub fn route_kind(&self) -> RouteKind {
        match self {
            RouteObject::Http(_) => RouteKind::Http,
            RouteObject::Grpc(_) => RouteKind::Grpc,
        }
    }

    /// `metadata.namespace`, or `default` when absent or empty.
    pub fn namespace(&self) -> String {
        self.metadata()
            .namespace
            .as_deref()
            .filter(|namespace| !namespace.is_empty())
            .unwrap_or(DEFAULT_NAMESPACE)
            .to_owned()
    }

    /// `metadata.name` (empty when absent, which validation refuses).
    pub fn name(&self) -> String {
        self.metadata().name.clone().unwrap_or_default()
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            RouteObject::Http(route) => &route.metadata,
            RouteObject::Grpc(route) => &route.metadata,
        }
    }

    /// `GRPCRoute default/canary`: how errors and warnings name the object.
    pub fn label(&self) -> String {
        let name = self.name();
        let name = if name.is_empty() { "<no name>" } else { &name };
        format!("{} {}/{}", self.kind(), self.namespace(), name)
    }
}

impl From<HttpRoute> for RouteObject {
    fn from(route: HttpRoute) -> Self {
        RouteObject::Http(route)
    }
}

impl From<GrpcRoute> for RouteObject {
    fn from(route: GrpcRoute) -> Self {
        RouteObject::Grpc(route)
    }
}
