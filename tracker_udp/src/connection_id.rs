//! Stateless connection ids (BEP 15 connect handshake).
//!
//! A connection id is 8 bytes: `valid_until` (4 bytes, big-endian seconds since server
//! start) followed by the high 4 bytes of a SipHash-2-4 MAC over `valid_until` and the
//! client IP. The 128-bit MAC key comes from the OS random number generator at start, so
//! ids cannot be forged without it, die with a restart, and a flood of connects costs no
//! memory. Any socket worker can check any id.
//!
//! The MAC input is an unambiguous byte string, so that no two (time, address) pairs
//! hash the same bytes: `valid_until` (4 bytes, big-endian), then a family tag (4 or 6)
//! and the address octets (4 or 16). The algorithm is named, not std's `RandomState`,
//! whose algorithm is unspecified and may change between Rust releases.
//!
//! Only the IP is hashed, not the port: a client behind a NAT that changes its source
//! port between connect and announce keeps a valid id, and the id still proves that the
//! client receives packets at that IP (it read the connect response).
//!
//! # Clock slack
//! Socket workers read the clock independently, so one worker may already be in the
//! next second when another checks an id it made. An id is therefore accepted while
//! `now <= valid_until <= now + valid_secs + 1`: one second more than any worker grants.

use std::fmt;
use std::net::IpAddr;

use anyhow::Context;
use rand::TryRngCore;
use siphasher::sip::SipHasher24;

use tracker_common::time::SecondsSinceServerStart;
use tracker_udp_protocol::ConnectionId;

/// Longest MAC input: 4 bytes of time, a family tag, 16 bytes of IPv6 address.
const MAC_INPUT_MAX: usize = 4 + 1 + 16;

/// Makes and checks connection ids. Clones share the key.
#[derive(Clone)]
pub(crate) struct ConnectionValidator {
    mac: SipHasher24,
    valid_secs: u32,
}

impl fmt::Debug for ConnectionValidator {
    /// Leaves the key out, so that no log line can reveal it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionValidator")
            .field("valid_secs", &self.valid_secs)
            .finish_non_exhaustive()
    }
}

impl ConnectionValidator {
    /// A validator with a new random key from the OS; ids last `valid_secs`.
    ///
    /// # Errors
    /// The OS random number generator failed.
    pub(crate) fn new(valid_secs: u32) -> anyhow::Result<Self> {
        let mut key = [0u8; 16];
        rand::rngs::OsRng
            .try_fill_bytes(&mut key)
            .context("read a connection id key from the os random number generator")?;
        Ok(Self::with_key(&key, valid_secs))
    }

    /// A validator with the given key: for tests that pin the algorithm.
    fn with_key(key: &[u8; 16], valid_secs: u32) -> Self {
        Self {
            mac: SipHasher24::new_with_key(key),
            valid_secs,
        }
    }

    fn tag(&self, valid_until: u32, ip: IpAddr) -> u32 {
        let mut input = [0u8; MAC_INPUT_MAX];
        let (time, rest) = input.split_at_mut(4);
        time.copy_from_slice(&valid_until.to_be_bytes());
        let len = match (ip, rest.split_first_mut()) {
            (IpAddr::V4(v4), Some((family, addr))) => {
                *family = 4;
                addr.iter_mut().zip(v4.octets()).for_each(|(d, s)| *d = s);
                4 + 1 + 4
            }
            (IpAddr::V6(v6), Some((family, addr))) => {
                *family = 6;
                addr.iter_mut().zip(v6.octets()).for_each(|(d, s)| *d = s);
                MAC_INPUT_MAX
            }
            (_, None) => 4,
        };
        let bytes = input.get(..len).unwrap_or(&input);
        // High half of the 64-bit MAC.
        (self.mac.hash(bytes) >> 32) as u32
    }

    /// A new id for a client at `ip`.
    pub(crate) fn create(&self, ip: IpAddr, now: SecondsSinceServerStart) -> ConnectionId {
        let valid_until = now.add_secs(self.valid_secs).0;
        let raw = (u64::from(valid_until) << 32) | u64::from(self.tag(valid_until, ip));
        ConnectionId(raw as i64)
    }

