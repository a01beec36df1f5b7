#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The BitTorrent HTTP tracker wire format: announce and scrape requests as HTTP/1.x
//! `GET` requests, and their bencoded answers.
//!
//! - BEP 3 (announce parameters, `failure reason`), BEP 23 (compact `peers`), BEP 7
//!   (`peers6`), BEP 48 (scrape), BEP 24 (`external ip`).
//! - Private trackers' passkey paths (`/PASSKEY/announce`, `/announce/PASSKEY`): the
//!   passkey is read into the request ([`PasskeyParam`]); checking it is the tracker's.
//!
//! # Guarantees
//! - **No I/O, no clock, no logging, no configuration.** Limits are arguments
//!   ([`RequestLimits`]).
//! - **No panics on any input**, and no allocation larger than the input or a limit.
//! - **Incomplete input is a state, not an error**: [`parse_request`] answers
//!   [`Parsed::Incomplete`] until a whole request head is there.
//! - Parameters the tracker does not use (`key`, `trackerid`, `supportcrypto`, unknown
//!   ones) may carry any percent-encoded bytes, UTF-8 or not; they never fail a request.
//!
//! # Layout
//! - `query`: percent-decoding and the `key=value&...` pairs of a query string.
//! - `request`: [`parse_request`] and the request types; `write_http` for load testers.
//! - `response`: bencoded answers and the HTTP framing around them; parsing them back
//!   for load testers and tests.
//! - `session`: one server-side HTTP/1.1 connection as a state machine without I/O
//!   ([`session::Session`]): requests in, answers out in request order, bounds.
//! - `bencode`: a bounded bencode decoder ([`bencode::Value`]).
//! - `ascii` (private): decimal numbers and IP address text, formatted on the stack.

mod ascii;
pub mod bencode;
mod query;
mod request;
mod response;
pub mod session;

pub use query::{QueryPairs, percent_decode};
pub use request::{
    AnnounceRequest, HttpError, Parsed, Request, RequestKind, RequestLimits, ScrapeRequest,
    parse_request,
};
pub use response::{
    AnnounceResponse, HttpResponse, MAX_OK_HEAD_BYTES, ParsedAnnounce, ParsedPeer, ScrapeResponse,
    TrackerResponse, max_announce_answer_bytes, max_scrape_answer_bytes, parse_http_response,
    write_failure_body, write_http_head, write_http_response,
};
pub use tracker_types::{
    AnnounceEvent, InfoHash, Passkey, PasskeyParam, PeerId, ResponsePeerWithId, ScrapeCounts,
};
