//! Relay messages: WebRTC offers and answers ([`Relay`]s) for WebTorrent peers connected
//! to another node, written by [`RelayWriter`] and read by [`decode_relays`], in the
//! format the crate documentation lays out. Session descriptions are carried as opaque
//! bytes and borrowed from the input, never parsed or copied.

use std::fmt;

use crate::reader::Reader;
use crate::{InfoHash, PeerId};

/// The first bytes of every relay message.
pub const RELAY_MAGIC: [u8; 4] = *b"SHPR";
/// The relay format version this code writes and reads.
pub const RELAY_VERSION: u8 = 1;
/// Bytes of a relay message's header.
pub const RELAY_HEADER_BYTES: usize = 10;
/// Bytes of a relay record besides its session description.
pub const RELAY_FIXED_BYTES: usize = 1 + 20 + 20 + 20 + 20 + 4;

/// Where the count sits in the header, patched by [`RelayWriter::finish`].
const RELAY_COUNT_OFFSET: usize = RELAY_HEADER_BYTES - 4;

/// A record's kind byte for an offer.
const KIND_OFFER: u8 = 0;
/// A record's kind byte for an answer.
const KIND_ANSWER: u8 = 1;

/// Whether a relay carries a WebRTC offer or the answer to one.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum RelayKind {
    /// An offer from a peer to a peer it has not connected to yet.
    Offer,
    /// The answer to an offer, back to the peer that made it.
    Answer,
}

/// One offer or answer for a WebTorrent peer on the receiving node, borrowing its session
/// description.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Relay<'a> {
    /// Offer or answer.
    pub kind: RelayKind,
    /// The torrent both peers are in.
    pub info_hash: InfoHash,
    /// The peer id of the peer it is for (connected to the receiving node).
    pub to: PeerId,
    /// The peer id of the peer that sent it.
    pub from: PeerId,
    /// The offer's id, chosen by the client that made the offer; an answer carries the id
    /// of the offer it answers.
    pub offer_id: [u8; 20],
    /// The session description exactly as the client sent it (JSON text; this crate does
    /// not parse it). At most `u32::MAX` bytes: see [`RelayWriter::push`].
    pub sdp: &'a [u8],
}

impl Relay<'_> {
    /// Bytes of the relay's record: [`RELAY_FIXED_BYTES`] and its session description.
    pub fn encoded_len(&self) -> usize {
        // No overflow: a slice is at most `isize::MAX` bytes.
        RELAY_FIXED_BYTES + self.sdp.len()
    }
}

/// Writes one relay message: the header, then the relays pushed, then [`Self::finish`]
/// puts their count in the header.
#[derive(Clone, Debug)]
pub struct RelayWriter {
    bytes: Vec<u8>,
    count: u32,
}

impl Default for RelayWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl RelayWriter {
    /// A message of no relays yet.
    pub fn new() -> Self {
        Self::with_capacity(RELAY_HEADER_BYTES)
    }

    /// [`Self::new`], with room for `capacity_bytes` (header included) allocated up front.
    pub fn with_capacity(capacity_bytes: usize) -> Self {
        let mut bytes = Vec::with_capacity(capacity_bytes.max(RELAY_HEADER_BYTES));
        bytes.extend_from_slice(&RELAY_MAGIC);
        bytes.push(RELAY_VERSION);
        bytes.push(0);
        bytes.extend_from_slice(&0u32.to_le_bytes());
        Self { bytes, count: 0 }
    }

