//! Value types shared by every protocol: info hashes, peer ids, announce events, the
//! peer entries of announce responses ([`ResponsePeer`] for compact answers,
//! [`ResponsePeerWithId`] where the answer lists peer ids) and a torrent's scrape counts.
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
        hex20(&self.0)
    }
}

/// The 40 lowercase hexadecimal digits of 20 bytes (an info hash, a peer id).
#[expect(
    clippy::indexing_slicing,
    reason = "a nibble (`b >> 4`, `b & 0xf`) is below 16, the length of DIGITS"
)]
fn hex20(bytes: &[u8; 20]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(40);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
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

impl PeerId {
    /// The 40 lowercase hexadecimal digits of this id.
    pub fn to_hex(&self) -> String {
        hex20(&self.0)
    }
}

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
    /// What the cap on peers per address counts as one address: an IPv4 address, or an
    /// IPv6 /64 prefix (one IPv6 subscriber usually holds a whole /64).
    type Group: Copy + fmt::Debug + Eq + std::hash::Hash + Send + 'static;

    /// The group this address belongs to.
    fn group(&self) -> Self::Group;
}

impl Ip for Ipv4Addr {
    type Group = u32;

    fn group(&self) -> u32 {
        u32::from(*self)
    }
}

impl Ip for Ipv6Addr {
    type Group = u64;

    fn group(&self) -> u64 {
        // The top 64 bits: the /64 prefix.
        u64::try_from(u128::from(*self) >> 64).unwrap_or(u64::MAX)
    }
}

/// A peer entry of an announce response, made from what the swarm stores about a peer.
///
/// The swarm's announce fills a `Vec` of any implementor, so that each protocol gets
/// exactly what its answer needs: [`ResponsePeer`] for compact answers (UDP, compact
/// HTTP), [`ResponsePeerWithId`] for non-compact HTTP answers, which list peer ids.
pub trait AnnouncePeer<I: Ip> {
    /// The entry of the stored peer at `ip` and `port` whose peer id is `peer_id`.
    fn from_stored(ip: I, port: u16, peer_id: &PeerId) -> Self;
}

/// A peer's address as it is written into a compact announce response.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResponsePeer<I: Ip> {
    /// The peer's IP address.
    pub ip: I,
    /// The peer's listening port.
    pub port: u16,
}

impl<I: Ip> AnnouncePeer<I> for ResponsePeer<I> {
    fn from_stored(ip: I, port: u16, _peer_id: &PeerId) -> Self {
        Self { ip, port }
    }
}

/// A peer's address and peer id, as a non-compact HTTP announce response lists it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResponsePeerWithId<I: Ip> {
    /// The peer's IP address.
    pub ip: I,
    /// The peer's listening port.
    pub port: u16,
    /// The peer id it last announced with.
    pub peer_id: PeerId,
}

impl<I: Ip> AnnouncePeer<I> for ResponsePeerWithId<I> {
    fn from_stored(ip: I, port: u16, peer_id: &PeerId) -> Self {
        Self {
            ip,
            port,
            peer_id: *peer_id,
        }
    }
}

/// What a scrape reports for one torrent (BEP 48; BEP 15 scrape).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct ScrapeCounts {
    /// Peers that have the whole torrent.
    pub seeders: u32,
    /// Downloads completed (`tracker_common`'s swarm rules say when one counts), kept
    /// while the torrent is archived.
    pub completed: u32,
    /// Peers still downloading.
    pub leechers: u32,
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
    fn address_groups() {
        assert_eq!(Ipv4Addr::new(10, 0, 0, 1).group(), 0x0a00_0001);
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(a.group(), b.group());
        assert_ne!(a.group(), c.group());
        assert_eq!(a.group(), 0x2001_0db8_0001_0002);
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
