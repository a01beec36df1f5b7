//! Value types shared by every protocol: info hashes, peer ids, announce events and the
//! address of a peer as it goes into a response.
//!
//! Pure data: nothing here does I/O or reads the clock.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A torrent's 20-byte SHA-1 info hash.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// Parses 40 hexadecimal digits (either case). Returns `None` for anything else.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 40 {
            return None;
        }
        let mut out = [0u8; 20];
        for (dst, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let (hi, lo) = match pair {
                [hi, lo] => (hex_value(*hi)?, hex_value(*lo)?),
                _ => return None,
            };
            *dst = (hi << 4) | lo;
        }
        Some(Self(out))
    }

    /// The 40 lowercase hexadecimal digits of this hash.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(40);
        for b in self.0 {
            s.push(char::from(DIGITS[usize::from(b >> 4)]));
            s.push(char::from(DIGITS[usize::from(b & 0xf)]));
        }
        s
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A peer's self-chosen 20-byte id.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PeerId(pub [u8; 20]);

/// The `event` of an announce (BEP 3; BEP 15 numbers them 0–3).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum AnnounceEvent {
    /// A regular announce.
    #[default]
    None,
    /// The peer finished downloading.
    Completed,
    /// The peer just joined.
    Started,
    /// The peer is leaving the swarm.
    Stopped,
}

/// An IP address type a swarm can hold: [`Ipv4Addr`] or [`Ipv6Addr`].
///
/// IPv4 and IPv6 peers live in separate swarms, so that a client only ever receives
/// peers of the family it announced from.
pub trait Ip:
    Copy + Clone + fmt::Debug + PartialEq + Eq + std::hash::Hash + Send + 'static
{
}

impl Ip for Ipv4Addr {}
impl Ip for Ipv6Addr {}

/// A peer's address as it is written into an announce response.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResponsePeer<I: Ip> {
    /// The peer's IP address.
    pub ip: I,
    /// The peer's listening port.
    pub port: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let hex = "0123456789abcdef0123456789ABCDEF01234567";
        let hash = InfoHash::from_hex(hex).unwrap();
        assert_eq!(hash.0[0], 0x01);
        assert_eq!(hash.0[19], 0x67);
        assert_eq!(hash.to_hex(), hex.to_lowercase());
    }

    #[test]
    fn hex_rejects_bad_input() {
        assert_eq!(InfoHash::from_hex(""), None);
        assert_eq!(InfoHash::from_hex(&"a".repeat(39)), None);
        assert_eq!(InfoHash::from_hex(&"a".repeat(41)), None);
        assert_eq!(InfoHash::from_hex(&"g".repeat(40)), None);
        assert_eq!(InfoHash::from_hex(&"é".repeat(20)), None);
    }
}