    /// Appends `relay` ([`Relay::encoded_len`] bytes) and returns true. Returns false and
    /// writes nothing, so that the message stays one the decoder reads, if the relay
    /// cannot be written: its session description is longer than `u32::MAX` bytes (the
    /// length field's limit; a client never sends one, so this is a caller's bug), or
    /// the message already holds `u32::MAX` relays.
    pub fn push(&mut self, relay: &Relay<'_>) -> bool {
        let Ok(sdp_len) = u32::try_from(relay.sdp.len()) else {
            return false;
        };
        let Some(count) = self.count.checked_add(1) else {
            return false;
        };
        self.bytes.push(match relay.kind {
            RelayKind::Offer => KIND_OFFER,
            RelayKind::Answer => KIND_ANSWER,
        });
        self.bytes.extend_from_slice(&relay.info_hash.0);
        self.bytes.extend_from_slice(&relay.to.0);
        self.bytes.extend_from_slice(&relay.from.0);
        self.bytes.extend_from_slice(&relay.offer_id);
        self.bytes.extend_from_slice(&sdp_len.to_le_bytes());
        self.bytes.extend_from_slice(relay.sdp);
        self.count = count;
        true
    }

    /// Relays pushed so far (those `push` wrote).
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes of the message so far, header included: what [`Self::finish`] returns.
    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The message's bytes, with the count of the relays written in its header.
    pub fn finish(mut self) -> Vec<u8> {
        if let Some(count) = self
            .bytes
            .get_mut(RELAY_COUNT_OFFSET..RELAY_HEADER_BYTES)
            .and_then(|field| <&mut [u8; 4]>::try_from(field).ok())
        {
            *count = self.count.to_le_bytes();
        }
        self.bytes
    }
}

/// Why bytes are not a relay message this code reads. Offsets are from the start of the
/// message.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RelayDecodeError {
    /// Shorter than a header.
    TooShort {
        /// The input's length.
        len: usize,
    },
    /// Does not start with [`RELAY_MAGIC`].
    BadMagic,
    /// Of a version this code does not read.
    UnsupportedVersion(u8),
    /// The header's flags byte has bits this version does not define.
    UnknownHeaderFlags(u8),
    /// The header counts more relays than the bytes after it could hold.
    CountTooLarge {
        /// The header's count.
        count: u32,
        /// Bytes after the header.
        remaining: usize,
    },
    /// A record's kind byte is neither offer (0) nor answer (1).
    UnknownKind {
        /// Where the record starts.
        offset: usize,
        /// The record's kind byte.
        byte: u8,
    },
    /// The input ends inside a record: fewer records than the header counts, or a
    /// session description length longer than the bytes left.
    Truncated {
        /// Where the record starts.
        offset: usize,
    },
    /// Bytes after the records the header counts.
    TrailingBytes {
        /// Where the first one is.
        offset: usize,
    },
}

impl fmt::Display for RelayDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => {
                write!(f, "{len} bytes is too short for a relay message")
            }
            Self::BadMagic => write!(f, "not a relay message (bad magic bytes)"),
            Self::UnsupportedVersion(v) => write!(
                f,
                "relay message version {v}, this code reads version {RELAY_VERSION}"
            ),
            Self::UnknownHeaderFlags(flags) => {
                write!(f, "unknown relay header flags {flags:#04x}")
            }
            Self::CountTooLarge { count, remaining } => write!(
                f,
                "{count} relays cannot fit in the {remaining} bytes after the header"
            ),
            Self::UnknownKind { offset, byte } => {
                write!(f, "unknown relay kind {byte:#04x} at byte {offset}")
            }
            Self::Truncated { offset } => write!(f, "relay record cut off at byte {offset}"),
            Self::TrailingBytes { offset } => {
                write!(f, "bytes after the last relay record, from byte {offset}")
            }
        }
    }
}

impl std::error::Error for RelayDecodeError {}

