//! Tracker to client: announce answers, relayed offers and answers, scrape answers,
//! failures; and reading them back, for load testers and tests.
//!
//! Writing appends hand-written JSON to the caller's buffer and allocates nothing else
//! (numbers are formatted on the stack, raw offers and answers copied as they are).
//! Reading back allocates freely: it serves tests and load testers, not the tracker.

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess};
use serde_json::value::RawValue;

use crate::incoming::not_an_object_or_malformed;
use crate::json::{
    Binary, Read, Reader, Slot, keys, next_object, opens_object, push_binary, push_text, push_u64,
};
use crate::{Action, Field, InfoHash, OfferId, ParseError, ParseErrorKind, PeerId, ScrapeCounts};

/// A message to a client, borrowing what it relays so the tracker writes it without
/// copying first.
#[derive(Copy, Clone, Debug)]
pub enum OutMessage<'a> {
    /// The answer to an announce:
    /// `{"action":"announce","interval":N,"info_hash":S,"complete":N,"incomplete":N}`.
    AnnounceResponse {
        /// The torrent announced.
        info_hash: InfoHash,
        /// Seconds until the client should announce again.
        interval: u32,
        /// Seeders.
        complete: u32,
        /// Leechers.
        incomplete: u32,
    },
    /// Another peer's offer, relayed:
    /// `{"action":"announce","info_hash":S,"peer_id":S,"offer_id":S,"offer":{...}}`.
    Offer {
        /// The torrent.
        info_hash: InfoHash,
        /// The offerer, to whom the answer goes (`to_peer_id`).
        peer_id: PeerId,
        /// The offerer's id for the offer.
        offer_id: OfferId,
        /// The offer's session description as the offerer sent it (a JSON object).
        offer: &'a RawValue,
    },
    /// The answer to one of the client's offers, relayed:
    /// `{"action":"announce","info_hash":S,"peer_id":S,"offer_id":S,"answer":{...}}`.
    Answer {
        /// The torrent.
        info_hash: InfoHash,
        /// The answerer.
        peer_id: PeerId,
        /// The client's id for the offer answered.
        offer_id: OfferId,
        /// The answer's session description as the answerer sent it (a JSON object).
        answer: &'a RawValue,
    },
    /// The answer to a scrape:
    /// `{"action":"scrape","files":{S:{"complete":N,"incomplete":N,"downloaded":N},...}}`.
    ScrapeResponse {
        /// The torrents, written in this order. A JSON object should not repeat a key,
        /// so a hash should not be given twice.
        files: &'a [(InfoHash, ScrapeCounts)],
    },
    /// A request refused: `{"failure reason":"text","action":A,"info_hash":S}`, with
    /// `action` and `info_hash` only when given.
    ///
    /// The `bittorrent-tracker` client drops a message without a known `action` as a
    /// broken connection, ignores an announce message whose `info_hash` is not one of
    /// its torrents, and shows the reason of a scrape failure as "invalid scrape
    /// response": give both whenever the request let them be read
    /// ([`ParseError::action`], [`ParseError::info_hash`]).
    Failure {
        /// The text shown to the user.
        reason: &'a str,
        /// What failed.
        action: Option<Action>,
        /// The torrent it failed for.
        info_hash: Option<InfoHash>,
    },
}

/// Equal when every field is equal, raw JSON compared as text.
impl PartialEq for OutMessage<'_> {
    fn eq(&self, other: &Self) -> bool {
        use OutMessage as M;
        match (self, other) {
            (
                M::AnnounceResponse {
                    info_hash,
                    interval,
                    complete,
                    incomplete,
                },
                M::AnnounceResponse {
                    info_hash: info_hash2,
                    interval: interval2,
                    complete: complete2,
                    incomplete: incomplete2,
                },
            ) => {
                (info_hash, interval, complete, incomplete)
                    == (info_hash2, interval2, complete2, incomplete2)
            }
            (
                M::Offer {
                    info_hash,
                    peer_id,
                    offer_id,
                    offer: raw,
                },
                M::Offer {
                    info_hash: info_hash2,
                    peer_id: peer_id2,
                    offer_id: offer_id2,
                    offer: raw2,
                },
            )
            | (
                M::Answer {
                    info_hash,
                    peer_id,
                    offer_id,
                    answer: raw,
                },
                M::Answer {
                    info_hash: info_hash2,
                    peer_id: peer_id2,
                    offer_id: offer_id2,
                    answer: raw2,
                },
            ) => {
                (info_hash, peer_id, offer_id, raw.get())
                    == (info_hash2, peer_id2, offer_id2, raw2.get())
            }
            (M::ScrapeResponse { files }, M::ScrapeResponse { files: files2 }) => files == files2,
            (
                M::Failure {
                    reason,
                    action,
                    info_hash,
                },
                M::Failure {
                    reason: reason2,
                    action: action2,
                    info_hash: info_hash2,
                },
            ) => (reason, action, info_hash) == (reason2, action2, info_hash2),
            _ => false,
        }
    }
}

