//! Responses a UDP tracker sends: connect, announce (IPv4 or IPv6 peers), scrape and
//! error. Writing never allocates beyond what the output buffer itself does; parsing,
//! which the load tester uses to count malformed answers, is strict about lengths and
//! never panics.
//!
//! Wire formats: BEP 15 <https://www.bittorrent.org/beps/bep_0015.html> (its IPv6
//! section gives the 18-byte peer entries).

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};

use tracker_types::{Ip, ResponsePeer};

use crate::common::{ConnectionId, Reader, TransactionId, action};

/// Bytes of an announce response before its peers (BEP 15, "Announce"): action,
/// transaction id, interval, leechers and seeders, 4 bytes each.
pub const ANNOUNCE_RESPONSE_HEADER_LEN: usize = 20;
/// Bytes of one peer in an IPv4 announce response: address and port.
pub const IPV4_PEER_LEN: usize = 4 + 2;
/// Bytes of one peer in an IPv6 announce response: address and port.
pub const IPV6_PEER_LEN: usize = 16 + 2;

/// Bytes of an IPv4 header without options.
const IPV4_HEADER_LEN: usize = 20;
/// Bytes of an IPv6 header without extension headers.
const IPV6_HEADER_LEN: usize = 40;
/// Bytes of a UDP header.
const UDP_HEADER_LEN: usize = 8;

/// The most peers an announce response can carry in one datagram that a link with
/// this `mtu` (in bytes, IP header included) sends without IP fragmentation; `ipv4`
/// picks the family, which sets both the IP header and the peer size. 0 when even an
/// empty response does not fit.
pub const fn max_announce_peers(mtu: usize, ipv4: bool) -> usize {
    let (ip_header, peer) = if ipv4 {
        (IPV4_HEADER_LEN, IPV4_PEER_LEN)
    } else {
        (IPV6_HEADER_LEN, IPV6_PEER_LEN)
    };
    mtu.saturating_sub(ip_header + UDP_HEADER_LEN + ANNOUNCE_RESPONSE_HEADER_LEN) / peer
}

/// The most peers an IPv4 announce response carries unfragmented on a 1500-byte MTU
/// (Ethernet): `(1500 - 20 - 8 - 20) / 6`.
pub const MAX_ANNOUNCE_PEERS_IPV4: usize = max_announce_peers(1500, true);
/// The most peers an IPv6 announce response carries unfragmented on a 1500-byte MTU
/// (Ethernet): `(1500 - 40 - 8 - 20) / 18`, rounded down.
pub const MAX_ANNOUNCE_PEERS_IPV6: usize = max_announce_peers(1500, false);

/// Any response a UDP tracker can send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Answer to a connect request.
    Connect(ConnectResponse),
    /// Answer to an announce that arrived over IPv4: 6-byte peer entries.
    AnnounceIpv4(AnnounceResponse<Ipv4Addr>),
    /// Answer to an announce that arrived over IPv6: 18-byte peer entries.
    AnnounceIpv6(AnnounceResponse<Ipv6Addr>),
    /// Answer to a scrape request.
    Scrape(ScrapeResponse),
    /// A request could not be served.
    Error(ErrorResponse),
}

/// A connect response (BEP 15, "Connect"): action 0, transaction id, connection id;
/// 16 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectResponse {
    /// The transaction id of the connect request.
    pub transaction_id: TransactionId,
    /// The id the client must send with its announces and scrapes.
    pub connection_id: ConnectionId,
}

/// An announce response (BEP 15, "Announce"): action 1, transaction id, interval,
/// leechers, seeders, then the peers; 20 bytes plus 6 per IPv4 peer or 18 per IPv6
/// peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceResponse<I: Ip> {
    /// The transaction id of the announce request.
    pub transaction_id: TransactionId,
    /// Seconds the client should wait before announcing again.
    pub announce_interval: i32,
    /// Peers in the swarm still downloading.
    pub leechers: i32,
    /// Peers in the swarm with the whole torrent.
    pub seeders: i32,
    /// Peers for the client to connect to.
    pub peers: Vec<ResponsePeer<I>>,
}

