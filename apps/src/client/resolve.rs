//! Turns a [`Target`] into socket addresses: through a real DNS resolver (hickory), either the
//! system's (honouring `/etc/resolv.conf` search domains and `ndots`, as inside a pod) or the
//! DNS server named in the target.
//!
//! A resolution either gives addresses or says why not, in one of the ways a person can act on:
//! the name does not exist (NXDOMAIN), it exists with no addresses (NODATA: grpc-go's "produced
//! zero addresses"), no answer came within [`RESOLVE_TIMEOUT`], or another lookup error.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use hickory_resolver::{
    TokioResolver,
    config::{ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig},
    net::{NetError, runtime::TokioRuntimeProvider},
};
use tokio::time::Instant;

use super::target::Target;

/// The longest one resolution may take, search domains and retries included. Past it the
/// resolution has failed (and is tried again with backoff): RPCs waiting for addresses fail
/// with the reason instead of waiting out their deadline.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot read the system resolver configuration")]
    SystemConfig(#[source] Box<NetError>),
    #[error("cannot resolve {name} via {via}: no such name (NXDOMAIN)")]
    NoSuchName { name: String, via: String },
    #[error("cannot resolve {name} via {via}: produced zero addresses")]
    NoAddresses { name: String, via: String },
    #[error("cannot resolve {name} via {via}: no answer within {:.1}s", .after.as_secs_f64())]
    Timeout {
        name: String,
        via: String,
        after: Duration,
    },
    #[error("cannot resolve {name} via {via}")]
    Lookup {
        name: String,
        via: String,
        #[source]
        source: Box<NetError>,
    },
}

impl ResolveError {
    /// True when DNS answered that the name has no addresses now (NXDOMAIN or NODATA), as
    /// opposed to not answering: the addresses known before are gone.
    pub fn no_addresses(&self) -> bool {
        matches!(
            self,
            ResolveError::NoSuchName { .. } | ResolveError::NoAddresses { .. }
        )
    }
}

/// Resolves one target, every time it is asked: answers are never cached here, so each
/// re-resolution sees the current set of addresses.
pub struct Resolver {
    kind: Kind,
}

enum Kind {
    Fixed(Vec<SocketAddr>),
    Dns {
        resolver: Box<TokioResolver>,
        host: String,
        port: u16,
        /// Which DNS server answers, for messages.
        via: String,
    },
}

impl Resolver {
    pub fn new(target: &Target) -> Result<Resolver, ResolveError> {
        let kind =
            match target {
                Target::Ipv4(addrs) => Kind::Fixed(addrs.clone()),
                Target::Dns { host, port, .. } if host.parse::<IpAddr>().is_ok() => Kind::Fixed(
                    vec![SocketAddr::new(host.parse().expect("checked above"), *port)],
                ),
                Target::Dns { server, host, port } => {
                    let mut builder = match server {
                        None => TokioResolver::builder_tokio()
                            .map_err(|e| ResolveError::SystemConfig(Box::new(e)))?,
                        Some(server) => {
                            let mut udp = ConnectionConfig::udp();
                            udp.port = server.port();
                            let mut tcp = ConnectionConfig::tcp();
                            tcp.port = server.port();
                            let mut ns = NameServerConfig::udp_and_tcp(server.ip());
                            ns.connections = vec![udp, tcp];
                            TokioResolver::builder_with_config(
                                ResolverConfig::from_parts(None, vec![], vec![ns]),
                                TokioRuntimeProvider::default(),
                            )
                        }
                    };
                    let opts = builder.options_mut();
                    // The balancer decides when to resolve again; a cache would hide scale-ups.
                    opts.cache_size = 0;
                    opts.ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
                    let resolver = builder
                        .build()
                        .map_err(|e| ResolveError::SystemConfig(Box::new(e)))?;
                    Kind::Dns {
                        resolver: Box::new(resolver),
                        host: host.clone(),
                        port: *port,
                        via: match server {
                            Some(server) => format!("DNS server {server}"),
                            None => "the system resolver".to_owned(),
                        },
                    }
                }
            };
        Ok(Resolver { kind })
    }

    /// The current addresses, sorted so that the order is stable between resolutions; within
    /// [`RESOLVE_TIMEOUT`].
    pub async fn resolve(&self) -> Result<Vec<SocketAddr>, ResolveError> {
        match &self.kind {
            Kind::Fixed(addrs) => Ok(addrs.clone()),
            Kind::Dns {
                resolver,
                host,
                port,
                via,
            } => {
                let (name, via) = (host.clone(), via.clone());
                let start = Instant::now();
                let lookup =
                    match tokio::time::timeout(RESOLVE_TIMEOUT, resolver.lookup_ip(host.as_str()))
                        .await
                    {
                        Ok(Ok(lookup)) => lookup,
                        Ok(Err(source)) if source.is_nx_domain() => {
                            return Err(ResolveError::NoSuchName { name, via });
                        }
                        Ok(Err(source)) if source.is_no_records_found() => {
                            return Err(ResolveError::NoAddresses { name, via });
                        }
                        Ok(Err(NetError::Timeout)) | Err(_) => {
                            return Err(ResolveError::Timeout {
                                name,
                                via,
                                after: start.elapsed(),
                            });
                        }
                        Ok(Err(source)) => {
                            return Err(ResolveError::Lookup {
                                name,
                                via,
                                source: Box::new(source),
                            });
                        }
                    };
                let mut addrs: Vec<SocketAddr> =
                    lookup.iter().map(|ip| SocketAddr::new(ip, *port)).collect();
                addrs.sort();
                addrs.dedup();
                if addrs.is_empty() {
                    return Err(ResolveError::NoAddresses { name, via });
                }
                Ok(addrs)
            }
        }
    }
}
