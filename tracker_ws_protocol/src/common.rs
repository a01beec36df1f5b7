//! Values that travel in both directions: the `action` of a message and the id of a
//! WebRTC offer.

/// The `action` of a message: what it is about, in both directions.
///
/// The `bittorrent-tracker` client dispatches every message it receives on this field,
/// and treats a message with any other `action` (or none) as a broken connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `"announce"`: announces, offers, answers, and the answers to them.
    Announce,
    /// `"scrape"`: scrapes and scrape answers.
    Scrape,
}

impl Action {
    /// The JSON text of the value, without quotes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Announce => "announce",
            Self::Scrape => "scrape",
        }
    }
}

/// The id a peer gives one of its WebRTC offers, so that the answer to it finds its way
/// back: 20 bytes, written as a 20-character binary string like an info hash.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct OfferId(pub [u8; 20]);

#[cfg(test)]
pub(crate) mod tests {
    //! Strategies shared by the property tests of both directions.

    use proptest::prelude::*;
    use serde_json::value::RawValue;

    /// A session description as a raw JSON object: `{"type":KIND,"sdp":S}` with any
    /// string `S` (quotes, backslashes, control and non-ASCII characters), written
    /// compactly by serde_json, or spaced out and with extra fields as other JSON
    /// writers might.
    pub(crate) fn sdp_object(kind: &'static str) -> impl Strategy<Value = Box<RawValue>> {
        (any::<String>(), any::<bool>()).prop_map(move |(sdp, spaced)| {
            let sdp = serde_json::to_string(&sdp).unwrap();
            let text = if spaced {
                format!("{{ \"type\" : \"{kind}\",\n\t\"sdp\" : {sdp} , \"x\":[1,{{}}] }}")
            } else {
                format!("{{\"type\":\"{kind}\",\"sdp\":{sdp}}}")
            };
            RawValue::from_string(text).unwrap()
        })
    }
}
