//! Requests a client sends to a UDP tracker: connect, announce (with BEP 41 options) and
//! scrape. Parsing never panics and never reads past a checked length; writing never
//! allocates beyond what the output buffer itself does.
//!
//! Wire formats: BEP 15 <https://www.bittorrent.org/beps/bep_0015.html>, and BEP 41
//! <https://www.bittorrent.org/beps/bep_0041.html> for the options after an announce.

use std::fmt;
use std::io::{self, Write};
use std::net::Ipv4Addr;

use tracker_types::{AnnounceEvent, InfoHash, PasskeyParam, PeerId, split_passkey_path};

use crate::common::{ConnectionId, PROTOCOL_IDENTIFIER, Reader, TransactionId, action};

/// BEP 41 option types.
mod option {
    /// Ends option parsing; one byte, no length.
    pub(super) const END_OF_OPTIONS: u8 = 0x0;
    /// Padding; one byte, no length.
    pub(super) const NOP: u8 = 0x1;
    /// A length byte, then part of the announce URL's path and query.
    pub(super) const URL_DATA: u8 = 0x2;
}

/// The most data one BEP 41 option can carry: its length is a single byte.
const MAX_OPTION_DATA_LEN: usize = u8::MAX as usize;

/// Any request a client can send to a UDP tracker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Ask for a connection id.
    Connect(ConnectRequest),
    /// Join or update a swarm and ask for peers.
    Announce(AnnounceRequest),
    /// Ask for the statistics of one or more torrents.
    Scrape(ScrapeRequest),
}

/// A connect request (BEP 15, "Connect"): 16 bytes, the magic number
/// [`PROTOCOL_IDENTIFIER`], action 0 and a transaction id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Echoed back in the connect response.
    pub transaction_id: TransactionId,
}

/// An announce request (BEP 15, "Announce"): 98 fixed bytes, then optional BEP 41
/// options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// The id the tracker handed out in an earlier connect response.
    pub connection_id: ConnectionId,
    /// Echoed back in the response.
    pub transaction_id: TransactionId,
    /// The torrent being announced.
    pub info_hash: InfoHash,
    /// The announcing peer's id.
    pub peer_id: PeerId,
    /// Bytes downloaded this session.
    pub bytes_downloaded: i64,
    /// Bytes still missing; 0 means the peer is a seeder.
    pub bytes_left: i64,
    /// Bytes uploaded this session.
    pub bytes_uploaded: i64,
    /// Why the peer announces.
    pub event: AnnounceEvent,
    /// The address the peer asks to be listed under. `None` (wire value 0) means "use
    /// the packet's source address". `Some(Ipv4Addr::UNSPECIFIED)` is written as 0, so
    /// it reads back as `None`.
    pub ip_address: Option<Ipv4Addr>,
    /// A random value the client keeps across announces, to recognise it when its
    /// address changes.
    pub key: u32,
    /// How many peers the client wants; -1 (or any negative value) means the tracker's
    /// default.
    pub peers_wanted: i32,
    /// The port the peer listens on.
    pub port: u16,
    /// The data of every BEP 41 URLData option, concatenated in packet order: the path
    /// and query of the announce URL, cut to the `max_url_data_bytes` given to
    /// [`Request::parse_bytes`]. Empty (and not allocated) when there is none.
    pub url_data: Vec<u8>,
}

/// A scrape request (BEP 15, "Scrape"): 16 bytes of header, then 20 bytes per info
/// hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeRequest {
    /// The id the tracker handed out in an earlier connect response.
    pub connection_id: ConnectionId,
    /// Echoed back in the response.
    pub transaction_id: TransactionId,
    /// The torrents asked about, in packet order; statistics are answered in the same
    /// order.
    pub info_hashes: Vec<InfoHash>,
}

/// Why a packet is not a request this crate understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestParseError {
    /// Enough was read to answer with a BEP 15 error packet: the connection id and the
    /// transaction id are those of the packet.
    ///
    /// Answering is the caller's choice: an error packet can be larger than the request
    /// that caused it, so a tracker should only send it to a source whose connection id
    /// it has validated.
    Sendable {
        /// Connection id read from the packet (not validated).
        connection_id: ConnectionId,
        /// Transaction id read from the packet.
        transaction_id: TransactionId,
        /// What was wrong; suitable as the error packet's message.
        err: &'static str,
    },
    /// Too broken to answer: shorter than 16 bytes, or a connect request with the wrong
    /// magic number.
    Unsendable {
        /// What was wrong.
        err: &'static str,
    },
}

impl RequestParseError {
    /// The description of what was wrong, whichever variant this is.
    pub fn message(&self) -> &'static str {
        match self {
            Self::Sendable { err, .. } | Self::Unsendable { err } => err,
        }
    }
}

impl fmt::Display for RequestParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sendable {
                connection_id,
                transaction_id,
                err,
            } => write!(
                f,
                "{err} (connection id {}, transaction id {})",
                connection_id.0, transaction_id.0
            ),
            Self::Unsendable { err } => f.write_str(err),
        }
    }
}

impl std::error::Error for RequestParseError {}

