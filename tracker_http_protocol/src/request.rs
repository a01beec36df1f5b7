//! HTTP tracker requests: `GET /announce?...`, `GET /scrape?...` (either of them with a
//! private tracker's passkey in the path), `GET /`.
//!
//! The rules [`parse_request`] applies are in its documentation, where the users of the
//! crate read them.

use std::net::IpAddr;

use tracker_types::{Endpoint, PasskeyParam, split_passkey_path};

use crate::ascii::{IpText, parse_i64, parse_u64, push_i64, push_u64};
use crate::query::{QueryPairs, decode_exact, decode_short, percent_encode};
use crate::{AnnounceEvent, InfoHash, PeerId};

/// Headers read from one request. A tracker client sends a handful; a request with
/// more is refused as [`HttpError::HeadersTooLarge`] (431 covers too many fields as well
/// as too many bytes, RFC 6585 section 5).
const MAX_HEADERS: usize = 32;

/// Bounds the caller sets (from its config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLimits<'a> {
    /// Most bytes of one request head (request line and headers). A request whose head is
    /// not complete within this many bytes is refused with [`HttpError::HeadersTooLarge`].
    pub max_request_bytes: usize,
    /// Most info hashes read from one scrape; further `info_hash` parameters are ignored.
    /// With 0, every scrape reads as a full scrape, so a configuration should require
    /// at least 1.
    pub max_scrape_hashes: usize,
    /// The header naming the client's address behind a reverse proxy (e.g.
    /// `X-Forwarded-For`, matched without regard to case); `None` reads none.
    pub forwarded_header: Option<&'a str>,
}

/// What [`parse_request`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole request head yet, and nothing wrong so far: read more.
    Incomplete,
    /// A whole request, `len` bytes long (the head; tracker requests have no body).
    Complete {
        /// The request.
        request: Request,
        /// Bytes it took from the input.
        len: usize,
    },
}

/// One request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// What it asks for.
    pub kind: RequestKind,
    /// Whether the connection stays open after the answer: HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    pub keep_alive: bool,
    /// The raw value of the [`RequestLimits::forwarded_header`] header, if the request
    /// has it (the last one, if repeated).
    pub forwarded_for: Option<Vec<u8>>,
}

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// `GET /announce?...` (or a passkey form of it) with valid parameters.
    Announce(AnnounceRequest),
    /// `GET /scrape?...` (or a passkey form of it); no `info_hash` asks for a full
    /// scrape.
    Scrape(ScrapeRequest),
    /// `GET /`: the tracker's small index page.
    Index,
    /// An announce or scrape whose parameters are wrong: answered with a bencoded
    /// `failure reason` (status 200, as clients expect), e.g. "missing info_hash".
    Failure(&'static str),
}

/// An announce's parameters (BEP 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// 20 raw bytes, percent-decoded (required).
    pub info_hash: InfoHash,
    /// 20 raw bytes, percent-decoded (required).
    pub peer_id: PeerId,
    /// The peer's listening port (required; 0 is allowed and means "do not store").
    pub port: u16,
    /// Bytes uploaded so far (`None` when missing).
    pub uploaded: Option<u64>,
    /// Bytes downloaded so far (`None` when missing).
    pub downloaded: Option<u64>,
    /// Bytes left to download (required).
    pub left: u64,
    /// `started`, `completed`, `stopped`, or none (missing, empty or `empty`).
    pub event: AnnounceEvent,
    /// Peers wanted; `None` when missing or not a number.
    pub numwant: Option<i64>,
    /// Compact peers (BEP 23): true unless `compact=0`.
    pub compact: bool,
    /// `no_peer_id=1`: leave peer ids out of a non-compact answer.
    pub no_peer_id: bool,
    /// The `ip` parameter, when it is an IP address (a tracker uses it only if told to).
    pub ip: Option<IpAddr>,
    /// The passkey segment of the path: [`PasskeyParam::Missing`] for `/announce`.
    pub passkey: PasskeyParam,
}

/// A scrape's info hashes (BEP 48).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ScrapeRequest {
    /// In request order, at most [`RequestLimits::max_scrape_hashes`]; empty asks for a
    /// full scrape.
    pub info_hashes: Vec<InfoHash>,
    /// The passkey segment of the path: [`PasskeyParam::Missing`] for `/scrape`.
    pub passkey: PasskeyParam,
}

/// A request that is not a tracker request, answered with an HTTP status and closed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// 400: not HTTP/1.x, or a malformed request line or header.
    BadRequest,
    /// 404: a path other than `/`, `/announce`, `/scrape` and their passkey forms.
    NotFound,
    /// 405: a method other than `GET`.
    MethodNotAllowed,
    /// 413: a request with a body.
    PayloadTooLarge,
    /// 431: the head is larger than [`RequestLimits::max_request_bytes`].
    HeadersTooLarge,
}

impl HttpError {
    /// The status code.
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::PayloadTooLarge => 413,
            Self::HeadersTooLarge => 431,
        }
    }

    /// The status's reason phrase.
    pub fn reason(self) -> &'static str {
        match self {
            Self::BadRequest => "Bad Request",
            Self::NotFound => "Not Found",
            Self::MethodNotAllowed => "Method Not Allowed",
            Self::PayloadTooLarge => "Payload Too Large",
            Self::HeadersTooLarge => "Request Header Fields Too Large",
        }
    }
}

