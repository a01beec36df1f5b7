//! Passkeys as requests carry them: the passkey itself, where a request path carries
//! one, and what a parser found.
//!
//! A passkey is 32 characters of `[0-9A-Za-z]`. Where it travels
//! ([`split_passkey_path`]): `/PASSKEY/announce` and `/PASSKEY/scrape` (Gazelle's form),
//! or `/announce/PASSKEY` and `/scrape/PASSKEY` (UNIT3D's form). HTTP reads the request
//! path, UDP the path in the BEP 41 URLData option, WebSocket the path of the upgrade
//! request.
//!
//! Only parsing lives here. Which passkeys are in force, the passkey file, and the check
//! a socket worker makes are `tracker_common::private::passkey`'s.

/// The length of a passkey, in characters (bytes: they are ASCII).
pub const PASSKEY_LEN: usize = 32;

/// A user's passkey: 32 ASCII characters of `[0-9A-Za-z]`.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Passkey(pub [u8; PASSKEY_LEN]);

impl Passkey {
    /// The passkey spelled by `bytes`, if they are exactly 32 characters of `[0-9A-Za-z]`.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let key: [u8; PASSKEY_LEN] = bytes.try_into().ok()?;
        key.iter()
            .all(u8::is_ascii_alphanumeric)
            .then_some(Self(key))
    }

    /// The passkey as text.
    pub fn as_str(&self) -> &str {
        // Only `parse` and `From<[u8; 32]>`-free construction make passkeys; both keep
        // them ASCII, but a hand-built one with other bytes shows as empty, not a panic.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for Passkey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Passkey({})", self.as_str())
    }
}

impl std::fmt::Display for Passkey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request path asks for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `announce`.
    Announce,
    /// `scrape`.
    Scrape,
}

/// What a request path names: the endpoint, and the passkey segment if there is one
/// (its bytes as sent, not yet checked: an ill-formed one is still "a passkey", so that it
/// is refused as unknown rather than as missing).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PasskeyPath<'a> {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The passkey segment, if the path has one.
    pub passkey: Option<&'a [u8]>,
}

/// Splits a request path (without its query) into endpoint and passkey segment.
///
/// Accepted: `/announce`, `/scrape` (no passkey), `/PASSKEY/announce`,
/// `/PASSKEY/scrape`, `/announce/PASSKEY`, `/scrape/PASSKEY`, where PASSKEY is any
/// non-empty segment without `/`. Anything else is `None`.
pub fn split_passkey_path(path: &[u8]) -> Option<PasskeyPath<'_>> {
    let rest = path.strip_prefix(b"/")?;
    let endpoint = |segment: &[u8]| match segment {
        b"announce" => Some(Endpoint::Announce),
        b"scrape" => Some(Endpoint::Scrape),
        _ => None,
    };
    let mut segments = rest.splitn(3, |&b| b == b'/');
    let first = segments.next()?;
    let second = segments.next();
    if segments.next().is_some() {
        return None;
    }
    match second {
        None => Some(PasskeyPath {
            endpoint: endpoint(first)?,
            passkey: None,
        }),
        Some(second) if first.is_empty() || second.is_empty() => None,
        Some(second) => match (endpoint(first), endpoint(second)) {
            // `/announce/scrape` is ambiguous: not a path any client builds.
            (Some(_), Some(_)) => None,
            (Some(endpoint), None) => Some(PasskeyPath {
                endpoint,
                passkey: Some(second),
            }),
            (None, Some(endpoint)) => Some(PasskeyPath {
                endpoint,
                passkey: Some(first),
            }),
            (None, None) => None,
        },
    }
}

/// The passkey a request carried, as its parser found it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum PasskeyParam {
    /// No passkey segment.
    #[default]
    Missing,
    /// A segment that is not a passkey (wrong length or characters).
    Malformed,
    /// A well-formed passkey (maybe not one in force).
    Key(Passkey),
}

impl PasskeyParam {
    /// The parameter of a path's passkey segment (see [`split_passkey_path`]).
    pub fn from_segment(segment: Option<&[u8]>) -> Self {
        match segment {
            None => Self::Missing,
            Some(bytes) => Passkey::parse(bytes).map_or(Self::Malformed, Self::Key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz012345";

    #[test]
    fn passkey_is_32_alphanumerics() {
        assert_eq!(Passkey::parse(KEY), Some(Passkey(*KEY)));
        assert_eq!(Passkey::parse(&KEY[..31]), None);
        assert_eq!(Passkey::parse(b"abcdefghijklmnopqrstuvwxyz0123456"), None);
        assert_eq!(Passkey::parse(b"abcdefghijklmnopqrstuvwxyz01234-"), None);
        assert_eq!(Passkey::parse(b"abcdefghijklmnopqrstuvwxyz01234\xc3"), None);
        assert_eq!(
            Passkey(*KEY).to_string(),
            "abcdefghijklmnopqrstuvwxyz012345"
        );
    }

    #[test]
    fn paths() {
        let with = |endpoint, key: &'static [u8]| {
            Some(PasskeyPath {
                endpoint,
                passkey: Some(key),
            })
        };
        let without = |endpoint| {
            Some(PasskeyPath {
                endpoint,
                passkey: None,
            })
        };
        assert_eq!(
            split_passkey_path(b"/announce"),
            without(Endpoint::Announce)
        );
        assert_eq!(split_passkey_path(b"/scrape"), without(Endpoint::Scrape));
        assert_eq!(
            split_passkey_path(b"/KEY/announce"),
            with(Endpoint::Announce, b"KEY")
        );
        assert_eq!(
            split_passkey_path(b"/KEY/scrape"),
            with(Endpoint::Scrape, b"KEY")
        );
        assert_eq!(
            split_passkey_path(b"/announce/KEY"),
            with(Endpoint::Announce, b"KEY")
        );
        assert_eq!(
            split_passkey_path(b"/scrape/KEY"),
            with(Endpoint::Scrape, b"KEY")
        );
        for bad in [
            &b""[..],
            b"/",
            b"announce",
            b"/announce/",
            b"//announce",
            b"/a/b/announce",
            b"/KEY/announce/x",
            b"/announce/scrape",
            b"/KEY/other",
            b"/ANNOUNCE",
        ] {
            assert_eq!(
                split_passkey_path(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
