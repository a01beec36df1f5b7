//! Stateless connection ids (BEP 15 connect handshake).
//!
//! A connection id is `valid_until` (4 bytes, seconds since server start) followed by the
//! first 4 bytes of a keyed SipHash of `(valid_until, client IP)`. The key is random and
//! made at start, so ids cannot be forged without the secret, survive only until the
//! restart, and a flood of connects costs no memory. Any socket worker can check any id.
//!
//! Only the IP is hashed, not the port: a client behind a NAT that changes its source
//! port between connect and announce keeps a valid id, and the id still proves that the
//! client receives packets at that IP (it read the connect response).

use std::hash::BuildHasher;
use std::net::IpAddr;

use tracker_common::time::SecondsSinceServerStart;
use tracker_udp_protocol::ConnectionId;

/// Makes and checks connection ids. Clones share the secret.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionValidator {
    secret: std::collections::hash_map::RandomState,
    valid_secs: u32,
}

impl ConnectionValidator {
    /// A validator with a new random secret; ids last `valid_secs`.
    pub(crate) fn new(valid_secs: u32) -> Self {
        Self {
            secret: std::collections::hash_map::RandomState::new(),
            valid_secs,
        }
    }

    fn tag(&self, valid_until: u32, ip: IpAddr) -> u32 {
        // High half of the 64-bit SipHash output.
        (self.secret.hash_one((valid_until, ip)) >> 32) as u32
    }

    /// A new id for a client at `ip`.
    pub(crate) fn create(&self, ip: IpAddr, now: SecondsSinceServerStart) -> ConnectionId {
        let valid_until = now.add_secs(self.valid_secs).0;
        let raw = (u64::from(valid_until) << 32) | u64::from(self.tag(valid_until, ip));
        ConnectionId(raw as i64)
    }

    /// Whether `id` was made by this validator for `ip` and has not expired.
    pub(crate) fn is_valid(
        &self,
        id: ConnectionId,
        ip: IpAddr,
        now: SecondsSinceServerStart,
    ) -> bool {
        let raw = id.0 as u64;
        let valid_until = (raw >> 32) as u32;
        let tag = raw as u32;
        // An id that claims to live longer than we ever grant was not made by us.
        valid_until >= now.0
            && valid_until <= now.add_secs(self.valid_secs).0
            && tag == self.tag(valid_until, ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u32) -> SecondsSinceServerStart {
        SecondsSinceServerStart(s)
    }

    #[test]
    fn valid_for_the_lifetime_then_expires() {
        let v = ConnectionValidator::new(120);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let id = v.create(ip, t(1000));
        assert!(v.is_valid(id, ip, t(1000)));
        assert!(v.is_valid(id, ip, t(1120)));
        assert!(!v.is_valid(id, ip, t(1121)));
    }

    #[test]
    fn bound_to_ip_and_secret() {
        let v = ConnectionValidator::new(120);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "2001:db8::7".parse().unwrap();
        let id = v.create(ip, t(5));
        assert!(!v.is_valid(id, other, t(5)));
        assert!(v.clone().is_valid(id, ip, t(5)));
        assert!(!ConnectionValidator::new(120).is_valid(id, ip, t(5)));
    }

    #[test]
    fn forged_ids_are_rejected() {
        let v = ConnectionValidator::new(120);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let id = v.create(ip, t(5));
        assert!(!v.is_valid(ConnectionId(id.0 ^ 1), ip, t(5)));
        assert!(!v.is_valid(ConnectionId(0), ip, t(5)));
        assert!(!v.is_valid(ConnectionId(-1), ip, t(5)));
        // Far-future expiry with a random tag.
        let forged = ConnectionId(((u64::from(u32::MAX) << 32) | 1234) as i64);
        assert!(!v.is_valid(forged, ip, t(5)));
    }
}