/// Parses one request from the start of `bytes` (a connection's read buffer, which may
/// hold a partial request or several pipelined ones).
///
/// The head is parsed first and whole, so that the answer to a refused request is
/// framed correctly; only then are the method, body, path and parameters judged, in
/// that order. Parameters follow BEP 3 ("Trackers"); a wrong one is not an
/// [`HttpError`] but [`RequestKind::Failure`], which clients show to their user.
///
/// - Paths are matched exactly: `/announce`, `/scrape` and `/` (whose query is
///   ignored), and a private tracker's passkey forms of the first two:
///   `/PASSKEY/announce`, `/PASSKEY/scrape` (Gazelle's), `/announce/PASSKEY` and
///   `/scrape/PASSKEY` (UNIT3D's and torrust's), read by
///   [`split_passkey_path`]. The segment is taken as sent (not percent-decoded) into
///   the request's `passkey`: [`PasskeyParam::Key`] for 32 characters of `[0-9A-Za-z]`,
///   [`PasskeyParam::Malformed`] for any other non-empty segment (still an announce or
///   a scrape, so that a private tracker refuses it as an unknown passkey),
///   [`PasskeyParam::Missing`] for the plain paths. Whether a passkey is needed is the
///   tracker's business, not the parser's. `/announce/`, `//announce`,
///   `/a/b/announce`, `/announce.php` and absolute-form targets
///   (`http://host/announce`) are [`HttpError::NotFound`]: every client builds its URL
///   from the announce URL the tracker published, so there is nothing to guess.
/// - A repeated announce parameter: the last one counts (scrape's `info_hash` is the
///   one parameter meant to repeat). Parameter names are matched as sent, not decoded.
/// - Announce: `info_hash` and `peer_id` must decode to 20 bytes; `port` (u16) and
///   `left` (u64) are required; `uploaded` and `downloaded` are `None` when missing; `event`
///   is `started`, `completed`, `stopped`, `empty` or empty. Any of these wrong is a
///   failure. Lenient where a value only tunes the answer: `numwant` that is not an
///   `i64` and `ip` that is not an IP address read as `None`; `compact` is false only
///   for `0`, `no_peer_id` true only for `1`.
/// - Scrape: the first [`RequestLimits::max_scrape_hashes`] `info_hash` parameters,
///   each of which must decode to 20 bytes; later ones are ignored, not even decoded.
/// - Parameters the tracker does not read (`key`, `trackerid`, unknown ones) are
///   skipped without being decoded, so they may carry any percent-encoded bytes. Raw
///   bytes that are not UTF-8 anywhere in the target are refused by the request-line
///   parser ([`HttpError::BadRequest`]); clients percent-encode them.
/// - Values decode onto the stack; the only allocations are the scrape's hash list
///   (one entry per kept `info_hash`, allocated once) and the forwarded header's value,
///   both smaller than the input.
///
/// # Errors
/// An [`HttpError`] for input that is not a tracker's HTTP request; the caller answers
/// with its status and closes the connection:
/// - [`HttpError::HeadersTooLarge`]: no complete head within
///   [`RequestLimits::max_request_bytes`], or more than 32 headers.
/// - [`HttpError::BadRequest`]: not HTTP/1.0 or 1.1, a malformed request line or header
///   (including a target with raw non-UTF-8 bytes), or an unreadable `Content-Length`.
/// - [`HttpError::MethodNotAllowed`]: any method but `GET`.
/// - [`HttpError::PayloadTooLarge`]: a `Content-Length` above 0 or any
///   `Transfer-Encoding`.
/// - [`HttpError::NotFound`]: a path other than `/`, `/announce`, `/scrape` and their
///   passkey forms.
pub fn parse_request(bytes: &[u8], limits: &RequestLimits<'_>) -> Result<Parsed, HttpError> {
    // Only the first `max_request_bytes` are given to httparse: a head that does not end
    // within them is refused whatever follows, and a client that sends a huge buffer
    // does not make each retry scan all of it.
    let window = bytes.get(..limits.max_request_bytes).unwrap_or(bytes);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    let len = match head.parse(window) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if bytes.len() > limits.max_request_bytes => {
            return Err(HttpError::HeadersTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Incomplete),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadersTooLarge),
        Err(_) => return Err(HttpError::BadRequest),
    };
    if head.method != Some("GET") {
        return Err(HttpError::MethodNotAllowed);
    }
    let framing = Framing::of(head.version, head.headers)?;
    if framing.has_body {
        return Err(HttpError::PayloadTooLarge);
    }
    let (path, query) = match head.path.unwrap_or_default().split_once('?') {
        Some((path, query)) => (path, query),
        None => (head.path.unwrap_or_default(), ""),
    };
    let kind = if path == "/" {
        RequestKind::Index
    } else {
        let target = split_passkey_path(path.as_bytes()).ok_or(HttpError::NotFound)?;
        let passkey = PasskeyParam::from_segment(target.passkey);
        match target.endpoint {
            Endpoint::Announce => parse_announce(query.as_bytes(), passkey),
            Endpoint::Scrape => parse_scrape(query.as_bytes(), limits.max_scrape_hashes, passkey),
        }
    };
    let forwarded_for = limits.forwarded_header.and_then(|wanted| {
        head.headers
            .iter()
            .rev()
            .find(|header| header.name.eq_ignore_ascii_case(wanted))
            .map(|header| header.value.to_vec())
    });
    Ok(Parsed::Complete {
        request: Request {
            kind,
            keep_alive: framing.keep_alive,
            forwarded_for,
        },
        len,
    })
}

/// What a request's version and headers say about the connection.
struct Framing {
    keep_alive: bool,
    has_body: bool,
}

