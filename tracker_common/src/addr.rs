//! Socket addresses with IPv4-mapped IPv6 addresses folded back to IPv4.
//!
//! A dual-stack socket (`[::]` with `IPV6_V6ONLY` off) reports IPv4 clients as
//! `::ffff:a.b.c.d`. Such a client is an IPv4 client: it goes into the IPv4 swarm and
//! receives IPv4 peers. The original address is kept for replying.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A client's source address as the socket reported it, plus its canonical IP.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct CanonicalSocketAddr(SocketAddr);

impl CanonicalSocketAddr {
    /// Wraps the address a socket reported.
    pub fn new(addr: SocketAddr) -> Self {
        Self(addr)
    }

    /// The address exactly as the socket reported it: send replies here.
    pub fn socket_addr(&self) -> SocketAddr {
        self.0
    }

    /// The IP with IPv4-mapped IPv6 addresses turned into IPv4.
    pub fn canonical_ip(&self) -> IpAddr {
        self.0.ip().to_canonical()
    }

    /// The canonical IPv4 address, if the client is an IPv4 client.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        match self.canonical_ip() {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        }
    }

    /// The IPv6 address, if the client is a (non-mapped) IPv6 client.
    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        match self.canonical_ip() {
            IpAddr::V6(ip) => Some(ip),
            IpAddr::V4(_) => None,
        }
    }

    /// Whether the client is an IPv4 client (directly or IPv4-mapped).
    pub fn is_ipv4(&self) -> bool {
        self.ipv4().is_some()
    }

    /// The client's port.
    pub fn port(&self) -> u16 {
        self.0.port()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_are_ipv4() {
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:6881".parse().unwrap();
        let addr = CanonicalSocketAddr::new(mapped);
        assert_eq!(addr.ipv4(), Some(Ipv4Addr::new(10, 1, 2, 3)));
        assert!(addr.is_ipv4());
        assert_eq!(addr.socket_addr(), mapped);
        assert_eq!(addr.port(), 6881);
    }

    #[test]
    fn plain_addresses_keep_their_family() {
        let v6 = CanonicalSocketAddr::new("[2001:db8::1]:1".parse().unwrap());
        assert_eq!(v6.ipv6(), Some("2001:db8::1".parse().unwrap()));
        assert!(!v6.is_ipv4());
        let v4 = CanonicalSocketAddr::new("127.0.0.1:2".parse().unwrap());
        assert_eq!(v4.ipv4(), Some(Ipv4Addr::LOCALHOST));
    }
}
