//! HTTP tracker requests: `GET /announce?...`, `GET /scrape?...`, `GET /`.

use std::net::IpAddr;

use crate::{AnnounceEvent, InfoHash, PeerId};

/// Bounds the caller sets (from its config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLimits<'a> {
    /// Most bytes of one request head (request line and headers). A request whose head is
    /// not complete within this many bytes is refused with [`HttpError::HeadersTooLarge`].
    pub max_request_bytes: usize,
    /// Most info hashes read from one scrape; further `info_hash` parameters are ignored.
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
    /// `GET /announce?...` with valid parameters.
    Announce(AnnounceRequest),
    /// `GET /scrape?...`; no `info_hash` asks for a full scrape.
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
    /// Bytes uploaded so far (0 when missing).
    pub uploaded: u64,
    /// Bytes downloaded so far (0 when missing).
    pub downloaded: u64,
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
}

/// A scrape's info hashes (BEP 48).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ScrapeRequest {
    /// In request order, at most [`RequestLimits::max_scrape_hashes`]; empty asks for a
    /// full scrape.
    pub info_hashes: Vec<InfoHash>,
}

/// A request that is not a tracker request, answered with an HTTP status and closed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// 400: not HTTP/1.x, or a malformed request line or header.
    BadRequest,
    /// 404: a path other than `/`, `/announce` and `/scrape`.
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
/// # Errors
/// An [`HttpError`] for input that is not a tracker's HTTP request; the caller answers
/// with its status and closes the connection.
pub fn parse_request(bytes: &[u8], limits: &RequestLimits<'_>) -> Result<Parsed, HttpError> {
    let _ = (bytes, limits);
    todo!("implemented on the http-protocol branch")
}

impl AnnounceRequest {
    /// Writes this announce as an HTTP/1.1 `GET {path}?...` request for `host`, every
    /// field as a parameter (binary ones percent-encoded), for load testers and tests.
    /// Parsing the bytes gives this request back.
    pub fn write_http(&self, out: &mut Vec<u8>, host: &str, path: &str, keep_alive: bool) {
        let _ = (out, host, path, keep_alive);
        todo!("implemented on the http-protocol branch")
    }
}

impl ScrapeRequest {
    /// Writes this scrape as an HTTP/1.1 `GET {path}?info_hash=...` request for `host`.
    pub fn write_http(&self, out: &mut Vec<u8>, host: &str, path: &str, keep_alive: bool) {
        let _ = (out, host, path, keep_alive);
        todo!("implemented on the http-protocol branch")
    }
}
