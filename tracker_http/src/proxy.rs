//! Clients behind a reverse proxy: which TCP peers are trusted proxies, and which address
//! of their header is the client.
//!
//! A proxy appends the address it received a request from to the header (e.g.
//! `X-Forwarded-For: client, proxy1, proxy2`). Anything left of the first proxy we trust
//! could have been written by the client itself, so the client is the right-most address
//! that is not a trusted proxy. The header is read only when the TCP peer is a trusted
//! proxy; from anyone else it is ignored.

use std::net::IpAddr;

/// Networks whose proxies are believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<(IpAddr, u8)>,
}

impl TrustedProxies {
    /// Parses CIDRs ("10.0.0.0/8", "::1/128"); a bare address is a single host.
    ///
    /// # Errors
    /// The first entry that is not a CIDR.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut networks = Vec::with_capacity(entries.len());
        for entry in entries {
            let (addr, len) = match entry.split_once('/') {
                Some((addr, len)) => (addr, Some(len)),
                None => (entry.as_str(), None),
            };
            let addr: IpAddr = addr.trim().parse().map_err(|_| entry.clone())?;
            // A mapped address is matched as IPv4; its prefix counts IPv4 bits then.
            let addr = addr.to_canonical();
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let len = match len {
                Some(len) => len
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|len| *len <= max)
                    .ok_or_else(|| entry.clone())?,
                None => max,
            };
            networks.push((addr, len));
        }
        Ok(Self { networks })
    }

    /// Whether no proxy is trusted (the header is then never read).
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// Whether `ip` is in a trusted network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        // IPv4-mapped IPv6 addresses as IPv4, so that one CIDR matches either spelling.
        let ip = ip.to_canonical();
        self.networks
            .iter()
            .any(|(net, len)| in_network(ip, *net, *len))
    }

    /// The client's address: `peer` (the TCP peer) unless it is a trusted proxy and
    /// `header` (the proxy header's value) names a right-most untrusted address. A header
    /// that does not parse, or names only trusted proxies, leaves the client at its left-
    /// most parseable address, or at `peer` if there is none.
    pub fn client_ip(&self, peer: IpAddr, header: Option<&[u8]>) -> IpAddr {
        let (Some(header), true) = (header, self.contains(peer)) else {
            return peer;
        };
        let Ok(text) = std::str::from_utf8(header) else {
            return peer;
        };
        let mut leftmost = None;
        for item in text.rsplit(',') {
            let Ok(ip) = item.trim().parse::<IpAddr>() else {
                // A malformed entry: what is left of it cannot be trusted either.
                return leftmost.unwrap_or(peer);
            };
            let ip = ip.to_canonical();
            if !self.contains(ip) {
                return ip;
            }
            leftmost = Some(ip);
        }
        leftmost.unwrap_or(peer)
    }
}

fn in_network(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_match() {
        let t = trusted(&["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "0.0.0.0/0"]);
        assert!(t.contains(ip("10.200.1.1")));
        assert!(t.contains(ip("192.0.2.7")));
        assert!(t.contains(ip("2001:db8::5")));
        assert!(!t.contains(ip("2001:db9::5")));
        // /0 matches every IPv4 address, and a mapped address is IPv4.
        assert!(t.contains(ip("::ffff:203.0.113.9")));
        let t = trusted(&["127.0.0.1/32"]);
        assert!(!t.contains(ip("127.0.0.2")));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "nonsense",
            "10.0.0.0/x",
            "10.0.0/8",
        ] {
            assert_eq!(
                TrustedProxies::parse(&[bad.to_string()]),
                Err(bad.to_string()),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_address() {
        let t = trusted(&["10.0.0.0/8"]);
        let proxy = ip("10.0.0.1");
        let header = |s: &'static str| Some(s.as_bytes());
        assert_eq!(t.client_ip(proxy, header("203.0.113.5")), ip("203.0.113.5"));
        // The client wrote a fake address first; the proxies appended theirs.
        assert_eq!(
            t.client_ip(proxy, header("1.2.3.4, 203.0.113.5, 10.0.0.9")),
            ip("203.0.113.5")
        );
        // Only proxies: the left-most one.
        assert_eq!(
            t.client_ip(proxy, header("10.1.1.1, 10.0.0.9")),
            ip("10.1.1.1")
        );
        // A malformed entry stops the walk.
        assert_eq!(
            t.client_ip(proxy, header("1.2.3.4, junk, 10.0.0.9")),
            ip("10.0.0.9")
        );
        assert_eq!(t.client_ip(proxy, header("junk")), proxy);
        assert_eq!(t.client_ip(proxy, None), proxy);
        assert_eq!(t.client_ip(proxy, Some(&[0xff, 0xfe])), proxy);
        // From an untrusted peer the header is ignored.
        let stranger = ip("198.51.100.1");
        assert_eq!(t.client_ip(stranger, header("203.0.113.5")), stranger);
        // IPv6 in the header.
        assert_eq!(t.client_ip(proxy, header("2001:db8::1")), ip("2001:db8::1"));
    }
}