impl Eq for OutMessage<'_> {}

/// Appends `message` as JSON text, for one WebSocket text frame.
///
/// Binary strings (`info_hash`, `peer_id`, `offer_id`, the keys of `files`) are
/// written as `JSON.stringify` writes the client's Latin-1 strings: printable ASCII as
/// itself, `"` and `\` escaped, bytes below 0x20 as `\u00xx`, 0x80..=0xFF as the UTF-8
/// of U+0080..=U+00FF. The reason of a failure is escaped the same way (`"`, `\`,
/// control characters) and otherwise written as it is. Offers and answers are copied
/// byte for byte. Allocates nothing but the buffer's growth.
pub fn write_out_message(message: &OutMessage<'_>, out: &mut Vec<u8>) {
    match *message {
        OutMessage::AnnounceResponse {
            info_hash,
            interval,
            complete,
            incomplete,
        } => {
            out.extend_from_slice(br#"{"action":"announce","interval":"#);
            push_u64(out, u64::from(interval));
            out.extend_from_slice(br#","info_hash":"#);
            push_binary(out, &info_hash.0);
            out.extend_from_slice(br#","complete":"#);
            push_u64(out, u64::from(complete));
            out.extend_from_slice(br#","incomplete":"#);
            push_u64(out, u64::from(incomplete));
            out.push(b'}');
        }
        OutMessage::Offer {
            info_hash,
            peer_id,
            offer_id,
            offer,
        } => write_relayed(out, info_hash, peer_id, offer_id, br#","offer":"#, offer),
        OutMessage::Answer {
            info_hash,
            peer_id,
            offer_id,
            answer,
        } => write_relayed(out, info_hash, peer_id, offer_id, br#","answer":"#, answer),
        OutMessage::ScrapeResponse { files } => {
            out.extend_from_slice(br#"{"action":"scrape","files":{"#);
            for (i, (info_hash, counts)) in files.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_binary(out, &info_hash.0);
                out.extend_from_slice(br#":{"complete":"#);
                push_u64(out, u64::from(counts.seeders));
                out.extend_from_slice(br#","incomplete":"#);
                push_u64(out, u64::from(counts.leechers));
                out.extend_from_slice(br#","downloaded":"#);
                push_u64(out, u64::from(counts.completed));
                out.push(b'}');
            }
            out.extend_from_slice(b"}}");
        }
        OutMessage::Failure {
            reason,
            action,
            info_hash,
        } => {
            out.extend_from_slice(br#"{"failure reason":"#);
            push_text(out, reason);
            if let Some(action) = action {
                out.extend_from_slice(br#","action":""#);
                out.extend_from_slice(action.as_str().as_bytes());
                out.push(b'"');
            }
            if let Some(info_hash) = info_hash {
                out.extend_from_slice(br#","info_hash":"#);
                push_binary(out, &info_hash.0);
            }
            out.push(b'}');
        }
    }
}

/// A relayed offer or answer: the same fields but the last.
fn write_relayed(
    out: &mut Vec<u8>,
    info_hash: InfoHash,
    peer_id: PeerId,
    offer_id: OfferId,
    key: &[u8],
    raw: &RawValue,
) {
    out.extend_from_slice(br#"{"action":"announce","info_hash":"#);
    push_binary(out, &info_hash.0);
    out.extend_from_slice(br#","peer_id":"#);
    push_binary(out, &peer_id.0);
    out.extend_from_slice(br#","offer_id":"#);
    push_binary(out, &offer_id.0);
    out.extend_from_slice(key);
    out.extend_from_slice(raw.get().as_bytes());
    out.push(b'}');
}

/// A message to a client read back (load testers and tests): an owned
/// [`OutMessage`].
#[derive(Clone, Debug)]
pub enum ParsedOutMessage {
    /// See [`OutMessage::AnnounceResponse`].
    AnnounceResponse {
        /// The torrent announced.
        info_hash: InfoHash,
        /// Seconds until the client should announce again.
        interval: u32,
        /// Seeders.
        complete: u32,
        /// Leechers.
        incomplete: u32,
    },
    /// See [`OutMessage::Offer`].
    Offer {
        /// The torrent.
        info_hash: InfoHash,
        /// The offerer.
        peer_id: PeerId,
        /// The offerer's id for the offer.
        offer_id: OfferId,
        /// The offer's session description (a JSON object).
        offer: Box<RawValue>,
    },
    /// See [`OutMessage::Answer`].
    Answer {
        /// The torrent.
        info_hash: InfoHash,
        /// The answerer.
        peer_id: PeerId,
        /// The id of the offer answered.
        offer_id: OfferId,
        /// The answer's session description (a JSON object).
        answer: Box<RawValue>,
    },
    /// See [`OutMessage::ScrapeResponse`].
    ScrapeResponse {
        /// The torrents, in message order.
        files: Vec<(InfoHash, ScrapeCounts)>,
    },
    /// See [`OutMessage::Failure`].
    Failure {
        /// The text.
        reason: String,
        /// What failed, if the message says and it is known.
        action: Option<Action>,
        /// The torrent, if the message names one.
        info_hash: Option<InfoHash>,
    },
}

/// Equal when every field is equal, raw JSON compared as text.
impl PartialEq for ParsedOutMessage {
    fn eq(&self, other: &Self) -> bool {
        self.as_out() == other.as_out()
    }
}

impl Eq for ParsedOutMessage {}

impl ParsedOutMessage {
    /// The message as an [`OutMessage`], borrowing from `self`: writing it gives the
    /// JSON this was read from, if that was written by [`write_out_message`].
    pub fn as_out(&self) -> OutMessage<'_> {
        match self {
            Self::AnnounceResponse {
                info_hash,
                interval,
                complete,
                incomplete,
            } => OutMessage::AnnounceResponse {
                info_hash: *info_hash,
                interval: *interval,
                complete: *complete,
                incomplete: *incomplete,
            },
            Self::Offer {
                info_hash,
                peer_id,
                offer_id,
                offer,
            } => OutMessage::Offer {
                info_hash: *info_hash,
                peer_id: *peer_id,
                offer_id: *offer_id,
                offer,
            },
            Self::Answer {
                info_hash,
                peer_id,
                offer_id,
                answer,
            } => OutMessage::Answer {
                info_hash: *info_hash,
                peer_id: *peer_id,
                offer_id: *offer_id,
                answer,
            },
            Self::ScrapeResponse { files } => OutMessage::ScrapeResponse { files },
            Self::Failure {
                reason,
                action,
                info_hash,
            } => OutMessage::Failure {
                reason,
                action: *action,
                info_hash: *info_hash,
            },
        }
    }
}

/// Parses one tracker message, for load testers and tests.
///
/// A message with a `failure reason` is a failure, whatever else it has (an unknown
/// `action` or a bad `info_hash` beside it reads as `None`). Otherwise `action` says
/// which: a scrape answer needs `files`; an announce message needs `info_hash`, and is
/// a relayed offer if it has an `offer` (then also `peer_id` and `offer_id`), else a
/// relayed answer if it has an `answer` (the same), else an announce answer (`interval`,
/// `complete`, `incomplete`). Binary strings follow the rules of
/// [`parse_in_message`](crate::parse_in_message); counts are JSON numbers that fit a
/// `u32` (fractions cut off); unknown fields are ignored; `null` is absent.
///
/// # Errors
/// A [`ParseError`] naming the first missing or invalid field, with the message's
/// `action` and `info_hash` when they could be read.
pub fn parse_out_message(text: &[u8]) -> Result<ParsedOutMessage, ParseError> {
    if !opens_object(text) {
        return Err(ParseError {
            kind: not_an_object_or_malformed(text),
            action: None,
            info_hash: None,
        });
    }
    let mut fields = OutFields::default();
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let read = OutObject(&mut fields)
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    let action = fields.action.as_valid().copied();
    let info_hash = fields.info_hash.as_valid().map(|hash| InfoHash(hash.0));
    let fail = |kind| ParseError {
        kind,
        action,
        info_hash,
    };
    if read.is_err() {
        return Err(fail(ParseErrorKind::MalformedJson));
    }
    match fields.failure_reason {
        Slot::Valid(reason) => {
            return Ok(ParsedOutMessage::Failure {
                reason,
                action,
                info_hash,
            });
        }
        Slot::Invalid => return Err(fail(ParseErrorKind::Invalid(Field::FailureReason))),
        Slot::Absent => {}
    }
    match fields.action {
        Slot::Absent => Err(ParseErrorKind::MissingAction),
        Slot::Invalid => Err(ParseErrorKind::UnknownAction),
        Slot::Valid(Action::Announce) => fields.announce(),
        Slot::Valid(Action::Scrape) => fields
            .files
            .required(Field::Files)
            .map(|files| ParsedOutMessage::ScrapeResponse { files }),
    }
    .map_err(fail)
}

keys!(OutKey {
    Action => "action",
    FailureReason => "failure reason",
    InfoHash => "info_hash",
    PeerId => "peer_id",
    OfferId => "offer_id",
    Offer => "offer",
    Answer => "answer",
    Interval => "interval",
    Complete => "complete",
    Incomplete => "incomplete",
    Files => "files",
});

/// Every field of a tracker message, as read.
#[derive(Default)]
struct OutFields {
    action: Slot<Action>,
    failure_reason: Slot<String>,
    info_hash: Slot<Binary>,
    peer_id: Slot<Binary>,
    offer_id: Slot<Binary>,
    offer: Slot<Box<RawValue>>,
    answer: Slot<Box<RawValue>>,
    interval: Slot<u64>,
    complete: Slot<u64>,
    incomplete: Slot<u64>,
    files: Slot<Vec<(InfoHash, ScrapeCounts)>>,
}

impl OutFields {
    fn announce(self) -> Result<ParsedOutMessage, ParseErrorKind> {
        let info_hash = InfoHash(self.info_hash.required(Field::InfoHash)?.0);
        if !matches!(self.offer, Slot::Absent) {
            return Ok(ParsedOutMessage::Offer {
                info_hash,
                peer_id: PeerId(self.peer_id.required(Field::PeerId)?.0),
                offer_id: OfferId(self.offer_id.required(Field::OfferId)?.0),
                offer: self.offer.required(Field::Offer)?,
            });
        }
        if !matches!(self.answer, Slot::Absent) {
            return Ok(ParsedOutMessage::Answer {
                info_hash,
                peer_id: PeerId(self.peer_id.required(Field::PeerId)?.0),
                offer_id: OfferId(self.offer_id.required(Field::OfferId)?.0),
                answer: self.answer.required(Field::Answer)?,
            });
        }
        Ok(ParsedOutMessage::AnnounceResponse {
            info_hash,
            interval: count(self.interval, Field::Interval)?,
            complete: count(self.complete, Field::Complete)?,
            incomplete: count(self.incomplete, Field::Incomplete)?,
        })
    }
}

/// A required count that fits a `u32`.
fn count(slot: Slot<u64>, field: Field) -> Result<u32, ParseErrorKind> {
    u32::try_from(slot.required(field)?).map_err(|_| ParseErrorKind::Invalid(field))
}

/// Reads the top-level object into [`OutFields`], kept by the caller (see
/// `InObject`).
struct OutObject<'f>(&'f mut OutFields);

impl<'de> DeserializeSeed<'de> for OutObject<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for OutObject<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let fields = self.0;
        while let Some(key) = map.next_key::<OutKey>()? {
            match key {
                OutKey::Action => fields.action = map.next_value()?,
                OutKey::FailureReason => fields.failure_reason = map.next_value()?,
                OutKey::InfoHash => fields.info_hash = map.next_value()?,
                OutKey::PeerId => fields.peer_id = map.next_value()?,
                OutKey::OfferId => fields.offer_id = map.next_value()?,
                OutKey::Offer => fields.offer = next_object(&mut map)?,
                OutKey::Answer => fields.answer = next_object(&mut map)?,
                OutKey::Interval => fields.interval = map.next_value()?,
                OutKey::Complete => fields.complete = map.next_value()?,
                OutKey::Incomplete => fields.incomplete = map.next_value()?,
                OutKey::Files => fields.files = map.next_value_seed(Read(FilesReader))?,
                OutKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// `files`: an object from binary info hashes to counts.
struct FilesReader;

impl<'de> Reader<'de> for FilesReader {
    type Out = Slot<Vec<(InfoHash, ScrapeCounts)>>;

    fn invalid(self) -> Self::Out {
        Slot::Invalid
    }

    fn null(self) -> Self::Out {
        Slot::Absent
    }

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let mut files = Vec::new();
        let mut valid = true;
        while let Some(key) = map.next_key::<Slot<Binary>>()? {
            let counts = map.next_value_seed(Read(CountsReader))?;
            match (key, counts) {
                (Slot::Valid(hash), Some(counts)) if valid => {
                    files.push((InfoHash(hash.0), counts));
                }
                _ => valid = false,
            }
        }
        Ok(if valid {
            Slot::Valid(files)
        } else {
            Slot::Invalid
        })
    }
}

keys!(CountsKey {
    Complete => "complete",
    Incomplete => "incomplete",
    Downloaded => "downloaded",
});

/// One torrent's counts in `files`; `None` unless all three are there and fit a `u32`.
struct CountsReader;

impl<'de> Reader<'de> for CountsReader {
    type Out = Option<ScrapeCounts>;

    fn invalid(self) -> Self::Out {
        None
    }

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let (mut complete, mut incomplete, mut downloaded) =
            (Slot::Absent, Slot::Absent, Slot::Absent);
        while let Some(key) = map.next_key::<CountsKey>()? {
            match key {
                CountsKey::Complete => complete = map.next_value()?,
                CountsKey::Incomplete => incomplete = map.next_value()?,
                CountsKey::Downloaded => downloaded = map.next_value()?,
                CountsKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(scrape_counts(complete, incomplete, downloaded))
    }
}

fn scrape_counts(
    complete: Slot<u64>,
    incomplete: Slot<u64>,
    downloaded: Slot<u64>,
) -> Option<ScrapeCounts> {
    let count = |slot: Slot<u64>| u32::try_from(slot.valid()?).ok();
    Some(ScrapeCounts {
        seeders: count(complete)?,
        completed: count(downloaded)?,
        leechers: count(incomplete)?,
    })
}

/// The most bytes [`write_out_message`] writes for a [`OutMessage::ScrapeResponse`] of
/// `files` torrents: each key a 20-byte hash of bytes that escape to `\u00xx` (6 bytes
/// each, with the quotes 122), each count 10 digits (`u32::MAX`). A tracker checks its
/// outgoing bounds against it when it reads its config.
pub const fn max_scrape_response_bytes(files: usize) -> usize {
    const OPEN: usize = r#"{"action":"scrape","files":{"#.len();
    const CLOSE: usize = "}}".len();
    const HASH: usize = 2 + 20 * 6;
    const COUNT: usize = 10;
    const ENTRY: usize = HASH
        + r#":{"complete":"#.len()
        + COUNT
        + r#","incomplete":"#.len()
        + COUNT
        + r#","downloaded":"#.len()
        + COUNT
        + "}".len();
    // Entries are separated by commas: one fewer than entries.
    let commas = files.saturating_sub(1);
    OPEN.saturating_add(CLOSE)
        .saturating_add(files.saturating_mul(ENTRY))
        .saturating_add(commas)
}

#[cfg(test)]
mod tests {
    //! Messages as the `bittorrent-tracker` npm client reads them
    //! (`lib/client/websocket-tracker.js`, `_onAnnounceResponse` and
    //! `_onScrapeResponse`).

    use super::*;
    use crate::common::tests::sdp_object;
    use proptest::prelude::*;

    /// Bytes 0x00..=0x13: every one a control character, written `\u00xx`.
    const LOW: [u8; 20] = [
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, //
        0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13,
    ];
    const LOW_JSON: &str = concat!(
        r#""\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\u0008\u0009"#,
        r#"\u000a\u000b\u000c\u000d\u000e\u000f\u0010\u0011\u0012\u0013""#,
    );
    /// `"`, `\`, `/`, DEL and 0x80..=0x8F: escaped, as itself, as itself, as itself,
    /// and two UTF-8 bytes each (C2 80 ...).
    const MIXED: [u8; 20] = [
        b'"', b'\\', b'/', 0x7f, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, //
        0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f,
    ];
    const MIXED_JSON: &str = concat!(
        r#""\"\\/"#,
        "\u{7f}\u{80}\u{81}\u{82}\u{83}\u{84}\u{85}\u{86}\u{87}\u{88}\u{89}\u{8a}\u{8b}\u{8c}\u{8d}\u{8e}\u{8f}",
        "\"",
    );
    const SDP: &str = r#"{"type":"offer","sdp":"v=0\r\n"}"#;

    fn write(message: &OutMessage<'_>) -> String {
        let mut out = Vec::new();
        write_out_message(message, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn parse(text: &str) -> Result<ParsedOutMessage, ParseError> {
        parse_out_message(text.as_bytes())
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn announce_response_known_answer() {
        let message = OutMessage::AnnounceResponse {
            info_hash: InfoHash(LOW),
            interval: 120,
            complete: 0,
            incomplete: u32::MAX,
        };
        let text = [
            r#"{"action":"announce","interval":120,"info_hash":"#,
            LOW_JSON,
            r#","complete":0,"incomplete":4294967295}"#,
        ]
        .concat();
        assert_eq!(write(&message), text);
        assert_eq!(parse(&text).unwrap().as_out(), message);
    }

    #[test]
    fn relayed_offer_and_answer_known_answers() {
        let sdp = raw(SDP);
        let offer = OutMessage::Offer {
            info_hash: InfoHash(LOW),
            peer_id: PeerId(MIXED),
            offer_id: OfferId([b'o'; 20]),
            offer: &sdp,
        };
        let text = [
            r#"{"action":"announce","info_hash":"#,
            LOW_JSON,
            r#","peer_id":"#,
            MIXED_JSON,
            r#","offer_id":"oooooooooooooooooooo","offer":"#,
            SDP,
            "}",
        ]
        .concat();
        assert_eq!(write(&offer), text);
        assert_eq!(parse(&text).unwrap().as_out(), offer);

        let answer = OutMessage::Answer {
            info_hash: InfoHash(MIXED),
            peer_id: PeerId([b'p'; 20]),
            offer_id: OfferId(LOW),
            answer: &sdp,
        };
        let text = [
            r#"{"action":"announce","info_hash":"#,
            MIXED_JSON,
            r#","peer_id":"pppppppppppppppppppp","offer_id":"#,
            LOW_JSON,
            r#","answer":"#,
            SDP,
            "}",
        ]
        .concat();
        assert_eq!(write(&answer), text);
        assert_eq!(parse(&text).unwrap().as_out(), answer);
    }

    #[test]
    fn scrape_response_known_answer() {
        let files = [
            (
                InfoHash(LOW),
                ScrapeCounts {
                    seeders: 1,
                    completed: 2,
                    leechers: 3,
                },
            ),
            (InfoHash([b'z'; 20]), ScrapeCounts::default()),
        ];
        let message = OutMessage::ScrapeResponse { files: &files };
        let text = [
            r#"{"action":"scrape","files":{"#,
            LOW_JSON,
            r#":{"complete":1,"incomplete":3,"downloaded":2},"#,
            r#""zzzzzzzzzzzzzzzzzzzz":{"complete":0,"incomplete":0,"downloaded":0}}}"#,
        ]
        .concat();
        assert_eq!(write(&message), text);
        assert_eq!(parse(&text).unwrap().as_out(), message);
        let empty = OutMessage::ScrapeResponse { files: &[] };
        assert_eq!(write(&empty), r#"{"action":"scrape","files":{}}"#);
        assert_eq!(parse(&write(&empty)).unwrap().as_out(), empty);
    }

    #[test]
    fn failure_known_answers() {
        let message = OutMessage::Failure {
            reason: "invalid peer_id",
            action: Some(Action::Announce),
            info_hash: Some(InfoHash([b'a'; 20])),
        };
        let text = r#"{"failure reason":"invalid peer_id","action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa"}"#;
        assert_eq!(write(&message), text);
        assert_eq!(parse(text).unwrap().as_out(), message);

        let message = OutMessage::Failure {
            reason: "\"quoted\" \\ new\nline é",
            action: Some(Action::Scrape),
            info_hash: None,
        };
        let text = r#"{"failure reason":"\"quoted\" \\ new\u000aline é","action":"scrape"}"#;
        assert_eq!(write(&message), text);
        assert_eq!(parse(text).unwrap().as_out(), message);

        let message = OutMessage::Failure {
            reason: "",
            action: None,
            info_hash: None,
        };
        assert_eq!(write(&message), r#"{"failure reason":""}"#);
    }

    #[test]
    fn reading_what_other_trackers_write() {
        // bittorrent-tracker's server: numbers as JS writes them, extra fields, any
        // order; `failure reason` wins over anything else in the message.
        assert_eq!(
            parse(concat!(
                r#"{"complete":2,"incomplete":1.0,"action":"announce","#,
                r#""info_hash":"aaaaaaaaaaaaaaaaaaaa","interval":120,"warning message":"w"}"#
            )),
            Ok(ParsedOutMessage::AnnounceResponse {
                info_hash: InfoHash([b'a'; 20]),
                interval: 120,
                complete: 2,
                incomplete: 1,
            })
        );
        assert_eq!(
            parse(r#"{"action":"stats","failure reason":"no","info_hash":5}"#),
            Ok(ParsedOutMessage::Failure {
                reason: "no".to_owned(),
                action: None,
                info_hash: None,
            })
        );
    }

    #[test]
    fn failure_texts() {
        const H: &str = r#""info_hash":"aaaaaaaaaaaaaaaaaaaa""#;
        for (text, expected) in [
            ("", "malformed JSON"),
            ("[1]", "message is not a JSON object"),
            ("{}", "missing action"),
            (r#"{"action":"x"}"#, "unknown action"),
            (r#"{"failure reason":5}"#, "invalid failure reason"),
            (r#"{"action":"scrape"}"#, "missing files"),
            (r#"{"action":"scrape","files":[]}"#, "invalid files"),
            (
                r#"{"action":"scrape","files":{"x":{"complete":1,"incomplete":1,"downloaded":1}}}"#,
                "invalid files",
            ),
            (
                r#"{"action":"scrape","files":{"aaaaaaaaaaaaaaaaaaaa":{"complete":1,"incomplete":1}}}"#,
                "invalid files",
            ),
            (
                r#"{"action":"scrape","files":{"aaaaaaaaaaaaaaaaaaaa":{"complete":1,"incomplete":1,"downloaded":4294967296}}}"#,
                "invalid files",
            ),
            (
                r#"{"action":"scrape","files":{"aaaaaaaaaaaaaaaaaaaa":1}}"#,
                "invalid files",
            ),
            (r#"{"action":"announce"}"#, "missing info_hash"),
            (
                r#"{"action":"announce","info_hash":"a"}"#,
                "invalid info_hash",
            ),
        ] {
            assert_eq!(parse(text).unwrap_err().reason(), expected, "{text}");
        }
        for (fields, expected) in [
            ("", "missing interval"),
            (
                r#","interval":4294967296,"complete":1,"incomplete":1"#,
                "invalid interval",
            ),
            (
                r#","interval":"1","complete":1,"incomplete":1"#,
                "invalid interval",
            ),
            (r#","interval":1,"incomplete":1"#, "missing complete"),
            (r#","interval":1,"complete":1"#, "missing incomplete"),
            (r#","offer":{}"#, "missing peer_id"),
            (
                r#","offer":{},"peer_id":"bbbbbbbbbbbbbbbbbbbb""#,
                "missing offer_id",
            ),
            (
                r#","offer":"x","peer_id":"bbbbbbbbbbbbbbbbbbbb","offer_id":"cccccccccccccccccccc""#,
                "invalid offer",
            ),
            (r#","answer":{},"peer_id":"b""#, "invalid peer_id"),
            (
                r#","answer":[],"peer_id":"bbbbbbbbbbbbbbbbbbbb","offer_id":"cccccccccccccccccccc""#,
                "invalid answer",
            ),
        ] {
            let text = format!(r#"{{"action":"announce",{H}{fields}}}"#);
            let error = parse(&text).unwrap_err();
            assert_eq!(error.reason(), expected, "{text}");
            assert_eq!(error.action, Some(Action::Announce));
            assert_eq!(error.info_hash, Some(InfoHash([b'a'; 20])));
        }
    }

    // --- properties ---

    fn counts() -> impl Strategy<Value = ScrapeCounts> {
        any::<[u32; 3]>().prop_map(|[seeders, completed, leechers]| ScrapeCounts {
            seeders,
            completed,
            leechers,
        })
    }

    fn action() -> impl Strategy<Value = Option<Action>> {
        prop_oneof![
            Just(None),
            Just(Some(Action::Announce)),
            Just(Some(Action::Scrape))
        ]
    }

    fn parsed_out_message() -> impl Strategy<Value = ParsedOutMessage> {
        let id = || any::<[u8; 20]>();
        prop_oneof![
            (id(), any::<[u32; 3]>()).prop_map(|(hash, [interval, complete, incomplete])| {
                ParsedOutMessage::AnnounceResponse {
                    info_hash: InfoHash(hash),
                    interval,
                    complete,
                    incomplete,
                }
            }),
            (id(), id(), id(), sdp_object("offer")).prop_map(|(hash, peer, offer_id, offer)| {
                ParsedOutMessage::Offer {
                    info_hash: InfoHash(hash),
                    peer_id: PeerId(peer),
                    offer_id: OfferId(offer_id),
                    offer,
                }
            }),
            (id(), id(), id(), sdp_object("answer")).prop_map(|(hash, peer, offer_id, answer)| {
                ParsedOutMessage::Answer {
                    info_hash: InfoHash(hash),
                    peer_id: PeerId(peer),
                    offer_id: OfferId(offer_id),
                    answer,
                }
            }),
            proptest::collection::vec((id().prop_map(InfoHash), counts()), 0..8)
                .prop_map(|files| ParsedOutMessage::ScrapeResponse { files }),
            (any::<String>(), action(), proptest::option::of(id())).prop_map(
                |(reason, action, hash)| ParsedOutMessage::Failure {
                    reason,
                    action,
                    info_hash: hash.map(InfoHash),
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn write_then_parse_gives_it_back(message in parsed_out_message()) {
            let mut out = Vec::new();
            write_out_message(&message.as_out(), &mut out);
            prop_assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
            prop_assert_eq!(parse_out_message(&out), Ok(message));
        }

        #[test]
        fn writing_appends(message in parsed_out_message(), before in any::<Vec<u8>>()) {
            let mut alone = Vec::new();
            write_out_message(&message.as_out(), &mut alone);
            let mut out = before.clone();
            write_out_message(&message.as_out(), &mut out);
            prop_assert_eq!(&out[..before.len()], &before[..]);
            prop_assert_eq!(&out[before.len()..], &alone[..]);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let _ = parse_out_message(&bytes);
        }

        #[test]
        fn whatever_parses_writes_back_the_same(
            message in parsed_out_message(),
            cut in any::<prop::sample::Index>(),
            insert in prop_oneof![
                Just(" "), Just(","), Just("}"), Just(r#""failure reason":"x","#),
                Just(r#""action":"scrape","#), Just("null"), Just("1"),
                Just(r#""aaaaaaaaaaaaaaaaaaaa":{"complete":1,"incomplete":1,"downloaded":1},"#),
            ],
        ) {
            let mut text = Vec::new();
            write_out_message(&message.as_out(), &mut text);
            let at = cut.index(text.len() + 1);
            text.splice(at..at, insert.bytes());
            if let Ok(parsed) = parse_out_message(&text) {
                let mut again = Vec::new();
                write_out_message(&parsed.as_out(), &mut again);
                prop_assert_eq!(parse_out_message(&again), Ok(parsed));
            }
        }
    }

    /// The bound is reached, exactly, by the worst case: every hash byte escaped to
    /// six bytes, every count at its largest; nothing exceeds it.
    #[test]
    fn the_largest_scrape_response_is_the_bound() {
        let worst = (
            InfoHash([0x01; 20]),
            ScrapeCounts {
                seeders: u32::MAX,
                completed: u32::MAX,
                leechers: u32::MAX,
            },
        );
        for n in [0usize, 1, 2, 7, 1000] {
            let files: Vec<_> = (0..n)
                .map(|i| {
                    let mut file = worst;
                    // Distinct keys, every byte still escaped (all below 0x20).
                    file.0.0[0] = (i % 32) as u8;
                    file.0.0[1] = ((i / 32) % 32) as u8;
                    file
                })
                .collect();
            let mut out = Vec::new();
            write_out_message(&OutMessage::ScrapeResponse { files: &files }, &mut out);
            assert_eq!(out.len(), max_scrape_response_bytes(n), "{n} files");
        }
        let mut out = Vec::new();
        let light = [(InfoHash([b'a'; 20]), ScrapeCounts::default())];
        write_out_message(&OutMessage::ScrapeResponse { files: &light }, &mut out);
        assert!(out.len() < max_scrape_response_bytes(1));
    }
}