impl Request {
    /// Parses one UDP datagram sent to a tracker.
    ///
    /// The action at offset 8 decides the message (BEP 15). Leniencies, so that every
    /// request a real client may send gets an answer:
    ///
    /// - A connect request may be longer than 16 bytes; the rest is ignored.
    /// - An announce `event` outside 0–3 is read as [`AnnounceEvent::None`].
    /// - An announce `ip` of 0 is read as `None`.
    /// - BEP 41 options after the 98 announce bytes are read as follows. `0x0`
    ///   EndOfOptions stops parsing, and any bytes after it are ignored; so does the end
    ///   of the packet. `0x1` NOP is skipped. `0x2` URLData is followed by a length byte
    ///   and that many bytes of data, and the data of every URLData option is
    ///   concatenated into [`AnnounceRequest::url_data`]. Any other type is, as BEP 41
    ///   lays out for options other than EndOfOptions and NOP, followed by a length byte
    ///   and data: it is skipped. An option whose length runs past the end of the packet
    ///   ends parsing: a URLData keeps the bytes that are there, any other option is
    ///   dropped. So the options never make an announce invalid.
    /// - The concatenated URL data is cut to its first `max_url_data_bytes` bytes, and
    ///   never more than that is allocated, whatever the packet claims: the data is
    ///   sized by the client, the limit by the caller.
    /// - A scrape request's trailing partial info hash (fewer than 20 bytes) is ignored.
    ///   Only the first `max_scrape_torrents` hashes are kept; the tracker answers for
    ///   those. (With `max_scrape_torrents` 0 the request parses with no hashes.)
    ///
    /// # Errors
    ///
    /// - [`RequestParseError::Unsendable`] when the packet is shorter than 16 bytes, or
    ///   is a connect request (action 0) whose first 8 bytes are not
    ///   [`PROTOCOL_IDENTIFIER`].
    /// - [`RequestParseError::Sendable`], carrying the packet's connection and
    ///   transaction ids, when the action is unknown ("unknown action"), an announce is
    ///   shorter than 98 bytes ("announce request too short"), or a scrape carries no
    ///   complete info hash ("no info hashes in scrape").
    pub fn parse_bytes(
        bytes: &[u8],
        max_scrape_torrents: u8,
        max_url_data_bytes: usize,
    ) -> Result<Self, RequestParseError> {
        let mut r = Reader::new(bytes);
        let (Some(first_field), Some(action), Some(transaction_id)) = (r.i64(), r.i32(), r.i32())
        else {
            return Err(RequestParseError::Unsendable {
                err: "request too short",
            });
        };
        let transaction_id = TransactionId(transaction_id);
        // For connect the first field is the magic number, for the others the
        // connection id.
        let connection_id = ConnectionId(first_field);

        match action {
            action::CONNECT => {
                if first_field == PROTOCOL_IDENTIFIER {
                    Ok(Self::Connect(ConnectRequest { transaction_id }))
                } else {
                    Err(RequestParseError::Unsendable {
                        err: "wrong protocol identifier",
                    })
                }
            }
            action::ANNOUNCE => {
                AnnounceRequest::parse_body(connection_id, transaction_id, r, max_url_data_bytes)
                    .map(Self::Announce)
            }
            action::SCRAPE => {
                // Judge emptiness on the packet, not on the kept hashes, so that a
                // limit of 0 is not reported as the client's fault.
                if r.rest().len() < 20 {
                    return Err(RequestParseError::Sendable {
                        connection_id,
                        transaction_id,
                        err: "no info hashes in scrape",
                    });
                }
                Ok(Self::Scrape(ScrapeRequest {
                    connection_id,
                    transaction_id,
                    info_hashes: parse_info_hashes(r.rest(), max_scrape_torrents),
                }))
            }
            _ => Err(RequestParseError::Sendable {
                connection_id,
                transaction_id,
                err: "unknown action",
            }),
        }
    }

    /// Writes the request as a client sends it (BEP 15).
    ///
    /// An announce with non-empty [`AnnounceRequest::url_data`] is followed by BEP 41
    /// URLData options of at most 255 bytes each, then EndOfOptions; with empty
    /// `url_data` it is exactly 98 bytes. A parsed request written back parses to the
    /// same value.
    ///
    /// # Errors
    ///
    /// Only those of `out`, such as a full `Cursor<&mut [u8]>`.
    pub fn write_bytes(&self, out: &mut impl Write) -> io::Result<()> {
        match self {
            Self::Connect(r) => {
                out.write_all(&PROTOCOL_IDENTIFIER.to_be_bytes())?;
                out.write_all(&action::CONNECT.to_be_bytes())?;
                out.write_all(&r.transaction_id.0.to_be_bytes())
            }
            Self::Announce(r) => r.write_bytes(out),
            Self::Scrape(r) => {
                out.write_all(&r.connection_id.0.to_be_bytes())?;
                out.write_all(&action::SCRAPE.to_be_bytes())?;
                out.write_all(&r.transaction_id.0.to_be_bytes())?;
                for hash in &r.info_hashes {
                    out.write_all(&hash.0)?;
                }
                Ok(())
            }
        }
    }
}

impl AnnounceRequest {
    /// The path of the announce URL in [`Self::url_data`]: everything before the first
    /// `?` (BEP 41 carries the URL's path and query). Empty without URL data.
    pub fn url_path(&self) -> &[u8] {
        self.url_data
            .split(|&b| b == b'?')
            .next()
            .unwrap_or_default()
    }

    /// The passkey of a private tracker's announce URL, from the path in the URL data:
    /// `/PASSKEY/announce` or `/announce/PASSKEY` (see
    /// [`tracker_types::split_passkey_path`]; a path naming the
    /// scrape endpoint counts the same, only its passkey segment matters).
    ///
    /// [`PasskeyParam::Missing`] without URL data, for a path without a passkey segment
    /// and for a path of any other shape; [`PasskeyParam::Malformed`] for a passkey
    /// segment that is not 32 characters of `[0-9A-Za-z]`. A passkey URL cut short by
    /// the URL data limit is never read as another passkey: `/PASSKEY/announce` cut is
    /// missing, `/announce/PASSKEY` cut within the passkey is malformed. Never
    /// allocates.
    pub fn passkey(&self) -> PasskeyParam {
        split_passkey_path(self.url_path()).map_or(PasskeyParam::Missing, |path| {
            PasskeyParam::from_segment(path.passkey)
        })
    }

