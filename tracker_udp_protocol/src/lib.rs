#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The BitTorrent UDP tracker wire format: every request and response of BEP 15, and
//! the BEP 41 options that may follow an announce request.
//!
//! - BEP 15, UDP Tracker Protocol: <https://www.bittorrent.org/beps/bep_0015.html>
//! - BEP 41, UDP Tracker Protocol Extensions:
//!   <https://www.bittorrent.org/beps/bep_0041.html>
//!
//! # Guarantees
//!
//! - **No I/O, no clock, no logging, no configuration.** This crate turns bytes into
//!   values and values into bytes; sockets, time and limits belong to the caller. Limits
//!   (such as the most info hashes a scrape may carry) are function arguments.
//! - **No panics on any input.** Parsers never index a slice before its length is
//!   checked; every read goes through `split_first_chunk` and friends, and the crate
//!   denies `unwrap`, `expect`, `panic!` and unchecked indexing outside tests. Property
//!   tests and a fuzz target (`fuzz/fuzz_targets/udp_request.rs`) feed it arbitrary
//!   bytes.
//! - **No allocation when writing.** [`Response::write_bytes`] and
//!   [`Request::write_bytes`] only copy into the given writer, so a tracker can answer
//!   into one reused buffer. Parsing allocates at most one exactly-sized `Vec` per
//!   message (scrape info hashes, announce URL data, response peers or statistics).
//! - **Round trips.** For every value that parsing can produce, writing it and parsing
//!   the bytes again gives the same value.
//!
//! # Layout
//!
//! - `common`: [`PROTOCOL_IDENTIFIER`], [`ConnectionId`], [`TransactionId`].
//! - `request`: [`Request`] and its messages; [`RequestParseError`] says whether a bad
//!   request can still be answered with an error packet.
//! - `response`: [`Response`] and its messages; [`ResponseParseError`].
//!
//! The value types of `tracker_types` that appear in messages are re-exported, so a
//! user of this crate needs no other import.
//!
//! # Example
//!
//! ```
//! use tracker_udp_protocol::{
//!     ConnectResponse, ConnectionId, PROTOCOL_IDENTIFIER, Request, Response, TransactionId,
//! };
//!
//! let mut datagram = PROTOCOL_IDENTIFIER.to_be_bytes().to_vec();
//! datagram.extend_from_slice(&0i32.to_be_bytes()); // action: connect
//! datagram.extend_from_slice(&7i32.to_be_bytes()); // transaction id
//!
//! let Ok(Request::Connect(request)) = Request::parse_bytes(&datagram, 74, 128) else {
//!     unreachable!("a well-formed connect request");
//! };
//! let response = Response::Connect(ConnectResponse {
//!     transaction_id: request.transaction_id,
//!     connection_id: ConnectionId(0x1234),
//! });
//!
//! let mut buf = Vec::with_capacity(1500); // reused for every answer
//! response.write_bytes(&mut buf)?;
//! assert_eq!(buf.len(), 16);
//! assert_eq!(Response::parse_bytes(&buf, true), Ok(response));
//! assert_eq!(request.transaction_id, TransactionId(7));
//! # Ok::<(), std::io::Error>(())
//! ```

mod common;
mod request;
mod response;

pub use common::{ConnectionId, PROTOCOL_IDENTIFIER, TransactionId};
pub use request::{AnnounceRequest, ConnectRequest, Request, RequestParseError, ScrapeRequest};
pub use response::{
    ANNOUNCE_RESPONSE_HEADER_LEN, AnnounceResponse, AnnounceResponseRef, ConnectResponse,
    ErrorResponse, IPV4_PEER_LEN, IPV6_PEER_LEN, MAX_ANNOUNCE_PEERS_IPV4, MAX_ANNOUNCE_PEERS_IPV6,
    Response, ResponseParseError, ScrapeResponse, TorrentScrapeStatistics, max_announce_peers,
};
pub use tracker_types::{AnnounceEvent, InfoHash, Ip, Passkey, PasskeyParam, PeerId, ResponsePeer};