/// An announce response whose peers are borrowed, for a writer that keeps the peers of
/// many responses in one buffer: writing it allocates nothing.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AnnounceResponseRef<'a, I: Ip> {
    /// The transaction id of the announce request.
    pub transaction_id: TransactionId,
    /// Seconds the client should wait before announcing again.
    pub announce_interval: i32,
    /// Peers in the swarm still downloading.
    pub leechers: i32,
    /// Peers in the swarm with the whole torrent.
    pub seeders: i32,
    /// Peers for the client to connect to.
    pub peers: &'a [ResponsePeer<I>],
}

impl AnnounceResponseRef<'_, Ipv4Addr> {
    /// Writes the response exactly as [`Response::AnnounceIpv4`] would.
    ///
    /// # Errors
    /// Only those of `out`.
    pub fn write_bytes(&self, out: &mut impl Write) -> io::Result<()> {
        write_announce(self, out)
    }
}

impl AnnounceResponseRef<'_, Ipv6Addr> {
    /// Writes the response exactly as [`Response::AnnounceIpv6`] would.
    ///
    /// # Errors
    /// Only those of `out`.
    pub fn write_bytes(&self, out: &mut impl Write) -> io::Result<()> {
        write_announce(self, out)
    }
}

impl<I: Ip> AnnounceResponse<I> {
    /// The same response with its peers borrowed.
    pub fn as_ref(&self) -> AnnounceResponseRef<'_, I> {
        AnnounceResponseRef {
            transaction_id: self.transaction_id,
            announce_interval: self.announce_interval,
            leechers: self.leechers,
            seeders: self.seeders,
            peers: &self.peers,
        }
    }
}

/// One torrent's numbers in a scrape response; the default (all zeros) is what an
/// unknown torrent answers.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct TorrentScrapeStatistics {
    /// Peers with the whole torrent.
    pub seeders: i32,
    /// Times the tracker was told of a completed download.
    pub completed: i32,
    /// Peers still downloading.
    pub leechers: i32,
}

/// A scrape response (BEP 15, "Scrape"): action 2, transaction id, then seeders,
/// completed and leechers for each info hash of the request, in its order; 8 bytes
/// plus 12 per torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeResponse {
    /// The transaction id of the scrape request.
    pub transaction_id: TransactionId,
    /// One entry per info hash of the request, in the same order.
    pub torrent_stats: Vec<TorrentScrapeStatistics>,
}

/// An error response (BEP 15, "Errors"): action 3, transaction id, then the message as
/// UTF-8 bytes up to the end of the packet, with no terminator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    /// The transaction id of the failed request.
    pub transaction_id: TransactionId,
    /// A human-readable reason. Borrowed for the tracker's fixed messages, so that
    /// answering an error does not allocate.
    pub message: Cow<'static, str>,
}

/// Why bytes are not a well-formed tracker response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseParseError {
    /// Fewer than the 8 bytes of action and transaction id.
    TooShort {
        /// Length of the packet.
        len: usize,
    },
    /// The action is not 0–3.
    UnknownAction {
        /// The action read.
        action: i32,
    },
    /// The length does not fit the layout of the action's message: a connect response
    /// that is not 16 bytes, an announce response that is shorter than 20 bytes or
    /// whose peers are not a whole number of entries, or a scrape response that is not
    /// 8 bytes plus a multiple of 12.
    BadLength {
        /// The action read.
        action: i32,
        /// Length of the packet.
        len: usize,
    },
}

impl fmt::Display for ResponseParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => write!(f, "response too short ({len} bytes)"),
            Self::UnknownAction { action } => write!(f, "unknown response action {action}"),
            Self::BadLength { action, len } => {
                write!(f, "wrong length {len} for response action {action}")
            }
        }
    }
}

impl std::error::Error for ResponseParseError {}

impl Response {
    /// The transaction id the response answers.
    pub fn transaction_id(&self) -> TransactionId {
        match self {
            Self::Connect(r) => r.transaction_id,
            Self::AnnounceIpv4(r) => r.transaction_id,
            Self::AnnounceIpv6(r) => r.transaction_id,
            Self::Scrape(r) => r.transaction_id,
            Self::Error(r) => r.transaction_id,
        }
    }