    /// Parses what follows the 16-byte header.
    fn parse_body(
        connection_id: ConnectionId,
        transaction_id: TransactionId,
        mut r: Reader<'_>,
        max_url_data_bytes: usize,
    ) -> Result<Self, RequestParseError> {
        let (
            Some(info_hash),
            Some(peer_id),
            Some(bytes_downloaded),
            Some(bytes_left),
            Some(bytes_uploaded),
            Some(event),
            Some(ip),
            Some(key),
            Some(peers_wanted),
            Some(port),
        ) = (
            r.array(),
            r.array(),
            r.i64(),
            r.i64(),
            r.i64(),
            r.i32(),
            r.u32(),
            r.u32(),
            r.i32(),
            r.u16(),
        )
        else {
            return Err(RequestParseError::Sendable {
                connection_id,
                transaction_id,
                err: "announce request too short",
            });
        };

        Ok(Self {
            connection_id,
            transaction_id,
            info_hash: InfoHash(info_hash),
            peer_id: PeerId(peer_id),
            bytes_downloaded,
            bytes_left,
            bytes_uploaded,
            event: event_from_wire(event),
            ip_address: (ip != 0).then(|| Ipv4Addr::from(ip)),
            key,
            peers_wanted,
            port,
            url_data: url_data(r.rest(), max_url_data_bytes),
        })
    }

    fn write_bytes(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.connection_id.0.to_be_bytes())?;
        out.write_all(&action::ANNOUNCE.to_be_bytes())?;
        out.write_all(&self.transaction_id.0.to_be_bytes())?;
        out.write_all(&self.info_hash.0)?;
        out.write_all(&self.peer_id.0)?;
        out.write_all(&self.bytes_downloaded.to_be_bytes())?;
        out.write_all(&self.bytes_left.to_be_bytes())?;
        out.write_all(&self.bytes_uploaded.to_be_bytes())?;
        out.write_all(&event_to_wire(self.event).to_be_bytes())?;
        let ip = self.ip_address.map_or(0, u32::from);
        out.write_all(&ip.to_be_bytes())?;
        out.write_all(&self.key.to_be_bytes())?;
        out.write_all(&self.peers_wanted.to_be_bytes())?;
        out.write_all(&self.port.to_be_bytes())?;

        if self.url_data.is_empty() {
            return Ok(());
        }
        for chunk in self.url_data.chunks(MAX_OPTION_DATA_LEN) {
            // `chunks` never yields more than MAX_OPTION_DATA_LEN bytes, so this
            // cannot saturate.
            let len = u8::try_from(chunk.len()).unwrap_or(u8::MAX);
            out.write_all(&[option::URL_DATA, len])?;
            out.write_all(chunk)?;
        }
        out.write_all(&[option::END_OF_OPTIONS])
    }
}

/// BEP 15 numbers events 0 none, 1 completed, 2 started, 3 stopped. Anything else is
/// read as a regular announce rather than rejected.
fn event_from_wire(event: i32) -> AnnounceEvent {
    match event {
        1 => AnnounceEvent::Completed,
        2 => AnnounceEvent::Started,
        3 => AnnounceEvent::Stopped,
        _ => AnnounceEvent::None,
    }
}

fn event_to_wire(event: AnnounceEvent) -> i32 {
    match event {
        AnnounceEvent::None => 0,
        AnnounceEvent::Completed => 1,
        AnnounceEvent::Started => 2,
        AnnounceEvent::Stopped => 3,
    }
}

/// Collects the first `max` complete info hashes, allocating exactly once.
fn parse_info_hashes(bytes: &[u8], max: u8) -> Vec<InfoHash> {
    let (hashes, _partial) = bytes.as_chunks::<20>();
    let kept = hashes.get(..usize::from(max)).unwrap_or(hashes);
    kept.iter().map(|hash| InfoHash(*hash)).collect()
}

/// Concatenates the data of the URLData options in `options` (see
/// [`Request::parse_bytes`] for the rules), cut to `max` bytes. Two passes, so the
/// result is allocated once at its exact size (at most `max`), and not at all when
/// there is no URL data.
fn url_data(options: &[u8], max: usize) -> Vec<u8> {
    if max == 0 {
        // Nothing is kept: no need to walk the options.
        return Vec::new();
    }
    let len: usize = UrlDataChunks { rest: options }
        .map(<[u8]>::len)
        .fold(0, usize::saturating_add)
        .min(max);
    if len == 0 {
        return Vec::new();
    }
    let mut data = Vec::with_capacity(len);
    for chunk in (UrlDataChunks { rest: options }) {
        let room = len - data.len();
        data.extend_from_slice(chunk.get(..room).unwrap_or(chunk));
        if data.len() == len {
            break;
        }
    }
    data
}

/// Walks BEP 41 options, yielding the data of each URLData option.
struct UrlDataChunks<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for UrlDataChunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let (&kind, after_kind) = self.rest.split_first()?;
            match kind {
                option::END_OF_OPTIONS => {
                    self.rest = &[];
                    return None;
                }
                option::NOP => self.rest = after_kind,
                _ => {
                    // A type byte with no room for its length: nothing to read.
                    let Some((&len, after_len)) = after_kind.split_first() else {
                        self.rest = &[];
                        return None;
                    };
                    let (data, after_data) = match after_len.split_at_checked(usize::from(len)) {
                        Some(split) => split,
                        // Runs past the end: keep what is there, then stop.
                        None => (after_len, &[][..]),
                    };
                    self.rest = after_data;
                    if kind == option::URL_DATA {
                        return Some(data);
                    }
                }
            }
        }
    }
}

impl From<ConnectRequest> for Request {
    fn from(r: ConnectRequest) -> Self {
        Self::Connect(r)
    }
}

impl From<AnnounceRequest> for Request {
    fn from(r: AnnounceRequest) -> Self {
        Self::Announce(r)
    }
}

impl From<ScrapeRequest> for Request {
    fn from(r: ScrapeRequest) -> Self {
        Self::Scrape(r)
    }
}

#[cfg(test)]
mod tests {
    //! Byte layouts from BEP 15: <https://www.bittorrent.org/beps/bep_0015.html>, and
    //! options from BEP 41: <https://www.bittorrent.org/beps/bep_0041.html>.

