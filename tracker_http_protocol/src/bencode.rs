//! A bounded bencode decoder, for reading answers back (load testers, tests). The
//! tracker itself only writes bencode.
//!
//! Bencode as BEP 3 defines it ("bencoding", <https://www.bittorrent.org/beps/bep_0003.html>),
//! read strictly, so that tests catch a writer that strays from the one canonical form:
//! - integers: `i`, an optional `-`, decimal digits, `e`; no leading zeros except `i0e`,
//!   no `i-0e`, no empty digits, and the value must fit an `i64`;
//! - byte strings: a decimal length (no leading zeros except `0`), `:`, the bytes;
//! - dictionaries: byte-string keys in strictly increasing bytewise order, so unsorted
//!   or repeated keys are errors;
//! - containers nested at most [`MAX_DEPTH`] deep, and no bytes after the value.
//!
//! No input makes it panic or recurse deeper than [`MAX_DEPTH`]. A byte string is
//! copied only after its length is checked against the bytes that remain, so no string
//! is larger than the input; lists and dictionaries grow one element per element read,
//! and every element takes at least two input bytes.

use std::collections::BTreeMap;

use crate::ascii::parse_i64;

/// The deepest nesting [`decode`] accepts, so that hostile input cannot exhaust the stack.
pub const MAX_DEPTH: usize = 16;

/// A bencoded value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `i...e`
    Int(i64),
    /// `len:bytes`
    Bytes(Vec<u8>),
    /// `l...e`
    List(Vec<Value>),
    /// `d...e`, keys as bytes.
    Dict(BTreeMap<Vec<u8>, Value>),
}

/// Decodes exactly one value filling all of `input`.
///
/// # Errors
/// Malformed (see the module's rules), nested deeper than [`MAX_DEPTH`], or trailing
/// bytes. The message names the byte offset where decoding stopped.
pub fn decode(input: &[u8]) -> Result<Value, String> {
    let mut decoder = Decoder { input, rest: input };
    let value = decoder.value(0)?;
    if !decoder.rest.is_empty() {
        return Err(decoder.error("trailing bytes"));
    }
    Ok(value)
}

struct Decoder<'a> {
    input: &'a [u8],
    rest: &'a [u8],
}

impl<'a> Decoder<'a> {
    fn error(&self, what: &str) -> String {
        format!(
            "bencode: {what} at byte {}",
            self.input.len() - self.rest.len()
        )
    }

    /// One value; `depth` is the number of containers already open around it.
    fn value(&mut self, depth: usize) -> Result<Value, String> {
        match self.rest.first() {
            Some(b'i') => self.int().map(Value::Int),
            Some(b'0'..=b'9') => self.bytes().map(Value::Bytes),
            Some(b'l') => {
                let depth = self.open(depth)?;
                let mut list = Vec::new();
                while !self.close() {
                    list.push(self.value(depth)?);
                }
                Ok(Value::List(list))
            }
            Some(b'd') => {
                let depth = self.open(depth)?;
                let mut dict = BTreeMap::new();
                while !self.close() {
                    if !matches!(self.rest.first(), Some(b'0'..=b'9')) {
                        return Err(self.error("dictionary key not a byte string"));
                    }
                    let key = self.bytes()?;
                    // Keys arrive strictly increasing, so the map's last key is the one
                    // read before this one.
                    if dict.last_key_value().is_some_and(|(last, _)| *last >= key) {
                        return Err(self.error("dictionary keys not sorted or repeated"));
                    }
                    let value = self.value(depth)?;
                    dict.insert(key, value);
                }
                Ok(Value::Dict(dict))
            }
            Some(_) => Err(self.error("not a bencode value")),
            None => Err(self.error("unexpected end")),
        }
    }

