//! Values shared by requests and responses: the connect magic number, the id newtypes,
//! the action numbers, and the bounds-checked big-endian reader the parsers are built on.
//!
//! Nothing here does I/O. The reader never indexes a slice: every read goes through
//! [`slice::split_first_chunk`], so running out of bytes is a `None`, never a panic.

/// The magic number a connect request starts with (BEP 15, "Connect").
///
/// <https://www.bittorrent.org/beps/bep_0015.html>
pub const PROTOCOL_IDENTIFIER: i64 = 0x41727101980;

/// The id a tracker hands out in a connect response; the client echoes it in every
/// announce and scrape so the tracker knows the source address was not spoofed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub i64);

/// A number the client picks for each request; the answer carries it back unchanged.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TransactionId(pub i32);

/// The `action` field of BEP 15 packets (offset 8 in requests, offset 0 in responses).
pub(crate) mod action {
    pub(crate) const CONNECT: i32 = 0;
    pub(crate) const ANNOUNCE: i32 = 1;
    pub(crate) const SCRAPE: i32 = 2;
    pub(crate) const ERROR: i32 = 3;
}

/// Reads big-endian fields off the front of a byte slice.
///
/// Each read either returns the field and advances, or returns `None` and leaves the
/// reader where it was.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.rest.split_first_chunk::<N>()?;
        self.rest = rest;
        Some(*head)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn i32(&mut self) -> Option<i32> {
        self.array().map(i32::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_be_bytes)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Reader tests, and the proptest strategies the request and response tests share
    //! (the orphan rule keeps us from implementing `Arbitrary` for `tracker_types` types).

    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use tracker_types::{AnnounceEvent, InfoHash, PeerId, ResponsePeer};

    pub(crate) fn connection_id() -> impl Strategy<Value = ConnectionId> {
        any::<i64>().prop_map(ConnectionId)
    }

    pub(crate) fn transaction_id() -> impl Strategy<Value = TransactionId> {
        any::<i32>().prop_map(TransactionId)
    }

    pub(crate) fn info_hash() -> impl Strategy<Value = InfoHash> {
        any::<[u8; 20]>().prop_map(InfoHash)
    }

    pub(crate) fn peer_id() -> impl Strategy<Value = PeerId> {
        any::<[u8; 20]>().prop_map(PeerId)
    }

    pub(crate) fn event() -> impl Strategy<Value = AnnounceEvent> {
        prop_oneof![
            Just(AnnounceEvent::None),
            Just(AnnounceEvent::Completed),
            Just(AnnounceEvent::Started),
            Just(AnnounceEvent::Stopped),
        ]
    }

    pub(crate) fn peer_v4() -> impl Strategy<Value = ResponsePeer<Ipv4Addr>> {
        (any::<u32>(), any::<u16>()).prop_map(|(ip, port)| ResponsePeer {
            ip: Ipv4Addr::from(ip),
            port,
        })
    }

    pub(crate) fn peer_v6() -> impl Strategy<Value = ResponsePeer<Ipv6Addr>> {
        (any::<u128>(), any::<u16>()).prop_map(|(ip, port)| ResponsePeer {
            ip: Ipv6Addr::from(ip),
            port,
        })
    }

    #[test]
    fn reader_reads_big_endian_and_stops_at_the_end() {
        let bytes = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u16(), Some(0x0102));
        assert_eq!(r.u32(), Some(0x0304_0506));
        // Only one byte left: a wider read fails and consumes nothing.
        assert_eq!(r.i32(), None);
        assert_eq!(r.rest(), &[0x07]);
        assert_eq!(r.array::<1>(), Some([0x07]));
        assert_eq!(r.u16(), None);
        assert_eq!(r.i64(), None);
        assert_eq!(r.array::<0>(), Some([]));
    }

    #[test]
    fn reader_signed_values() {
        let bytes = [0xff; 12];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.i64(), Some(-1));
        assert_eq!(r.i32(), Some(-1));
    }
}