    use super::*;
    use crate::common::tests as strategies;
    use proptest::prelude::*;
    use tracker_types::Passkey;

    fn write(request: &Request) -> Vec<u8> {
        let mut out = Vec::new();
        request.write_bytes(&mut out).unwrap();
        out
    }

    // --- connect ---

    #[rustfmt::skip]
    const CONNECT_REQUEST: [u8; 16] = [
        0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, // protocol_id: 0x41727101980
        0x00, 0x00, 0x00, 0x00,                         // action: 0 = connect
        0x12, 0x34, 0x56, 0x78,                         // transaction_id
    ];

    #[test]
    fn connect_request_known_answer() {
        let expected = Request::Connect(ConnectRequest {
            transaction_id: TransactionId(0x1234_5678),
        });
        assert_eq!(
            Request::parse_bytes(&CONNECT_REQUEST, 74, usize::MAX),
            Ok(expected.clone())
        );
        assert_eq!(write(&expected), CONNECT_REQUEST);
    }

    #[test]
    fn connect_request_may_be_longer() {
        let mut bytes = CONNECT_REQUEST.to_vec();
        bytes.extend_from_slice(&[0xff; 30]);
        assert_eq!(
            Request::parse_bytes(&bytes, 74, usize::MAX),
            Request::parse_bytes(&CONNECT_REQUEST, 74, usize::MAX)
        );
    }

    #[test]
    fn connect_request_wrong_magic_is_unsendable() {
        let mut bytes = CONNECT_REQUEST;
        bytes[7] = 0x81;
        assert_eq!(
            Request::parse_bytes(&bytes, 74, usize::MAX),
            Err(RequestParseError::Unsendable {
                err: "wrong protocol identifier"
            })
        );
    }

    // --- announce ---

    #[rustfmt::skip]
    const ANNOUNCE_REQUEST: [u8; 98] = [
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, // connection_id
        0x00, 0x00, 0x00, 0x01,                         // action: 1 = announce
        0x11, 0x22, 0x33, 0x44,                         // transaction_id
        0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19,
        0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, // info_hash
        0x2d, 0x53, 0x48, 0x30, 0x31, 0x30, 0x30, 0x2d, 0x30, 0x31,
        0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x61, 0x62, // peer_id: "-SH0100-0123456789ab"
        0x00, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x42, 0x40, // downloaded: 1_000_000
        0x00, 0x00, 0x00, 0x01, 0x2a, 0x05, 0xf2, 0x00, // left: 5_000_000_000
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, // uploaded: 256
        0x00, 0x00, 0x00, 0x02,                         // event: 2 = started
        0x00, 0x00, 0x00, 0x00,                         // ip: 0 = use the source address
        0xde, 0xad, 0xbe, 0xef,                         // key
        0xff, 0xff, 0xff, 0xff,                         // num_want: -1 = default
        0x1a, 0xe1,                                     // port: 6881
    ];

    fn expected_announce() -> AnnounceRequest {
        AnnounceRequest {
            connection_id: ConnectionId(0x0123_4567_89ab_cdef),
            transaction_id: TransactionId(0x1122_3344),
            info_hash: InfoHash(std::array::from_fn(|i| 0x10 + i as u8)),
            peer_id: PeerId(*b"-SH0100-0123456789ab"),
            bytes_downloaded: 1_000_000,
            bytes_left: 5_000_000_000,
            bytes_uploaded: 256,
            event: AnnounceEvent::Started,
            ip_address: None,
            key: 0xdead_beef,
            peers_wanted: -1,
            port: 6881,
            url_data: Vec::new(),
        }
    }

    fn announce_with_options(options: &[u8]) -> Vec<u8> {
        let mut bytes = ANNOUNCE_REQUEST.to_vec();
        bytes.extend_from_slice(options);
        bytes
    }

    #[test]
    fn announce_request_known_answer() {
        let expected = Request::Announce(expected_announce());
        assert_eq!(
            Request::parse_bytes(&ANNOUNCE_REQUEST, 74, usize::MAX),
            Ok(expected.clone())
        );
        assert_eq!(write(&expected), ANNOUNCE_REQUEST);
    }

    #[test]
    fn announce_request_ip_and_events() {
        let mut bytes = ANNOUNCE_REQUEST;
        bytes[84..88].copy_from_slice(&[192, 168, 1, 2]); // ip
        for (wire, event) in [
            (0u32, AnnounceEvent::None),
            (1, AnnounceEvent::Completed),
            (2, AnnounceEvent::Started),
            (3, AnnounceEvent::Stopped),
            (4, AnnounceEvent::None),
            (0xffff_ffff, AnnounceEvent::None),
        ] {
            bytes[80..84].copy_from_slice(&wire.to_be_bytes()); // event
            let Ok(Request::Announce(r)) = Request::parse_bytes(&bytes, 74, usize::MAX) else {
                panic!("announce with event {wire} did not parse");
            };
            assert_eq!(r.event, event);
            assert_eq!(r.ip_address, Some(Ipv4Addr::new(192, 168, 1, 2)));
        }
    }

    #[rustfmt::skip]
    const BEP41_OPTIONS: [u8; 23] = [
        0x01,                                     // NOP
        0x02, 0x07,                               // URLData, length 7
        b'/', b'a', b'n', b'n', b'o', b'u', b'n', //   "/announ"
        0x02, 0x06,                               // URLData, length 6
        b'c', b'e', b'?', b'k', b'=', b'1',       //   "ce?k=1"
        0x00,                                     // EndOfOptions
        0xff, 0x02, 0x01, 0x41,                   // ignored: after EndOfOptions
    ];

    #[test]
    fn announce_request_with_bep41_options() {
        let bytes = announce_with_options(&BEP41_OPTIONS);
        let mut expected = expected_announce();
        expected.url_data = b"/announce?k=1".to_vec();
        assert_eq!(
            Request::parse_bytes(&bytes, 74, usize::MAX),
            Ok(Request::Announce(expected))
        );
    }