    /// Writes the response as a tracker sends it (BEP 15). Nothing is allocated here:
    /// into a `Vec` with enough capacity, or a `Cursor<&mut [u8]>`, this only copies.
    ///
    /// # Errors
    ///
    /// Only those of `out`, such as a full `Cursor<&mut [u8]>`.
    pub fn write_bytes(&self, out: &mut impl Write) -> io::Result<()> {
        match self {
            Self::Connect(r) => {
                write_header(out, action::CONNECT, r.transaction_id)?;
                out.write_all(&r.connection_id.0.to_be_bytes())
            }
            Self::AnnounceIpv4(r) => write_announce(&r.as_ref(), out),
            Self::AnnounceIpv6(r) => write_announce(&r.as_ref(), out),
            Self::Scrape(r) => {
                write_header(out, action::SCRAPE, r.transaction_id)?;
                for s in &r.torrent_stats {
                    // One 12-byte copy per torrent rather than three small ones.
                    let [s0, s1, s2, s3] = s.seeders.to_be_bytes();
                    let [c0, c1, c2, c3] = s.completed.to_be_bytes();
                    let [l0, l1, l2, l3] = s.leechers.to_be_bytes();
                    out.write_all(&[s0, s1, s2, s3, c0, c1, c2, c3, l0, l1, l2, l3])?;
                }
                Ok(())
            }
            Self::Error(r) => {
                write_header(out, action::ERROR, r.transaction_id)?;
                out.write_all(r.message.as_bytes())
            }
        }
    }

    /// Parses a datagram received from a tracker. `ipv4` says whether announce peers
    /// are 6-byte (IPv4) or 18-byte (IPv6) entries: the packet does not say, the
    /// address family it travelled over does.
    ///
    /// Strict, because a load tester counts malformed answers with it; the one leniency
    /// is that an error message that is not UTF-8 is converted lossily. A scrape
    /// response with no statistics is well-formed here: whether the count matches the
    /// request is for the caller to check.
    ///
    /// # Errors
    ///
    /// [`ResponseParseError::TooShort`] below 8 bytes,
    /// [`ResponseParseError::UnknownAction`] for an action other than 0–3, and
    /// [`ResponseParseError::BadLength`] when the length does not match the action's
    /// layout (BEP 15).
    pub fn parse_bytes(bytes: &[u8], ipv4: bool) -> Result<Self, ResponseParseError> {
        let len = bytes.len();
        let mut r = Reader::new(bytes);
        let (Some(action), Some(transaction_id)) = (r.i32(), r.i32()) else {
            return Err(ResponseParseError::TooShort { len });
        };
        let transaction_id = TransactionId(transaction_id);
        let bad_length = ResponseParseError::BadLength { action, len };

        match action {
            action::CONNECT => match (r.i64(), r.rest().is_empty()) {
                (Some(connection_id), true) => Ok(Self::Connect(ConnectResponse {
                    transaction_id,
                    connection_id: ConnectionId(connection_id),
                })),
                _ => Err(bad_length),
            },
            action::ANNOUNCE => {
                let (Some(announce_interval), Some(leechers), Some(seeders)) =
                    (r.i32(), r.i32(), r.i32())
                else {
                    return Err(bad_length);
                };
                let header = (transaction_id, announce_interval, leechers, seeders);
                let peers = r.rest();
                let response = if ipv4 {
                    parse_announce(header, peers).map(Self::AnnounceIpv4)
                } else {
                    parse_announce(header, peers).map(Self::AnnounceIpv6)
                };
                response.ok_or(bad_length)
            }
            action::SCRAPE => {
                let (stats, partial) = r.rest().as_chunks::<12>();
                if !partial.is_empty() {
                    return Err(bad_length);
                }
                let torrent_stats = stats
                    .iter()
                    .map(|entry| {
                        let [s0, s1, s2, s3, c0, c1, c2, c3, l0, l1, l2, l3] = *entry;
                        TorrentScrapeStatistics {
                            seeders: i32::from_be_bytes([s0, s1, s2, s3]),
                            completed: i32::from_be_bytes([c0, c1, c2, c3]),
                            leechers: i32::from_be_bytes([l0, l1, l2, l3]),
                        }
                    })
                    .collect();
                Ok(Self::Scrape(ScrapeResponse {
                    transaction_id,
                    torrent_stats,
                }))
            }
            action::ERROR => Ok(Self::Error(ErrorResponse {
                transaction_id,
                message: Cow::Owned(String::from_utf8_lossy(r.rest()).into_owned()),
            })),
            _ => Err(ResponseParseError::UnknownAction { action }),
        }
    }
}