impl Framing {
    fn of(version: Option<u8>, headers: &[httparse::Header<'_>]) -> Result<Self, HttpError> {
        let mut close = false;
        let mut keep_alive = false;
        let mut has_body = false;
        for header in headers {
            if header.name.eq_ignore_ascii_case("connection") {
                // A token list (RFC 9110 section 7.6.1): `Connection: keep-alive, Upgrade`.
                for token in header.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if header.name.eq_ignore_ascii_case("content-length") {
                // Unreadable lengths are refused rather than guessed at: a server and a
                // proxy that read them differently disagree about where the next
                // request starts (request smuggling).
                let length = parse_u64(header.value.trim_ascii()).ok_or(HttpError::BadRequest)?;
                has_body |= length > 0;
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                has_body = true;
            }
        }
        let keep_alive = match version {
            Some(1) => !close,
            Some(0) => keep_alive && !close,
            _ => return Err(HttpError::BadRequest),
        };
        Ok(Self {
            keep_alive,
            has_body,
        })
    }
}

/// The raw values of the announce parameters the tracker reads, the last of each.
#[derive(Default)]
struct AnnounceParams<'a> {
    info_hash: Option<&'a [u8]>,
    peer_id: Option<&'a [u8]>,
    port: Option<&'a [u8]>,
    uploaded: Option<&'a [u8]>,
    downloaded: Option<&'a [u8]>,
    left: Option<&'a [u8]>,
    event: Option<&'a [u8]>,
    numwant: Option<&'a [u8]>,
    compact: Option<&'a [u8]>,
    no_peer_id: Option<&'a [u8]>,
    ip: Option<&'a [u8]>,
}

/// Reads an announce's parameters (BEP 3, "Trackers"; `compact` from BEP 23), or the
/// failure reason for the first wrong one.
fn parse_announce(query: &[u8], passkey: PasskeyParam) -> RequestKind {
    // Keys are matched raw: no client percent-encodes a plain ASCII parameter name.
    let mut params = AnnounceParams::default();
    for (key, value) in QueryPairs::new(query) {
        let slot = match key {
            b"info_hash" => &mut params.info_hash,
            b"peer_id" => &mut params.peer_id,
            b"port" => &mut params.port,
            b"uploaded" => &mut params.uploaded,
            b"downloaded" => &mut params.downloaded,
            b"left" => &mut params.left,
            b"event" => &mut params.event,
            b"numwant" => &mut params.numwant,
            b"compact" => &mut params.compact,
            b"no_peer_id" => &mut params.no_peer_id,
            b"ip" => &mut params.ip,
            _ => continue,
        };
        *slot = Some(value);
    }
    match announce_from(&params, passkey) {
        Ok(request) => RequestKind::Announce(request),
        Err(reason) => RequestKind::Failure(reason),
    }
}

fn announce_from(
    params: &AnnounceParams<'_>,
    passkey: PasskeyParam,
) -> Result<AnnounceRequest, &'static str> {
    let info_hash = params.info_hash.ok_or("missing info_hash")?;
    let info_hash = InfoHash(decode_exact(info_hash).ok_or("malformed info_hash")?);
    let peer_id = params.peer_id.ok_or("missing peer_id")?;
    let peer_id = PeerId(decode_exact(peer_id).ok_or("malformed peer_id")?);
    let port = params.port.ok_or("missing port")?;
    let port = decimal(port)
        .and_then(|port| u16::try_from(port).ok())
        .ok_or("malformed port")?;
    let left = params.left.ok_or("missing left")?;
    let left = decimal(left).ok_or("malformed left")?;
    let uploaded = match params.uploaded {
        Some(raw) => Some(decimal(raw).ok_or("malformed uploaded")?),
        None => None,
    };
    let downloaded = match params.downloaded {
        Some(raw) => Some(decimal(raw).ok_or("malformed downloaded")?),
        None => None,
    };
    let event = match params.event {
        Some(raw) => event(raw).ok_or("malformed event")?,
        None => AnnounceEvent::None,
    };
    // Lenient where the value only tunes the answer: a garbled `numwant` gets the
    // tracker's default, a garbled `ip` the connection's address.
    let numwant = params.numwant.and_then(|raw| {
        let (buf, len) = decode_short::<20>(raw)?;
        parse_i64(buf.get(..len)?)
    });
    let ip = params.ip.and_then(ip);
    Ok(AnnounceRequest {
        info_hash,
        peer_id,
        port,
        uploaded,
        downloaded,
        left,
        event,
        numwant,
        compact: params.compact.is_none_or(|raw| !is_decoded(raw, b"0")),
        no_peer_id: params.no_peer_id.is_some_and(|raw| is_decoded(raw, b"1")),
        ip,
        passkey,
    })
}

/// A percent-decoded decimal `u64`.
fn decimal(raw: &[u8]) -> Option<u64> {
    // u64::MAX has 20 digits; anything longer is malformed (leading zeros included,
    // which no client sends).
    let (buf, len) = decode_short::<20>(raw)?;
    parse_u64(buf.get(..len)?)
}

fn event(raw: &[u8]) -> Option<AnnounceEvent> {
    let (buf, len) = decode_short::<9>(raw)?;
    match buf.get(..len)? {
        b"started" => Some(AnnounceEvent::Started),
        b"completed" => Some(AnnounceEvent::Completed),
        b"stopped" => Some(AnnounceEvent::Stopped),
        // `empty` is the name BEP 3 gives to "no event"; some clients send it.
        b"empty" | b"" => Some(AnnounceEvent::None),
        _ => None,
    }
}

fn ip(raw: &[u8]) -> Option<IpAddr> {
    let (buf, len) = decode_short::<48>(raw)?;
    std::str::from_utf8(buf.get(..len)?).ok()?.parse().ok()
}

/// Whether `raw` percent-decodes to exactly `expected`.
fn is_decoded(raw: &[u8], expected: &[u8]) -> bool {
    crate::query::Decoded::new(raw).eq(expected.iter().copied())
}

/// Reads a scrape's info hashes (BEP 48), at most `max` of them.
fn parse_scrape(query: &[u8], max: usize, passkey: PasskeyParam) -> RequestKind {
    let hashes = || {
        QueryPairs::new(query)
            .filter(|(key, _)| *key == b"info_hash")
            .map(|(_, value)| value)
            .take(max)
    };
    // Counted first so the list is allocated once, at its final size.
    let mut info_hashes = Vec::with_capacity(hashes().count());
    for raw in hashes() {
        match decode_exact(raw) {
            Some(hash) => info_hashes.push(InfoHash(hash)),
            None => return RequestKind::Failure("malformed info_hash"),
        }
    }
    RequestKind::Scrape(ScrapeRequest {
        info_hashes,
        passkey,
    })
}

impl AnnounceRequest {
    /// Writes this announce as an HTTP/1.1 `GET` request for `host`, every field as a
    /// parameter (binary ones percent-encoded), for load testers and tests. Parsing the
    /// bytes gives this request back.
    ///
    /// The path is `/announce`, or Gazelle's `/PASSKEY/announce` with a passkey; a
    /// [`PasskeyParam::Malformed`] one keeps no bytes and is written as the segment `-`
    /// (`/-/announce`), which reads back as malformed. `event`, `numwant` and `ip` are
    /// left out when `None`, `no_peer_id` when false; `host` is written as given.
    pub fn write_http(&self, out: &mut Vec<u8>, host: &str, keep_alive: bool) {
        write_target(out, self.passkey, b"announce");
        out.extend_from_slice(b"?info_hash=");
        percent_encode(&self.info_hash.0, out);
        out.extend_from_slice(b"&peer_id=");
        percent_encode(&self.peer_id.0, out);
        out.extend_from_slice(b"&port=");
        push_u64(out, u64::from(self.port));
        if let Some(uploaded) = self.uploaded {
            out.extend_from_slice(b"&uploaded=");
            push_u64(out, uploaded);
        }
        if let Some(downloaded) = self.downloaded {
            out.extend_from_slice(b"&downloaded=");
            push_u64(out, downloaded);
        }
        out.extend_from_slice(b"&left=");
        push_u64(out, self.left);
        let event: &[u8] = match self.event {
            AnnounceEvent::None => b"",
            AnnounceEvent::Started => b"&event=started",
            AnnounceEvent::Completed => b"&event=completed",
            AnnounceEvent::Stopped => b"&event=stopped",
        };
        out.extend_from_slice(event);
        if let Some(numwant) = self.numwant {
            out.extend_from_slice(b"&numwant=");
            push_i64(out, numwant);
        }
        out.extend_from_slice(if self.compact {
            b"&compact=1"
        } else {
            b"&compact=0"
        });
        if self.no_peer_id {
            out.extend_from_slice(b"&no_peer_id=1");
        }
        if let Some(ip) = self.ip {
            out.extend_from_slice(b"&ip=");
            // IPv6 colons are reserved characters in a query.
            percent_encode(IpText::new(ip).as_bytes(), out);
        }
        write_http_tail(out, host, keep_alive);
    }
}