    #[test]
    fn announce_request_url_data_is_cut_to_the_limit() {
        let bytes = announce_with_options(&BEP41_OPTIONS);
        for (max, expected) in [
            (0, &b""[..]),
            (1, b"/"),
            (5, b"/anno"),
            (7, b"/announ"),  // exactly the first option
            (8, b"/announc"), // into the second
            (13, b"/announce?k=1"),
            (14, b"/announce?k=1"),
        ] {
            let Ok(Request::Announce(r)) = Request::parse_bytes(&bytes, 74, max) else {
                panic!("announce with options did not parse with limit {max}");
            };
            assert_eq!(r.url_data, expected, "limit {max}");
            assert_eq!(r.url_data.capacity(), expected.len(), "limit {max}");
        }
    }

    #[test]
    fn announce_request_unknown_options_are_skipped() {
        #[rustfmt::skip]
        let options = [
            0x07, 0x02, 0xaa, 0xbb, // unknown type 7, length 2: skipped
            0x02, 0x01, b'/',       // URLData, length 1: "/"
            0x01, 0x01,             // NOP, NOP
            0x02, 0x00,             // URLData, length 0
            0x02, 0x01, b'x',       // URLData, length 1: "x"
        ]; // no EndOfOptions: the end of the packet ends the options
        let Ok(Request::Announce(r)) =
            Request::parse_bytes(&announce_with_options(&options), 74, usize::MAX)
        else {
            panic!("announce with options did not parse");
        };
        assert_eq!(r.url_data, b"/x");
    }

    #[test]
    fn announce_request_option_past_the_end() {
        #[rustfmt::skip]
        let url_data_too_long = [
            0x02, 0x03, b'/', b'a', b'b', // URLData "/ab"
            0x02, 0x0a, b'c', b'd', b'e', // URLData, length 10, only 3 bytes there: kept
        ];
        let Ok(Request::Announce(r)) =
            Request::parse_bytes(&announce_with_options(&url_data_too_long), 74, usize::MAX)
        else {
            panic!("announce with truncated URLData did not parse");
        };
        assert_eq!(r.url_data, b"/abcde");

        #[rustfmt::skip]
        let unknown_too_long = [
            0x02, 0x01, b'/', // URLData "/"
            0x09, 0xff, 0x00, // unknown type 9, length 255: runs past the end, dropped
        ];
        let Ok(Request::Announce(r)) =
            Request::parse_bytes(&announce_with_options(&unknown_too_long), 74, usize::MAX)
        else {
            panic!("announce with truncated unknown option did not parse");
        };
        assert_eq!(r.url_data, b"/");

        for options in [&[0x02][..], &[0x02, 0x05], &[0x01, 0x05]] {
            let Ok(Request::Announce(r)) =
                Request::parse_bytes(&announce_with_options(options), 74, usize::MAX)
            else {
                panic!("announce with options {options:?} did not parse");
            };
            assert!(r.url_data.is_empty());
            assert_eq!(r.url_data.capacity(), 0, "no allocation without URL data");
        }
    }

    #[test]
    fn announce_request_writes_url_data_in_255_byte_options() {
        let mut announce = expected_announce();
        announce.url_data = (0..300u32).map(|i| i as u8).collect();
        let bytes = write(&Request::Announce(announce.clone()));
        assert_eq!(bytes.len(), 98 + 2 + 255 + 2 + 45 + 1);
        assert_eq!(&bytes[..98], &ANNOUNCE_REQUEST[..]);
        assert_eq!(&bytes[98..100], &[0x02, 255]); // URLData, length 255
        assert_eq!(&bytes[355..357], &[0x02, 45]); // URLData, length 45
        assert_eq!(bytes[402], 0x00); // EndOfOptions
        assert_eq!(
            Request::parse_bytes(&bytes, 74, usize::MAX),
            Ok(Request::Announce(announce))
        );
    }

    const PASSKEY: &[u8; 32] = b"0123456789abcdefghijABCDEFGHIJkl";

    fn with_url_data(url_data: &[u8]) -> AnnounceRequest {
        AnnounceRequest {
            url_data: url_data.to_vec(),
            ..expected_announce()
        }
    }

    #[test]
    fn passkey_from_bep41_url_data() {
        #[rustfmt::skip]
        let options = [
            0x02, 0x11,                                        // URLData, length 17
            b'/', b'0', b'1', b'2', b'3', b'4', b'5', b'6',    //   "/0123456789abcdef"
            b'7', b'8', b'9', b'a', b'b', b'c', b'd', b'e', b'f',
            0x01,                                              // NOP
            0x02, 0x1a,                                        // URLData, length 26
            b'g', b'h', b'i', b'j', b'A', b'B', b'C', b'D',    //   "ghijABCDEFGHIJkl"
            b'E', b'F', b'G', b'H', b'I', b'J', b'k', b'l',
            b'/', b'a', b'n', b'n', b'o', b'u', b'n', b'c',    //   "/announce"
            b'e', b'?',                                        //   "?"
            0x00,                                              // EndOfOptions
        ];
        let Ok(Request::Announce(r)) =
            Request::parse_bytes(&announce_with_options(&options), 74, 128)
        else {
            panic!("announce with a passkey URL did not parse");
        };
        let key = Passkey::parse(PASSKEY).unwrap();
        assert_eq!(r.url_path(), b"/0123456789abcdefghijABCDEFGHIJkl/announce");
        assert_eq!(r.passkey(), PasskeyParam::Key(key));
    }

