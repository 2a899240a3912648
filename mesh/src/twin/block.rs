//! The twin's loopback addresses: a block of its own, and what each host number in it is for.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, SocketAddr},
};

/// A /23 of loopback addresses of this twin alone: 127.X.Y.0/24 (Y even) for the twin's own
/// addresses and 127.X.Y+1.0/24 for the addresses that stand for a captured destination (the
/// sidecar's in place of each pod, ztunnel's in place of each virtual IP), with X and Y random, so
/// twins (and tests) never share an address.
#[derive(Debug, Clone, Copy)]
pub struct Block(u8, u8);

impl Block {
    pub fn random() -> Block {
        use rand::Rng;
        let mut rng = rand::rng();
        Block(rng.random_range(1..=254), 2 * rng.random_range(1..=126))
    }

    pub fn ip(&self, host: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.0, self.1, host))
    }

    /// The address that stands for `host` when it is captured: the sidecar intercepts a pod's there,
    /// ztunnel a virtual IP's.
    pub fn intercept(&self, host: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.0, self.1 + 1, host))
    }
}

/// `127.X.Y.0/23`.
impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "127.{}.{}.0/23", self.0, self.1)
    }
}

/// Addresses inside a block.
pub(super) const DNS_HOST: u8 = 1;
pub(super) const SIDECAR_HOST: u8 = 2;
pub(super) const PROXY_HOSTS: std::ops::Range<u8> = 3..9;
pub(super) const WAYPOINT_HOST: u8 = 9;
pub(super) const POD_HOSTS: std::ops::Range<u8> = 10..200;
pub(super) const VIP_HOSTS: std::ops::Range<u8> = 200..255;

/// The host number of a pod address in its block.
pub(super) fn host_of(addr: &SocketAddr) -> u8 {
    match addr.ip() {
        IpAddr::V4(v4) => v4.octets()[3],
        IpAddr::V6(v6) => v6.octets()[15],
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::twin::PORT;

    #[test]
    fn the_random_loopback_block_never_yields_127_0_0_x_or_a_255_octet() {
        let (mut xs, mut ys) = (BTreeSet::new(), BTreeSet::new());
        for _ in 0..100_000 {
            let block = Block::random();
            xs.insert(block.0);
            ys.insert(block.1);
            for host in [DNS_HOST, POD_HOSTS.start, VIP_HOSTS.end - 1] {
                for ip in [block.ip(host), block.intercept(host)] {
                    let IpAddr::V4(ip) = ip else {
                        panic!("not IPv4");
                    };
                    let [a, b, c, d] = ip.octets();
                    assert_eq!(a, 127);
                    assert!((1..=254).contains(&b) && (1..=254).contains(&c), "{ip}");
                    assert!((1..=254).contains(&d), "{ip}");
                }
            }
        }
        // Every allowed octet comes up: the whole of 1..=254 for X, every even Y of 2..=252 (its
        // odd neighbour holds the intercepted addresses).
        assert_eq!(xs, (1..=254).collect());
        assert_eq!(ys, (2..=252).step_by(2).collect());
    }

    #[test]
    fn servers_get_distinct_addresses_on_one_port() {
        let block = Block(3, 4);
        let addr = |host| SocketAddr::new(block.ip(host), PORT);
        let addrs: BTreeSet<_> = POD_HOSTS.map(addr).collect();
        assert_eq!(addrs.len(), POD_HOSTS.len());
        assert_eq!(addr(POD_HOSTS.start).to_string(), "127.3.4.10:50051");
        assert_eq!(addr(POD_HOSTS.start + 49).to_string(), "127.3.4.59:50051");
    }
}