impl ScrapeRequest {
    /// Writes this scrape as an HTTP/1.1 `GET /scrape?info_hash=...` request for `host`
    /// (`/PASSKEY/scrape` with a passkey, `/-/scrape` with a malformed one, as
    /// [`AnnounceRequest::write_http`] does). Parsing the bytes gives this request back.
    pub fn write_http(&self, out: &mut Vec<u8>, host: &str, keep_alive: bool) {
        write_target(out, self.passkey, b"scrape");
        for (i, hash) in self.info_hashes.iter().enumerate() {
            out.extend_from_slice(if i == 0 {
                b"?info_hash="
            } else {
                b"&info_hash="
            });
            percent_encode(&hash.0, out);
        }
        write_http_tail(out, host, keep_alive);
    }
}

/// Writes `GET ` and the path of `endpoint` with `passkey`, in Gazelle's form
/// (`/PASSKEY/announce`), which every private tracker reads. A
/// [`PasskeyParam::Malformed`] keeps no bytes; it is written as the segment `-`, which
/// reads back as malformed, so that tests can send one.
fn write_target(out: &mut Vec<u8>, passkey: PasskeyParam, endpoint: &[u8]) {
    out.extend_from_slice(b"GET /");
    match passkey {
        PasskeyParam::Missing => {}
        PasskeyParam::Malformed => out.extend_from_slice(b"-/"),
        PasskeyParam::Key(key) => {
            out.extend_from_slice(&key.0);
            out.push(b'/');
        }
    }
    out.extend_from_slice(endpoint);
}