    #[test]
    fn passkey_forms() {
        let key = PasskeyParam::Key(Passkey::parse(PASSKEY).unwrap());
        let k = std::str::from_utf8(PASSKEY).unwrap();
        for (url_data, expected) in [
            (format!("/{k}/announce"), key),
            (format!("/announce/{k}"), key),
            (format!("/{k}/announce?info_hash=x&a=/b?c"), key),
            (format!("/announce/{k}?"), key),
            // Only the segment matters, whatever endpoint the path names.
            (format!("/{k}/scrape"), key),
            (format!("/scrape/{k}"), key),
            // Not a passkey: refused as unknown, not as missing.
            (format!("/{}/announce", &k[..31]), PasskeyParam::Malformed),
            (format!("/{k}x/announce"), PasskeyParam::Malformed),
            (format!("/announce/{}-", &k[..31]), PasskeyParam::Malformed),
            ("/announce/%41".to_string(), PasskeyParam::Malformed),
            // No passkey segment.
            (String::new(), PasskeyParam::Missing),
            ("/announce".to_string(), PasskeyParam::Missing),
            ("/announce?passkey=x".to_string(), PasskeyParam::Missing),
            ("?/x/announce".to_string(), PasskeyParam::Missing),
            // Paths of other shapes.
            (format!("/{k}/other"), PasskeyParam::Missing),
            (format!("/{k}/announce/"), PasskeyParam::Missing),
            (format!("{k}/announce"), PasskeyParam::Missing),
            (format!("/x/{k}/announce"), PasskeyParam::Missing),
            (format!("//{k}/announce"), PasskeyParam::Missing),
        ] {
            let announce = with_url_data(url_data.as_bytes());
            assert_eq!(announce.passkey(), expected, "{url_data:?}");
        }
        assert_eq!(with_url_data(b"/a?b?c").url_path(), b"/a");
        assert_eq!(with_url_data(b"").url_path(), b"");
    }

    /// The default `protocol.max_url_data_bytes` (128) keeps a passkey URL whole; a
    /// limit that cuts it makes the passkey missing (or malformed, for
    /// `/announce/PASSKEY` cut within the passkey), never a different passkey.
    #[test]
    fn passkey_cut_by_the_url_data_limit_is_missing() {
        let k = std::str::from_utf8(PASSKEY).unwrap();
        let key = PasskeyParam::Key(Passkey::parse(PASSKEY).unwrap());
        for url_data in [format!("/{k}/announce"), format!("/announce/{k}")] {
            assert_eq!(url_data.len(), 42);
            let bytes = write(&Request::Announce(with_url_data(url_data.as_bytes())));
            for max in 0..=url_data.len() + 1 {
                let Ok(Request::Announce(r)) = Request::parse_bytes(&bytes, 74, max) else {
                    panic!("announce with a passkey URL did not parse with limit {max}");
                };
                let expected = if max >= url_data.len() {
                    key
                } else if url_data.starts_with("/announce/") && max > "/announce/".len() {
                    PasskeyParam::Malformed
                } else {
                    PasskeyParam::Missing
                };
                assert_eq!(r.passkey(), expected, "{url_data} cut to {max}");
            }
            let Ok(Request::Announce(r)) = Request::parse_bytes(&bytes, 74, 128) else {
                panic!("announce with a passkey URL did not parse");
            };
            assert_eq!(r.passkey(), key);
        }
    }

    #[test]
    fn announce_request_too_short_is_sendable() {
        assert_eq!(
            Request::parse_bytes(&ANNOUNCE_REQUEST[..97], 74, usize::MAX),
            Err(RequestParseError::Sendable {
                connection_id: ConnectionId(0x0123_4567_89ab_cdef),
                transaction_id: TransactionId(0x1122_3344),
                err: "announce request too short",
            })
        );
        assert!(matches!(
            Request::parse_bytes(&ANNOUNCE_REQUEST[..16], 74, usize::MAX),
            Err(RequestParseError::Sendable { .. })
        ));
    }

    // --- scrape ---

    #[rustfmt::skip]
    const SCRAPE_REQUEST: [u8; 56] = [
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, // connection_id
        0x00, 0x00, 0x00, 0x02,                         // action: 2 = scrape
        0x11, 0x22, 0x33, 0x44,                         // transaction_id
        0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
        0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, // info_hash 1
        0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb,
        0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, // info_hash 2
    ];

    fn expected_scrape(hashes: &[u8]) -> Request {
        Request::Scrape(ScrapeRequest {
            connection_id: ConnectionId(0x0123_4567_89ab_cdef),
            transaction_id: TransactionId(0x1122_3344),
            info_hashes: hashes.iter().map(|b| InfoHash([*b; 20])).collect(),
        })
    }

    #[test]
    fn scrape_request_known_answer() {
        let expected = expected_scrape(&[0xaa, 0xbb]);
        assert_eq!(
            Request::parse_bytes(&SCRAPE_REQUEST, 74, usize::MAX),
            Ok(expected.clone())
        );
        assert_eq!(write(&expected), SCRAPE_REQUEST);
    }

    #[test]
    fn scrape_request_keeps_only_max_hashes() {
        assert_eq!(
            Request::parse_bytes(&SCRAPE_REQUEST, 1, usize::MAX),
            Ok(expected_scrape(&[0xaa]))
        );
        assert_eq!(
            Request::parse_bytes(&SCRAPE_REQUEST, 0, usize::MAX),
            Ok(expected_scrape(&[]))
        );

        let mut many = SCRAPE_REQUEST[..16].to_vec();
        for i in 0..100u8 {
            many.extend_from_slice(&[i; 20]);
        }
        let Ok(Request::Scrape(r)) = Request::parse_bytes(&many, 74, usize::MAX) else {
            panic!("scrape with 100 hashes did not parse");
        };
        assert_eq!(r.info_hashes.len(), 74);
        assert_eq!(r.info_hashes.capacity(), 74, "preallocated exactly");
        assert_eq!(r.info_hashes[73], InfoHash([73; 20]));
    }

    #[test]
    fn scrape_request_ignores_partial_hash() {
        let mut bytes = SCRAPE_REQUEST.to_vec();
        bytes.extend_from_slice(&[0xcc; 19]);
        assert_eq!(
            Request::parse_bytes(&bytes, 74, usize::MAX),
            Ok(expected_scrape(&[0xaa, 0xbb]))
        );
    }

