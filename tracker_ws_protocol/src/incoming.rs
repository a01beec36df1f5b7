//! Client to tracker: announces (with offers), answers to offers, scrapes.
//!
//! The rules [`parse_in_message`] applies are in its documentation, where the users of
//! the crate read them.

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess};
use serde_json::value::RawValue;

use crate::json::{
    Binary, Read, Reader, Slot, binary_slot, is_json, keys, next_object, opens_object, push_binary,
    push_u64, skip_seq,
};
use crate::{Action, AnnounceEvent, Field, InfoHash, OfferId, ParseError, ParseErrorKind, PeerId};

/// Bounds the caller sets (from its config).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most offers read from one announce; further ones are dropped unread.
    pub max_offers: usize,
    /// Most info hashes one scrape may name; a scrape naming more is refused
    /// ([`ParseErrorKind::TooManyInfoHashes`]).
    pub max_scrape_torrents: usize,
}

/// A WebRTC offer to be relayed to another peer of the swarm.
#[derive(Clone, Debug)]
pub struct Offer {
    /// The offerer's id for it, which the answer repeats.
    pub offer_id: OfferId,
    /// The session description, `{"type":"offer","sdp":"..."}` as the client sent it:
    /// a JSON object, relayed byte for byte.
    pub offer: Box<RawValue>,
}

/// Equal when the ids and the raw JSON texts are equal.
impl PartialEq for Offer {
    fn eq(&self, other: &Self) -> bool {
        self.offer_id == other.offer_id && self.offer.get() == other.offer.get()
    }
}

impl Eq for Offer {}

/// A WebRTC answer to an offer, to be relayed to the offerer.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The offerer: the `peer_id` of the relayed offer.
    pub to_peer_id: PeerId,
    /// The offer answered: the `offer_id` of the relayed offer.
    pub offer_id: OfferId,
    /// The session description, `{"type":"answer","sdp":"..."}` as the client sent it:
    /// a JSON object, relayed byte for byte.
    pub answer: Box<RawValue>,
}

/// Equal when the ids and the raw JSON texts are equal.
impl PartialEq for Answer {
    fn eq(&self, other: &Self) -> bool {
        self.to_peer_id == other.to_peer_id
            && self.offer_id == other.offer_id
            && self.answer.get() == other.answer.get()
    }
}

impl Eq for Answer {}

/// An `announce`: a peer's state in a swarm with the offers it makes to other peers, or
/// an answer to an offer it received, or both.
///
/// The client sends answers in a message of their own, with `info_hash` and `peer_id`
/// but no counts, event or offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// The torrent.
    pub info_hash: InfoHash,
    /// The announcing peer.
    pub peer_id: PeerId,
    /// `started`, `completed`, `stopped`, or none (`update`, empty or absent).
    pub event: AnnounceEvent,
    /// Bytes left to download; `None` when absent or `null` (the client sends `null`
    /// for `Infinity` while it does not know the torrent's size).
    pub left: Option<u64>,
    /// Bytes uploaded; `None` when absent or `null`.
    pub uploaded: Option<u64>,
    /// Bytes downloaded; `None` when absent or `null`.
    pub downloaded: Option<u64>,
    /// Peers wanted (the client sends as many offers); `None` when absent or `null`.
    pub numwant: Option<u64>,
    /// Offers to relay, at most [`Limits::max_offers`], in message order.
    pub offers: Vec<Offer>,
    /// An answer to relay.
    pub answer: Option<Answer>,
}

/// A `scrape`: the torrents it asks about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScrapeRequest {
    /// The named torrents, in message order, each once (where it is first named), at
    /// most [`Limits::max_scrape_torrents`] (possibly none: `"info_hash":[]`).
    InfoHashes(Vec<InfoHash>),
    /// No `info_hash` (or `null`): every torrent.
    Full,
}

/// A message from a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InMessage {
    /// `"action":"announce"`.
    Announce(AnnounceRequest),
    /// `"action":"scrape"`.
    Scrape(ScrapeRequest),
}

/// Parses one client message (the text of one WebSocket text frame), as the
/// `bittorrent-tracker` npm client writes them.
///
/// - `info_hash`, `peer_id`, `to_peer_id` and `offer_id` are strings of exactly 20
///   characters U+0000..=U+00FF, each standing for one byte, spelled as the character
///   itself (UTF-8) or as a `\u00XX` escape.
/// - Announce (`"action":"announce"`): `info_hash` and `peer_id` are required.
///   `numwant`, `uploaded`, `downloaded` and `left` take any JSON number, clamped to
///   `0..=u64::MAX` with fractions cut off; `null` or absent reads as `None`. `event`
///   is `started`, `completed`, `stopped`, or none for `update`, empty, `null` or
///   absent. `offers` is an array of `{"offer_id", "offer"}` objects; the first
///   [`Limits::max_offers`] are read, the rest dropped unread. An `answer` (an object)
///   needs `to_peer_id` and `offer_id` beside it; without an `answer`, those two are
///   ignored.
/// - Scrape (`"action":"scrape"`): `info_hash` is one binary string, an array of them
///   (at most [`Limits::max_scrape_torrents`]), or absent (or `null`) for a full scrape.
/// - `offer` and `answer` must be JSON objects; they are kept as their raw text.
/// - `null` is absent, for every field. Unknown fields are ignored, and so are fields
///   the message's action does not use. Of a repeated field the last one counts, as
///   with `JSON.parse`.
/// - Allocation: only for what the message hands out. Each kept offer and answer is
///   copied out of the input once, and the offers and a scrape's hashes go in one list
///   each; binary strings are decoded from the input onto the stack, escaped or not.
///   (Unknown fields whose values nest two deep cost one more: serde_json skips them
///   with a stack it allocates.) Nothing grows beyond the input's size.
///
/// # Errors
/// A [`ParseError`] whose text a tracker can send back as `failure reason`, with the
/// message's `action` and `info_hash` whenever they could be read, even if the JSON
/// breaks off after them:
/// - [`ParseErrorKind::MalformedJson`], [`ParseErrorKind::NotAnObject`]: not one JSON
///   object.
/// - [`ParseErrorKind::MissingAction`], [`ParseErrorKind::UnknownAction`].
/// - [`ParseErrorKind::Missing`] or [`ParseErrorKind::Invalid`] with the first wrong
///   field, in the order: `info_hash`, `peer_id`, `event`, `numwant`, `uploaded`,
///   `downloaded`, `left`, `offers` (an offer's `offer_id`, then its `offer`), `answer`,
///   `to_peer_id`, `offer_id`. A field of the wrong type, a binary string that is not
///   20 characters U+0000..=U+00FF and an unknown `event` are invalid.
/// - [`ParseErrorKind::TooManyInfoHashes`]: a scrape naming more than
///   [`Limits::max_scrape_torrents`] distinct torrents (a repeated hash counts once).
pub fn parse_in_message(text: &[u8], limits: &Limits) -> Result<InMessage, ParseError> {
    parse_with(text, serde_json::de::SliceRead::new(text), limits)
}

/// [`parse_in_message`] for a text already known to be UTF-8, as a WebSocket text
/// message is once the socket checked it: the JSON reader then does not check the
/// UTF-8 of every string (and every raw offer and answer) again.
///
/// # Errors
/// As [`parse_in_message`].
pub fn parse_in_text(text: &str, limits: &Limits) -> Result<InMessage, ParseError> {
    parse_with(text.as_bytes(), serde_json::de::StrRead::new(text), limits)
}