fn write_header(
    out: &mut impl Write,
    action: i32,
    transaction_id: TransactionId,
) -> io::Result<()> {
    out.write_all(&action.to_be_bytes())?;
    out.write_all(&transaction_id.0.to_be_bytes())
}

fn write_announce<I: Ip>(r: &AnnounceResponseRef<'_, I>, out: &mut impl Write) -> io::Result<()>
where
    ResponsePeer<I>: PeerWire,
{
    write_header(out, action::ANNOUNCE, r.transaction_id)?;
    out.write_all(&r.announce_interval.to_be_bytes())?;
    out.write_all(&r.leechers.to_be_bytes())?;
    out.write_all(&r.seeders.to_be_bytes())?;
    for peer in r.peers {
        peer.write(out)?;
    }
    Ok(())
}

/// A peer entry's wire form. `Ip` (from `tracker_types`) knows nothing of bytes, so
/// the two families are spelled out here.
trait PeerWire: Sized {
    /// Bytes of one entry: the address, then the port.
    const LEN: usize;

    fn write(&self, out: &mut impl Write) -> io::Result<()>;

    /// Reads one entry of exactly [`PeerWire::LEN`] bytes.
    fn read(entry: &[u8]) -> Option<Self>;
}

impl PeerWire for ResponsePeer<Ipv4Addr> {
    const LEN: usize = 6;

    fn write(&self, out: &mut impl Write) -> io::Result<()> {
        // One 6-byte copy instead of two small ones: this is the hottest loop of the
        // tracker's answer path.
        let [a, b, c, d] = self.ip.octets();
        let [p0, p1] = self.port.to_be_bytes();
        out.write_all(&[a, b, c, d, p0, p1])
    }

    fn read(entry: &[u8]) -> Option<Self> {
        let (ip, port) = entry.split_first_chunk::<4>()?;
        Some(Self {
            ip: Ipv4Addr::from(*ip),
            port: u16::from_be_bytes(*port.first_chunk()?),
        })
    }
}

impl PeerWire for ResponsePeer<Ipv6Addr> {
    const LEN: usize = 18;

    fn write(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.ip.octets())?;
        out.write_all(&self.port.to_be_bytes())
    }

    fn read(entry: &[u8]) -> Option<Self> {
        let (ip, port) = entry.split_first_chunk::<16>()?;
        Some(Self {
            ip: Ipv6Addr::from(*ip),
            port: u16::from_be_bytes(*port.first_chunk()?),
        })
    }
}

/// The announce response with the given header fields (transaction id, interval,
/// leechers, seeders); `None` unless `peers` is a whole number of entries.
fn parse_announce<I: Ip>(
    (transaction_id, announce_interval, leechers, seeders): (TransactionId, i32, i32, i32),
    peers: &[u8],
) -> Option<AnnounceResponse<I>>
where
    ResponsePeer<I>: PeerWire,
{
    let entries = peers.chunks_exact(<ResponsePeer<I> as PeerWire>::LEN);
    if !entries.remainder().is_empty() {
        return None;
    }
    let mut parsed = Vec::with_capacity(entries.len());
    for entry in entries {
        parsed.push(<ResponsePeer<I> as PeerWire>::read(entry)?);
    }
    Some(AnnounceResponse {
        transaction_id,
        announce_interval,
        leechers,
        seeders,
        peers: parsed,
    })
}

impl From<ConnectResponse> for Response {
    fn from(r: ConnectResponse) -> Self {
        Self::Connect(r)
    }
}

impl From<AnnounceResponse<Ipv4Addr>> for Response {
    fn from(r: AnnounceResponse<Ipv4Addr>) -> Self {
        Self::AnnounceIpv4(r)
    }
}