/// The rest of a request head after its target.
fn write_http_tail(out: &mut Vec<u8>, host: &str, keep_alive: bool) {
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    if !keep_alive {
        // HTTP/1.1 keeps the connection by default; only closing needs saying.
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    //! Announce parameters: BEP 3 ("Trackers"),
    //! <https://www.bittorrent.org/beps/bep_0003.html>; `compact`: BEP 23,
    //! <https://www.bittorrent.org/beps/bep_0023.html>; scrape: BEP 48,
    //! <https://www.bittorrent.org/beps/bep_0048.html>. HTTP/1.1 framing: RFC 9112.

    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use tracker_types::Passkey;

    const LIMITS: RequestLimits<'static> = RequestLimits {
        max_request_bytes: 2048,
        max_scrape_hashes: 4,
        forwarded_header: Some("X-Forwarded-For"),
    };

    /// The info hash BEP 3's URL examples are built from: 0x12 0x34 ... (ten pairs).
    const HASH: [u8; 20] = [
        0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf1, 0x23, 0x45, //
        0x67, 0x89, 0xab, 0xcd, 0xef, 0x12, 0x34, 0x56, 0x78, 0x9a,
    ];

    #[rustfmt::skip]
    const ANNOUNCE: &[u8] = concat!(
        "GET /announce",
        "?info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A", // 20 bytes: HASH
        "&peer_id=-SH0100-abcdefghijkl",                         // 20 bytes, plain
        "&port=6881",                                            // u16
        "&uploaded=1",                                           // u64
        "&downloaded=2",                                         // u64
        "&left=3",                                               // u64, 0 = seeder
        "&event=started",                                        // started|completed|stopped|empty
        "&numwant=-1",                                           // i64, negative = default
        "&compact=0",                                            // BEP 23: 0 = dictionaries
        "&no_peer_id=1",                                         // leave `peer id` out
        "&ip=%3A%3A1",                                           // "::1", percent-encoded
        "&key=%FF%00%80",                                        // ignored, not UTF-8
        " HTTP/1.1\r\n",
        "Host: tracker.example\r\n",
        "X-Forwarded-For: 192.0.2.1\r\n",
        "\r\n",
    ).as_bytes();

    fn announce_expected() -> AnnounceRequest {
        AnnounceRequest {
            info_hash: InfoHash(HASH),
            peer_id: PeerId(*b"-SH0100-abcdefghijkl"),
            port: 6881,
            uploaded: Some(1),
            downloaded: Some(2),
            left: 3,
            event: AnnounceEvent::Started,
            numwant: Some(-1),
            compact: false,
            no_peer_id: true,
            ip: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            passkey: PasskeyParam::Missing,
        }
    }

    fn parse(bytes: &[u8]) -> Result<Parsed, HttpError> {
        parse_request(bytes, &LIMITS)
    }

    fn request(bytes: &[u8]) -> Request {
        match parse(bytes) {
            Ok(Parsed::Complete { request, len }) => {
                assert_eq!(len, bytes.len(), "one whole request");
                request
            }
            other => panic!("not a whole request: {other:?}"),
        }
    }

    /// The kind of `GET {target} HTTP/1.1` with no other headers.
    fn kind_of(target: &str) -> RequestKind {
        request(format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes()).kind
    }

    const MINIMAL: &str =
        "info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=1&left=0";

    fn announce_of(query: &str) -> Result<AnnounceRequest, &'static str> {
        match kind_of(&format!("/announce?{query}")) {
            RequestKind::Announce(announce) => Ok(announce),
            RequestKind::Failure(reason) => Err(reason),
            other => panic!("not an announce: {other:?}"),
        }
    }

    // --- announce parameters ---

    #[test]
    fn announce_known_answer() {
        assert_eq!(
            request(ANNOUNCE),
            Request {
                kind: RequestKind::Announce(announce_expected()),
                keep_alive: true,
                forwarded_for: Some(b"192.0.2.1".to_vec()),
            }
        );
    }

    #[test]
    fn announce_defaults() {
        assert_eq!(
            announce_of(MINIMAL),
            Ok(AnnounceRequest {
                info_hash: InfoHash([b'a'; 20]),
                peer_id: PeerId([b'b'; 20]),
                port: 1,
                uploaded: None,
                downloaded: None,
                left: 0,
                event: AnnounceEvent::None,
                numwant: None,
                compact: true,
                no_peer_id: false,
                ip: None,
                passkey: PasskeyParam::Missing,
            })
        );
    }

    #[test]
    fn announce_missing_parameters() {
        let without = |key: &str| {
            let query: Vec<&str> = MINIMAL
                .split('&')
                .filter(|pair| !pair.starts_with(key))
                .collect();
            announce_of(&query.join("&"))
        };
        assert_eq!(without("info_hash="), Err("missing info_hash"));
        assert_eq!(without("peer_id="), Err("missing peer_id"));
        assert_eq!(without("port="), Err("missing port"));
        assert_eq!(without("left="), Err("missing left"));
    }

    #[test]
    fn announce_malformed_parameters() {
        let with = |extra: &str| announce_of(&format!("{MINIMAL}&{extra}"));
        assert_eq!(with("info_hash=short"), Err("malformed info_hash"));
        assert_eq!(
            with(&format!("info_hash={}", "a".repeat(21))),
            Err("malformed info_hash")
        );
        assert_eq!(with("info_hash="), Err("malformed info_hash"));
        assert_eq!(with("peer_id=%00"), Err("malformed peer_id"));
        assert_eq!(with("port=65536"), Err("malformed port"));
        assert_eq!(with("port=-1"), Err("malformed port"));
        assert_eq!(with("port="), Err("malformed port"));
        assert_eq!(with("left=18446744073709551616"), Err("malformed left"));
        assert_eq!(with("left=1.5"), Err("malformed left"));
        assert_eq!(with("uploaded=x"), Err("malformed uploaded"));
        assert_eq!(with("uploaded="), Err("malformed uploaded"));
        assert_eq!(with("downloaded=-3"), Err("malformed downloaded"));
        assert_eq!(with("event=paused"), Err("malformed event"));
        assert_eq!(with("event=STARTED"), Err("malformed event"));
    }

    #[test]
    fn announce_lenient_parameters() {
        let with = |extra: &str| announce_of(&format!("{MINIMAL}&{extra}")).unwrap();
        assert_eq!(with("numwant=lots").numwant, None);
        assert_eq!(with("numwant=").numwant, None);
        assert_eq!(with("numwant=%35%30").numwant, Some(50));
        assert_eq!(with("numwant=-9223372036854775808").numwant, Some(i64::MIN));
        assert_eq!(with("numwant=9223372036854775808").numwant, None);
        assert_eq!(with("ip=not-an-ip").ip, None);
        assert_eq!(with("ip=").ip, None);
        assert_eq!(
            with("ip=192.0.2.7").ip,
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)))
        );
        assert!(with("compact=").compact);
        assert!(with("compact=1").compact);
        assert!(with("compact=yes").compact);
        assert!(!with("compact=%30").compact);
        assert!(!with("no_peer_id=0").no_peer_id);
        assert!(!with("no_peer_id=").no_peer_id);
        assert!(with("no_peer_id=1").no_peer_id);
        assert_eq!(with("event=").event, AnnounceEvent::None);
        assert_eq!(with("event=empty").event, AnnounceEvent::None);
        assert_eq!(with("event=completed").event, AnnounceEvent::Completed);
        assert_eq!(with("event=stopped").event, AnnounceEvent::Stopped);
        // `+` is a space, so `port=+1` is not a number.
        assert_eq!(
            announce_of(&format!("{MINIMAL}&port=+1")),
            Err("malformed port")
        );
    }

    #[test]
    fn announce_repeated_key_last_wins() {
        let announce =
            announce_of(&format!("port=1&{MINIMAL}&port=7&event=started&event=")).unwrap();
        assert_eq!(announce.port, 7);
        assert_eq!(announce.event, AnnounceEvent::None);
        // Even a malformed earlier value does not count.
        assert_eq!(
            announce_of(&format!("left=x&{MINIMAL}")).map(|a| a.left),
            Ok(0)
        );
        assert_eq!(
            announce_of(&format!("{MINIMAL}&left=x")),
            Err("malformed left")
        );
    }

    #[test]
    fn announce_ignores_unknown_and_unused_parameters_whatever_they_carry() {
        for extra in [
            "key=%FF%FE%80%00",
            "key=%",
            "key=%4",
            "trackerid=%zz%",
            "supportcrypto=1&requirecrypto=%&corrupt=-5",
            "unknown=%C3%28&=&&novalue",
            "key=\u{e9}t\u{e9}", // raw UTF-8 in the target is fine; httparse refuses invalid UTF-8
        ] {
            assert!(
                announce_of(&format!("{MINIMAL}&{extra}")).is_ok(),
                "{extra}"
            );
            assert!(
                announce_of(&format!("{extra}&{MINIMAL}")).is_ok(),
                "{extra}"
            );
        }
    }

    #[test]
    fn info_hash_of_every_byte_in_either_hex_case() {
        let all: Vec<u8> = (0..=255).collect();
        for chunk in all.chunks(20) {
            let mut hash = [0xEE; 20];
            hash.get_mut(..chunk.len()).unwrap().copy_from_slice(chunk);
            let upper: String = hash.iter().map(|b| format!("%{b:02X}")).collect();
            let lower: String = hash.iter().map(|b| format!("%{b:02x}")).collect();
            // As a client that encodes only what it must: unreserved bytes bare.
            let mut minimal = Vec::new();
            percent_encode(&hash, &mut minimal);
            let minimal = String::from_utf8(minimal).unwrap();
            for encoded in [upper, lower, minimal] {
                let query = format!("info_hash={encoded}&peer_id={encoded}&port=1&left=0");
                let announce = announce_of(&query).unwrap();
                assert_eq!(announce.info_hash, InfoHash(hash), "{encoded}");
                assert_eq!(announce.peer_id, PeerId(hash), "{encoded}");
            }
        }
    }

    // --- scrape ---

    #[test]
    fn scrape_known_answer() {
        // BEP 48: `info_hash` repeated, once per torrent, in request order.
        assert_eq!(
            kind_of(concat!(
                "/scrape",
                "?info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A", // HASH
                "&info_hash=bbbbbbbbbbbbbbbbbbbb",                         // 20 x 0x62
                "&key=ignored",
            )),
            RequestKind::Scrape(ScrapeRequest {
                info_hashes: vec![InfoHash(HASH), InfoHash([b'b'; 20])],
                passkey: PasskeyParam::Missing,
            })
        );
    }

    #[test]
    fn scrape_without_hashes_is_full_scrape() {
        let full = RequestKind::Scrape(ScrapeRequest::default());
        assert_eq!(kind_of("/scrape"), full);
        assert_eq!(kind_of("/scrape?"), full);
        assert_eq!(kind_of("/scrape?key=1"), full);
    }

    #[test]
    fn scrape_keeps_at_most_the_limit() {
        let query: Vec<String> = (b'a'..=b'z')
            .map(|c| format!("info_hash={}", (c as char).to_string().repeat(20)))
            .collect();
        let RequestKind::Scrape(scrape) = kind_of(&format!("/scrape?{}", query.join("&"))) else {
            panic!("not a scrape");
        };
        let expected: Vec<InfoHash> = (b'a'..=b'd').map(|c| InfoHash([c; 20])).collect();
        assert_eq!(scrape.info_hashes, expected);
        assert_eq!(scrape.info_hashes.capacity(), LIMITS.max_scrape_hashes);
        // Ignored hashes beyond the limit are not even decoded.
        let past_limit = format!("/scrape?{}&info_hash=bad", query.join("&"));
        assert!(matches!(kind_of(&past_limit), RequestKind::Scrape(_)));
    }

    #[test]
    fn scrape_malformed_hash() {
        assert_eq!(
            kind_of("/scrape?info_hash=aaaaaaaaaaaaaaaaaaaa&info_hash=%61"),
            RequestKind::Failure("malformed info_hash")
        );
        assert_eq!(
            kind_of("/scrape?info_hash="),
            RequestKind::Failure("malformed info_hash")
        );
    }

    // --- paths ---

    #[test]
    fn paths() {
        assert_eq!(kind_of("/"), RequestKind::Index);
        assert_eq!(kind_of("/?info_hash=x"), RequestKind::Index);
        assert_eq!(
            kind_of("/announce"),
            RequestKind::Failure("missing info_hash")
        );
        for target in [
            "/announce/",
            "/scrape/",
            "/announce.php",
            "/ANNOUNCE",
            "/favicon.ico",
            "//",
            "*",
            "http://tracker.example/announce",
        ] {
            let head = format!("GET {target} HTTP/1.1\r\n\r\n");
            assert_eq!(parse(head.as_bytes()), Err(HttpError::NotFound), "{target}");
        }
    }

    /// A passkey: 32 characters of `[0-9A-Za-z]`.
    const KEY: &str = "abcdefghijklmnopqrstuvwxyzABC789";

    fn key() -> PasskeyParam {
        PasskeyParam::Key(Passkey::parse(KEY.as_bytes()).unwrap())
    }

    #[rustfmt::skip]
    const PASSKEY_ANNOUNCE: &[u8] = concat!(
        "GET /abcdefghijklmnopqrstuvwxyzABC789/announce", // Gazelle: /PASSKEY/announce
        "?info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A", // 20 bytes: HASH
        "&peer_id=-SH0100-abcdefghijkl",                         // 20 bytes, plain
        "&port=6881&uploaded=1&downloaded=2&left=3&event=started",
        "&numwant=-1&compact=0&no_peer_id=1&ip=%3A%3A1",
        " HTTP/1.1\r\n",
        "\r\n",
    ).as_bytes();

    #[test]
    fn passkey_announce_known_answer() {
        assert_eq!(
            request(PASSKEY_ANNOUNCE).kind,
            RequestKind::Announce(AnnounceRequest {
                passkey: key(),
                ..announce_expected()
            })
        );
    }

    #[test]
    fn passkey_paths() {
        let malformed = PasskeyParam::Malformed;
        for (path, passkey) in [
            // Gazelle's form, then UNIT3D's and torrust's.
            (format!("/{KEY}/ENDPOINT"), key()),
            (format!("/ENDPOINT/{KEY}"), key()),
            ("/ENDPOINT".to_string(), PasskeyParam::Missing),
            // Not 32 characters of [0-9A-Za-z]: still routed, to be refused as unknown.
            ("/short/ENDPOINT".to_string(), malformed),
            (format!("/ENDPOINT/{KEY}0"), malformed),
            (format!("/{}/ENDPOINT", KEY.get(..31).unwrap()), malformed),
            (format!("/{}-/ENDPOINT", KEY.get(..31).unwrap()), malformed),
            // The segment is taken as sent, not percent-decoded.
            (format!("/%61{}/ENDPOINT", KEY.get(1..).unwrap()), malformed),
        ] {
            let announce = path.replace("ENDPOINT", "announce");
            assert_eq!(
                announce_of_path(&announce),
                Ok(AnnounceRequest {
                    passkey,
                    ..announce_of(MINIMAL).unwrap()
                }),
                "{announce}"
            );
            let scrape = path.replace("ENDPOINT", "scrape");
            assert_eq!(
                kind_of(&format!("{scrape}?info_hash=aaaaaaaaaaaaaaaaaaaa")),
                RequestKind::Scrape(ScrapeRequest {
                    info_hashes: vec![InfoHash([b'a'; 20])],
                    passkey,
                }),
                "{scrape}"
            );
            // A full scrape carries its passkey too (a private tracker may need it).
            assert_eq!(
                kind_of(&scrape),
                RequestKind::Scrape(ScrapeRequest {
                    info_hashes: Vec::new(),
                    passkey,
                }),
                "{scrape}"
            );
        }
        // Wrong parameters behind a passkey are a failure like any other.
        assert_eq!(
            kind_of(&format!("/{KEY}/announce")),
            RequestKind::Failure("missing info_hash")
        );
        for target in [
            format!("/{KEY}"),
            format!("/{KEY}/"),
            format!("/{KEY}/announce/"),
            format!("/{KEY}/announce/x"),
            format!("/{KEY}/{KEY}/announce"),
            format!("/{KEY}/other"),
            format!("//{KEY}/announce"),
            format!("/{KEY}/announce.php"),
            "/announce/scrape".to_string(),
            "/scrape/announce".to_string(),
        ] {
            let head = format!("GET {target} HTTP/1.1\r\n\r\n");
            assert_eq!(parse(head.as_bytes()), Err(HttpError::NotFound), "{target}");
        }
    }

    fn announce_of_path(path: &str) -> Result<AnnounceRequest, &'static str> {
        match kind_of(&format!("{path}?{MINIMAL}")) {
            RequestKind::Announce(announce) => Ok(announce),
            RequestKind::Failure(reason) => Err(reason),
            other => panic!("not an announce: {other:?}"),
        }
    }

    // --- heads and framing ---

    #[test]
    fn every_prefix_is_incomplete() {
        for len in 0..ANNOUNCE.len() {
            assert_eq!(
                parse(ANNOUNCE.get(..len).unwrap()),
                Ok(Parsed::Incomplete),
                "{len}"
            );
        }
    }

    #[test]
    fn pipelined_requests_are_taken_one_at_a_time() {
        let second = b"GET / HTTP/1.1\r\n\r\n";
        let mut bytes = ANNOUNCE.to_vec();
        bytes.extend_from_slice(second);
        bytes.extend_from_slice(b"GET /scr"); // a third, partial
        let Ok(Parsed::Complete { request, len }) = parse(&bytes) else {
            panic!("first request");
        };
        assert_eq!(request.kind, RequestKind::Announce(announce_expected()));
        assert_eq!(len, ANNOUNCE.len());
        let rest = bytes.get(len..).unwrap();
        let Ok(Parsed::Complete { request, len }) = parse(rest) else {
            panic!("second request");
        };
        assert_eq!((request.kind, len), (RequestKind::Index, second.len()));
        assert_eq!(parse(rest.get(len..).unwrap()), Ok(Parsed::Incomplete));
    }

    #[test]
    fn oversize_heads() {
        let limits = RequestLimits {
            max_request_bytes: ANNOUNCE.len(),
            ..LIMITS
        };
        assert!(matches!(
            parse_request(ANNOUNCE, &limits),
            Ok(Parsed::Complete { .. })
        ));
        let limits = RequestLimits {
            max_request_bytes: ANNOUNCE.len() - 1,
            ..LIMITS
        };
        assert_eq!(
            parse_request(ANNOUNCE, &limits),
            Err(HttpError::HeadersTooLarge)
        );
        // Still within the limit and incomplete: wait for more.
        assert_eq!(
            parse_request(ANNOUNCE.get(..ANNOUNCE.len() - 1).unwrap(), &limits),
            Ok(Parsed::Incomplete)
        );
        // A head that never ends.
        let endless = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 4096]].concat();
        assert_eq!(parse(&endless), Err(HttpError::HeadersTooLarge));
        // Too many header fields.
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many), Err(HttpError::HeadersTooLarge));
    }

    #[test]
    fn methods_other_than_get() {
        for method in ["POST", "HEAD", "PUT", "get"] {
            let head = format!("{method} /announce HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
            assert_eq!(
                parse(head.as_bytes()),
                Err(HttpError::MethodNotAllowed),
                "{method}"
            );
        }
        // Incomplete is still incomplete: the method is judged on the whole head.
        assert_eq!(
            parse(b"POST /announce HTTP/1.1\r\n"),
            Ok(Parsed::Incomplete)
        );
    }

    #[test]
    fn bodies_are_refused() {
        for header in [
            "Content-Length: 5",
            "content-length:1",
            "Transfer-Encoding: chunked",
            "Transfer-Encoding: identity",
        ] {
            let head = format!("GET / HTTP/1.1\r\n{header}\r\n\r\n");
            assert_eq!(
                parse(head.as_bytes()),
                Err(HttpError::PayloadTooLarge),
                "{header}"
            );
        }
        assert_eq!(
            request(b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").kind,
            RequestKind::Index
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n"),
            Err(HttpError::BadRequest)
        );
    }

    #[test]
    fn keep_alive_by_version_and_connection_header() {
        for (head, keep_alive) in [
            ("GET / HTTP/1.1\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false),
            (
                "GET / HTTP/1.1\r\nconnection: Upgrade, CLOSE\r\n\r\n",
                false,
            ),
            ("GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", true),
            ("GET / HTTP/1.0\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
            ("GET / HTTP/1.0\r\nConnection: te ,keep-alive\r\n\r\n", true),
            (
                "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
                false,
            ),
        ] {
            assert_eq!(request(head.as_bytes()).keep_alive, keep_alive, "{head:?}");
        }
    }

    #[test]
    fn not_http_1() {
        for head in [
            &b"GET / HTTP/2.0\r\n\r\n"[..],
            b"GET / FTP/1.1\r\n\r\n",
            b"GET /\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", // a TLS ClientHello
            b"GET /announce?key=\xff HTTP/1.1\r\n\r\n",      // raw non-UTF-8 in the target
        ] {
            assert_eq!(parse(head), Err(HttpError::BadRequest), "{head:?}");
        }
    }

    #[test]
    fn forwarded_header_last_one_case_insensitive() {
        let head = b"GET / HTTP/1.1\r\nx-forwarded-for: 1.1.1.1\r\nX-FORWARDED-FOR: \xff2\r\n\r\n";
        assert_eq!(request(head).forwarded_for, Some(b"\xff2".to_vec()));
        let none = RequestLimits {
            forwarded_header: None,
            ..LIMITS
        };
        let Ok(Parsed::Complete { request, .. }) = parse_request(head, &none) else {
            panic!("whole request");
        };
        assert_eq!(request.forwarded_for, None);
        assert_eq!(kind_and_forwarded(b"GET / HTTP/1.1\r\n\r\n"), None);
    }

    fn kind_and_forwarded(head: &[u8]) -> Option<Vec<u8>> {
        request(head).forwarded_for
    }

    // --- writing ---

    #[test]
    fn write_http_known_answer() {
        let mut out = Vec::new();
        announce_expected().write_http(&mut out, "tracker.example", false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                "GET /announce",
                "?info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A",
                "&peer_id=-SH0100-abcdefghijkl",
                "&port=6881&uploaded=1&downloaded=2&left=3&event=started&numwant=-1",
                "&compact=0&no_peer_id=1&ip=%3A%3A1",
                " HTTP/1.1\r\nHost: tracker.example\r\nConnection: close\r\n\r\n",
            )
        );
        let mut out = Vec::new();
        ScrapeRequest {
            info_hashes: vec![InfoHash([b'a'; 20]), InfoHash([0; 20])],
            passkey: PasskeyParam::Missing,
        }
        .write_http(&mut out, "t", true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "GET /scrape?info_hash={}&info_hash={} HTTP/1.1\r\nHost: t\r\n\r\n",
                "a".repeat(20),
                "%00".repeat(20)
            )
        );
    }

    #[test]
    fn write_http_passkey_paths() {
        // Gazelle's form, which every private tracker reads.
        let mut out = Vec::new();
        AnnounceRequest {
            passkey: key(),
            ..announce_expected()
        }
        .write_http(&mut out, "t", true);
        assert!(out.starts_with(format!("GET /{KEY}/announce?info_hash=").as_bytes()));
        let mut out = Vec::new();
        ScrapeRequest {
            info_hashes: Vec::new(),
            passkey: key(),
        }
        .write_http(&mut out, "t", true);
        assert!(out.starts_with(format!("GET /{KEY}/scrape HTTP/1.1\r\n").as_bytes()));
        // A malformed passkey keeps no bytes: `-` stands for it.
        let mut out = Vec::new();
        ScrapeRequest {
            info_hashes: Vec::new(),
            passkey: PasskeyParam::Malformed,
        }
        .write_http(&mut out, "t", true);
        assert!(out.starts_with(b"GET /-/scrape HTTP/1.1\r\n"));
    }

    pub(crate) fn passkey_param() -> impl Strategy<Value = PasskeyParam> {
        prop_oneof![
            Just(PasskeyParam::Missing),
            Just(PasskeyParam::Malformed),
            "[0-9A-Za-z]{32}"
                .prop_map(|key| PasskeyParam::Key(Passkey::parse(key.as_bytes()).unwrap())),
        ]
    }

    pub(crate) fn announce_request() -> impl Strategy<Value = AnnounceRequest> {
        let event = prop_oneof![
            Just(AnnounceEvent::None),
            Just(AnnounceEvent::Started),
            Just(AnnounceEvent::Completed),
            Just(AnnounceEvent::Stopped),
        ];
        (
            (any::<[u8; 20]>(), any::<[u8; 20]>(), any::<u16>()),
            (any::<Option<u64>>(), any::<Option<u64>>(), any::<u64>()),
            (event, any::<Option<i64>>(), any::<bool>(), any::<bool>()),
            (any::<Option<IpAddr>>(), passkey_param()),
        )
            .prop_map(
                |(
                    (hash, id, port),
                    (uploaded, downloaded, left),
                    (event, numwant, compact, no_peer_id),
                    (ip, passkey),
                )| {
                    AnnounceRequest {
                        info_hash: InfoHash(hash),
                        peer_id: PeerId(id),
                        port,
                        uploaded,
                        downloaded,
                        left,
                        event,
                        numwant,
                        compact,
                        no_peer_id,
                        ip,
                        passkey,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn announce_round_trip(announce in announce_request(), keep_alive in any::<bool>()) {
            let mut out = Vec::new();
            announce.write_http(&mut out, "tracker.example:6969", keep_alive);
            let parsed = parse_request(&out, &RequestLimits { max_request_bytes: out.len(), ..LIMITS });
            prop_assert_eq!(parsed, Ok(Parsed::Complete {
                request: Request {
                    kind: RequestKind::Announce(announce),
                    keep_alive,
                    forwarded_for: None,
                },
                len: out.len(),
            }));
        }

        #[test]
        fn scrape_round_trip(
            hashes in proptest::collection::vec(any::<[u8; 20]>(), 0..=4),
            passkey in passkey_param(),
            keep_alive in any::<bool>(),
        ) {
            let scrape = ScrapeRequest {
                info_hashes: hashes.into_iter().map(InfoHash).collect(),
                passkey,
            };
            let mut out = Vec::new();
            scrape.write_http(&mut out, "h", keep_alive);
            let parsed = parse_request(&out, &LIMITS);
            prop_assert_eq!(parsed, Ok(Parsed::Complete {
                request: Request { kind: RequestKind::Scrape(scrape), keep_alive, forwarded_for: None },
                len: out.len(),
            }));
        }

        #[test]
        fn passkey_round_trip(
            key in "[0-9A-Za-z]{32}",
            scrape in any::<bool>(),
            unit3d in any::<bool>(),
        ) {
            // Whichever form the client used, the passkey read is the one written.
            let endpoint = if scrape { "scrape" } else { "announce" };
            let path = if unit3d { format!("/{endpoint}/{key}") } else { format!("/{key}/{endpoint}") };
            let Ok(Parsed::Complete { request, .. }) =
                parse(format!("GET {path}?{MINIMAL} HTTP/1.1\r\n\r\n").as_bytes())
            else {
                return Err(TestCaseError::fail("not a whole request"));
            };
            let expected = PasskeyParam::Key(Passkey::parse(key.as_bytes()).unwrap());
            let mut out = Vec::new();
            match &request.kind {
                RequestKind::Announce(announce) => {
                    prop_assert_eq!(announce.passkey, expected);
                    announce.write_http(&mut out, "h", true);
                }
                RequestKind::Scrape(scrape) => {
                    prop_assert_eq!(scrape.passkey, expected);
                    scrape.write_http(&mut out, "h", true);
                }
                other => return Err(TestCaseError::fail(format!("{other:?}"))),
            }
            let limits = RequestLimits { max_request_bytes: out.len(), ..LIMITS };
            let Ok(Parsed::Complete { request: again, .. }) = parse_request(&out, &limits) else {
                return Err(TestCaseError::fail("written request does not parse"));
            };
            prop_assert_eq!(again.kind, request.kind);
        }

        #[test]
        fn whatever_parses_writes_back_the_same(
            path in prop_oneof![
                Just("/announce"), Just("/scrape"),
                Just("/abcdefghijklmnopqrstuvwxyzABC789/announce"),
                Just("/scrape/abcdefghijklmnopqrstuvwxyzABC789"),
                Just("/bad/announce"), Just("/scrape/bad"),
            ],
            pairs in proptest::collection::vec((
                prop_oneof![
                    Just("info_hash"), Just("peer_id"), Just("port"), Just("left"),
                    Just("uploaded"), Just("downloaded"), Just("event"), Just("numwant"),
                    Just("compact"), Just("no_peer_id"), Just("ip"), Just("key"),
                ],
                prop_oneof![
                    "[a-z]{20}", "(%[0-9a-fA-F]{2}){20}", "[0-9]{1,5}", "-?[0-9]{1,20}",
                    "started", "empty", "", "%", "[0-9.:a-f]{0,20}",
                ],
            ), 0..16),
        ) {
            // The fuzz target's property, from inputs that reach the parameter rules.
            let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            // Valid required parameters first, so that most cases reach an announce;
            // the random ones after them override them (the last one counts).
            let head = format!("GET {path}?{MINIMAL}&{} HTTP/1.1\r\n\r\n", query.join("&"));
            let Ok(Parsed::Complete { request, .. }) = parse(head.as_bytes()) else {
                return Err(TestCaseError::fail("not a whole request"));
            };
            let mut out = Vec::new();
            match &request.kind {
                RequestKind::Announce(announce) => announce.write_http(&mut out, "h", true),
                RequestKind::Scrape(scrape) => scrape.write_http(&mut out, "h", true),
                _ => return Ok(()),
            }
            let limits = RequestLimits { max_request_bytes: out.len(), ..LIMITS };
            let Ok(Parsed::Complete { request: again, .. }) = parse_request(&out, &limits) else {
                return Err(TestCaseError::fail("written request does not parse"));
            };
            prop_assert_eq!(again.kind, request.kind);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn arbitrary_queries_never_panic(query in proptest::collection::vec(
            prop_oneof![Just(b'%'), Just(b'&'), Just(b'='), Just(b'+'), b'0'..=b'z'], 0..512)
        ) {
            // Bytes a target can carry, mostly query syntax, behind both paths.
            for path in [
                "/announce?", "/scrape?", "/announce?info_hash=", "/scrape?info_hash=",
                "/abcdefghijklmnopqrstuvwxyzABC789/announce?", "/scrape/x?info_hash=",
            ] {
                let mut head = format!("GET {path}").into_bytes();
                head.extend_from_slice(&query);
                head.extend_from_slice(b" HTTP/1.1\r\n\r\n");
                let _ = parse(&head);
            }
        }
    }
}
