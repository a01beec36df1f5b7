#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The messages that shoal tracker nodes send each other over a message bus: the wire
//! formats of two kinds of message.
//!
//! - **Peer change batches**, so that every node of a cluster answers from the same
//!   swarms: written by [`BatchWriter`] and read by [`decode_batch`]. A node records what
//!   happened to the peers of its own swarms (a peer stored or refreshed by an announce,
//!   a peer that left) as [`PeerChange`]s, publishes them in batches, and applies the
//!   batches of the other nodes. Every batch carries a [`BatchHeader`]: the publishing
//!   process's random epoch and a sequence number, so that a receiver can tell a lost
//!   batch (a gap) from a restarted node (a new epoch), and the time it was sent.
//!   WebTorrent peers have no address: a change names one by its peer id within its
//!   torrent, and the peer lives on the node that published it, where its connection is.
//! - **Relays**, WebRTC offers and answers for WebTorrent peers: written by
//!   [`RelayWriter`] and read by [`decode_relays`]. A node forwards each [`Relay`] to the
//!   node where the peer it is for is connected, which sends it on over that peer's
//!   connection. The session description is carried as the client sent it, never parsed.
//!
//! # Layout
//!
//! - `batch`: peer change batches.
//! - `relay`: relay messages.
//! - `reader`: the bounds-checked cursor both decoders read through.
//!
//! # Guarantees
//!
//! - **No I/O, no clock, no logging, no configuration.** Bytes to values and back; the
//!   bus, the time in a batch's header and the message size limits belong to the caller.
//! - **No panics on any input.** Every read goes through `split_first_chunk` or
//!   `split_at_checked` behind its own length check, and the crate denies `unwrap`,
//!   `expect`, `panic!` and unchecked indexing outside tests. Property tests and fuzz
//!   targets (`fuzz/fuzz_targets/peer_changes.rs`, `fuzz/fuzz_targets/relays.rs`) feed
//!   the decoders arbitrary bytes.
//! - **Bounded by the input.** A header's count is checked against the bytes that follow
//!   before anything is allocated: a batch of `n` bytes never makes the decoder allocate
//!   room for more than `n / 27` changes, a relay message of `n` bytes for more than
//!   `n / 85` relays. A relay's session description is borrowed from the input, and its
//!   length is only ever compared with the bytes left.
//! - **One encoding per value.** The decoders reject everything the writers would not
//!   write (unknown kinds or flags, port 0, an IPv4-mapped address sent as IPv6, a count
//!   that does not match the records, a length past the end, trailing bytes), so that a
//!   decoded message written again gives the same bytes.
//!
//! # Peer change batch format, version 1
//! All integers little-endian.
//!
//! ```text
//! header, 34 bytes
//!   magic             4  b"SHPC"
//!   version           1  1
//!   flags             1  0 (none defined yet)
//!   epoch             8  random per process start
//!   sequence          8  0, 1, 2, ... within the epoch, one per batch (heartbeats too)
//!   sent at           8  Unix milliseconds when the batch was published
//!   count             4  change records that follow
//! change record, 27 to 61 bytes:
//!   upsert 49 bytes (IPv4) or 61 (IPv6); removed 27 (IPv4) or 39 (IPv6);
//!   WebTorrent upsert 43; WebTorrent removed 41
//!   kind and flags    1  bits 0-1: kind, 0 upsert, 1 removed,
//!                                        2 WebTorrent upsert, 3 WebTorrent removed
//!                        bit 2: IPv6 address (kinds 0 and 1 only)
//!                        bit 3: seeder (kinds 0 and 2 only)
//!                        bit 4: completion counted by the sender (kinds 0 and 2 only)
//!                        bits 5-7: 0
//!   info hash        20
//!   kinds 0 and 1:
//!     address      4/16  an IPv4-mapped IPv6 address is sent as IPv4
//!     port            2  not 0
//!   kinds 0, 2 and 3:
//!     peer id        20
//!   kinds 0 and 2:
//!     age secs        2  seconds since the sender last saw the peer
//! ```
//!
//! # Relay message format, version 1
//! All integers little-endian.
//!
//! ```text
//! header, 10 bytes
//!   magic             4  b"SHPR"
//!   version           1  1
//!   flags             1  0 (none defined yet)
//!   count             4  relay records that follow
//! relay record, 85 bytes and the session description
//!   kind              1  0 offer, 1 answer (other values are invalid)
//!   info hash        20
//!   to               20  peer id of the peer it is for
//!   from             20  peer id of the peer that sent it
//!   offer id         20
//!   sdp len           4  bytes of session description that follow
//!   sdp               n  the session description exactly as the client sent it
//! ```
//!
//! # Examples
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use tracker_cluster_protocol::{
//!     BatchHeader, BatchWriter, InfoHash, PeerChange, PeerId, PeerUpsert, decode_batch,
//! };
//!
//! let header = BatchHeader { epoch: 0x5eed, sequence: 0, sent_unix_millis: 1_700_000_000_000 };
//! let change = PeerChange::Upsert(PeerUpsert {
//!     info_hash: InfoHash([1; 20]),
//!     ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
//!     port: 6881,
//!     peer_id: PeerId([2; 20]),
//!     seeder: true,
//!     completed: false,
//!     age_secs: 0,
//! });
//! let mut writer = BatchWriter::new(&header);
//! writer.push(&change);
//! let bytes = writer.finish();
//! assert_eq!(bytes.len(), 34 + 49);
//! assert_eq!(decode_batch(&bytes), Ok((header, vec![change])));
//! ```
//!
//! ```
//! use tracker_cluster_protocol::{InfoHash, PeerId, Relay, RelayKind, RelayWriter, decode_relays};
//!
//! let relay = Relay {
//!     kind: RelayKind::Offer,
//!     info_hash: InfoHash([1; 20]),
//!     to: PeerId([2; 20]),
//!     from: PeerId([3; 20]),
//!     offer_id: [4; 20],
//!     sdp: br#"{"type":"offer","sdp":"v=0"}"#,
//! };
//! let mut writer = RelayWriter::new();
//! assert!(writer.push(&relay));
//! let bytes = writer.finish();
//! assert_eq!(bytes.len(), 10 + 85 + relay.sdp.len());
//! assert_eq!(decode_relays(&bytes), Ok(vec![relay]));
//! ```

mod batch;
mod reader;
mod relay;

pub use batch::{
    BatchHeader, BatchWriter, DecodeError, HEADER_BYTES, MAGIC, MAX_CHANGE_BYTES, MIN_CHANGE_BYTES,
    PeerChange, PeerUpsert, VERSION, WsPeerUpsert, decode_batch,
};
pub use relay::{
    RELAY_FIXED_BYTES, RELAY_HEADER_BYTES, RELAY_MAGIC, RELAY_VERSION, Relay, RelayDecodeError,
    RelayKind, RelayWriter, decode_relays,
};
pub use tracker_types::{InfoHash, PeerId};