/// Parses `text`, read through `reader` (the same text, as bytes or as `str`).
fn parse_with<'de, R: serde_json::de::Read<'de>>(
    text: &[u8],
    reader: R,
    limits: &Limits,
) -> Result<InMessage, ParseError> {
    if !opens_object(text) {
        return Err(ParseError {
            kind: not_an_object_or_malformed(text),
            action: None,
            info_hash: None,
        });
    }
    let mut fields = InFields::default();
    let mut deserializer = serde_json::Deserializer::new(reader);
    let read = InObject {
        fields: &mut fields,
        limits,
    }
    .deserialize(&mut deserializer)
    .and_then(|()| deserializer.end());
    let action = fields.action.as_valid().copied();
    let info_hash = match fields.info_hash {
        Hashes::One(hash) => Some(hash),
        _ => None,
    };
    let fail = |kind| ParseError {
        kind,
        action,
        info_hash,
    };
    // Only broken JSON fails the read itself: field values of the wrong type are read
    // as invalid and judged below.
    if read.is_err() {
        return Err(fail(ParseErrorKind::MalformedJson));
    }
    match fields.action {
        Slot::Absent => Err(ParseErrorKind::MissingAction),
        Slot::Invalid => Err(ParseErrorKind::UnknownAction),
        Slot::Valid(Action::Announce) => fields.announce().map(InMessage::Announce),
        Slot::Valid(Action::Scrape) => fields
            .scrape(limits.max_scrape_torrents)
            .map(InMessage::Scrape),
    }
    .map_err(fail)
}

/// Which of the two a text that does not start with `{` is.
pub(crate) fn not_an_object_or_malformed(text: &[u8]) -> ParseErrorKind {
    if is_json(text) {
        ParseErrorKind::NotAnObject
    } else {
        ParseErrorKind::MalformedJson
    }
}

keys!(InKey {
    Action => "action",
    InfoHash => "info_hash",
    PeerId => "peer_id",
    ToPeerId => "to_peer_id",
    OfferId => "offer_id",
    Numwant => "numwant",
    Uploaded => "uploaded",
    Downloaded => "downloaded",
    Left => "left",
    Event => "event",
    Offers => "offers",
    Answer => "answer",
});

/// Every field of a client message, as read.
#[derive(Default)]
struct InFields {
    action: Slot<Action>,
    info_hash: Hashes,
    peer_id: Slot<Binary>,
    to_peer_id: Slot<Binary>,
    offer_id: Slot<Binary>,
    numwant: Slot<u64>,
    uploaded: Slot<u64>,
    downloaded: Slot<u64>,
    left: Slot<u64>,
    event: Slot<AnnounceEvent>,
    offers: Offers,
    answer: Slot<Box<RawValue>>,
}

impl InFields {
    fn announce(self) -> Result<AnnounceRequest, ParseErrorKind> {
        let info_hash = match self.info_hash {
            Hashes::One(hash) => hash,
            Hashes::Absent => return Err(ParseErrorKind::Missing(Field::InfoHash)),
            Hashes::List(_) | Hashes::Bad(_) => {
                return Err(ParseErrorKind::Invalid(Field::InfoHash));
            }
        };
        let peer_id = PeerId(self.peer_id.required(Field::PeerId)?.0);
        let event = self.event.optional(Field::Event)?.unwrap_or_default();
        let numwant = self.numwant.optional(Field::Numwant)?;
        let uploaded = self.uploaded.optional(Field::Uploaded)?;
        let downloaded = self.downloaded.optional(Field::Downloaded)?;
        let left = self.left.optional(Field::Left)?;
        let offers = match self.offers {
            Offers::Read(offers) => offers,
            Offers::Bad(kind) => return Err(kind),
        };
        let answer = match self.answer.optional(Field::Answer)? {
            Some(answer) => Some(Answer {
                to_peer_id: PeerId(self.to_peer_id.required(Field::ToPeerId)?.0),
                offer_id: OfferId(self.offer_id.required(Field::OfferId)?.0),
                answer,
            }),
            None => None,
        };
        Ok(AnnounceRequest {
            info_hash,
            peer_id,
            event,
            left,
            uploaded,
            downloaded,
            numwant,
            offers,
            answer,
        })
    }

    fn scrape(self, max: usize) -> Result<ScrapeRequest, ParseErrorKind> {
        let hashes = match self.info_hash {
            Hashes::Absent => return Ok(ScrapeRequest::Full),
            Hashes::One(hash) => vec![hash],
            Hashes::List(hashes) => hashes,
            Hashes::Bad(kind) => return Err(kind),
        };
        // A list was cut at the limit while read; a single hash may still exceed it.
        if hashes.len() > max {
            return Err(ParseErrorKind::TooManyInfoHashes);
        }
        Ok(ScrapeRequest::InfoHashes(hashes))
    }
}

/// Reads the top-level object into [`InFields`], which the caller keeps even when the
/// JSON breaks off, to name the `action` and `info_hash` read before the break.
struct InObject<'f> {
    fields: &'f mut InFields,
    limits: &'f Limits,
}