/// Reads a whole relay message: its relays, in the order they were pushed, each borrowing
/// its session description from `bytes`.
///
/// # Errors
/// The bytes are not a message that [`RelayWriter`] writes (see [`RelayDecodeError`]);
/// nothing is returned of a message with any fault.
pub fn decode_relays(bytes: &[u8]) -> Result<Vec<Relay<'_>>, RelayDecodeError> {
    let mut reader = Reader::new(bytes);
    let too_short = RelayDecodeError::TooShort { len: bytes.len() };
    if bytes.len() < RELAY_HEADER_BYTES {
        return Err(too_short);
    }
    if reader.take::<4, _>(too_short)? != RELAY_MAGIC {
        return Err(RelayDecodeError::BadMagic);
    }
    let [version, flags] = reader.take::<2, _>(too_short)?;
    if version != RELAY_VERSION {
        return Err(RelayDecodeError::UnsupportedVersion(version));
    }
    if flags != 0 {
        return Err(RelayDecodeError::UnknownHeaderFlags(flags));
    }
    let count = reader.u32(too_short)?;
    let remaining = reader.remaining();
    // Checked before allocating: a forged count can ask for no more room than the bytes
    // that carry it.
    let fits = usize::try_from(count).is_ok_and(|n| n <= remaining / RELAY_FIXED_BYTES);
    if !fits {
        return Err(RelayDecodeError::CountTooLarge { count, remaining });
    }
    let mut relays = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for _ in 0..count {
        relays.push(decode_relay(&mut reader)?);
    }
    if reader.remaining() != 0 {
        return Err(RelayDecodeError::TrailingBytes {
            offset: reader.offset(),
        });
    }
    Ok(relays)
}