    /// Steps over a container's opening byte, checking the depth it reaches.
    fn open(&mut self, depth: usize) -> Result<usize, String> {
        let depth = depth + 1;
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deep"));
        }
        self.rest = self.rest.get(1..).unwrap_or_default();
        Ok(depth)
    }

    /// Steps over a container's closing `e`, if that is next.
    fn close(&mut self) -> bool {
        match self.rest.split_first() {
            Some((b'e', rest)) => {
                self.rest = rest;
                true
            }
            _ => false,
        }
    }

    /// Reads up to `end`, and returns the bytes before it.
    fn until(&mut self, end: u8, what: &str) -> Result<&'a [u8], String> {
        let at = self
            .rest
            .iter()
            .position(|&b| b == end)
            .ok_or_else(|| self.error(what))?;
        let (before, after) = self
            .rest
            .split_at_checked(at)
            .ok_or_else(|| self.error(what))?;
        self.rest = after.get(1..).unwrap_or_default();
        Ok(before)
    }

    fn int(&mut self) -> Result<i64, String> {
        self.rest = self.rest.get(1..).unwrap_or_default();
        let text = self.until(b'e', "unterminated integer")?;
        let digits = text.strip_prefix(b"-").unwrap_or(text);
        let canonical = match digits {
            [] => false,
            [b'0'] => digits.len() == text.len(), // `i0e`, never `i-0e`
            [b'0', ..] => false,
            _ => true,
        };
        match parse_i64(text) {
            Some(value) if canonical => Ok(value),
            _ => Err(self.error("malformed integer")),
        }
    }

    fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let length = self.until(b':', "byte string without ':'")?;
        if length.len() > 1 && length.first() == Some(&b'0') {
            return Err(self.error("byte string length with leading zeros"));
        }
        let length = parse_i64(length)
            .and_then(|length| usize::try_from(length).ok())
            .ok_or_else(|| self.error("malformed byte string length"))?;
        // Checked before anything is copied: a claimed length cannot make us allocate
        // more than the input holds.
        let (bytes, rest) = self
            .rest
            .split_at_checked(length)
            .ok_or_else(|| self.error("byte string longer than the input"))?;
        self.rest = rest;
        Ok(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests {
    //! Encoding rules from BEP 3, "bencoding": <https://www.bittorrent.org/beps/bep_0003.html>.

    use super::*;
    use proptest::prelude::*;

    fn bytes(b: &[u8]) -> Value {
        Value::Bytes(b.to_vec())
    }

    #[test]
    fn known_answers() {
        // BEP 3's own examples.
        assert_eq!(decode(b"4:spam"), Ok(bytes(b"spam")));
        assert_eq!(decode(b"0:"), Ok(bytes(b"")));
        assert_eq!(decode(b"i3e"), Ok(Value::Int(3)));
        assert_eq!(decode(b"i-3e"), Ok(Value::Int(-3)));
        assert_eq!(decode(b"i0e"), Ok(Value::Int(0)));
        assert_eq!(
            decode(b"l4:spam4:eggse"),
            Ok(Value::List(vec![bytes(b"spam"), bytes(b"eggs")]))
        );
        assert_eq!(
            decode(b"d3:cow3:moo4:spam4:eggse"),
            Ok(Value::Dict(BTreeMap::from([
                (b"cow".to_vec(), bytes(b"moo")),
                (b"spam".to_vec(), bytes(b"eggs")),
            ])))
        );
        assert_eq!(
            decode(b"d4:spaml1:a1:bee"),
            Ok(Value::Dict(BTreeMap::from([(
                b"spam".to_vec(),
                Value::List(vec![bytes(b"a"), bytes(b"b")])
            )])))
        );
        assert_eq!(decode(b"de"), Ok(Value::Dict(BTreeMap::new())));
        assert_eq!(decode(b"le"), Ok(Value::List(Vec::new())));
        assert_eq!(decode(b"i-9223372036854775808e"), Ok(Value::Int(i64::MIN)));
        assert_eq!(decode(b"i9223372036854775807e"), Ok(Value::Int(i64::MAX)));
    }

    #[test]
    fn rejects_non_canonical_and_malformed() {
        for input in [
            &b""[..],
            b"i03e",
            b"i-0e",
            b"i-03e",
            b"ie",
            b"i-e",
            b"i1",
            b"i+1e",
            b"i 1e",
            b"i9223372036854775808e",
            b"01:a",
            b"-1:a",
            b"5:spam",
            b"4spam",
            b"l",
            b"d",
            b"d1:a",
            b"di1ei2ee",     // integer key
            b"d1:b0:1:a0:e", // unsorted keys
            b"d1:a0:1:a0:e", // repeated key
            b"4:spamx",      // trailing bytes
            b"i1ei2e",       // two values
            b"x",
            b"e",
        ] {
            assert!(
                decode(input).is_err(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn depth_limit() {
        let nested = |depth: usize| [vec![b'l'; depth], vec![b'e'; depth]].concat();
        assert!(decode(&nested(MAX_DEPTH)).is_ok());
        assert!(decode(&nested(MAX_DEPTH + 1)).is_err());
        // A deep opening with no end must fail without exhausting the stack.
        assert!(decode(&vec![b'l'; 1 << 20]).is_err());
        assert!(decode(&b"d1:a".repeat(1 << 16)).is_err());
    }

    #[test]
    fn huge_claimed_length_is_refused() {
        assert!(decode(b"18446744073709551615:x").is_err());
        assert!(decode(b"9223372036854775807:x").is_err());
    }

    fn encode(value: &Value, out: &mut Vec<u8>) {
        match value {
            Value::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Value::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Value::List(list) => {
                out.push(b'l');
                list.iter().for_each(|v| encode(v, out));
                out.push(b'e');
            }
            Value::Dict(dict) => {
                out.push(b'd');
                for (k, v) in dict {
                    encode(&Value::Bytes(k.clone()), out);
                    encode(v, out);
                }
                out.push(b'e');
            }
        }
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::Int),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
                proptest::collection::btree_map(
                    proptest::collection::vec(any::<u8>(), 0..4),
                    inner,
                    0..4
                )
                .prop_map(Value::Dict),
            ]
        })
    }

    proptest! {
        #[test]
        fn round_trip(value in value()) {
            let mut out = Vec::new();
            encode(&value, &mut out);
            prop_assert_eq!(decode(&out), Ok(value));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn bencode_like_bytes_never_panic(bytes in proptest::collection::vec(
            prop_oneof![Just(b'i'), Just(b'l'), Just(b'd'), Just(b'e'), Just(b':'), Just(b'-'), b'0'..=b'9'],
            0..512,
        )) {
            let _ = decode(&bytes);
        }
    }
}
