//! Turns a [`Target`] into socket addresses: through a real DNS resolver (hickory), either the
//! system's (honouring `/etc/resolv.conf` search domains and `ndots`, as inside a pod) or the
//! DNS server named in the target.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::{
    TokioResolver,
    config::{ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig},
    net::runtime::TokioRuntimeProvider,
};

use super::target::Target;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot read the system resolver configuration")]
    SystemConfig(#[source] hickory_resolver::net::NetError),
    #[error("cannot resolve {name}")]
    Lookup {
        name: String,
        #[source]
        source: hickory_resolver::net::NetError,
    },
    #[error("{name} resolved to no addresses")]
    Empty { name: String },
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
    },
}

impl Resolver {
    pub fn new(target: &Target) -> Result<Resolver, ResolveError> {
        let kind = match target {
            Target::Ipv4(addrs) => Kind::Fixed(addrs.clone()),
            Target::Dns { host, port, .. } if host.parse::<IpAddr>().is_ok() => {
                Kind::Fixed(vec![SocketAddr::new(
                    host.parse().expect("checked above"),
                    *port,
                )])
            }
            Target::Dns { server, host, port } => {
                let mut builder = match server {
                    None => TokioResolver::builder_tokio().map_err(ResolveError::SystemConfig)?,
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
                let resolver = builder.build().map_err(ResolveError::SystemConfig)?;
                Kind::Dns {
                    resolver: Box::new(resolver),
                    host: host.clone(),
                    port: *port,
                }
            }
        };
        Ok(Resolver { kind })
    }

    /// The current addresses, sorted so that the order is stable between resolutions.
    pub async fn resolve(&self) -> Result<Vec<SocketAddr>, ResolveError> {
        match &self.kind {
            Kind::Fixed(addrs) => Ok(addrs.clone()),
            Kind::Dns {
                resolver,
                host,
                port,
            } => {
                let lookup = resolver.lookup_ip(host.as_str()).await.map_err(|source| {
                    ResolveError::Lookup {
                        name: host.clone(),
                        source,
                    }
                })?;
                let mut addrs: Vec<SocketAddr> =
                    lookup.iter().map(|ip| SocketAddr::new(ip, *port)).collect();
                addrs.sort();
                addrs.dedup();
                if addrs.is_empty() {
                    return Err(ResolveError::Empty { name: host.clone() });
                }
                Ok(addrs)
            }
        }
    }
}
