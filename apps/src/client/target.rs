//! gRPC targets in gRPC name syntax (<https://github.com/grpc/grpc/blob/master/doc/naming.md>).

use std::net::SocketAddr;

/// Where the client sends RPCs, and how to find the addresses behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `dns:///host:port`, `dns://SERVER:PORT/host:port` or plain `host:port`: resolved by DNS,
    /// through `server` when given, else through the system resolver (`/etc/resolv.conf`).
    Dns {
        server: Option<SocketAddr>,
        host: String,
        port: u16,
    },
    /// `ipv4:addr:port[,addr:port...]`: fixed addresses, no resolution.
    Ipv4(Vec<SocketAddr>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid target {target:?}: {reason}")]
pub struct TargetError {
    pub target: String,
    pub reason: String,
}

impl Target {
    pub fn parse(target: &str) -> Result<Target, TargetError> {
        let err = |reason: &str| TargetError {
            target: target.to_owned(),
            reason: reason.to_owned(),
        };
        let t = target.trim();
        if t.is_empty() {
            return Err(err("empty target"));
        }
        if let Some(rest) = t.strip_prefix("dns:") {
            // dns:[//authority/]host[:port]
            let (server, name) = match rest.strip_prefix("//") {
                Some(rest) => {
                    let (authority, name) = rest.split_once('/').ok_or_else(|| {
                        err("expected dns:///host:port or dns://DNS_SERVER:PORT/host:port")
                    })?;
                    let server = if authority.is_empty() {
                        None
                    } else {
                        Some(dns_server(authority).map_err(|r| err(&r))?)
                    };
                    (server, name)
                }
                None => (None, rest),
            };
            let (host, port) = host_port(name).map_err(|r| err(&r))?;
            return Ok(Target::Dns { server, host, port });
        }
        if let Some(rest) = t.strip_prefix("ipv4:") {
            let addrs = rest
                .split(',')
                .map(|a| {
                    a.trim()
                        .parse::<std::net::SocketAddrV4>()
                        .map(SocketAddr::V4)
                        .map_err(|_| {
                            err(&format!(
                                "{a:?} is not an IPv4 address with a port, such as 10.0.0.1:50051"
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Target::Ipv4(addrs));
        }
        if let Some((scheme, _)) = t.split_once("://") {
            return Err(err(&format!(
                "unsupported scheme {scheme:?}: use dns: or ipv4:"
            )));
        }
        if let Some((scheme, rest)) = t.split_once(':')
            && !rest.is_empty()
            && !rest.chars().all(|c| c.is_ascii_digit())
            && !t.starts_with('[')
        {
            return Err(err(&format!(
                "unsupported scheme {scheme:?}: use dns: or ipv4:"
            )));
        }
        let (host, port) = host_port(t).map_err(|r| err(&r))?;
        Ok(Target::Dns {
            server: None,
            host,
            port,
        })
    }

    /// The HTTP/2 `:authority` the client sends: the name it was given, as gRPC does, so that a
    /// proxy can route by it.
    pub fn authority(&self) -> String {
        match self {
            Target::Dns { host, port, .. } if host.contains(':') => format!("[{host}]:{port}"),
            Target::Dns { host, port, .. } => format!("{host}:{port}"),
            Target::Ipv4(addrs) => addrs
                .first()
                .map_or_else(|| "localhost".to_owned(), |a| a.to_string()),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Dns { server: None, .. } => write!(f, "dns:///{}", self.authority()),
            Target::Dns {
                server: Some(s), ..
            } => write!(f, "dns://{s}/{}", self.authority()),
            Target::Ipv4(addrs) => {
                let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
                write!(f, "ipv4:{}", list.join(","))
            }
        }
    }
}

/// `host:port` or `[v6]:port`; the port is required (a gRPC default of 443 would surprise here).
fn host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, port) = rest.split_once("]:").ok_or("expected [IPv6]:port")?;
        (host, port)
    } else {
        s.rsplit_once(':')
            .ok_or_else(|| format!("{s:?} has no port: expected host:port"))?
    };
    if host.is_empty() {
        return Err("empty host name".into());
    }
    let valid = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'));
    if !valid || host.starts_with('.') || host.contains("..") {
        return Err(format!("{host:?} is not a valid host name"));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{port:?} is not a port number (1-65535)"))?;
    Ok((host.to_owned(), port))
}

/// `IP[:PORT]` of a DNS server; port 53 when omitted.
fn dns_server(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("DNS server {s:?} is not an IP address with an optional port"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(server: Option<&str>, host: &str, port: u16) -> Target {
        Target::Dns {
            server: server.map(|s| s.parse().unwrap()),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn every_documented_form_parses() {
        assert_eq!(
            Target::parse("dns:///server:50051").unwrap(),
            dns(None, "server", 50051)
        );
        assert_eq!(
            Target::parse("dns://127.0.0.53:5353/server:50051").unwrap(),
            dns(Some("127.0.0.53:5353"), "server", 50051)
        );
        assert_eq!(
            Target::parse("dns://10.96.0.10/server:50051").unwrap(),
            dns(Some("10.96.0.10:53"), "server", 50051)
        );
        assert_eq!(
            Target::parse("dns:server:50051").unwrap(),
            dns(None, "server", 50051)
        );
        assert_eq!(
            Target::parse("localhost:50051").unwrap(),
            dns(None, "localhost", 50051)
        );
        assert_eq!(
            Target::parse("ipv4:127.0.0.1:1,127.0.0.2:2").unwrap(),
            Target::Ipv4(vec![
                "127.0.0.1:1".parse().unwrap(),
                "127.0.0.2:2".parse().unwrap()
            ])
        );
        assert_eq!(
            Target::parse("[::1]:50051").unwrap(),
            dns(None, "::1", 50051)
        );
    }

    #[test]
    fn the_authority_is_the_name_the_user_gave() {
        assert_eq!(
            Target::parse("dns://127.0.0.1:53/server:50051")
                .unwrap()
                .authority(),
            "server:50051"
        );
        assert_eq!(
            Target::parse("[::1]:50051").unwrap().authority(),
            "[::1]:50051"
        );
    }

    #[test]
    fn bad_targets_say_what_is_wrong() {
        for (target, reason) in [
            ("", "empty target"),
            ("server", "has no port"),
            ("server:http", "unsupported scheme"),
            ("server:0", "is not a port number"),
            ("server:70000", "is not a port number"),
            ("http://server:80", "unsupported scheme \"http\""),
            ("dns://server:50051", "expected dns:///host:port"),
            ("dns://not-an-ip/server:50051", "is not an IP address"),
            ("ipv4:server:50051", "is not an IPv4 address"),
            ("ipv4:", "is not an IPv4 address"),
            ("bad host:1", "is not a valid host name"),
        ] {
            let err = Target::parse(target).unwrap_err();
            assert!(err.to_string().contains(reason), "{target:?}: {err}");
            assert!(!err.to_string().contains('\n'));
        }
    }
}