impl From<AnnounceResponse<Ipv6Addr>> for Response {
    fn from(r: AnnounceResponse<Ipv6Addr>) -> Self {
        Self::AnnounceIpv6(r)
    }
}

impl From<ScrapeResponse> for Response {
    fn from(r: ScrapeResponse) -> Self {
        Self::Scrape(r)
    }
}

impl From<ErrorResponse> for Response {
    fn from(r: ErrorResponse) -> Self {
        Self::Error(r)
    }
}

#[cfg(test)]
mod tests {
    //! Byte layouts from BEP 15: <https://www.bittorrent.org/beps/bep_0015.html>.

    use super::*;

    /// The peer ceilings, checked against what the writer really produces.
    #[test]
    fn max_announce_peers_fill_a_1500_byte_mtu_and_no_more() {
        assert_eq!(MAX_ANNOUNCE_PEERS_IPV4, 242);
        assert_eq!(MAX_ANNOUNCE_PEERS_IPV6, 79);
        // The bytes of an announce response with n peers, written by the real writer.
        fn written<I: Ip>(n: usize, ip: I, wrap: fn(AnnounceResponse<I>) -> Response) -> usize {
            let response = wrap(AnnounceResponse {
                transaction_id: TransactionId(1),
                announce_interval: 1,
                leechers: 1,
                seeders: 1,
                peers: vec![ResponsePeer { ip, port: 1 }; n],
            });
            write(&response).len()
        }
        let v4 = |n| written(n, Ipv4Addr::LOCALHOST, Response::AnnounceIpv4);
        let v6 = |n| written(n, Ipv6Addr::LOCALHOST, Response::AnnounceIpv6);
        // UDP payload room on a 1500-byte MTU: minus the IP and UDP headers.
        let (room_v4, room_v6) = (1500 - 20 - 8, 1500 - 40 - 8);
        assert!(v4(MAX_ANNOUNCE_PEERS_IPV4) <= room_v4);
        assert!(v4(MAX_ANNOUNCE_PEERS_IPV4 + 1) > room_v4);
        assert!(v6(MAX_ANNOUNCE_PEERS_IPV6) <= room_v6);
        assert!(v6(MAX_ANNOUNCE_PEERS_IPV6 + 1) > room_v6);
        assert_eq!(max_announce_peers(0, true), 0);
        assert_eq!(max_announce_peers(67, false), 0);
        assert_eq!(max_announce_peers(1280, false), (1280 - 68) / 18);
    }
    use crate::common::tests as strategies;
    use proptest::prelude::*;

    fn write(response: &Response) -> Vec<u8> {
        let mut out = Vec::new();
        response.write_bytes(&mut out).unwrap();
        out
    }

    /// Parses `bytes` both ways and checks that writing `expected` gives them back.
    fn check_known_answer(bytes: &[u8], ipv4: bool, expected: Response) {
        assert_eq!(Response::parse_bytes(bytes, ipv4), Ok(expected.clone()));
        assert_eq!(write(&expected), bytes);
    }

    // --- connect ---

    #[rustfmt::skip]
    const CONNECT_RESPONSE: [u8; 16] = [
        0x00, 0x00, 0x00, 0x00,                         // action: 0 = connect
        0x12, 0x34, 0x56, 0x78,                         // transaction_id
        0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10, // connection_id
    ];

    #[test]
    fn connect_response_known_answer() {
        let expected = Response::Connect(ConnectResponse {
            transaction_id: TransactionId(0x1234_5678),
            connection_id: ConnectionId(0xfedc_ba98_7654_3210_u64 as i64),
        });
        check_known_answer(&CONNECT_RESPONSE, true, expected.clone());
        check_known_answer(&CONNECT_RESPONSE, false, expected);
    }

    #[test]
    fn connect_response_must_be_16_bytes() {
        let mut long = CONNECT_RESPONSE.to_vec();
        long.push(0);
        for bytes in [&CONNECT_RESPONSE[..15], &long[..]] {
            assert_eq!(
                Response::parse_bytes(bytes, true),
                Err(ResponseParseError::BadLength {
                    action: 0,
                    len: bytes.len()
                })
            );
        }
    }