    /// Whether `id` was made by this validator for `ip` and has not expired (see the
    /// module doc for the one second of slack).
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
            && valid_until <= now.add_secs(self.valid_secs).add_secs(1).0
            && tag == self.tag(valid_until, ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u32) -> SecondsSinceServerStart {
        SecondsSinceServerStart(s)
    }

    fn validator() -> ConnectionValidator {
        ConnectionValidator::new(120).unwrap()
    }

    #[test]
    fn valid_for_the_lifetime_then_expires() {
        let v = validator();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let id = v.create(ip, t(1000));
        assert!(v.is_valid(id, ip, t(1000)));
        assert!(v.is_valid(id, ip, t(1120)));
        assert!(!v.is_valid(id, ip, t(1121)));
        assert!(!v.is_valid(id, ip, t(u32::MAX)));
    }

    /// A worker already in the next second mints an id; a worker still in the previous
    /// second must accept it.
    #[test]
    fn an_id_from_the_next_second_is_accepted() {
        let v = validator();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let id = v.create(ip, t(1001));
        assert!(v.is_valid(id, ip, t(1000)), "one second of slack");
        // Two seconds ahead is more than any worker's clock can be.
        let id = v.create(ip, t(1002));
        assert!(!v.is_valid(id, ip, t(1000)));
    }

    #[test]
    fn bound_to_ip_and_key() {
        let v = validator();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let id = v.create(ip, t(5));
        for other in ["192.0.2.8", "2001:db8::7", "::ffff:192.0.2.7", "::c000:207"] {
            let other: IpAddr = other.parse().unwrap();
            assert!(!v.is_valid(id, other, t(5)), "{other}");
        }
        assert!(v.clone().is_valid(id, ip, t(5)));
        assert!(!validator().is_valid(id, ip, t(5)));
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        assert!(v.is_valid(v.create(v6, t(5)), v6, t(5)));
    }

    #[test]
    fn forged_ids_are_rejected() {
        let v = validator();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let id = v.create(ip, t(5));
        for bit in 0..64 {
            assert!(
                !v.is_valid(ConnectionId(id.0 ^ (1 << bit)), ip, t(5)),
                "bit {bit}"
            );
        }
        assert!(!v.is_valid(ConnectionId(0), ip, t(5)));
        assert!(!v.is_valid(ConnectionId(-1), ip, t(5)));
        // Far-future expiry with a random tag.
        let forged = ConnectionId(((u64::from(u32::MAX) << 32) | 1234) as i64);
        assert!(!v.is_valid(forged, ip, t(5)));
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let v = ConnectionValidator::with_key(&[0xab; 16], 120);
        let text = format!("{v:?}");
        assert_eq!(text, "ConnectionValidator { valid_secs: 120, .. }");
    }

    /// Pins the algorithm: SipHash-2-4, key bytes 00..0f, input `valid_until` (BE u32),
    /// family tag, address octets. The expected values were computed with an
    /// independent SipHash-2-4 written from the paper (checked against its test vector
    /// 0xa129ca6149be45e5 for the input 00..0e), not with this code.
    #[test]
    fn fixed_key_test_vector() {
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let paper_input: Vec<u8> = (0..15).collect();
        assert_eq!(
            SipHasher24::new_with_key(&key).hash(&paper_input),
            0xa129_ca61_49be_45e5,
            "SipHash-2-4 paper vector"
        );
        let v = ConnectionValidator::with_key(&key, 120);
        // valid_until = 1000 + 120 = 1120 = 0x460; MAC input 00000460 04 c0000207.
        let id = v.create("192.0.2.7".parse().unwrap(), t(1000));
        assert_eq!(id.0 as u64, 0x0000_0460_700d_5ecf);
        // MAC input 00000460 06 20010db8000000000000000000000007.
        let id = v.create("2001:db8::7".parse().unwrap(), t(1000));
        assert_eq!(id.0 as u64, 0x0000_0460_9f52_9af7);
    }
}
