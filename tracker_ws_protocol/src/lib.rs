#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The WebTorrent tracker wire format: JSON text messages over WebSocket, as the
//! `bittorrent-tracker` npm client (the one WebTorrent uses) speaks them.
//!
//! A client announces with WebRTC offers (`offers`: `offer_id` and `offer`), which the
//! tracker relays to other peers of the swarm; a peer that takes one sends an `answer`
//! with `to_peer_id` and `offer_id`, which the tracker relays to the offerer. Scrapes
//! ask for `complete`, `incomplete` and `downloaded` counts. `info_hash`, `peer_id`,
//! `to_peer_id` and `offer_id` are 20-character strings whose characters
//! U+0000..=U+00FF stand for 20 bytes. There is no BEP: the reference is the client's
//! `lib/client/websocket-tracker.js` and the server's `lib/server/parse-websocket.js`.
//!
//! # Guarantees
//! - **No I/O, no clock, no logging, no configuration.** Limits are arguments
//!   ([`Limits`]).
//! - **No panics on any input**, and no allocation beyond the input's size: the crate
//!   denies `unwrap`, `expect`, `panic!` and unchecked indexing outside tests; property
//!   tests and fuzz targets (`fuzz/fuzz_targets/ws_message.rs`, `ws_frame.rs`,
//!   `ws_session.rs`) feed it arbitrary bytes and JSON.
//! - **Offers and answers are relayed as sent.** Their session descriptions are kept
//!   as raw JSON text ([`serde_json::value::RawValue`]) and written back byte for
//!   byte, never decoded and encoded again.
//! - **Writing allocates nothing** but the caller's buffer's growth: JSON is written by
//!   hand, numbers on the stack.
//! - **Round trips.** For every message parsing can produce, writing it and parsing the
//!   text again gives the same message.
//! - **Failures can be answered.** A [`ParseError`] carries the text for `failure
//!   reason` and the message's `action` and `info_hash` whenever they could be read,
//!   which the client needs to show the failure.
//!
//! # Layout
//! - `common`: [`Action`], [`OfferId`].
//! - `incoming`: client to tracker: [`parse_in_message`] ([`parse_in_text`] for checked UTF-8), [`InMessage`] and its parts;
//!   [`write_in_message`] for load testers and tests.
//! - `outgoing`: tracker to client: [`write_out_message`], [`OutMessage`];
//!   [`parse_out_message`] and [`ParsedOutMessage`] for load testers and tests.
//! - `error`: [`ParseError`] and its [`ParseErrorKind`] and [`Field`].
//! - [`websocket`]: the upgrade request and its answers, frames, close codes.
//! - [`session`]: one server-side connection as a state machine over those: bytes in,
//!   events out, control frames (pongs, the close frame) out when the caller has room.
//! - `json` (private): field readers that never fail the parse on a wrong type, binary
//!   strings, hand-written JSON output.
//!
//! The value types of `tracker_types` that appear in messages are re-exported.
//!
//! # Example
//! ```
//! use tracker_ws_protocol::{
//!     InMessage, Limits, OutMessage, parse_in_message, write_out_message,
//! };
//!
//! let limits = Limits { max_offers: 10, max_scrape_torrents: 64 };
//! let text = br#"{"action":"announce","info_hash":"\u0000\u00ffaaaaaaaaaaaaaaaaaa",
//!     "peer_id":"-WW0208-abcdefghijkl","numwant":0,"left":null,"event":"started"}"#;
//! let Ok(InMessage::Announce(announce)) = parse_in_message(text, &limits) else {
//!     unreachable!("a well-formed announce");
//! };
//! assert_eq!(announce.info_hash.0[1], 0xff);
//! assert_eq!(announce.left, None);
//!
//! let mut out = Vec::new(); // reused for every message
//! write_out_message(
//!     &OutMessage::AnnounceResponse {
//!         info_hash: announce.info_hash,
//!         interval: 120,
//!         complete: 1,
//!         incomplete: 0,
//!     },
//!     &mut out,
//! );
//! // Byte 0xff is written as U+00FF in UTF-8, as `JSON.stringify` does.
//! assert!(out.starts_with(r#"{"action":"announce","interval":120,"info_hash":"\u0000ÿa"#.as_bytes()));
//! ```

mod common;
mod error;
mod incoming;
mod json;
mod outgoing;
pub mod session;
pub mod websocket;

pub use common::{Action, OfferId};
pub use error::{Field, ParseError, ParseErrorKind};
pub use incoming::{
    AnnounceRequest, Answer, InMessage, Limits, Offer, ScrapeRequest, parse_in_message,
    parse_in_text, write_in_message,
};
pub use outgoing::{
    OutMessage, ParsedOutMessage, max_scrape_response_bytes, parse_out_message, write_out_message,
};
pub use serde_json::value::RawValue;
pub use tracker_types::{AnnounceEvent, InfoHash, PeerId, ScrapeCounts};
