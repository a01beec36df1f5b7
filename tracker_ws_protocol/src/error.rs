//! What is wrong with a message, said so that a tracker can answer it: the reason as
//! text for `failure reason`, and the `action` and `info_hash` the failure must carry
//! for the client to read it.

use std::fmt;

use crate::{Action, InfoHash};

/// Declares [`Field`] with each field's JSON name and its two failure texts, so that
/// every text is a `&'static str` written once.
macro_rules! fields {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// A message field that can be missing or invalid.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        pub enum Field {
            $($(#[$doc])* $variant,)*
        }

        impl Field {
            /// The field's JSON name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            fn missing(self) -> &'static str {
                match self {
                    $(Self::$variant => concat!("missing ", $name),)*
                }
            }

            fn invalid(self) -> &'static str {
                match self {
                    $(Self::$variant => concat!("invalid ", $name),)*
                }
            }
        }
    };
}

fields! {
    /// `info_hash`: a torrent's 20-byte binary string (an array of them in a scrape).
    InfoHash => "info_hash",
    /// `peer_id`: the sender's (or, relayed, the offerer's or answerer's) peer id.
    PeerId => "peer_id",
    /// `to_peer_id`: the peer an answer is for.
    ToPeerId => "to_peer_id",
    /// `offer_id`: the id of an offer, in an offer or in the answer to it.
    OfferId => "offer_id",
    /// `offer`: one offer's WebRTC session description, a JSON object.
    Offer => "offer",
    /// `offers`: an announce's array of `{"offer_id", "offer"}` objects.
    Offers => "offers",
    /// `answer`: an answer's WebRTC session description, a JSON object.
    Answer => "answer",
    /// `event`: `started`, `completed`, `stopped`, `update` or empty.
    Event => "event",
    /// `numwant`: how many offers the announcing peer sent, so how many peers it wants.
    Numwant => "numwant",
    /// `uploaded`: bytes uploaded.
    Uploaded => "uploaded",
    /// `downloaded`: bytes downloaded.
    Downloaded => "downloaded",
    /// `left`: bytes left to download.
    Left => "left",
    /// `interval`: seconds until the next announce (tracker to client).
    Interval => "interval",
    /// `complete`: seeders (tracker to client).
    Complete => "complete",
    /// `incomplete`: leechers (tracker to client).
    Incomplete => "incomplete",
    /// `files`: a scrape answer's torrents (tracker to client).
    Files => "files",
    /// `failure reason`: a failure's text (tracker to client).
    FailureReason => "failure reason",
}

/// What is wrong with a message.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ParseErrorKind {
    /// Not JSON (syntax, encoding, a number beyond `f64`, nesting deeper than 128), or
    /// more than one JSON value.
    MalformedJson,
    /// JSON, but not an object.
    NotAnObject,
    /// No `action` (or `null`).
    MissingAction,
    /// An `action` that is not `announce` or `scrape` (for that direction).
    UnknownAction,
    /// A field the message needs is absent (or `null`).
    Missing(Field),
    /// A field has the wrong type or an impossible value.
    Invalid(Field),
    /// A scrape names more torrents than the tracker's limit.
    TooManyInfoHashes,
}

impl ParseErrorKind {
    /// The text for a `failure reason`, e.g. `missing info_hash`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed JSON",
            Self::NotAnObject => "message is not a JSON object",
            Self::MissingAction => "missing action",
            Self::UnknownAction => "unknown action",
            Self::Missing(field) => field.missing(),
            Self::Invalid(field) => field.invalid(),
            Self::TooManyInfoHashes => "too many info hashes",
        }
    }
}

/// A message that cannot be used, with what the answer to it needs.
///
/// The `bittorrent-tracker` client shows a failure to its user only if the failure
/// names the `action` of what failed and, for an announce, one of its torrents'
/// `info_hash`; so both are kept whenever the message let them be read, even when it
/// breaks off after them.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ParseError {
    /// What is wrong.
    pub kind: ParseErrorKind,
    /// The message's `action`, if it was read and is known.
    pub action: Option<Action>,
    /// The message's `info_hash`, if it was read and is a single valid one.
    pub info_hash: Option<InfoHash>,
}

impl ParseError {
    /// The text for a `failure reason` ([`ParseErrorKind::reason`]).
    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons() {
        assert_eq!(ParseErrorKind::MalformedJson.reason(), "malformed JSON");
        assert_eq!(
            ParseErrorKind::Missing(Field::InfoHash).reason(),
            "missing info_hash"
        );
        assert_eq!(
            ParseErrorKind::Invalid(Field::FailureReason).reason(),
            "invalid failure reason"
        );
        assert_eq!(
            ParseErrorKind::TooManyInfoHashes.reason(),
            "too many info hashes"
        );
        let error = ParseError {
            kind: ParseErrorKind::Invalid(Field::PeerId),
            action: Some(Action::Announce),
            info_hash: None,
        };
        assert_eq!(error.to_string(), "invalid peer_id");
    }
}
