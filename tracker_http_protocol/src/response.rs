//! Bencoded answers and the HTTP/1.1 framing around them; and parsing them back, for
//! load testers and tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{InfoHash, PeerId, ResponsePeerWithId, ScrapeCounts};

/// An announce answer (BEP 3, 23, 7, 24).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceResponse<'a> {
    /// `interval`: seconds until the next announce.
    pub interval: u32,
    /// `min interval`: the least seconds between announces.
    pub min_interval: u32,
    /// `complete`: seeders.
    pub complete: u32,
    /// `incomplete`: leechers.
    pub incomplete: u32,
    /// IPv4 peers.
    pub peers_v4: &'a [ResponsePeerWithId<Ipv4Addr>],
    /// IPv6 peers.
    pub peers_v6: &'a [ResponsePeerWithId<Ipv6Addr>],
    /// Compact: `peers` is a string of 6-byte IPv4 entries (BEP 23) and `peers6` one of
    /// 18-byte IPv6 entries (BEP 7). Otherwise `peers` is a list of dictionaries with
    /// `ip` (text), `port` and, unless `no_peer_id`, `peer id`, for both families.
    pub compact: bool,
    /// Leave `peer id` out of non-compact entries.
    pub no_peer_id: bool,
    /// `external ip` (BEP 24): the client's address as 4 or 16 raw bytes.
    pub external_ip: Option<IpAddr>,
}

impl AnnounceResponse<'_> {
    /// Appends the bencoded dictionary (keys in sorted order, as bencode requires).
    pub fn write_body(&self, out: &mut Vec<u8>) {
        let _ = out;
        todo!("implemented on the http-protocol branch")
    }
}

/// A scrape answer (BEP 48): `files` maps each info hash (20 raw bytes) to `complete`,
/// `downloaded` and `incomplete`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeResponse<'a> {
    /// The torrents, in any order (written sorted by hash, as bencode requires).
    pub files: &'a [(InfoHash, ScrapeCounts)],
}

impl ScrapeResponse<'_> {
    /// Appends the bencoded dictionary.
    pub fn write_body(&self, out: &mut Vec<u8>) {
        let _ = out;
        todo!("implemented on the http-protocol branch")
    }
}

/// Appends `d14:failure reason{len}:{reason}e`.
pub fn write_failure_body(reason: &str, out: &mut Vec<u8>) {
    let _ = (reason, out);
    todo!("implemented on the http-protocol branch")
}

/// Appends a whole HTTP/1.1 response: status line, `Content-Type`, `Content-Length`,
/// `Connection: keep-alive` or `close`, a blank line, then `body`.
pub fn write_http_response(
    out: &mut Vec<u8>,
    status: u16,
    reason: &str,
    content_type: &str,
    keep_alive: bool,
    body: &[u8],
) {
    let _ = (out, status, reason, content_type, keep_alive, body);
    todo!("implemented on the http-protocol branch")
}

/// An HTTP response read back (load testers and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Whether the server keeps the connection open.
    pub keep_alive: bool,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

/// Parses one HTTP response from the start of `bytes`: `Ok(None)` until it is whole,
/// then the response and the bytes it took.
///
/// # Errors
/// Not an HTTP/1.x response with a `Content-Length` of at most `max_body` bytes.
pub fn parse_http_response(
    bytes: &[u8],
    max_body: usize,
) -> Result<Option<(HttpResponse, usize)>, String> {
    let _ = (bytes, max_body);
    todo!("implemented on the http-protocol branch")
}

/// A peer of a parsed announce answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedPeer {
    /// Its address.
    pub ip: IpAddr,
    /// Its port.
    pub port: u16,
    /// Its peer id, in non-compact answers that carry one.
    pub peer_id: Option<PeerId>,
}

/// An announce answer read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedAnnounce {
    /// `interval`.
    pub interval: i64,
    /// `min interval`, if present.
    pub min_interval: Option<i64>,
    /// `complete`.
    pub complete: i64,
    /// `incomplete`.
    pub incomplete: i64,
    /// Every peer of `peers` and `peers6`, compact or not, in order.
    pub peers: Vec<ParsedPeer>,
    /// `external ip`, if present and 4 or 16 bytes.
    pub external_ip: Option<IpAddr>,
}

/// A tracker answer body read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackerResponse {
    /// An announce answer.
    Announce(ParsedAnnounce),
    /// A scrape answer: each hash with (complete, downloaded, incomplete).
    Scrape(Vec<(InfoHash, ScrapeCounts)>),
    /// A `failure reason`.
    Failure(String),
}

impl TrackerResponse {
    /// Parses a bencoded answer body.
    ///
    /// # Errors
    /// Not bencode, or not a tracker answer.
    pub fn parse_body(body: &[u8]) -> Result<Self, String> {
        let _ = body;
        todo!("implemented on the http-protocol branch")
    }
}
