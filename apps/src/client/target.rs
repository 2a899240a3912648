//! gRPC targets in gRPC name syntax (<https://github.com/grpc/grpc/blob/master/doc/naming.md>):
//! `dns:[//authority/]host:port`, `ipv4:addr:port[,addr:port...]`, or plain `host:port`.
//!
//! Parsing is strict, so that a typo is a usage error and not a different target: a bracket
//! that is not closed, a port that is empty, not a number or out of range, an empty host, an
//! IPv6 address without its brackets are all refused, each with a reason. Where gRPC assumes
//! something (port 443, `localhost` for an empty host) we ask instead.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The DNS server's port when the authority names none, as in gRPC.
pub const DNS_PORT: u16 = 53;

/// The schemes gRPC implementations know (naming.md, grpc-go's registered resolvers): a target
/// that starts with one of them is that scheme, which we may not support, not a host name.
const GRPC_SCHEMES: &[&str] = &[
    "dns",
    "ipv4",
    "ipv6",
    "unix",
    "unix-abstract",
    "vsock",
    "passthrough",
    "xds",
    "google-c2p",
];

/// Where the client sends RPCs, and how to find the addresses behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `dns:///host:port`, `dns://SERVER:PORT/host:port` or plain `host:port`: resolved by DNS,
    /// through `server` when given, else through the system resolver (`/etc/resolv.conf`).
    /// An IP address as `host` is used as it is.
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
        parse(target.trim()).map_err(|reason| TargetError {
            target: target.to_owned(),
            reason,
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

fn parse(t: &str) -> Result<Target, String> {
    if t.is_empty() {
        return Err("empty target".into());
    }
    // RFC 3986: a scheme is a letter, then letters, digits, '+', '-', '.'; case-insensitive.
    let scheme = t
        .split_once(':')
        .map(|(s, rest)| (s.to_ascii_lowercase(), rest));
    match scheme {
        Some((scheme, rest)) if scheme == "dns" => dns(rest),
        Some((scheme, rest)) if scheme == "ipv4" => ipv4(rest),
        Some((scheme, rest))
            if rest.starts_with("//") || GRPC_SCHEMES.contains(&scheme.as_str()) =>
        {
            Err(format!(
                "unsupported scheme {:?}: use dns: or ipv4:",
                &t[..scheme.len()]
            ))
        }
        // No scheme (or a host name followed by a port that is not a number): host:port.
        _ => {
            let (host, port) = host_port(t)?;
            Ok(Target::Dns {
                server: None,
                host,
                port,
            })
        }
    }
}

/// After `dns:`: `//authority/host:port`, `/host:port` or `host:port`.
fn dns(rest: &str) -> Result<Target, String> {
    let (server, endpoint) = match rest.strip_prefix("//") {
        Some(rest) => {
            let (authority, endpoint) = rest.split_once('/').ok_or(
                "expected dns:///host:port or dns://DNS_SERVER:PORT/host:port (a '/' after the DNS server)",
            )?;
            let server = if authority.is_empty() {
                None
            } else {
                Some(dns_server(authority)?)
            };
            (server, endpoint)
        }
        None => (None, rest.strip_prefix('/').unwrap_or(rest)),
    };
    let (host, port) = host_port(endpoint)?;
    Ok(Target::Dns { server, host, port })
}

/// After `ipv4:`: one or more `a.b.c.d:port`, comma-separated.
fn ipv4(rest: &str) -> Result<Target, String> {
    let addrs = rest
        .split(',')
        .map(|a| {
            let a = a.trim();
            let bad =
                || format!("{a:?} is not an IPv4 address with a port, such as 10.0.0.1:50051");
            let (ip, port) = a.rsplit_once(':').ok_or_else(bad)?;
            let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
            Ok(SocketAddr::new(IpAddr::V4(ip), port_number(port)?))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Target::Ipv4(addrs))
}

/// The DNS server of `dns://AUTHORITY/...`: `IPv4[:port]`, `[IPv6][:port]` or a bare IPv6
/// address (gRPC reads a whole authority that is an IP address as the address, port 53).
fn dns_server(s: &str) -> Result<SocketAddr, String> {
    let not_ip = || format!("DNS server {s:?} is not an IP address with an optional port");
    if let Some(inner) = s.strip_prefix('[') {
        let (ip, after) = inner
            .split_once(']')
            .ok_or_else(|| format!("DNS server {s:?} has an unclosed '['"))?;
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| format!("DNS server {s:?}: {ip:?} is not an IPv6 address"))?;
        let port = match after {
            "" => DNS_PORT,
            _ => match after.strip_prefix(':') {
                Some(port) => port_number(port).map_err(|e| format!("DNS server {s:?}: {e}"))?,
                None => {
                    return Err(format!("DNS server {s:?}: unexpected {after:?} after ']'"));
                }
            },
        };
        return Ok(SocketAddr::new(IpAddr::V6(ip), port));
    }
    if s.contains(']') {
        return Err(format!("DNS server {s:?} has a ']' without its '['"));
    }
    if let Ok(ip) = s.parse::<Ipv6Addr>() {
        return Ok(SocketAddr::new(IpAddr::V6(ip), DNS_PORT));
    }
    match s.split_once(':') {
        Some((ip, port)) => {
            let ip: Ipv4Addr = ip.parse().map_err(|_| not_ip())?;
            let port = port_number(port).map_err(|e| format!("DNS server {s:?}: {e}"))?;
            Ok(SocketAddr::new(IpAddr::V4(ip), port))
        }
        None => {
            let ip: Ipv4Addr = s.parse().map_err(|_| not_ip())?;
            Ok(SocketAddr::new(IpAddr::V4(ip), DNS_PORT))
        }
    }
}

/// `host:port` or `[IPv6]:port`. The port is required (gRPC's implicit 443 would surprise
/// here), and so is the host (gRPC reads an empty one as `localhost`).
fn host_port(s: &str) -> Result<(String, u16), String> {
    if s.is_empty() {
        return Err("no host:port after the scheme".into());
    }
    if let Some(inner) = s.strip_prefix('[') {
        let (ip, after) = inner
            .split_once(']')
            .ok_or_else(|| format!("{s:?} has an unclosed '['"))?;
        ip.parse::<Ipv6Addr>()
            .map_err(|_| format!("[{ip}] is not an IPv6 address"))?;
        let port = match after.strip_prefix(':') {
            Some(port) => port_number(port)?,
            None if after.is_empty() => {
                return Err(format!("{s:?} has no port: expected [IPv6]:port"));
            }
            None => return Err(format!("unexpected {after:?} after ']'")),
        };
        return Ok((ip.to_owned(), port));
    }
    if s.contains(']') {
        return Err(format!("{s:?} has a ']' without its '['"));
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} has no port: expected host:port"))?;
    if host.is_empty() {
        return Err("empty host name".into());
    }
    if host.contains(':') {
        return Err(format!(
            "{s:?}: an IPv6 address needs brackets, as in [::1]:50051"
        ));
    }
    let port = port_number(port)?;
    if host.parse::<Ipv4Addr>().is_err() {
        dns_name(host)?;
    }
    Ok((host.to_owned(), port))
}

/// A DNS name as resolvers take it: labels of letters, digits, '-' and '_', 1 to 63 bytes
/// each, 253 bytes in all, an optional final dot.
fn dns_name(host: &str) -> Result<(), String> {
    let bad = |why: &str| format!("{host:?} is not a valid host name: {why}");
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(bad("empty label"));
        }
        if label.len() > 63 {
            return Err(bad("a label longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_')))
        {
            return Err(bad(&format!("{c:?} is not allowed")));
        }
    }
    Ok(())
}

/// A port: decimal digits only (no sign, no spaces), 1 to 65535.
fn port_number(s: &str) -> Result<u16, String> {
    if s.is_empty() {
        return Err("missing port after ':'".into());
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a port number (1-65535)"));
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("port {s} is out of range (1-65535)")),
        Ok(p) => Ok(p),
    }
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
        for (target, parsed) in [
            ("dns:///server:50051", dns(None, "server", 50051)),
            (
                "dns://127.0.0.53:5353/server:50051",
                dns(Some("127.0.0.53:5353"), "server", 50051),
            ),
            (
                "dns://10.96.0.10/server:50051",
                dns(Some("10.96.0.10:53"), "server", 50051),
            ),
            (
                "dns://[::1]:5353/server:50051",
                dns(Some("[::1]:5353"), "server", 50051),
            ),
            (
                "dns://[::1]/server:50051",
                dns(Some("[::1]:53"), "server", 50051),
            ),
            // gRPC (grpc-go's parseTarget) reads an authority that is a whole IP address as it.
            (
                "dns://::1/server:50051",
                dns(Some("[::1]:53"), "server", 50051),
            ),
            ("dns:server:50051", dns(None, "server", 50051)),
            ("dns:/server:50051", dns(None, "server", 50051)),
            ("DNS:///server:50051", dns(None, "server", 50051)),
            (
                "dns:///server.default.svc.cluster.local.:50051",
                dns(None, "server.default.svc.cluster.local.", 50051),
            ),
            ("localhost:50051", dns(None, "localhost", 50051)),
            ("10.0.0.1:50051", dns(None, "10.0.0.1", 50051)),
            ("[::1]:50051", dns(None, "::1", 50051)),
            ("dns:///[::1]:50051", dns(None, "::1", 50051)),
            (
                "ipv4:127.0.0.1:1,127.0.0.2:2",
                Target::Ipv4(vec![
                    "127.0.0.1:1".parse().unwrap(),
                    "127.0.0.2:2".parse().unwrap(),
                ]),
            ),
        ] {
            assert_eq!(Target::parse(target), Ok(parsed), "{target}");
        }
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
    fn a_parsed_target_prints_as_a_target_that_parses_back_to_it() {
        for target in [
            "dns://[::1]:5353/server:50051",
            "dns://10.0.0.1:53/[::1]:1",
            "server:1",
            "ipv4:10.0.0.1:1,10.0.0.2:2",
        ] {
            let parsed = Target::parse(target).unwrap();
            assert_eq!(Target::parse(&parsed.to_string()), Ok(parsed), "{target}");
        }
    }

    #[test]
    fn bad_targets_say_what_is_wrong() {
        let long_label = format!("{}:1", "a".repeat(64));
        let long_name = format!("{}:1", ["abcdefghi"; 26].join("."));
        for (target, reason) in [
            ("", "empty target"),
            ("  ", "empty target"),
            ("server", "has no port"),
            ("server:http", r#""http" is not a port number"#),
            ("server:", "missing port after ':'"),
            ("server:+80", r#""+80" is not a port number"#),
            ("server: 80", r#"" 80" is not a port number"#),
            ("server:0", "port 0 is out of range (1-65535)"),
            ("server:65536", "port 65536 is out of range"),
            ("server:99999999999", "port 99999999999 is out of range"),
            ("server:50051/path", r#""50051/path" is not a port number"#),
            (":50051", "empty host name"),
            ("dns:///:50051", "empty host name"),
            ("dns:", "no host:port after the scheme"),
            ("dns:///", "no host:port after the scheme"),
            ("http://server:80", r#"unsupported scheme "http""#),
            ("unix:/tmp/socket", r#"unsupported scheme "unix""#),
            ("ipv6:[::1]:1", r#"unsupported scheme "ipv6""#),
            ("xds:///server", r#"unsupported scheme "xds""#),
            ("dns://server:50051", "expected dns:///host:port"),
            ("dns://10.0.0.1:53", "expected dns:///host:port"),
            // The authority, the DNS server.
            (
                "dns://[::1/server:50051",
                r#"DNS server "[::1" has an unclosed '['"#,
            ),
            (
                "dns://::1]/server:50051",
                r#"DNS server "::1]" has a ']' without its '['"#,
            ),
            (
                "dns://[::1]x/server:50051",
                r#"DNS server "[::1]x": unexpected "x" after ']'"#,
            ),
            (
                "dns://[::1]:/server:50051",
                r#"DNS server "[::1]:": missing port after ':'"#,
            ),
            (
                "dns://[server]/server:50051",
                r#"DNS server "[server]": "server" is not an IPv6 address"#,
            ),
            (
                "dns://10.0.0.1:/server:50051",
                r#"DNS server "10.0.0.1:": missing port after ':'"#,
            ),
            ("dns://10.0.0.1:0/server:50051", "port 0 is out of range"),
            (
                "dns://10.0.0.1:65536/server:50051",
                "port 65536 is out of range",
            ),
            (
                "dns://10.0.0.1:dns/server:50051",
                r#""dns" is not a port number"#,
            ),
            (
                "dns://[::1]:70000/server:50051",
                "port 70000 is out of range",
            ),
            (
                "dns://not-an-ip/server:50051",
                r#"DNS server "not-an-ip" is not an IP address"#,
            ),
            ("dns://user@10.0.0.1/server:50051", "is not an IP address"),
            ("dns://10.0.0.300/server:50051", "is not an IP address"),
            // The endpoint, host:port.
            ("dns:///[::1:50051", r#""[::1:50051" has an unclosed '['"#),
            ("[::1:50051", "has an unclosed '['"),
            ("dns:///::1]:50051", "has a ']' without its '['"),
            ("[::1]", "has no port: expected [IPv6]:port"),
            ("[::1]:", "missing port after ':'"),
            ("[::1]50051", r#"unexpected "50051" after ']'"#),
            ("[server]:50051", "[server] is not an IPv6 address"),
            ("[10.0.0.1]:50051", "[10.0.0.1] is not an IPv6 address"),
            ("::1:50051", "an IPv6 address needs brackets"),
            ("dns:///::1:50051", "an IPv6 address needs brackets"),
            (
                "bad host:1",
                r#""bad host" is not a valid host name: ' ' is not allowed"#,
            ),
            ("a..b:1", "empty label"),
            (".server:1", "empty label"),
            ("dns:///a/b:1", "'/' is not allowed"),
            ("server?x=1:1", "'?' is not allowed"),
            (&long_label, "a label longer than 63 characters"),
            (&long_name, "longer than 253 characters"),
            // ipv4:
            ("ipv4:server:50051", "is not an IPv4 address"),
            ("ipv4:", "is not an IPv4 address"),
            (
                "ipv4:10.0.0.1",
                r#""10.0.0.1" is not an IPv4 address with a port"#,
            ),
            (
                "ipv4:10.0.0.1:1,",
                r#""" is not an IPv4 address with a port"#,
            ),
            ("ipv4:10.0.0.1:0", "port 0 is out of range"),
            ("ipv4:[::1]:1", "is not an IPv4 address"),
        ] {
            let err = Target::parse(target).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid target {target:?}: ")),
                "{target:?}: {err}"
            );
            assert!(err.contains(reason), "{target:?}: {err}");
            assert!(!err.contains('\n'));
        }
    }
}