    // --- announce ---

    #[rustfmt::skip]
    const ANNOUNCE_RESPONSE_V4: [u8; 32] = [
        0x00, 0x00, 0x00, 0x01,             // action: 1 = announce
        0x11, 0x22, 0x33, 0x44,             // transaction_id
        0x00, 0x00, 0x07, 0x08,             // interval: 1800 s
        0x00, 0x00, 0x00, 0x03,             // leechers: 3
        0x00, 0x00, 0x00, 0x07,             // seeders: 7
        0xc0, 0x00, 0x02, 0x01, 0x1a, 0xe1, // peer 1: 192.0.2.1, port 6881
        0xc6, 0x33, 0x64, 0x07, 0xc8, 0xd5, // peer 2: 198.51.100.7, port 51413
    ];

    #[test]
    fn announce_response_v4_known_answer() {
        let expected = Response::AnnounceIpv4(AnnounceResponse {
            transaction_id: TransactionId(0x1122_3344),
            announce_interval: 1800,
            leechers: 3,
            seeders: 7,
            peers: vec![
                ResponsePeer {
                    ip: Ipv4Addr::new(192, 0, 2, 1),
                    port: 6881,
                },
                ResponsePeer {
                    ip: Ipv4Addr::new(198, 51, 100, 7),
                    port: 51413,
                },
            ],
        });
        check_known_answer(&ANNOUNCE_RESPONSE_V4, true, expected);
    }

    #[rustfmt::skip]
    const ANNOUNCE_RESPONSE_V6: [u8; 38] = [
        0x00, 0x00, 0x00, 0x01,             // action: 1 = announce
        0x11, 0x22, 0x33, 0x44,             // transaction_id
        0x00, 0x00, 0x07, 0x08,             // interval: 1800 s
        0x00, 0x00, 0x00, 0x00,             // leechers: 0
        0x00, 0x00, 0x00, 0x01,             // seeders: 1
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // peer 1 ip: 2001:db8::1
        0x1a, 0xe1,                         // peer 1 port: 6881
    ];

    #[test]
    fn announce_response_v6_known_answer() {
        let expected = Response::AnnounceIpv6(AnnounceResponse {
            transaction_id: TransactionId(0x1122_3344),
            announce_interval: 1800,
            leechers: 0,
            seeders: 1,
            peers: vec![ResponsePeer {
                ip: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
                port: 6881,
            }],
        });
        check_known_answer(&ANNOUNCE_RESPONSE_V6, false, expected);
    }

    #[test]
    fn announce_response_lengths_are_strict() {
        // 18 bytes of peers is three IPv4 entries but one IPv6 entry...
        assert!(matches!(
            Response::parse_bytes(&ANNOUNCE_RESPONSE_V6, true),
            Ok(Response::AnnounceIpv4(AnnounceResponse { peers, .. })) if peers.len() == 3
        ));
        // ...while 12 bytes of peers is two IPv4 entries and no whole IPv6 entry.
        assert_eq!(
            Response::parse_bytes(&ANNOUNCE_RESPONSE_V4, false),
            Err(ResponseParseError::BadLength { action: 1, len: 32 })
        );
        for len in (8..20).chain([21, 25, 31]) {
            assert_eq!(
                Response::parse_bytes(&ANNOUNCE_RESPONSE_V4[..len], true),
                Err(ResponseParseError::BadLength { action: 1, len }),
                "length {len}"
            );
        }
        // No peers at all is fine.
        assert!(matches!(
            Response::parse_bytes(&ANNOUNCE_RESPONSE_V4[..20], true),
            Ok(Response::AnnounceIpv4(AnnounceResponse { peers, .. })) if peers.is_empty()
        ));
    }

    // --- scrape ---

