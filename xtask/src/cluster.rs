pub mod envoy_static;
pub mod kube;
pub mod objects;
pub mod route_check;