/// Reads one relay record.
fn decode_relay<'a>(reader: &mut Reader<'a>) -> Result<Relay<'a>, RelayDecodeError> {
    let offset = reader.offset();
    let truncated = RelayDecodeError::Truncated { offset };
    let [byte] = reader.take::<1, _>(truncated)?;
    let kind = match byte {
        KIND_OFFER => RelayKind::Offer,
        KIND_ANSWER => RelayKind::Answer,
        _ => return Err(RelayDecodeError::UnknownKind { offset, byte }),
    };
    let info_hash = InfoHash(reader.take::<20, _>(truncated)?);
    let to = PeerId(reader.take::<20, _>(truncated)?);
    let from = PeerId(reader.take::<20, _>(truncated)?);
    let offer_id = reader.take::<20, _>(truncated)?;
    // The length only bounds a borrow of the input, never an allocation: a length past
    // the end is a truncated record. (A length that does not fit in `usize` cannot fit in
    // the input either.)
    let sdp_len = usize::try_from(reader.u32(truncated)?).map_err(|_| truncated)?;
    let sdp = reader.take_slice(sdp_len, truncated)?;
    Ok(Relay {
        kind,
        info_hash,
        to,
        from,
        offer_id,
        sdp,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SDP: &[u8] = br#"{"type":"offer","sdp":"v=0"}"#;

    fn offer() -> Relay<'static> {
        Relay {
            kind: RelayKind::Offer,
            info_hash: InfoHash([0xaa; 20]),
            to: PeerId([0xbb; 20]),
            from: PeerId([0xcc; 20]),
            offer_id: [0xdd; 20],
            sdp: SDP,
        }
    }

    fn answer() -> Relay<'static> {
        Relay {
            kind: RelayKind::Answer,
            info_hash: InfoHash([0x11; 20]),
            to: PeerId([0xcc; 20]),
            from: PeerId([0xbb; 20]),
            offer_id: [0xdd; 20],
            sdp: b"",
        }
    }

    fn encode(relays: &[Relay<'_>]) -> Vec<u8> {
        let mut writer = RelayWriter::new();
        for relay in relays {
            assert!(writer.push(relay));
        }
        writer.finish()
    }

    /// The offset of the first record's kind byte.
    const FIRST: usize = RELAY_HEADER_BYTES;

    /// An offer and an empty answer, byte by byte.
    #[test]
    fn known_answer_offer_and_answer() {
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            &b"SHPR"[..],                                 // magic
            &[1],                                         // version
            &[0],                                         // flags
            &[2, 0, 0, 0],                                // count
            &[0],                                         // offer
            &[0xaa; 20],                                  // info hash
            &[0xbb; 20],                                  // to
            &[0xcc; 20],                                  // from
            &[0xdd; 20],                                  // offer id
            &[28, 0, 0, 0],                               // sdp len
            br#"{"type":"offer","sdp":"v=0"}"#,           // sdp
            &[1],                                         // answer
            &[0x11; 20],                                  // info hash
            &[0xcc; 20],                                  // to
            &[0xbb; 20],                                  // from
            &[0xdd; 20],                                  // offer id
            &[0, 0, 0, 0],                                // sdp len, no sdp
        ]
        .concat();
        let bytes = encode(&[offer(), answer()]);
        assert_eq!(bytes, expected);
        assert_eq!(bytes.len(), RELAY_HEADER_BYTES + 85 + 28 + 85);
        assert_eq!(decode_relays(&bytes), Ok(vec![offer(), answer()]));
    }

    #[test]
    fn record_sizes() {
        assert_eq!(RELAY_FIXED_BYTES, 85);
        assert_eq!(offer().encoded_len(), 85 + 28);
        assert_eq!(answer().encoded_len(), 85);
        let mut writer = RelayWriter::default();
        assert_eq!(writer.len_bytes(), RELAY_HEADER_BYTES);
        assert_eq!(writer.count(), 0);
        assert!(writer.push(&offer()));
        assert_eq!(
            writer.len_bytes(),
            RELAY_HEADER_BYTES + offer().encoded_len()
        );
        assert_eq!(writer.count(), 1);
    }

    #[test]
    fn empty_message_round_trips() {
        let bytes = encode(&[]);
        assert_eq!(bytes, b"SHPR\x01\x00\x00\x00\x00\x00");
        assert_eq!(decode_relays(&bytes), Ok(Vec::new()));
    }

    /// A full writer writes nothing more, so that its message still decodes.
    #[test]
    fn push_to_a_full_writer_writes_nothing() {
        let mut writer = RelayWriter::new();
        writer.count = u32::MAX;
        assert!(!writer.push(&offer()));
        assert_eq!(writer.count(), u32::MAX);
        assert_eq!(writer.len_bytes(), RELAY_HEADER_BYTES);
    }

    /// A valid message of both kinds, to break. The last record has no sdp.
    fn sample() -> Vec<u8> {
        encode(&[offer(), answer(), offer(), answer()])
    }

    #[test]
    fn rejects_short_input() {
        for len in 0..RELAY_HEADER_BYTES {
            assert_eq!(
                decode_relays(&sample()[..len]),
                Err(RelayDecodeError::TooShort { len })
            );
        }
    }

    #[test]
    fn rejects_bad_magic_version_and_header_flags() {
        let mut bytes = sample();
        bytes[3] = b'C';
        assert_eq!(decode_relays(&bytes), Err(RelayDecodeError::BadMagic));
        let mut bytes = sample();
        bytes[4] = 2;
        assert_eq!(
            decode_relays(&bytes),
            Err(RelayDecodeError::UnsupportedVersion(2))
        );
        let mut bytes = sample();
        bytes[5] = 0x01;
        assert_eq!(
            decode_relays(&bytes),
            Err(RelayDecodeError::UnknownHeaderFlags(0x01))
        );
    }

    #[test]
    fn rejects_a_count_the_input_cannot_hold_before_allocating() {
        let mut bytes = encode(&[offer()]);
        let remaining = 85 + 28;
        bytes[RELAY_COUNT_OFFSET..RELAY_HEADER_BYTES].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode_relays(&bytes),
            Err(RelayDecodeError::CountTooLarge {
                count: u32::MAX,
                remaining
            })
        );
        // Two records without sdp would need 170 bytes: the sdp bytes do not count.
        bytes[RELAY_COUNT_OFFSET..RELAY_HEADER_BYTES].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(
            decode_relays(&bytes),
            Err(RelayDecodeError::CountTooLarge {
                count: 2,
                remaining
            })
        );
    }

    #[test]
    fn rejects_a_count_that_does_not_match_the_records() {
        // Fewer records than counted: the input ends where the next should start. (The
        // sdp makes room for the count: 185 bytes could hold two records without one.)
        let long = Relay {
            sdp: &[b'x'; 100],
            ..offer()
        };
        let mut bytes = encode(&[long]);
        bytes[RELAY_COUNT_OFFSET..RELAY_HEADER_BYTES].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(
            decode_relays(&bytes),
            Err(RelayDecodeError::Truncated {
                offset: bytes.len()
            })
        );
        // More records than counted: the rest is trailing bytes.
        let mut bytes = sample();
        bytes[RELAY_COUNT_OFFSET..RELAY_HEADER_BYTES].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(
            decode_relays(&bytes),
            Err(RelayDecodeError::TrailingBytes {
                offset: bytes.len() - 85
            })
        );
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut bytes = sample();
        let end = bytes.len();
        bytes.push(0);
        assert_eq!(
            decode_relays(&bytes),
            Err(RelayDecodeError::TrailingBytes { offset: end })
        );
    }

    #[test]
    fn rejects_every_truncation() {
        let bytes = sample();
        for len in RELAY_HEADER_BYTES..bytes.len() {
            assert!(
                matches!(
                    decode_relays(&bytes[..len]),
                    Err(RelayDecodeError::Truncated { .. } | RelayDecodeError::CountTooLarge { .. })
                ),
                "{len}"
            );
        }
    }

    /// Cut anywhere inside the second record (its fixed part, its sdp length, its sdp):
    /// the first record's sdp keeps the count fitting the bytes, so the decoder reaches
    /// the cut.
    #[test]
    fn rejects_truncation_inside_a_record() {
        let first = Relay {
            sdp: &[b'x'; 100],
            ..answer()
        };
        let bytes = encode(&[first, offer()]);
        let second = FIRST + 185;
        for len in second..bytes.len() {
            assert_eq!(
                decode_relays(&bytes[..len]),
                Err(RelayDecodeError::Truncated { offset: second }),
                "{len}"
            );
        }
    }

    /// An sdp length past the end is a truncated record, and nothing is allocated for it.
    #[test]
    fn rejects_an_sdp_length_past_the_end() {
        for sdp_len in [29, 1 << 20, u32::MAX] {
            let mut bytes = encode(&[offer()]);
            bytes[FIRST + 81..FIRST + 85].copy_from_slice(&u32::to_le_bytes(sdp_len));
            assert_eq!(
                decode_relays(&bytes),
                Err(RelayDecodeError::Truncated { offset: FIRST }),
                "{sdp_len}"
            );
        }
        // One shorter than the sdp leaves a trailing byte.
        let mut bytes = encode(&[offer()]);
        bytes[FIRST + 81..FIRST + 85].copy_from_slice(&27u32.to_le_bytes());
        assert_eq!(
            decode_relays(&bytes),
            Err(RelayDecodeError::TrailingBytes {
                offset: bytes.len() - 1
            })
        );
    }

    #[test]
    fn rejects_unknown_kinds() {
        for byte in 2..=u8::MAX {
            let mut bytes = sample();
            bytes[FIRST] = byte;
            assert_eq!(
                decode_relays(&bytes),
                Err(RelayDecodeError::UnknownKind {
                    offset: FIRST,
                    byte
                })
            );
        }
        // Offer and answer swap cleanly.
        let mut bytes = encode(&[offer()]);
        bytes[FIRST] = 1;
        let swapped = Relay {
            kind: RelayKind::Answer,
            ..offer()
        };
        assert_eq!(decode_relays(&bytes), Ok(vec![swapped]));
    }

    #[test]
    fn errors_display() {
        let errors = [
            RelayDecodeError::TooShort { len: 3 },
            RelayDecodeError::BadMagic,
            RelayDecodeError::UnsupportedVersion(9),
            RelayDecodeError::UnknownHeaderFlags(1),
            RelayDecodeError::CountTooLarge {
                count: 5,
                remaining: 4,
            },
            RelayDecodeError::UnknownKind {
                offset: 10,
                byte: 2,
            },
            RelayDecodeError::Truncated { offset: 95 },
            RelayDecodeError::TrailingBytes { offset: 180 },
        ];
        for error in errors {
            assert!(!error.to_string().is_empty());
        }
    }

    /// The owned parts of a relay, from which the test borrows a [`Relay`].
    type OwnedRelay = (bool, [u8; 20], [u8; 20], [u8; 20], [u8; 20], Vec<u8>);

    fn owned_relay_strategy() -> impl Strategy<Value = OwnedRelay> {
        let sdp = prop_oneof![
            Just(Vec::new()),
            // JSON-like text, as clients send.
            "[ -~]{1,300}".prop_map(String::into_bytes),
            // Any bytes: the format does not care.
            prop::collection::vec(any::<u8>(), 1..300),
        ];
        (
            any::<bool>(),
            any::<[u8; 20]>(),
            any::<[u8; 20]>(),
            any::<[u8; 20]>(),
            any::<[u8; 20]>(),
            sdp,
        )
    }

    fn borrow(owned: &OwnedRelay) -> Relay<'_> {
        let (answer, info_hash, to, from, offer_id, sdp) = owned;
        Relay {
            kind: if *answer {
                RelayKind::Answer
            } else {
                RelayKind::Offer
            },
            info_hash: InfoHash(*info_hash),
            to: PeerId(*to),
            from: PeerId(*from),
            offer_id: *offer_id,
            sdp,
        }
    }

    proptest! {
        #[test]
        fn round_trip(owned in prop::collection::vec(owned_relay_strategy(), 0..20)) {
            let relays: Vec<Relay<'_>> = owned.iter().map(borrow).collect();
            let mut writer = RelayWriter::new();
            for relay in &relays {
                prop_assert!(writer.push(relay));
            }
            prop_assert_eq!(writer.count() as usize, relays.len());
            let expected_len =
                RELAY_HEADER_BYTES + relays.iter().map(Relay::encoded_len).sum::<usize>();
            prop_assert_eq!(writer.len_bytes(), expected_len);
            let bytes = writer.finish();
            prop_assert_eq!(bytes.len(), expected_len);
            prop_assert_eq!(decode_relays(&bytes).unwrap(), relays);
        }

        /// Should never panic; whatever decodes writes back to the same bytes.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1500)) {
            if let Ok(relays) = decode_relays(&bytes) {
                prop_assert_eq!(encode(&relays), bytes);
            }
        }

        /// Arbitrary bytes after a valid header: the decoder gets into the records.
        #[test]
        fn arbitrary_records_never_panic(
            count in 0..4u32,
            records in prop::collection::vec(any::<u8>(), 0..600),
        ) {
            let mut bytes = encode(&[]);
            bytes[RELAY_COUNT_OFFSET..RELAY_HEADER_BYTES].copy_from_slice(&count.to_le_bytes());
            bytes.extend_from_slice(&records);
            if let Ok(relays) = decode_relays(&bytes) {
                prop_assert_eq!(encode(&relays), bytes);
            }
        }

        /// Valid messages with a few bytes overwritten or cut.
        #[test]
        fn damaged_messages_never_panic_and_reencode(
            owned in prop::collection::vec(owned_relay_strategy(), 0..6),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
            do_cut in prop::bool::weighted(0.2),
        ) {
            let relays: Vec<Relay<'_>> = owned.iter().map(borrow).collect();
            let mut bytes = encode(&relays);
            for (at, value) in edits {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            if do_cut {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            if let Ok(relays) = decode_relays(&bytes) {
                prop_assert_eq!(encode(&relays), bytes);
            }
        }
    }
}
