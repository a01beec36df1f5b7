//! Query strings: `key=value` pairs separated by `&`, percent-decoded.
//!
//! Pure byte handling: nothing here allocates except [`percent_decode`], which writes
//! into a buffer the caller owns (and may reuse), never more bytes than its input.

/// The `key=value` pairs of a query string, raw (not yet decoded). A pair without `=`
/// has an empty value; empty pairs (`&&`) are skipped.
pub struct QueryPairs<'a> {
    rest: &'a [u8],
}

impl<'a> QueryPairs<'a> {
    /// The pairs of `query` (the part after `?`, without the `?`).
    pub fn new(query: &'a [u8]) -> Self {
        Self { rest: query }
    }
}

impl<'a> Iterator for QueryPairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        // A loop rather than recursion: `&&&&...` from a hostile client must cost
        // neither stack nor more than one pass.
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (pair, rest) = match self.rest.iter().position(|&b| b == b'&') {
                Some(at) => (
                    self.rest.get(..at).unwrap_or_default(),
                    self.rest.get(at + 1..).unwrap_or_default(),
                ),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            if pair.is_empty() {
                continue;
            }
            // Only the first `=` splits: a value may itself contain `=` (some clients
            // leave it unencoded in `key` or base64-like values).
            return Some(match pair.iter().position(|&b| b == b'=') {
                Some(at) => (
                    pair.get(..at).unwrap_or_default(),
                    pair.get(at + 1..).unwrap_or_default(),
                ),
                None => (pair, &[][..]),
            });
        }
    }
}

/// Percent-decodes `input` into `out` (cleared first): `%XY` with hex digits of either
/// case becomes the byte 0xXY and `+` a space; a `%` not followed by two hex digits is
/// kept as it is. Never fails: any input gives some bytes.
pub fn percent_decode(input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    // Decoding never grows the input, so one reservation is all this ever allocates.
    out.reserve(input.len());
    out.extend(Decoded::new(input));
}

/// The percent-decoded bytes of a raw query value, one at a time, so that fixed-size
/// fields (hashes, numbers) can be decoded onto the stack, with [`percent_decode`]'s
/// rules.
pub(crate) struct Decoded<'a> {
    rest: &'a [u8],
}

impl<'a> Decoded<'a> {
    pub(crate) fn new(raw: &'a [u8]) -> Self {
        Self { rest: raw }
    }
}

impl Iterator for Decoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let (&byte, tail) = self.rest.split_first()?;
        self.rest = tail;
        Some(match byte {
            b'+' => b' ',
            b'%' => match percent_byte(tail) {
                Some(decoded) => {
                    self.rest = tail.get(2..).unwrap_or_default();
                    decoded
                }
                // Kept literally rather than refused: parameters the tracker ignores
                // (`key`, `trackerid`) are sometimes sent half-encoded, and must not
                // fail the announce.
                None => b'%',
            },
            other => other,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.rest.len().div_ceil(3), Some(self.rest.len()))
    }
}

/// Decodes `raw` into exactly `N` bytes; `None` if it decodes to any other length.
pub(crate) fn decode_exact<const N: usize>(raw: &[u8]) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    let mut decoded = Decoded::new(raw);
    for slot in &mut out {
        *slot = decoded.next()?;
    }
    match decoded.next() {
        Some(_) => None,
        None => Some(out),
    }
}

/// Decodes `raw` onto the stack if it decodes to at most `N` bytes: the buffer and the
/// length used. Longer values give `None`: they cannot be any value that fits in `N`.
pub(crate) fn decode_short<const N: usize>(raw: &[u8]) -> Option<([u8; N], usize)> {
    let mut out = [0u8; N];
    let mut len = 0;
    for byte in Decoded::new(raw) {
        *out.get_mut(len)? = byte;
        len += 1;
    }
    Some((out, len))
}

/// The byte encoded by the two hex digits at the start of `rest`, if they are there.
fn percent_byte(rest: &[u8]) -> Option<u8> {
    match rest {
        [hi, lo, ..] => Some(hex_value(*hi)? << 4 | hex_value(*lo)?),
        _ => None,
    }
}

/// The value of one hex digit, either case.
fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Whether `byte` is an RFC 3986 unreserved character, written as itself in a query.
pub(crate) fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Appends `bytes` percent-encoded: every byte but the unreserved ones as `%XY` (upper
/// case hex, RFC 3986 2.1).
pub(crate) fn percent_encode(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in bytes {
        if is_unreserved(byte) {
            out.push(byte);
        } else {
            out.push(b'%');
            // A nibble is below 16, so `get` always finds it; the fallback is never used.
            out.push(HEX.get(usize::from(byte >> 4)).copied().unwrap_or(b'0'));
            out.push(HEX.get(usize::from(byte & 0xf)).copied().unwrap_or(b'0'));
        }
    }
}

#[cfg(test)]
mod tests {
    //! Query syntax: RFC 3986 section 3.4 and the `application/x-www-form-urlencoded`
    //! convention (`+` for space) that BEP 3 clients follow.

    use super::*;
    use proptest::prelude::*;

    fn pairs(query: &[u8]) -> Vec<(&[u8], &[u8])> {
        QueryPairs::new(query).collect()
    }

    fn decode(input: &[u8]) -> Vec<u8> {
        let mut out = vec![0xAA; 3]; // junk, to check that it is cleared
        percent_decode(input, &mut out);
        out
    }

    #[test]
    fn pairs_split_on_ampersand_and_first_equals() {
        assert_eq!(
            pairs(b"a=1&&b=&c&=x&d=e=f&"),
            vec![
                (&b"a"[..], &b"1"[..]),
                (b"b", b""),
                (b"c", b""),
                (b"", b"x"),
                (b"d", b"e=f"),
            ]
        );
        assert!(pairs(b"").is_empty());
        assert!(pairs(b"&&&").is_empty());
    }

    #[test]
    fn decode_hex_of_either_case_and_plus() {
        assert_eq!(decode(b"%41%6a%6A+%2B"), b"Ajj +");
        assert_eq!(decode(b"%ff%FF%00"), [0xff, 0xff, 0x00]);
        assert_eq!(decode(b""), b"");
    }

    #[test]
    fn decode_keeps_a_truncated_or_invalid_escape() {
        assert_eq!(decode(b"%"), b"%");
        assert_eq!(decode(b"%4"), b"%4");
        assert_eq!(decode(b"a%"), b"a%");
        assert_eq!(decode(b"%zz"), b"%zz");
        assert_eq!(decode(b"%4g"), b"%4g");
        // The `%` kept literally does not swallow the escape that follows it.
        assert_eq!(decode(b"%%41"), b"%A");
    }

    #[test]
    fn encode_leaves_only_unreserved_bytes_bare() {
        let mut out = Vec::new();
        percent_encode(b"aZ09-._~ /%\x00\xff", &mut out);
        assert_eq!(out, b"aZ09-._~%20%2F%25%00%FF");
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut encoded = Vec::new();
            percent_encode(&bytes, &mut encoded);
            prop_assert_eq!(decode(&encoded), bytes);
        }

        #[test]
        fn decode_never_grows(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            prop_assert!(decode(&bytes).len() <= bytes.len());
        }
    }
}
