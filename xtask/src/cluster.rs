//! Everything that makes or reads a cluster: the pinned versions, downloads with checksums,
//! istioctl, the images, the `Runner` of `up`/`down`, the objects a scenario becomes, and the only
//! client of the Kubernetes API.

pub mod envoy_static;
pub mod fetch;
pub mod images;
pub mod istioctl;
pub mod kube;
pub mod objects;
pub mod plan;
pub mod route_check;
pub mod sha256;
pub mod versions;