    #[rustfmt::skip]
    const SCRAPE_RESPONSE: [u8; 32] = [
        0x00, 0x00, 0x00, 0x02, // action: 2 = scrape
        0x11, 0x22, 0x33, 0x44, // transaction_id
        0x00, 0x00, 0x00, 0x0a, // torrent 1 seeders: 10
        0x00, 0x00, 0x01, 0x00, // torrent 1 completed: 256
        0x00, 0x00, 0x00, 0x05, // torrent 1 leechers: 5
        0x00, 0x00, 0x00, 0x00, // torrent 2 seeders: 0
        0x00, 0x00, 0x00, 0x00, // torrent 2 completed: 0
        0x00, 0x00, 0x00, 0x01, // torrent 2 leechers: 1
    ];

    #[test]
    fn scrape_response_known_answer() {
        let expected = Response::Scrape(ScrapeResponse {
            transaction_id: TransactionId(0x1122_3344),
            torrent_stats: vec![
                TorrentScrapeStatistics {
                    seeders: 10,
                    completed: 256,
                    leechers: 5,
                },
                TorrentScrapeStatistics {
                    seeders: 0,
                    completed: 0,
                    leechers: 1,
                },
            ],
        });
        check_known_answer(&SCRAPE_RESPONSE, true, expected);
    }

    #[test]
    fn scrape_response_lengths_are_strict() {
        for len in [9, 19, 21, 31] {
            assert_eq!(
                Response::parse_bytes(&SCRAPE_RESPONSE[..len], true),
                Err(ResponseParseError::BadLength { action: 2, len })
            );
        }
    }

    // --- error ---

    #[rustfmt::skip]
    const ERROR_RESPONSE: [u8; 22] = [
        0x00, 0x00, 0x00, 0x03, // action: 3 = error
        0x11, 0x22, 0x33, 0x44, // transaction_id
        b'u', b'n', b'k', b'n', b'o', b'w', b'n', b' ',
        b'a', b'c', b't', b'i', b'o', b'n',             // message: "unknown action", no terminator
    ];

    #[test]
    fn error_response_known_answer() {
        let expected = Response::Error(ErrorResponse {
            transaction_id: TransactionId(0x1122_3344),
            message: Cow::Borrowed("unknown action"),
        });
        check_known_answer(&ERROR_RESPONSE, true, expected);
    }

    #[test]
    fn error_response_non_utf8_is_lossy() {
        let mut bytes = ERROR_RESPONSE[..8].to_vec();
        bytes.extend_from_slice(&[b'o', b'k', 0xff, b'!']);
        assert_eq!(
            Response::parse_bytes(&bytes, true),
            Ok(Response::Error(ErrorResponse {
                transaction_id: TransactionId(0x1122_3344),
                message: Cow::Borrowed("ok\u{fffd}!"),
            }))
        );
        // An empty message is still an error response.
        assert!(matches!(
            Response::parse_bytes(&ERROR_RESPONSE[..8], true),
            Ok(Response::Error(ErrorResponse { message, .. })) if message.is_empty()
        ));
    }

    // --- anything ---

    #[test]
    fn short_and_unknown_responses() {
        for len in 0..8 {
            assert_eq!(
                Response::parse_bytes(&ERROR_RESPONSE[..len], false),
                Err(ResponseParseError::TooShort { len })
            );
        }
        let mut bytes = ERROR_RESPONSE;
        bytes[3] = 4;
        let err = Response::parse_bytes(&bytes, true).unwrap_err();
        assert_eq!(err, ResponseParseError::UnknownAction { action: 4 });
        assert_eq!(err.to_string(), "unknown response action 4");
    }

    #[test]
    fn writing_into_a_full_cursor_fails_without_panicking() {
        let mut buf = [0u8; 10];
        let mut cursor = io::Cursor::new(&mut buf[..]);
        let response = Response::Connect(ConnectResponse {
            transaction_id: TransactionId(1),
            connection_id: ConnectionId(2),
        });
        assert!(response.write_bytes(&mut cursor).is_err());
    }

    fn announce_strategy<I: Ip>(
        peer: impl Strategy<Value = ResponsePeer<I>>,
    ) -> impl Strategy<Value = AnnounceResponse<I>> {
        (
            strategies::transaction_id(),
            any::<i32>(),
            any::<i32>(),
            any::<i32>(),
            proptest::collection::vec(peer, 0..100),
        )
            .prop_map(
                |(transaction_id, announce_interval, leechers, seeders, peers)| AnnounceResponse {
                    transaction_id,
                    announce_interval,
                    leechers,
                    seeders,
                    peers,
                },
            )
    }