    #[test]
    fn scrape_request_without_hashes_is_sendable() {
        let expected = Err(RequestParseError::Sendable {
            connection_id: ConnectionId(0x0123_4567_89ab_cdef),
            transaction_id: TransactionId(0x1122_3344),
            err: "no info hashes in scrape",
        });
        assert_eq!(
            Request::parse_bytes(&SCRAPE_REQUEST[..16], 74, usize::MAX),
            expected
        );
        assert_eq!(
            Request::parse_bytes(&SCRAPE_REQUEST[..35], 74, usize::MAX),
            expected
        );
    }

    // --- anything ---

    #[test]
    fn short_packets_are_unsendable() {
        for len in 0..16 {
            assert_eq!(
                Request::parse_bytes(&ANNOUNCE_REQUEST[..len], 74, usize::MAX),
                Err(RequestParseError::Unsendable {
                    err: "request too short"
                }),
                "length {len}"
            );
        }
    }

    #[test]
    fn unknown_action_is_sendable() {
        for action in [3i32, 4, -1, i32::MAX] {
            let mut bytes = ANNOUNCE_REQUEST;
            bytes[8..12].copy_from_slice(&action.to_be_bytes());
            for len in [16, 98] {
                let err = Request::parse_bytes(&bytes[..len], 74, usize::MAX).unwrap_err();
                assert_eq!(
                    err,
                    RequestParseError::Sendable {
                        connection_id: ConnectionId(0x0123_4567_89ab_cdef),
                        transaction_id: TransactionId(0x1122_3344),
                        err: "unknown action",
                    }
                );
                assert_eq!(err.message(), "unknown action");
                assert_eq!(
                    err.to_string(),
                    "unknown action (connection id 81985529216486895, transaction id 287454020)"
                );
            }
        }
    }

    fn announce_strategy() -> impl Strategy<Value = AnnounceRequest> {
        let ids = (
            strategies::connection_id(),
            strategies::transaction_id(),
            strategies::info_hash(),
            strategies::peer_id(),
        );
        let counts = (
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
            strategies::event(),
        );
        let rest = (
            proptest::option::of(
                any::<u32>()
                    .prop_filter("0 is written for None", |ip| *ip != 0)
                    .prop_map(Ipv4Addr::from),
            ),
            any::<u32>(),
            any::<i32>(),
            any::<u16>(),
            prop_oneof![
                Just(Vec::new()),
                proptest::collection::vec(any::<u8>(), 0..600)
            ],
        );
        (ids, counts, rest).prop_map(
            |(
                (connection_id, transaction_id, info_hash, peer_id),
                (bytes_downloaded, bytes_left, bytes_uploaded, event),
                (ip_address, key, peers_wanted, port, url_data),
            )| AnnounceRequest {
                connection_id,
                transaction_id,
                info_hash,
                peer_id,
                bytes_downloaded,
                bytes_left,
                bytes_uploaded,
                event,
                ip_address,
                key,
                peers_wanted,
                port,
                url_data,
            },
        )
    }

    /// BEP 41 option lists, mostly URLData, whose length bytes may not match their data
    /// (data up to 300 bytes, written with a wrapping length byte), and arbitrary bytes.
    fn options_strategy() -> impl Strategy<Value = Vec<u8>> {
        let option = (
            prop_oneof![Just(option::NOP), Just(option::URL_DATA), any::<u8>()],
            proptest::collection::vec(any::<u8>(), 0..300),
        );
        prop_oneof![
            proptest::collection::vec(option, 0..8).prop_map(|options| {
                let mut bytes = Vec::new();
                for (kind, data) in options {
                    bytes.push(kind);
                    if kind > option::NOP {
                        bytes.push(data.len() as u8);
                        bytes.extend_from_slice(&data);
                    }
                }
                bytes
            }),
            proptest::collection::vec(any::<u8>(), 0..1500),
        ]
    }

    fn scrape_strategy() -> impl Strategy<Value = ScrapeRequest> {
        (
            strategies::connection_id(),
            strategies::transaction_id(),
            proptest::collection::vec(strategies::info_hash(), 1..=74),
        )
            .prop_map(
                |(connection_id, transaction_id, info_hashes)| ScrapeRequest {
                    connection_id,
                    transaction_id,
                    info_hashes,
                },
            )
    }