impl<'de> DeserializeSeed<'de> for InObject<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for InObject<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let fields = self.fields;
        while let Some(key) = map.next_key::<InKey>()? {
            match key {
                InKey::Action => fields.action = map.next_value()?,
                InKey::InfoHash => {
                    let raw = map.next_value::<&RawValue>()?;
                    fields.info_hash = hashes(raw.get(), self.limits.max_scrape_torrents);
                }
                InKey::PeerId => fields.peer_id = map.next_value()?,
                InKey::ToPeerId => fields.to_peer_id = map.next_value()?,
                InKey::OfferId => fields.offer_id = map.next_value()?,
                InKey::Numwant => fields.numwant = map.next_value()?,
                InKey::Uploaded => fields.uploaded = map.next_value()?,
                InKey::Downloaded => fields.downloaded = map.next_value()?,
                InKey::Left => fields.left = map.next_value()?,
                InKey::Event => fields.event = map.next_value()?,
                InKey::Offers => {
                    fields.offers = map.next_value_seed(Read(OffersReader {
                        max: self.limits.max_offers,
                    }))?;
                }
                InKey::Answer => fields.answer = next_object(&mut map)?,
                InKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// `info_hash` as read: one hash (announce or scrape) or a list (scrape).
#[derive(Debug, Default)]
enum Hashes {
    #[default]
    Absent,
    One(InfoHash),
    List(Vec<InfoHash>),
    /// Not a binary string or an array of them, or an array over the limit.
    Bad(ParseErrorKind),
}

/// `info_hash` from its raw JSON text (see [`Slot<Binary>`] for why raw).
fn hashes(raw: &str, max: usize) -> Hashes {
    if raw.starts_with('[') {
        // A scrape's list: read again, element by element, each raw. The text is
        // known to be JSON, so this read does not fail.
        let mut deserializer = serde_json::Deserializer::from_str(raw);
        return Read(HashesReader { max })
            .deserialize(&mut deserializer)
            .unwrap_or(Hashes::Bad(ParseErrorKind::Invalid(Field::InfoHash)));
    }
    match binary_slot(raw) {
        Slot::Valid(Binary(hash)) => Hashes::One(InfoHash(hash)),
        Slot::Absent => Hashes::Absent,
        Slot::Invalid => Hashes::Bad(ParseErrorKind::Invalid(Field::InfoHash)),
    }
}

/// A list of info hashes, at most `max`.
struct HashesReader {
    max: usize,
}

impl<'de> Reader<'de> for HashesReader {
    type Out = Hashes;

    fn invalid(self) -> Hashes {
        Hashes::Bad(ParseErrorKind::Invalid(Field::InfoHash))
    }

    /// A repeated hash is answered once (a JSON object names a key once), kept where it
    /// first appears, and counts once against the limit. The list is taken with its
    /// repeats and de-duplicated whenever it passes twice the limit, and at the end:
    /// O(n log n) over the whole list, however it repeats, and never more than twice
    /// the limit held. The error is the one a hash-by-hash reading gives: too many
    /// torrents if they were named before a bad element, the bad element otherwise.
    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Hashes, A::Error> {
        let mut hashes = Vec::new();
        let too_many = |hashes: &mut Vec<InfoHash>| {
            dedup_keeping_order(hashes);
            hashes.len() > self.max
        };
        while let Some(hash) = seq.next_element::<Slot<Binary>>()? {
            let bad = match hash {
                Slot::Valid(Binary(hash)) => {
                    hashes.push(InfoHash(hash));
                    if hashes.len() <= self.max.saturating_mul(2) || !too_many(&mut hashes) {
                        continue;
                    }
                    ParseErrorKind::TooManyInfoHashes
                }
                Slot::Absent | Slot::Invalid if too_many(&mut hashes) => {
                    ParseErrorKind::TooManyInfoHashes
                }
                Slot::Absent | Slot::Invalid => ParseErrorKind::Invalid(Field::InfoHash),
            };
            // The answer is known: the rest is only read over.
            skip_seq(&mut seq)?;
            return Ok(Hashes::Bad(bad));
        }
        if too_many(&mut hashes) {
            return Ok(Hashes::Bad(ParseErrorKind::TooManyInfoHashes));
        }
        Ok(Hashes::List(hashes))
    }
}

/// Scrapes name this many hashes or fewer, nearly always: de-duplicated by comparing
/// each with those kept, without allocating.
const FEW_HASHES: usize = 16;

/// Removes repeated hashes, keeping each where it first appears, in O(n log n).
fn dedup_keeping_order(hashes: &mut Vec<InfoHash>) {
    if hashes.len() <= FEW_HASHES {
        let mut kept = 0;
        for i in 0..hashes.len() {
            let Some(hash) = hashes.get(i).copied() else {
                break;
            };
            if !hashes.get(..kept).unwrap_or_default().contains(&hash) {
                if let Some(slot) = hashes.get_mut(kept) {
                    *slot = hash;
                }
                kept += 1;
            }
        }
        hashes.truncate(kept);
        return;
    }
    // Sorted by hash, then place: the first of each run is the first seen.
    let mut placed: Vec<(InfoHash, usize)> = hashes.iter().copied().zip(0..).collect();
    placed.sort_unstable();
    placed.dedup_by_key(|(hash, _)| *hash);
    placed.sort_unstable_by_key(|(_, place)| *place);
    hashes.clear();
    hashes.extend(placed.into_iter().map(|(hash, _)| hash));
}

/// `offers` as read.
#[derive(Debug)]
enum Offers {
    Read(Vec<Offer>),
    /// Not an array, or an offer in it is wrong.
    Bad(ParseErrorKind),
}

impl Default for Offers {
    fn default() -> Self {
        Self::Read(Vec::new())
    }
}

struct OffersReader {
    max: usize,
}

impl<'de> Reader<'de> for OffersReader {
    type Out = Offers;

    fn invalid(self) -> Offers {
        Offers::Bad(ParseErrorKind::Invalid(Field::Offers))
    }

    fn null(self) -> Offers {
        Offers::default()
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Offers, A::Error> {
        let mut offers = Vec::new();
        while offers.len() < self.max {
            match seq.next_element_seed(Read(OfferReader))? {
                Some(Ok(offer)) => offers.push(offer),
                Some(Err(kind)) => {
                    skip_seq(&mut seq)?;
                    return Ok(Offers::Bad(kind));
                }
                None => return Ok(Offers::Read(offers)),
            }
        }
        skip_seq(&mut seq)?;
        Ok(Offers::Read(offers))
    }
}

keys!(OfferKey {
    OfferId => "offer_id",
    Offer => "offer",
});

/// One element of `offers`.
struct OfferReader;

impl<'de> Reader<'de> for OfferReader {
    type Out = Result<Offer, ParseErrorKind>;

    fn invalid(self) -> Self::Out {
        Err(ParseErrorKind::Invalid(Field::Offers))
    }

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let mut offer_id = Slot::Absent;
        let mut offer = Slot::Absent;
        while let Some(key) = map.next_key::<OfferKey>()? {
            match key {
                OfferKey::OfferId => offer_id = map.next_value::<Slot<Binary>>()?,
                OfferKey::Offer => offer = next_object(&mut map)?,
                OfferKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(offer_id.required(Field::OfferId).and_then(|offer_id| {
            Ok(Offer {
                offer_id: OfferId(offer_id.0),
                offer: offer.required(Field::Offer)?,
            })
        }))
    }
}

/// Appends `message` as the JSON text a client sends, for load testers and tests.
/// Parsing it gives `message` back (with [`Limits`] that admit its offers and hashes).
///
/// Binary strings are written as [`write_out_message`](crate::write_out_message)
/// writes them. An announce has `action`, `info_hash` and `peer_id`, then only what it
/// carries: each count that is `Some`, `event` unless none, `offers` unless empty, and
/// `to_peer_id`, `offer_id` and `answer` with an answer. A scrape's hashes are written
/// as an array, even one; a full scrape has no `info_hash`.
pub fn write_in_message(message: &InMessage, out: &mut Vec<u8>) {
    match message {
        InMessage::Announce(announce) => write_announce(announce, out),
        InMessage::Scrape(ScrapeRequest::Full) => out.extend_from_slice(br#"{"action":"scrape"}"#),
        InMessage::Scrape(ScrapeRequest::InfoHashes(hashes)) => {
            out.extend_from_slice(br#"{"action":"scrape","info_hash":["#);
            for (i, hash) in hashes.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_binary(out, &hash.0);
            }
            out.extend_from_slice(b"]}");
        }
    }
}

fn write_announce(announce: &AnnounceRequest, out: &mut Vec<u8>) {
    out.extend_from_slice(br#"{"action":"announce","info_hash":"#);
    push_binary(out, &announce.info_hash.0);
    out.extend_from_slice(br#","peer_id":"#);
    push_binary(out, &announce.peer_id.0);
    for (key, value) in [
        (&br#","numwant":"#[..], announce.numwant),
        (br#","uploaded":"#, announce.uploaded),
        (br#","downloaded":"#, announce.downloaded),
        (br#","left":"#, announce.left),
    ] {
        if let Some(value) = value {
            out.extend_from_slice(key);
            push_u64(out, value);
        }
    }
    let event: &[u8] = match announce.event {
        AnnounceEvent::None => b"",
        AnnounceEvent::Started => br#","event":"started""#,
        AnnounceEvent::Completed => br#","event":"completed""#,
        AnnounceEvent::Stopped => br#","event":"stopped""#,
    };
    out.extend_from_slice(event);
    if !announce.offers.is_empty() {
        out.extend_from_slice(br#","offers":["#);
        for (i, offer) in announce.offers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"offer_id":"#);
            push_binary(out, &offer.offer_id.0);
            out.extend_from_slice(br#","offer":"#);
            out.extend_from_slice(offer.offer.get().as_bytes());
            out.push(b'}');
        }
        out.push(b']');
    }
    if let Some(answer) = &announce.answer {
        out.extend_from_slice(br#","to_peer_id":"#);
        push_binary(out, &answer.to_peer_id.0);
        out.extend_from_slice(br#","offer_id":"#);
        push_binary(out, &answer.offer_id.0);
        out.extend_from_slice(br#","answer":"#);
        out.extend_from_slice(answer.answer.get().as_bytes());
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    //! Messages as the `bittorrent-tracker` npm client writes them
    //! (`lib/client/websocket-tracker.js`: `JSON.stringify` of its params, binary
    //! strings made with `Buffer.toString('binary')`).

    use super::*;
    use crate::common::tests::sdp_object;
    use proptest::prelude::*;

    const LIMITS: Limits = Limits {
        max_offers: 3,
        max_scrape_torrents: 4,
    };

    /// BEP 3's example info hash: 0x12 0x34 ... (ten pairs).
    const HASH: [u8; 20] = [
        0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf1, 0x23, 0x45, //
        0x67, 0x89, 0xab, 0xcd, 0xef, 0x12, 0x34, 0x56, 0x78, 0x9a,
    ];

    /// [`HASH`] as `JSON.stringify` writes it: 0x12 as `\u0012`, printable ASCII as
    /// itself (`4Vx`, `#Eg`), 0x80..=0xFF as the UTF-8 of U+0080..=U+00FF.
    const HASH_JSON: &str = concat!(
        "\"",
        "\\u0012",                  // 0x12
        "4Vx",                      // 0x34 0x56 0x78
        "\u{9a}\u{bc}\u{de}\u{f1}", // 0x9a 0xbc 0xde 0xf1: C2 9A, C2 BC, C3 9E, C3 B1
        "#Eg",                      // 0x23 0x45 0x67
        "\u{89}\u{ab}\u{cd}\u{ef}", // 0x89 0xab 0xcd 0xef
        "\\u0012",                  // 0x12
        "4Vx\u{9a}",                // 0x34 0x56 0x78 0x9a
        "\"",
    );

    /// [`HASH`] with every character a `\u00XX` escape, which means the same string.
    const HASH_JSON_ESCAPED: &str = concat!(
        r#""\u0012\u0034\u0056\u0078\u009a\u00bc\u00de\u00f1\u0023\u0045"#,
        r#"\u0067\u0089\u00ab\u00cd\u00ef\u0012\u0034\u0056\u0078\u009A""#, // either hex case
    );

    /// WebTorrent's peer id: `-WW0208-` and 12 base64 characters.
    const PEER_ID: [u8; 20] = *b"-WW0208-Zm9vYmFyYmF6";

    /// An offer id: bytes 0xE0..=0xF3, i.e. "àáâãäåæçèéêëìíîïðñòó".
    const OFFER_ID: [u8; 20] = [
        0xe0, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, //
        0xea, 0xeb, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf2, 0xf3,
    ];
    const OFFER_ID_JSON: &str = "\"àáâãäåæçèéêëìíîïðñòó\"";

    const OFFER_SDP: &str = r#"{"type":"offer","sdp":"v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\ns=-\r\na=fingerprint:sha-256 AB:CD\r\n"}"#;
    const ANSWER_SDP: &str = r#"{"type":"answer","sdp":"v=0\r\no=- 77 2 IN IP4 127.0.0.1\r\n"}"#;

    /// An announce as the client sends it: its options first (`numwant`, counts,
    /// `event`), then `action`, `info_hash`, `peer_id`, then the offers, each
    /// `{"offer", "offer_id"}`.
    fn announce_text(hash_json: &str) -> String {
        [
            r#"{"numwant":2,"#,        // as many as the offers
            r#""uploaded":0,"#,        // bytes
            r#""downloaded":16384,"#,  // bytes
            r#""left":null,"#,         // Infinity: size not known yet
            r#""event":"started","#,   // started|completed|stopped|update
            r#""action":"announce","#, //
            r#""info_hash":"#,
            hash_json,
            ",",
            r#""peer_id":"-WW0208-Zm9vYmFyYmF6","#,
            r#""trackerid":"t1","#, // unknown to us: ignored
            r#""offers":["#,
            r#"{"offer":"#,
            OFFER_SDP,
            r#","offer_id":"#,
            OFFER_ID_JSON,
            "},",
            r#"{"offer":{"type":"offer","sdp":""},"offer_id":"bbbbbbbbbbbbbbbbbbbb"}"#,
            "]}",
        ]
        .concat()
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    fn announce_expected() -> AnnounceRequest {
        AnnounceRequest {
            info_hash: InfoHash(HASH),
            peer_id: PeerId(PEER_ID),
            event: AnnounceEvent::Started,
            left: None,
            uploaded: Some(0),
            downloaded: Some(16384),
            numwant: Some(2),
            offers: vec![
                Offer {
                    offer_id: OfferId(OFFER_ID),
                    offer: raw(OFFER_SDP),
                },
                Offer {
                    offer_id: OfferId([b'b'; 20]),
                    offer: raw(r#"{"type":"offer","sdp":""}"#),
                },
            ],
            answer: None,
        }
    }

    /// The smallest announce, with `extra` fields after it.
    fn announce_with(extra: &str) -> Result<AnnounceRequest, ParseError> {
        let text = format!(
            r#"{{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","peer_id":"bbbbbbbbbbbbbbbbbbbb"{extra}}}"#
        );
        match parse_in_message(text.as_bytes(), &LIMITS)? {
            InMessage::Announce(announce) => Ok(announce),
            other => panic!("not an announce: {other:?}"),
        }
    }

    fn parse(text: &str) -> Result<InMessage, ParseError> {
        parse_in_message(text.as_bytes(), &LIMITS)
    }

    /// The failure text of `text`.
    fn reason(text: &str) -> &'static str {
        match parse(text) {
            Err(error) => error.reason(),
            Ok(message) => panic!("parsed: {message:?}"),
        }
    }

    fn write(message: &InMessage) -> String {
        let mut out = Vec::new();
        write_in_message(message, &mut out);
        String::from_utf8(out).unwrap()
    }

    // --- announce ---

    #[test]
    fn announce_known_answer() {
        let expected = InMessage::Announce(announce_expected());
        assert_eq!(parse(&announce_text(HASH_JSON)), Ok(expected.clone()));
        assert_eq!(parse(&announce_text(HASH_JSON_ESCAPED)), Ok(expected));
    }

    #[test]
    fn announce_defaults() {
        assert_eq!(
            announce_with(""),
            Ok(AnnounceRequest {
                info_hash: InfoHash([b'a'; 20]),
                peer_id: PeerId([b'b'; 20]),
                event: AnnounceEvent::None,
                left: None,
                uploaded: None,
                downloaded: None,
                numwant: None,
                offers: Vec::new(),
                answer: None,
            })
        );
        // `null` is absent, for every optional field.
        assert_eq!(
            announce_with(concat!(
                r#","numwant":null,"uploaded":null,"downloaded":null,"left":null,"#,
                r#""event":null,"offers":null,"answer":null,"to_peer_id":null,"offer_id":null"#
            )),
            announce_with("")
        );
    }

    #[test]
    fn answer_known_answer() {
        // As the client answers a relayed offer: `to_peer_id` is the offerer's
        // `peer_id`, `offer_id` the offer's.
        let text = [
            r#"{"action":"announce","#,
            r#""info_hash":"#,
            HASH_JSON,
            ",",
            r#""peer_id":"-WW0208-Zm9vYmFyYmF6","#,
            r#""to_peer_id":"\u0000\u0001cccccccccccccccc\u00fe\u00ff","#,
            r#""answer":"#,
            ANSWER_SDP,
            ",",
            r#""offer_id":"#,
            OFFER_ID_JSON,
            "}",
        ]
        .concat();
        let mut to_peer_id = [b'c'; 20];
        to_peer_id[..2].copy_from_slice(&[0, 1]);
        to_peer_id[18..].copy_from_slice(&[0xfe, 0xff]);
        assert_eq!(
            parse(&text),
            Ok(InMessage::Announce(AnnounceRequest {
                info_hash: InfoHash(HASH),
                peer_id: PeerId(PEER_ID),
                event: AnnounceEvent::None,
                left: None,
                uploaded: None,
                downloaded: None,
                numwant: None,
                offers: Vec::new(),
                answer: Some(Answer {
                    to_peer_id: PeerId(to_peer_id),
                    offer_id: OfferId(OFFER_ID),
                    answer: raw(ANSWER_SDP),
                }),
            }))
        );
    }

    #[test]
    fn every_byte_in_binary_strings_either_spelling() {
        let all: Vec<u8> = (0..=255).collect();
        for chunk in all.chunks(20) {
            let mut hash = [0x7e; 20];
            hash[..chunk.len()].copy_from_slice(chunk);
            // Raw characters where JSON allows them (what `JSON.stringify` does)...
            let raw: String = hash
                .iter()
                .map(|&b| match b {
                    b'"' => "\\\"".to_owned(),
                    b'\\' => "\\\\".to_owned(),
                    0..=0x1f => format!("\\u{b:04x}"),
                    _ => char::from(b).to_string(),
                })
                .collect();
            // ...or every one escaped.
            let escaped: String = hash.iter().map(|b| format!("\\u{b:04X}")).collect();
            for spelled in [raw, escaped] {
                let text = format!(
                    r#"{{"action":"announce","info_hash":"{spelled}","peer_id":"{spelled}","offers":[{{"offer_id":"{spelled}","offer":{{}}}}],"answer":{{}},"to_peer_id":"{spelled}","offer_id":"{spelled}"}}"#
                );
                let InMessage::Announce(announce) = parse(&text).unwrap() else {
                    panic!("not an announce");
                };
                assert_eq!(announce.info_hash, InfoHash(hash), "{spelled}");
                assert_eq!(announce.peer_id, PeerId(hash), "{spelled}");
                assert_eq!(announce.offers[0].offer_id, OfferId(hash), "{spelled}");
                let answer = announce.answer.unwrap();
                assert_eq!(answer.to_peer_id, PeerId(hash), "{spelled}");
                assert_eq!(answer.offer_id, OfferId(hash), "{spelled}");
                let scrape = format!(r#"{{"action":"scrape","info_hash":["{spelled}"]}}"#);
                assert_eq!(
                    parse(&scrape),
                    Ok(InMessage::Scrape(ScrapeRequest::InfoHashes(vec![
                        InfoHash(hash)
                    ])))
                );
            }
        }
    }

    #[test]
    fn numbers_of_every_form() {
        type Get = fn(&AnnounceRequest) -> Option<u64>;
        let fields: [(&str, Get); 4] = [
            ("numwant", |a| a.numwant),
            ("uploaded", |a| a.uploaded),
            ("downloaded", |a| a.downloaded),
            ("left", |a| a.left),
        ];
        for (name, get) in fields {
            for (json, expected) in [
                ("0", Some(0)),
                ("7", Some(7)),
                ("-0", Some(0)),
                ("null", None),
                ("1.9", Some(1)), // fractions cut off
                ("0.5e1", Some(5)),
                ("-5", Some(0)), // clamped
                ("-1.5", Some(0)),
                ("-1e300", Some(0)),
                ("18446744073709551615", Some(u64::MAX)),
                ("18446744073709551616", Some(u64::MAX)), // past u64: a float, clamped
                ("99999999999999999999999999", Some(u64::MAX)),
                ("1e30", Some(u64::MAX)),
                ("1.7976931348623157e308", Some(u64::MAX)),
            ] {
                let announce = announce_with(&format!(r#","{name}":{json}"#)).unwrap();
                assert_eq!(get(&announce), expected, "{name}: {json}");
            }
            assert_eq!(get(&announce_with("").unwrap()), None, "{name} absent");
            for json in [
                r#""5""#,
                r#""""#,
                "true",
                "false",
                "[]",
                "[1]",
                "{}",
                r#"{"a":1}"#,
            ] {
                let error = announce_with(&format!(r#","{name}":{json}"#)).unwrap_err();
                assert_eq!(error.reason(), format!("invalid {name}"), "{name}: {json}");
            }
            // Beyond f64: serde_json refuses the number itself.
            let error = announce_with(&format!(r#","{name}":1e400"#)).unwrap_err();
            assert_eq!(error.kind, ParseErrorKind::MalformedJson);
        }
    }

    #[test]
    fn events() {
        for (json, expected) in [
            (r#""started""#, AnnounceEvent::Started),
            (r#""completed""#, AnnounceEvent::Completed),
            (r#""stopped""#, AnnounceEvent::Stopped),
            (r#""update""#, AnnounceEvent::None),
            (r#""""#, AnnounceEvent::None),
            ("null", AnnounceEvent::None),
            (r#""st\u0061rted""#, AnnounceEvent::Started),
        ] {
            let announce = announce_with(&format!(r#","event":{json}"#)).unwrap();
            assert_eq!(announce.event, expected, "{json}");
        }
        for json in [
            r#""paused""#,
            r#""STARTED""#,
            r#""started ""#,
            "1",
            "[]",
            "{}",
            "true",
        ] {
            let error = announce_with(&format!(r#","event":{json}"#)).unwrap_err();
            assert_eq!(error.reason(), "invalid event", "{json}");
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_the_last_repeat_counts() {
        let announce = announce_with(concat!(
            r#","trackerid":"x","compact":1,"port":null,"ip":[1,2,{"a":[]}],"#,
            r#""info_hash\u0000":5,"nested":{"info_hash":"short","peer_id":7},"#,
            r#""numwant":"bad","numwant":3"#,
        ))
        .unwrap();
        assert_eq!(announce.numwant, Some(3));
        assert_eq!(announce.info_hash, InfoHash([b'a'; 20]));
        // Escaped key names are the same names.
        assert_eq!(
            announce_with(r#","nu\u006dwant":4"#).unwrap().numwant,
            Some(4)
        );
        // Fields of an answer without an answer are not used, so not judged.
        assert!(announce_with(r#","to_peer_id":5,"offer_id":"short""#).is_ok());
    }

    #[test]
    fn offers() {
        let offer = |id: char| {
            format!(
                r#"{{"offer_id":"{}","offer":{{"i":"{id}"}}}}"#,
                id.to_string().repeat(20)
            )
        };
        let offers: Vec<String> = ('a'..='e').map(offer).collect();
        // Only the first `max_offers` are read; later ones, even wrong ones, are not.
        let announce = announce_with(&format!(
            r#","offers":[{},"not an offer",{{}}]"#,
            offers.join(",")
        ))
        .unwrap();
        let ids: Vec<OfferId> = announce.offers.iter().map(|o| o.offer_id).collect();
        assert_eq!(
            ids,
            [
                OfferId([b'a'; 20]),
                OfferId([b'b'; 20]),
                OfferId([b'c'; 20])
            ]
        );
        assert_eq!(announce.offers[2].offer.get(), r#"{"i":"c"}"#);
        let none = Limits {
            max_offers: 0,
            ..LIMITS
        };
        let text = format!(
            r#"{{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","peer_id":"bbbbbbbbbbbbbbbbbbbb","offers":[{}]}}"#,
            offers[0]
        );
        let Ok(InMessage::Announce(announce)) = parse_in_message(text.as_bytes(), &none) else {
            panic!("not an announce");
        };
        assert!(announce.offers.is_empty());
        assert_eq!(announce_with(r#","offers":[]"#).unwrap().offers, []);
    }

    #[test]
    fn offer_raw_text_is_kept_exactly() {
        // Whitespace inside is kept; whitespace around is not part of the value.
        let sdp = "{ \"type\" :\"offer\",\n\"sdp\":\"\\u00e9\\\"\\\\\\n\u{e9}\" , \"x\" : [ ] }";
        let announce = announce_with(&format!(
            r#","offers":[ {{ "offer" :  {sdp}  , "offer_id":"cccccccccccccccccccc" }} ],"answer": {sdp} ,"to_peer_id":"dddddddddddddddddddd","offer_id":"eeeeeeeeeeeeeeeeeeee""#
        ))
        .unwrap();
        assert_eq!(announce.offers[0].offer.get(), sdp);
        assert_eq!(announce.answer.unwrap().answer.get(), sdp);
    }

    // --- scrape ---

    #[test]
    fn scrape_known_answers() {
        // One torrent: a string, as the client sends for its own torrent.
        assert_eq!(
            parse(&format!(r#"{{"action":"scrape","info_hash":{HASH_JSON}}}"#)),
            Ok(InMessage::Scrape(ScrapeRequest::InfoHashes(vec![
                InfoHash(HASH)
            ])))
        );
        // Several: an array. The same hash twice (here once written raw, once escaped)
        // is one torrent, kept where it first appears: the answer's `files` object must
        // not name a key twice.
        assert_eq!(
            parse(&format!(
                r#"{{"action":"scrape","info_hash":[{HASH_JSON},"aaaaaaaaaaaaaaaaaaaa",{HASH_JSON_ESCAPED}]}}"#
            )),
            Ok(InMessage::Scrape(ScrapeRequest::InfoHashes(vec![
                InfoHash(HASH),
                InfoHash([b'a'; 20]),
            ])))
        );
        let full = Ok(InMessage::Scrape(ScrapeRequest::Full));
        assert_eq!(parse(r#"{"action":"scrape"}"#), full);
        assert_eq!(parse(r#"{"action":"scrape","info_hash":null}"#), full);
        assert_eq!(
            parse(r#"{"action":"scrape","info_hash":[]}"#),
            Ok(InMessage::Scrape(ScrapeRequest::InfoHashes(Vec::new())))
        );
        // Announce fields, even wrong ones, do not matter to a scrape.
        assert_eq!(
            parse(r#"{"action":"scrape","peer_id":1,"numwant":"x","offers":5}"#),
            full
        );
    }

    #[test]
    fn scrape_limit() {
        let hashes = |n: u8| -> String {
            let list: Vec<String> = (0..n)
                .map(|i| format!("\"{}\"", char::from(b'a' + i).to_string().repeat(20)))
                .collect();
            format!(r#"{{"action":"scrape","info_hash":[{}]}}"#, list.join(","))
        };
        let Ok(InMessage::Scrape(ScrapeRequest::InfoHashes(four))) = parse(&hashes(4)) else {
            panic!("not a scrape");
        };
        assert_eq!(four.len(), 4);
        // The limit counts torrents, not how often they are named.
        let repeated = format!(
            r#"{{"action":"scrape","info_hash":[{}]}}"#,
            vec![r#""bbbbbbbbbbbbbbbbbbbb""#; 50].join(",")
        );
        assert_eq!(
            parse(&repeated),
            Ok(InMessage::Scrape(ScrapeRequest::InfoHashes(vec![
                InfoHash([b'b'; 20])
            ])))
        );
        let error = parse(&hashes(5)).unwrap_err();
        assert_eq!(
            error,
            ParseError {
                kind: ParseErrorKind::TooManyInfoHashes,
                action: Some(Action::Scrape),
                info_hash: None,
            }
        );
        assert_eq!(error.reason(), "too many info hashes");
        let none = Limits {
            max_scrape_torrents: 0,
            ..LIMITS
        };
        let single = br#"{"action":"scrape","info_hash":"aaaaaaaaaaaaaaaaaaaa"}"#;
        assert_eq!(
            parse_in_message(single, &none).map_err(|e| e.kind),
            Err(ParseErrorKind::TooManyInfoHashes)
        );
        assert_eq!(
            parse_in_message(br#"{"action":"scrape"}"#, &none),
            Ok(InMessage::Scrape(ScrapeRequest::Full))
        );
    }

    /// The largest scrape the WebSocket config accepts (65,535 torrents), every torrent
    /// named twice, in an order that puts each repeat far from its first: repeats
    /// dropped, first places kept; one torrent more is refused, and so is a bad element
    /// after the limit was passed. (Checked hash by hash against those kept, as it was,
    /// this scrape alone took billions of comparisons.)
    #[test]
    fn largest_scrape_with_repeats() {
        const MAX: usize = u16::MAX as usize;
        let hash = |i: usize| {
            let mut h = [b'a'; 20];
            for (slot, digit) in h.iter_mut().zip(format!("{i:020}").bytes()) {
                *slot = digit;
            }
            h
        };
        let limits = Limits {
            max_scrape_torrents: MAX,
            ..LIMITS
        };
        let text = |order: &mut dyn Iterator<Item = usize>, tail: &str| {
            let list: Vec<String> = order
                .map(|i| format!("\"{}\"", String::from_utf8_lossy(&hash(i))))
                .collect();
            format!(
                r#"{{"action":"scrape","info_hash":[{}{tail}]}}"#,
                list.join(",")
            )
        };
        // Descending, then ascending again: every hash twice.
        let twice = text(&mut (0..MAX).rev().chain(0..MAX), "");
        let Ok(InMessage::Scrape(ScrapeRequest::InfoHashes(read))) =
            parse_in_message(twice.as_bytes(), &limits)
        else {
            panic!("not a scrape");
        };
        let expected: Vec<InfoHash> = (0..MAX).rev().map(|i| InfoHash(hash(i))).collect();
        assert_eq!(read, expected);
        let one_more = text(&mut (0..MAX).chain(0..=MAX), "");
        assert_eq!(
            parse_in_message(one_more.as_bytes(), &limits).map_err(|e| e.kind),
            Err(ParseErrorKind::TooManyInfoHashes)
        );
        let bad_after_too_many = text(&mut (0..=MAX), ",5");
        assert_eq!(
            parse_in_message(bad_after_too_many.as_bytes(), &limits).map_err(|e| e.kind),
            Err(ParseErrorKind::TooManyInfoHashes)
        );
        let bad_within = text(&mut (0..MAX).chain(0..MAX), ",5");
        assert_eq!(
            parse_in_message(bad_within.as_bytes(), &limits).map_err(|e| e.kind),
            Err(ParseErrorKind::Invalid(Field::InfoHash))
        );
    }

    // --- failures ---

    #[test]
    fn failure_texts() {
        const H: &str = r#""info_hash":"aaaaaaaaaaaaaaaaaaaa""#;
        const P: &str = r#""peer_id":"bbbbbbbbbbbbbbbbbbbb""#;
        for (text, expected) in [
            ("", "malformed JSON"),
            ("   ", "malformed JSON"),
            ("{", "malformed JSON"),
            (r#"{"action":"announce""#, "malformed JSON"),
            (r#"{"action":"announce"} x"#, "malformed JSON"),
            (r#"{"action":"announce"}{}"#, "malformed JSON"),
            (r#"{"action":'announce'}"#, "malformed JSON"),
            (r#"{action:"announce"}"#, "malformed JSON"),
            (r#"{"action":"\ud800"}"#, "malformed JSON"), // a lone surrogate
            (
                r#"{"action":"announce","info_hash":"\udc00aaaaaaaaaaaaaaaaaaa"}"#,
                "invalid info_hash",
            ),
            (r#"{"action":"announce","x":"\ud800"}"#, "missing info_hash"), // unread: not judged
            ("nonsense", "malformed JSON"),
            ("[]", "message is not a JSON object"),
            (r#""announce""#, "message is not a JSON object"),
            (" 5 ", "message is not a JSON object"),
            ("null", "message is not a JSON object"),
            ("{}", "missing action"),
            (r#"{"action":null}"#, "missing action"),
            (r#"{"action":"Announce"}"#, "unknown action"),
            (r#"{"action":"stats"}"#, "unknown action"),
            (r#"{"action":1}"#, "unknown action"),
            (r#"{"action":"announce"}"#, "missing info_hash"),
            (
                r#"{"action":"announce","info_hash":null}"#,
                "missing info_hash",
            ),
            (
                r#"{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaa"}"#,
                "invalid info_hash",
            ),
            (
                r#"{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaaa"}"#,
                "invalid info_hash",
            ),
            (
                r#"{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaĀ"}"#,
                "invalid info_hash",
            ),
            (
                r#"{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaa\u0100"}"#,
                "invalid info_hash",
            ),
            (
                r#"{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaa😀"}"#,
                "invalid info_hash",
            ),
            (
                r#"{"action":"announce","info_hash":["aaaaaaaaaaaaaaaaaaaa"]}"#,
                "invalid info_hash",
            ),
            (
                r#"{"action":"announce","info_hash":12345}"#,
                "invalid info_hash",
            ),
            (
                r#"{"action":"scrape","info_hash":["aaaaaaaaaaaaaaaaaaaa","x"]}"#,
                "invalid info_hash",
            ),
            (
                r#"{"action":"scrape","info_hash":[null]}"#,
                "invalid info_hash",
            ),
            (
                r#"{"action":"scrape","info_hash":"x"}"#,
                "invalid info_hash",
            ),
            (r#"{"action":"scrape","info_hash":{}}"#, "invalid info_hash"),
        ] {
            assert_eq!(reason(text), expected, "{text}");
        }
        for (fields, expected) in [
            (H.to_owned(), "missing peer_id"),
            (format!(r#"{H},"peer_id":null"#), "missing peer_id"),
            (format!(r#"{H},"peer_id":"b""#), "invalid peer_id"),
            (format!(r#"{H},"peer_id":[]"#), "invalid peer_id"),
            (format!(r#"{H},{P},"offers":{{}}"#), "invalid offers"),
            (format!(r#"{H},{P},"offers":"x""#), "invalid offers"),
            (format!(r#"{H},{P},"offers":[1]"#), "invalid offers"),
            (format!(r#"{H},{P},"offers":[null]"#), "invalid offers"),
            (
                format!(r#"{H},{P},"offers":[{{"offer":{{}}}}]"#),
                "missing offer_id",
            ),
            (
                format!(r#"{H},{P},"offers":[{{"offer":{{}},"offer_id":"x"}}]"#),
                "invalid offer_id",
            ),
            (
                format!(r#"{H},{P},"offers":[{{"offer_id":"cccccccccccccccccccc"}}]"#),
                "missing offer",
            ),
            (
                format!(r#"{H},{P},"offers":[{{"offer_id":"cccccccccccccccccccc","offer":null}}]"#),
                "missing offer",
            ),
            (
                format!(
                    r#"{H},{P},"offers":[{{"offer_id":"cccccccccccccccccccc","offer":"sdp"}}]"#
                ),
                "invalid offer",
            ),
            (
                format!(
                    r#"{H},{P},"offers":[{{"offer_id":"cccccccccccccccccccc","offer":[{{}}]}}]"#
                ),
                "invalid offer",
            ),
            (
                format!(r#"{H},{P},"offers":[{{"offer_id":"cccccccccccccccccccc","offer":1}}]"#),
                "invalid offer",
            ),
            (format!(r#"{H},{P},"answer":"sdp""#), "invalid answer"),
            (format!(r#"{H},{P},"answer":[]"#), "invalid answer"),
            (format!(r#"{H},{P},"answer":{{}}"#), "missing to_peer_id"),
            (
                format!(r#"{H},{P},"answer":{{}},"to_peer_id":1"#),
                "invalid to_peer_id",
            ),
            (
                format!(r#"{H},{P},"answer":{{}},"to_peer_id":"dddddddddddddddddddd""#),
                "missing offer_id",
            ),
            (
                format!(
                    r#"{H},{P},"answer":{{}},"to_peer_id":"dddddddddddddddddddd","offer_id":"e""#
                ),
                "invalid offer_id",
            ),
        ] {
            let text = format!(r#"{{"action":"announce",{fields}}}"#);
            assert_eq!(reason(&text), expected, "{text}");
        }
    }

    #[test]
    fn failures_name_action_and_info_hash_wherever_they_stand() {
        let hash = Some(InfoHash([b'a'; 20]));
        let announce = Some(Action::Announce);
        for (text, kind, action, info_hash) in [
            // A bad field before them.
            (
                r#"{"peer_id":5,"info_hash":"aaaaaaaaaaaaaaaaaaaa","action":"announce"}"#,
                ParseErrorKind::Invalid(Field::PeerId),
                announce,
                hash,
            ),
            (
                r#"{"left":"lots","action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","peer_id":"bbbbbbbbbbbbbbbbbbbb"}"#,
                ParseErrorKind::Invalid(Field::Left),
                announce,
                hash,
            ),
            // Broken JSON after them.
            (
                r#"{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","peer_id":"bbbb"#,
                ParseErrorKind::MalformedJson,
                announce,
                hash,
            ),
            // Broken JSON before one of them.
            (
                r#"{"action":"announce","peer_id":?,"info_hash":"aaaaaaaaaaaaaaaaaaaa"}"#,
                ParseErrorKind::MalformedJson,
                announce,
                None,
            ),
            // An unknown action: the hash is still read.
            (
                r#"{"info_hash":"aaaaaaaaaaaaaaaaaaaa","action":"stats"}"#,
                ParseErrorKind::UnknownAction,
                None,
                hash,
            ),
            // A scrape of one hash that fails.
            (
                r#"{"action":"scrape","info_hash":"aaaaaaaaaaaaaaaaaaaa","x":}"#,
                ParseErrorKind::MalformedJson,
                Some(Action::Scrape),
                hash,
            ),
            // An invalid hash is not named.
            (
                r#"{"action":"announce","info_hash":"aaa","peer_id":"bbbbbbbbbbbbbbbbbbbb"}"#,
                ParseErrorKind::Invalid(Field::InfoHash),
                announce,
                None,
            ),
        ] {
            assert_eq!(
                parse(text),
                Err(ParseError {
                    kind,
                    action,
                    info_hash
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn raw_objects_must_be_utf8() {
        // Strings that are only skipped are not checked; kept ones are.
        let text = b"{\"action\":\"announce\",\"info_hash\":\"aaaaaaaaaaaaaaaaaaaa\",\"peer_id\":\"bbbbbbbbbbbbbbbbbbbb\",\"answer\":{\"sdp\":\"\xff\"},\"to_peer_id\":\"dddddddddddddddddddd\",\"offer_id\":\"eeeeeeeeeeeeeeeeeeee\"}";
        assert_eq!(
            parse_in_message(text, &LIMITS).map_err(|e| e.kind),
            Err(ParseErrorKind::MalformedJson)
        );
        let offer = b"{\"action\":\"announce\",\"info_hash\":\"aaaaaaaaaaaaaaaaaaaa\",\"peer_id\":\"bbbbbbbbbbbbbbbbbbbb\",\"offers\":[{\"offer_id\":\"eeeeeeeeeeeeeeeeeeee\",\"offer\":{\"\xc3\":1}}]}";
        assert_eq!(
            parse_in_message(offer, &LIMITS).map_err(|e| e.kind),
            Err(ParseErrorKind::MalformedJson)
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        for depth in [127, 128, 129, 100_000] {
            for (open, close) in [("[", "]"), (r#"{"a":"#, "}")] {
                let nested = format!("{}1{}", open.repeat(depth), close.repeat(depth));
                for text in [
                    format!(r#"{{"action":"scrape","x":{nested}}}"#),
                    format!(r#"{{"action":"scrape","info_hash":{nested}}}"#),
                    format!(
                        r#"{{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","peer_id":"bbbbbbbbbbbbbbbbbbbb","offers":[{{"offer_id":"cccccccccccccccccccc","offer":{nested}}}]}}"#
                    ),
                ] {
                    let _ = parse(&text);
                }
            }
        }
        let deep = format!(r#"{{"action":"scrape","x":{}}}"#, "[".repeat(100_000));
        assert_eq!(
            parse(&deep).map_err(|e| e.kind),
            Err(ParseErrorKind::MalformedJson)
        );
    }

    // --- writing ---

    #[test]
    fn write_known_answers() {
        assert_eq!(
            write(&InMessage::Announce(announce_expected())),
            [
                r#"{"action":"announce","#,
                r#""info_hash":"#,
                HASH_JSON,
                ",",
                r#""peer_id":"-WW0208-Zm9vYmFyYmF6","#,
                r#""numwant":2,"uploaded":0,"downloaded":16384,"#, // `left` is None: not written
                r#""event":"started","#,
                r#""offers":[{"offer_id":"#,
                OFFER_ID_JSON,
                r#","offer":"#,
                OFFER_SDP,
                "},",
                r#"{"offer_id":"bbbbbbbbbbbbbbbbbbbb","offer":{"type":"offer","sdp":""}}]"#,
                "}",
            ]
            .concat()
        );
        let answer = AnnounceRequest {
            info_hash: InfoHash([0; 20]),
            peer_id: PeerId([b'"'; 20]),
            event: AnnounceEvent::None,
            left: Some(u64::MAX),
            uploaded: None,
            downloaded: None,
            numwant: None,
            offers: Vec::new(),
            answer: Some(Answer {
                to_peer_id: PeerId([b'\\'; 20]),
                offer_id: OfferId([0xff; 20]),
                answer: raw(ANSWER_SDP),
            }),
        };
        assert_eq!(
            write(&InMessage::Announce(answer)),
            [
                r#"{"action":"announce","#,
                r#""info_hash":""#,
                &"\\u0000".repeat(20),
                r#"","#,
                r#""peer_id":""#,
                &"\\\"".repeat(20),
                r#"","#,
                r#""left":18446744073709551615,"#,
                r#""to_peer_id":""#,
                &"\\\\".repeat(20),
                r#"","#,
                r#""offer_id":""#,
                &"ÿ".repeat(20),
                r#"","#,
                r#""answer":"#,
                ANSWER_SDP,
                "}",
            ]
            .concat()
        );
        assert_eq!(
            write(&InMessage::Scrape(ScrapeRequest::Full)),
            r#"{"action":"scrape"}"#
        );
        assert_eq!(
            write(&InMessage::Scrape(ScrapeRequest::InfoHashes(vec![
                InfoHash(HASH),
                InfoHash([b'a'; 20])
            ]))),
            format!(r#"{{"action":"scrape","info_hash":[{HASH_JSON},"aaaaaaaaaaaaaaaaaaaa"]}}"#)
        );
        assert_eq!(
            write(&InMessage::Scrape(ScrapeRequest::InfoHashes(Vec::new()))),
            r#"{"action":"scrape","info_hash":[]}"#
        );
    }

    // --- properties ---

    fn event() -> impl Strategy<Value = AnnounceEvent> {
        prop_oneof![
            Just(AnnounceEvent::None),
            Just(AnnounceEvent::Started),
            Just(AnnounceEvent::Completed),
            Just(AnnounceEvent::Stopped),
        ]
    }

    fn offer() -> impl Strategy<Value = Offer> {
        (any::<[u8; 20]>(), sdp_object("offer")).prop_map(|(id, offer)| Offer {
            offer_id: OfferId(id),
            offer,
        })
    }

    fn answer() -> impl Strategy<Value = Answer> {
        (any::<[u8; 20]>(), any::<[u8; 20]>(), sdp_object("answer")).prop_map(|(to, id, answer)| {
            Answer {
                to_peer_id: PeerId(to),
                offer_id: OfferId(id),
                answer,
            }
        })
    }

    fn announce() -> impl Strategy<Value = AnnounceRequest> {
        (
            (any::<[u8; 20]>(), any::<[u8; 20]>(), event()),
            any::<[Option<u64>; 4]>(),
            proptest::collection::vec(offer(), 0..=LIMITS.max_offers),
            proptest::option::of(answer()),
        )
            .prop_map(
                |((hash, id, event), [left, uploaded, downloaded, numwant], offers, answer)| {
                    AnnounceRequest {
                        info_hash: InfoHash(hash),
                        peer_id: PeerId(id),
                        event,
                        left,
                        uploaded,
                        downloaded,
                        numwant,
                        offers,
                        answer,
                    }
                },
            )
    }

    pub(crate) fn in_message() -> impl Strategy<Value = InMessage> {
        prop_oneof![
            announce().prop_map(InMessage::Announce),
            Just(InMessage::Scrape(ScrapeRequest::Full)),
            proptest::collection::vec(any::<[u8; 20]>(), 0..=LIMITS.max_scrape_torrents).prop_map(
                |hashes| InMessage::Scrape(ScrapeRequest::InfoHashes(
                    hashes.into_iter().map(InfoHash).collect()
                ))
            ),
        ]
    }

    /// Tokens of client messages, for inputs that are JSON-ish and reach the rules.
    fn json_token() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("{"),
            Just("}"),
            Just("["),
            Just("]"),
            Just(","),
            Just(":"),
            Just(" "),
            Just(r#""action""#),
            Just(r#""announce""#),
            Just(r#""scrape""#),
            Just(r#""info_hash""#),
            Just(r#""peer_id""#),
            Just(r#""to_peer_id""#),
            Just(r#""offer_id""#),
            Just(r#""offers""#),
            Just(r#""offer""#),
            Just(r#""answer""#),
            Just(r#""numwant""#),
            Just(r#""uploaded""#),
            Just(r#""downloaded""#),
            Just(r#""left""#),
            Just(r#""event""#),
            Just(r#""started""#),
            Just(r#""aaaaaaaaaaaaaaaaaaaa""#),
            Just(r#""\u00ff\u0000aaaaaaaaaaaaaaaaaa""#),
            Just("\"\u{ff}\u{80}aaaaaaaaaaaaaaaaaa\""),
            Just("null"),
            Just("true"),
            Just("0"),
            Just("-1"),
            Just("1.5e3"),
            Just("1e400"),
            Just(r#""\""#),
            Just(r#""\ud800""#),
            Just("\"\u{1F600}\""),
        ]
    }

    proptest! {
        #[test]
        fn write_then_parse_gives_it_back(message in in_message()) {
            let mut out = Vec::new();
            write_in_message(&message, &mut out);
            prop_assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
            prop_assert_eq!(parse_in_message(&out, &LIMITS), Ok(message));
        }

        #[test]
        fn whatever_parses_writes_back_the_same(
            message in in_message(),
            cut in any::<prop::sample::Index>(),
            insert in json_token(),
        ) {
            // A valid message with a token spliced in somewhere: mostly refused, but
            // when it parses, its writing must parse to the same.
            let mut text = Vec::new();
            write_in_message(&message, &mut text);
            let at = cut.index(text.len() + 1);
            text.splice(at..at, insert.bytes());
            if let Ok(parsed) = parse_in_message(&text, &LIMITS) {
                let mut again = Vec::new();
                write_in_message(&parsed, &mut again);
                prop_assert_eq!(parse_in_message(&again, &LIMITS), Ok(parsed));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let _ = parse_in_message(&bytes, &LIMITS);
        }

        #[test]
        fn arbitrary_json_ish_text_never_panics(
            tokens in proptest::collection::vec(json_token(), 0..64),
        ) {
            let text = tokens.concat();
            if let Ok(parsed) = parse_in_message(text.as_bytes(), &LIMITS) {
                let mut again = Vec::new();
                write_in_message(&parsed, &mut again);
                prop_assert_eq!(parse_in_message(&again, &LIMITS), Ok(parsed));
            }
        }

        #[test]
        fn text_and_bytes_parse_alike(
            message in in_message(),
            cut in any::<prop::sample::Index>(),
            insert in json_token(),
            wide in "[\\u{80}-\\u{10FFFF}]{0,3}",
        ) {
            // Valid messages, spliced ones, and ones with characters beyond ASCII
            // (raw, where a JSON string may hold them or where it may not): the same
            // answer from the checked-UTF-8 path as from the bytes path, error included.
            let mut text = Vec::new();
            write_in_message(&message, &mut text);
            prop_assert_eq!(
                parse_in_text(std::str::from_utf8(&text).unwrap(), &LIMITS),
                parse_in_message(&text, &LIMITS)
            );
            let at = cut.index(text.len() + 1);
            text.splice(at..at, insert.bytes());
            let at = cut.index(text.len() + 1);
            text.splice(at..at, wide.bytes());
            if let Ok(checked) = std::str::from_utf8(&text) {
                prop_assert_eq!(
                    parse_in_text(checked, &LIMITS),
                    parse_in_message(&text, &LIMITS)
                );
            }
        }
    }
}
