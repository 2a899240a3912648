//! Why a twin operation failed.

use std::{net::SocketAddr, path::PathBuf};

use super::PodError;
use crate::{dns::DnsError, envoy::EnvoyError, xds::XdsError};

#[derive(Debug, thiserror::Error)]
pub enum TwinError {
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error(transparent)]
    Xds(#[from] XdsError),
    #[error(transparent)]
    Pod(#[from] PodError),
    #[error(transparent)]
    Envoy(#[from] EnvoyError),
    #[error("cannot open the virtual ip {addr} of service {service}")]
    VirtualIp {
        service: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write under {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
    #[error("the mesh needs envoy, but none was given")]
    NoEnvoy,
}