    proptest! {
        #[test]
        fn connect_request_round_trip(transaction_id in strategies::transaction_id()) {
            let request = Request::Connect(ConnectRequest { transaction_id });
            let bytes = write(&request);
            prop_assert_eq!(bytes.len(), 16);
            prop_assert_eq!(Request::parse_bytes(&bytes, 74, usize::MAX), Ok(request));
        }

        #[test]
        fn announce_request_round_trip(announce in announce_strategy()) {
            let request = Request::Announce(announce);
            let bytes = write(&request);
            prop_assert_eq!(Request::parse_bytes(&bytes, 74, usize::MAX), Ok(request));
        }

        #[test]
        fn scrape_request_round_trip(scrape in scrape_strategy()) {
            let request = Request::Scrape(scrape);
            let bytes = write(&request);
            prop_assert_eq!(Request::parse_bytes(&bytes, 74, usize::MAX), Ok(request));
        }

        /// Round trip with a limit of exactly the data's length: nothing is cut.
        #[test]
        fn announce_request_round_trip_at_its_own_length(announce in announce_strategy()) {
            let max = announce.url_data.len();
            let request = Request::Announce(announce);
            prop_assert_eq!(Request::parse_bytes(&write(&request), 74, max), Ok(request));
        }

        /// A passkey URL written by a client (BEP 41 URLData, with an optional query)
        /// gives back its passkey, in either form.
        #[test]
        fn passkey_round_trip(
            announce in announce_strategy(),
            key in proptest::collection::vec(
                proptest::sample::select(
                    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".to_vec()
                ),
                32,
            ),
            gazelle in any::<bool>(),
            query in proptest::option::of("[ -~]{0,60}"),
        ) {
            let k = std::str::from_utf8(&key).unwrap();
            let mut url = if gazelle {
                format!("/{k}/announce")
            } else {
                format!("/announce/{k}")
            };
            if let Some(query) = query {
                url.push('?');
                url.push_str(&query);
            }
            let announce = AnnounceRequest { url_data: url.into_bytes(), ..announce };
            let bytes = write(&Request::Announce(announce));
            let Ok(Request::Announce(parsed)) = Request::parse_bytes(&bytes, 74, 128) else {
                return Err(TestCaseError::fail("an announce with URL data parses"));
            };
            prop_assert_eq!(parsed.passkey(), PasskeyParam::Key(Passkey::parse(&key).unwrap()));
        }

        /// Whatever the URL data, the passkey found is spelled by its bytes, before any
        /// `?`.
        #[test]
        fn passkey_is_read_from_the_path(options in options_strategy()) {
            let Ok(Request::Announce(r)) =
                Request::parse_bytes(&announce_with_options(&options), 74, 128)
            else {
                return Err(TestCaseError::fail("an announce of 98 bytes or more parses"));
            };
            prop_assert!(r.url_data.starts_with(r.url_path()));
            prop_assert!(!r.url_path().contains(&b'?'));
            match r.passkey() {
                PasskeyParam::Key(key) => {
                    let path = r.url_path();
                    prop_assert!(path.windows(32).any(|w| w == key.0));
                }
                PasskeyParam::Malformed => {
                    prop_assert!(split_passkey_path(r.url_path()).is_some());
                }
                PasskeyParam::Missing => {}
            }
        }

        /// A passkey URL in either form, with or without a query, split into URL data
        /// options at random points and mixed with NOPs as a client may send it, gives
        /// back exactly its passkey.
        #[test]
        fn a_passkey_url_split_into_options_gives_its_passkey(
            key in proptest::collection::vec(
                proptest::sample::select(
                    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".to_vec(),
                ),
                32,
            ),
            unit3d_form in any::<bool>(),
            query in proptest::option::of("[a-z=&]{0,20}"),
            cuts in proptest::collection::vec((1usize..40, any::<bool>()), 1..8),
        ) {
            let key = String::from_utf8(key).unwrap();
            let mut url = if unit3d_form {
                format!("/announce/{key}")
            } else {
                format!("/{key}/announce")
            };
            if let Some(query) = query {
                url = format!("{url}?{query}");
            }
            // The URL in chunks of the drawn sizes (the last takes the rest), each
            // an URL data option, some after a NOP.
            let mut options = Vec::new();
            let mut rest = url.as_bytes();
            for (i, (size, nop)) in cuts.iter().enumerate() {
                if rest.is_empty() {
                    break;
                }
                if *nop {
                    options.push(option::NOP);
                }
                let take = if i + 1 == cuts.len() { rest.len() } else { (*size).min(rest.len()) };
                let (chunk, tail) = rest.split_at(take);
                options.push(option::URL_DATA);
                options.push(chunk.len() as u8);
                options.extend_from_slice(chunk);
                rest = tail;
            }
            let Ok(Request::Announce(r)) =
                Request::parse_bytes(&announce_with_options(&options), 74, 1024)
            else {
                return Err(TestCaseError::fail("an announce with URL data parses"));
            };
            prop_assert_eq!(&r.url_data[..], url.as_bytes());
            prop_assert_eq!(
                r.passkey(),
                PasskeyParam::Key(Passkey::parse(key.as_bytes()).unwrap())
            );
        }

        /// Whatever the options claim, URL data never exceeds the limit, in length or
        /// in allocation, and is a prefix of the uncut data.
        #[test]
        fn url_data_never_exceeds_the_limit(
            options in options_strategy(),
            max in prop_oneof![0usize..300, Just(usize::MAX)],
        ) {
            let bytes = announce_with_options(&options);
            let (Ok(Request::Announce(cut)), Ok(Request::Announce(full))) = (
                Request::parse_bytes(&bytes, 74, max),
                Request::parse_bytes(&bytes, 74, usize::MAX),
            ) else {
                return Err(TestCaseError::fail("an announce of 98 bytes or more parses"));
            };
            prop_assert!(cut.url_data.len() <= max);
            prop_assert!(cut.url_data.capacity() <= max);
            prop_assert!(full.url_data.starts_with(&cut.url_data));
            prop_assert_eq!(cut.url_data.len(), full.url_data.len().min(max));
        }

        /// Should never panic, whatever arrives.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            for max in [74, 0] {
                // What parsed must survive a round trip (the fuzz target's check). With
                // a limit of 0 a scrape parses to no hashes, which is not writable.
                if let Ok(request) = Request::parse_bytes(&bytes, max, usize::MAX)
                    && max > 0
                {
                    if let Request::Announce(announce) = &request {
                        // The private-mode check reads any URL data without panicking.
                        let _ = announce.passkey();
                    }
                    prop_assert_eq!(Request::parse_bytes(&write(&request), max, usize::MAX), Ok(request));
                }
            }
        }

        /// Random bytes rarely form a header; give the parsers every action with
        /// arbitrary bodies.
        #[test]
        fn arbitrary_bodies_never_panic(
            action in 0i32..4,
            body in proptest::collection::vec(any::<u8>(), 0..2048),
        ) {
            let mut bytes = PROTOCOL_IDENTIFIER.to_be_bytes().to_vec();
            bytes.extend_from_slice(&action.to_be_bytes());
            bytes.extend_from_slice(&body);
            for max in [74, 0] {
                if let Ok(request) = Request::parse_bytes(&bytes, max, usize::MAX)
                    && max > 0
                {
                    if let Request::Announce(announce) = &request {
                        let _ = announce.passkey();
                    }
                    prop_assert_eq!(Request::parse_bytes(&write(&request), max, usize::MAX), Ok(request));
                }
            }
        }
    }
}