    fn response_strategy() -> impl Strategy<Value = (Response, bool)> {
        let connect = (strategies::transaction_id(), strategies::connection_id()).prop_map(
            |(transaction_id, connection_id)| {
                Response::Connect(ConnectResponse {
                    transaction_id,
                    connection_id,
                })
            },
        );
        let stats = (any::<i32>(), any::<i32>(), any::<i32>()).prop_map(
            |(seeders, completed, leechers)| TorrentScrapeStatistics {
                seeders,
                completed,
                leechers,
            },
        );
        let scrape = (
            strategies::transaction_id(),
            proptest::collection::vec(stats, 0..=74),
        )
            .prop_map(|(transaction_id, torrent_stats)| {
                Response::Scrape(ScrapeResponse {
                    transaction_id,
                    torrent_stats,
                })
            });
        let error = (strategies::transaction_id(), any::<String>()).prop_map(
            |(transaction_id, message)| {
                Response::Error(ErrorResponse {
                    transaction_id,
                    message: Cow::Owned(message),
                })
            },
        );
        prop_oneof![
            (connect, any::<bool>()),
            (
                announce_strategy(strategies::peer_v4()).prop_map(Response::AnnounceIpv4),
                Just(true)
            ),
            (
                announce_strategy(strategies::peer_v6()).prop_map(Response::AnnounceIpv6),
                Just(false)
            ),
            (scrape, any::<bool>()),
            (error, any::<bool>()),
        ]
    }

    proptest! {
        #[test]
        fn response_round_trip((response, ipv4) in response_strategy()) {
            let bytes = write(&response);
            prop_assert_eq!(Response::parse_bytes(&bytes, ipv4), Ok(response));
        }

        #[test]
        fn announce_v4_round_trip(announce in announce_strategy(strategies::peer_v4())) {
            let response = Response::AnnounceIpv4(announce);
            let bytes = write(&response);
            prop_assert_eq!(bytes.len(), 20 + 6 * match &response {
                Response::AnnounceIpv4(r) => r.peers.len(),
                _ => unreachable!(),
            });
            prop_assert_eq!(Response::parse_bytes(&bytes, true), Ok(response));
        }

        #[test]
        fn announce_v6_round_trip(announce in announce_strategy(strategies::peer_v6())) {
            let response = Response::AnnounceIpv6(announce);
            let bytes = write(&response);
            prop_assert_eq!(Response::parse_bytes(&bytes, false), Ok(response));
        }

        /// The borrowed form writes the same bytes as the owned one.
        #[test]
        fn borrowed_announces_write_the_same_bytes(
            v4 in announce_strategy(strategies::peer_v4()),
            v6 in announce_strategy(strategies::peer_v6()),
        ) {
            let mut borrowed = Vec::new();
            v4.as_ref().write_bytes(&mut borrowed).unwrap();
            prop_assert_eq!(&borrowed, &write(&Response::AnnounceIpv4(v4)));
            borrowed.clear();
            v6.as_ref().write_bytes(&mut borrowed).unwrap();
            prop_assert_eq!(&borrowed, &write(&Response::AnnounceIpv6(v6)));
        }

        /// Should never panic, whatever arrives; what parses survives a round trip.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            for ipv4 in [true, false] {
                if let Ok(response) = Response::parse_bytes(&bytes, ipv4) {
                    prop_assert_eq!(Response::parse_bytes(&write(&response), ipv4), Ok(response));
                }
            }
        }

        /// Random bytes rarely carry a known action; give each one arbitrary bodies.
        #[test]
        fn arbitrary_bodies_never_panic(
            action in 0i32..4,
            body in proptest::collection::vec(any::<u8>(), 0..2048),
        ) {
            let mut bytes = action.to_be_bytes().to_vec();
            bytes.extend_from_slice(&body);
            for ipv4 in [true, false] {
                if let Ok(response) = Response::parse_bytes(&bytes, ipv4) {
                    prop_assert_eq!(Response::parse_bytes(&write(&response), ipv4), Ok(response));
                }
            }
        }
    }
}
