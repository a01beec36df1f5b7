//! The JSON plumbing both directions share: reading field values of any JSON type
//! without failing the parse, reading 20-character binary strings, and writing JSON by
//! hand into a byte buffer.
//!
//! # Reading
//! A message is read in one pass over the JSON, every field of interest into a slot,
//! and judged only once the whole object is read. So no field value may fail the
//! parse: a field of the wrong type is read as [`Slot::Invalid`] (its content skipped),
//! and only broken JSON stops the parse early. That is what lets a failure name the
//! message's `action` and `info_hash` wherever they stand in the object, and name the
//! first wrong field by the rules of the message type rather than by position.
//!
//! Values are read with `deserialize_any`: with `serde_json` it costs what the typed
//! entry points cost (a peek at the first byte, then the same parser), and buffers
//! nothing. Text values (`action`, `event`) are borrowed from the input. Binary strings
//! are the exception: they are taken as their raw JSON text and decoded here
//! ([`binary20`]), because `serde_json` would unescape them into a scratch buffer it
//! allocates per message. Session descriptions are kept raw ([`next_object`]).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;

use crate::{Action, AnnounceEvent, ParseErrorKind};

/// A field's value as read.
#[derive(Debug, Default)]
pub(crate) enum Slot<T> {
    /// Not in the message, or `null`.
    #[default]
    Absent,
    /// A value of the right type.
    Valid(T),
    /// A value of the wrong type, or one that does not convert.
    Invalid,
}

impl<T> Slot<T> {
    /// The value; absent or invalid is the matching error for `field`.
    pub(crate) fn required(self, field: crate::Field) -> Result<T, ParseErrorKind> {
        match self {
            Self::Valid(value) => Ok(value),
            Self::Absent => Err(ParseErrorKind::Missing(field)),
            Self::Invalid => Err(ParseErrorKind::Invalid(field)),
        }
    }

    /// The value if there is one; invalid is an error for `field`.
    pub(crate) fn optional(self, field: crate::Field) -> Result<Option<T>, ParseErrorKind> {
        match self {
            Self::Valid(value) => Ok(Some(value)),
            Self::Absent => Ok(None),
            Self::Invalid => Err(ParseErrorKind::Invalid(field)),
        }
    }

    /// The value if it is valid.
    pub(crate) fn valid(self) -> Option<T> {
        match self {
            Self::Valid(value) => Some(value),
            Self::Absent | Self::Invalid => None,
        }
    }

    /// The value if it is valid, by reference.
    pub(crate) fn as_valid(&self) -> Option<&T> {
        match self {
            Self::Valid(value) => Some(value),
            Self::Absent | Self::Invalid => None,
        }
    }
}

/// How a field reads one JSON value, of whatever type it turns out to be.
///
/// Each method receives one kind of value. The defaults call it [`Reader::invalid`],
/// after skipping its content for arrays and objects, so a reader only implements the
/// kinds it accepts; `null` is invalid unless the reader says otherwise.
pub(crate) trait Reader<'de>: Sized {
    /// What the field becomes.
    type Out;

    /// A value of a type the field does not take.
    fn invalid(self) -> Self::Out;

    fn null(self) -> Self::Out {
        self.invalid()
    }

    fn str(self, _value: &str) -> Self::Out {
        self.invalid()
    }

    fn u64(self, _value: u64) -> Self::Out {
        self.invalid()
    }

    fn i64(self, _value: i64) -> Self::Out {
        self.invalid()
    }

    fn f64(self, _value: f64) -> Self::Out {
        self.invalid()
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        skip_seq(&mut seq)?;
        Ok(self.invalid())
    }

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(self.invalid())
    }
}

/// Reads one JSON value with the [`Reader`] it wraps; fails only on broken JSON.
pub(crate) struct Read<R>(pub(crate) R);

impl<'de, R: Reader<'de>> DeserializeSeed<'de> for Read<R> {
    type Value = R::Out;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<R::Out, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, R: Reader<'de>> Visitor<'de> for Read<R> {
    type Value = R::Out;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _value: bool) -> Result<R::Out, E> {
        Ok(self.0.invalid())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<R::Out, E> {
        Ok(self.0.i64(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<R::Out, E> {
        Ok(self.0.u64(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<R::Out, E> {
        Ok(self.0.f64(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<R::Out, E> {
        Ok(self.0.str(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<R::Out, E> {
        Ok(self.0.null())
    }

    fn visit_none<E: de::Error>(self) -> Result<R::Out, E> {
        Ok(self.0.null())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<R::Out, A::Error> {
        self.0.seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<R::Out, A::Error> {
        self.0.map(map)
    }
}

/// Skips the rest of an array.
pub(crate) fn skip_seq<'de, A: SeqAccess<'de>>(seq: &mut A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// A field value read from one JSON scalar, as a [`Slot`]: `null` is absent, and
/// anything that does not convert is invalid.
pub(crate) trait Scalar: Sized {
    fn from_str(_value: &str) -> Option<Self> {
        None
    }

    fn from_u64(_value: u64) -> Option<Self> {
        None
    }

    fn from_i64(_value: i64) -> Option<Self> {
        None
    }

    fn from_f64(_value: f64) -> Option<Self> {
        None
    }
}

struct ScalarReader<T>(PhantomData<T>);

impl<T: Scalar> Reader<'_> for ScalarReader<T> {
    type Out = Slot<T>;

    fn invalid(self) -> Slot<T> {
        Slot::Invalid
    }

    fn null(self) -> Slot<T> {
        Slot::Absent
    }

    fn str(self, value: &str) -> Slot<T> {
        T::from_str(value).map_or(Slot::Invalid, Slot::Valid)
    }

    fn u64(self, value: u64) -> Slot<T> {
        T::from_u64(value).map_or(Slot::Invalid, Slot::Valid)
    }

    fn i64(self, value: i64) -> Slot<T> {
        T::from_i64(value).map_or(Slot::Invalid, Slot::Valid)
    }

    fn f64(self, value: f64) -> Slot<T> {
        T::from_f64(value).map_or(Slot::Invalid, Slot::Valid)
    }
}

impl<'de, T: Scalar> Deserialize<'de> for Slot<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Read(ScalarReader(PhantomData)).deserialize(deserializer)
    }
}

/// A count of bytes or peers: any JSON number, clamped to `0..=u64::MAX`.
///
/// JavaScript numbers are doubles, so a client may send `1.5`, `-1` or `1e30`; and
/// `JSON.stringify` writes `Infinity` and `NaN` as `null`, which reads as absent.
/// Fractions are cut off; integers beyond `u64` arrive from `serde_json` as floats and
/// clamp like them.
impl Scalar for u64 {
    fn from_u64(value: u64) -> Option<Self> {
        Some(value)
    }

    fn from_i64(value: i64) -> Option<Self> {
        // serde_json only calls this for negative integers.
        Some(u64::try_from(value).unwrap_or(0))
    }

    fn from_f64(value: f64) -> Option<Self> {
        // `as` saturates at both ends (and would turn NaN into 0, which JSON cannot
        // spell): exactly the clamp wanted.
        Some(value as u64)
    }
}

/// 20 bytes sent as a 20-character binary string ([`binary20`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Binary(pub(crate) [u8; 20]);

/// Read from the string's raw JSON text rather than through `serde_json`'s string
/// parser, which unescapes into a scratch buffer it allocates per message: the client's
/// binary strings nearly always hold an escaped byte (any of the 32 control bytes, `"`
/// or `\` among 20 random bytes: 94 % of hashes), so that would be an allocation per
/// announce.
impl<'de> Deserialize<'de> for Slot<Binary> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        Ok(binary_slot(raw.get()))
    }
}

/// A binary string field from its raw JSON text: a string is read by [`binary20`],
/// `null` is absent, any other value is invalid.
pub(crate) fn binary_slot(raw: &str) -> Slot<Binary> {
    match raw.as_bytes().first() {
        Some(b'"') => binary20(raw).map_or(Slot::Invalid, |bytes| Slot::Valid(Binary(bytes))),
        _ if raw == "null" => Slot::Absent,
        _ => Slot::Invalid,
    }
}

impl Scalar for Action {
    fn from_str(value: &str) -> Option<Self> {
        match value {
            "announce" => Some(Self::Announce),
            "scrape" => Some(Self::Scrape),
            _ => None,
        }
    }
}

impl Scalar for AnnounceEvent {
    fn from_str(value: &str) -> Option<Self> {
        match value {
            "started" => Some(Self::Started),
            "completed" => Some(Self::Completed),
            "stopped" => Some(Self::Stopped),
            // The client sends `update` for a regular announce; older ones send none.
            "update" | "" => Some(Self::None),
            _ => None,
        }
    }
}

impl Scalar for String {
    fn from_str(value: &str) -> Option<Self> {
        Some(value.to_owned())
    }
}

/// The 20 bytes of a binary string, from its JSON text (quotes included, as
/// `serde_json` checked it: well-formed, UTF-8): exactly 20 characters
/// U+0000..=U+00FF, each standing for the byte of its code point.
///
/// The client makes these strings with `Buffer.toString('binary')` (Latin-1), and
/// `JSON.stringify` sends each character as itself in UTF-8 (one byte below U+0080,
/// two from there to U+00FF) or, for `"`, `\` and control characters, escaped; any
/// character may also be spelled `\u00XX`, and a few with the short escapes.
pub(crate) fn binary20(json: &str) -> Option<[u8; 20]> {
    let text = json.as_bytes().strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    // The common case: 20 plain ASCII characters.
    if let Ok(bytes) = <[u8; 20]>::try_from(text)
        && bytes.iter().all(|&b| b.is_ascii() && b != b'\\')
    {
        return Some(bytes);
    }
    let mut out = [0u8; 20];
    let mut filled = 0;
    let mut rest = text;
    while let Some((&first, after)) = rest.split_first() {
        let (byte, after) = match first {
            b'\\' => unescape(after)?,
            0x00..=0x7F => (first, after),
            // U+0080..=U+00FF: a lead byte C2 or C3 and one continuation byte (the
            // text is UTF-8, so it is one).
            0xC2 | 0xC3 => {
                let (&next, after) = after.split_first()?;
                (((first & 0x1F) << 6) | (next & 0x3F), after)
            }
            // The lead byte of a character above U+00FF.
            _ => return None,
        };
        *out.get_mut(filled)? = byte;
        filled += 1;
        rest = after;
    }
    (filled == 20).then_some(out)
}

/// The byte an escape (what follows its `\\`) stands for, and the text after it;
/// `None` for a character above U+00FF.
fn unescape(text: &[u8]) -> Option<(u8, &[u8])> {
    let (&kind, after) = text.split_first()?;
    let byte = match kind {
        b'"' | b'\\' | b'/' => kind,
        b'b' => 0x08,
        b'f' => 0x0C,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'u' => {
            let (hex, after) = after.split_first_chunk::<4>()?;
            let value = hex.iter().try_fold(0u32, |value, &digit| {
                Some(value * 16 + char::from(digit).to_digit(16)?)
            })?;
            return Some((u8::try_from(value).ok()?, after));
        }
        _ => return None,
    };
    Some((byte, after))
}

/// Reads a map value that must be a JSON object, kept as its raw text: absent for
/// `null`, invalid for any other type.
pub(crate) fn next_object<'de, A: MapAccess<'de>>(
    map: &mut A,
) -> Result<Slot<Box<RawValue>>, A::Error> {
    Ok(match map.next_value::<Option<Box<RawValue>>>()? {
        None => Slot::Absent,
        // serde_json captures a raw value from its first byte to its last, without the
        // whitespace around it.
        Some(raw) if raw.get().starts_with('{') => Slot::Valid(raw),
        Some(_) => Slot::Invalid,
    })
}

/// Declares an enum of the field names a JSON object reader looks for, plus `Other`
/// for the rest, read as a map key (borrowed from the input when it has no escapes).
macro_rules! keys {
    ($name:ident { $($variant:ident => $text:literal,)* }) => {
        #[derive(Copy, Clone, Debug)]
        enum $name {
            $($variant,)*
            Other,
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct KeyVisitor;

                impl serde::de::Visitor<'_> for KeyVisitor {
                    type Value = $name;

                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a field name")
                    }

                    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<$name, E> {
                        Ok(match key {
                            $($text => $name::$variant,)*
                            _ => $name::Other,
                        })
                    }
                }

                deserializer.deserialize_identifier(KeyVisitor)
            }
        }
    };
}
pub(crate) use keys;

/// Whether `text` is a single JSON value, for telling a non-object from broken JSON on
/// the failure path.
pub(crate) fn is_json(text: &[u8]) -> bool {
    serde_json::from_slice::<IgnoredAny>(text).is_ok()
}

/// Whether the first byte after JSON whitespace opens an object.
pub(crate) fn opens_object(text: &[u8]) -> bool {
    text.iter()
        .find(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|byte| *byte == b'{')
}

// --- writing ---

/// Appends `bytes` as a JSON binary string, as `JSON.stringify` writes the client's
/// Latin-1 strings: printable ASCII as itself, `"` and `\` escaped, bytes below 0x20
/// as `\u00xx`, and 0x80..=0xFF as the two-byte UTF-8 encoding of U+0080..=U+00FF.
/// DEL (0x7F) is written as itself, as `JSON.stringify` does.
pub(crate) fn push_binary(out: &mut Vec<u8>, bytes: &[u8; 20]) {
    // At most 6 bytes per byte (`\u00xx`) and the quotes: one capacity check.
    out.reserve(20 * 6 + 2);
    out.push(b'"');
    for &byte in bytes {
        match byte {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', byte]),
            0x00..=0x1F => push_control(out, byte),
            0x20..=0x7F => out.push(byte),
            0x80..=0xFF => out.extend_from_slice(&[0xC0 | (byte >> 6), 0x80 | (byte & 0x3F)]),
        }
    }
    out.push(b'"');
}

/// Appends `text` as a JSON string: `"`, `\` and control characters escaped, the rest
/// (UTF-8 already) as it is.
pub(crate) fn push_text(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut plain_from = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        if byte == b'"' || byte == b'\\' || byte < 0x20 {
            out.extend_from_slice(bytes.get(plain_from..at).unwrap_or_default());
            if byte < 0x20 {
                push_control(out, byte);
            } else {
                out.extend_from_slice(&[b'\\', byte]);
            }
            plain_from = at + 1;
        }
    }
    out.extend_from_slice(bytes.get(plain_from..).unwrap_or_default());
    out.push(b'"');
}

/// Appends `\u00xx` for a byte below 0x20 (lowercase hex, as `JSON.stringify`).
fn push_control(out: &mut Vec<u8>, byte: u8) {
    let low = byte & 0x0F;
    let low = if low < 10 {
        b'0' + low
    } else {
        b'a' + low - 10
    };
    out.extend_from_slice(&[b'\\', b'u', b'0', b'0', b'0' + (byte >> 4), low]);
}

/// Appends `value` in decimal, formatted on the stack.
pub(crate) fn push_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` as a JSON string's raw text.
    fn quoted(text: &str) -> String {
        format!("\"{text}\"")
    }

    #[test]
    fn binary_strings_of_every_length_and_range() {
        let a19 = "a".repeat(19);
        assert_eq!(binary20(&quoted(&"a".repeat(20))), Some([b'a'; 20]));
        assert_eq!(binary20(&quoted(&a19)), None);
        assert_eq!(binary20(&quoted(&"a".repeat(21))), None);
        assert_eq!(binary20(&quoted("")), None);
        assert_eq!(binary20(&"a".repeat(20)), None, "not a string");
        assert_eq!(binary20(&quoted(&"\u{ff}".repeat(20))), Some([0xFF; 20]));
        assert_eq!(binary20(&quoted(&"\u{80}".repeat(20))), Some([0x80; 20]));
        assert_eq!(binary20(&quoted(&"\u{ff}".repeat(21))), None);
        assert_eq!(binary20(&quoted(&"\u{ff}".repeat(19))), None);
        // 20 characters, one above U+00FF, raw or escaped.
        for above in ["\u{100}", "\u{7ff}", "\u{800}", "\u{ffff}", "\u{1F600}"] {
            assert_eq!(binary20(&quoted(&format!("{a19}{above}"))), None, "{above}");
        }
        for above in [r"\u0100", r"\uFFFF", r"\ud83d\ude00", r"\ud800", r"\udfff"] {
            assert_eq!(binary20(&quoted(&format!("{a19}{above}"))), None, "{above}");
        }
        // 20 bytes but fewer characters.
        assert_eq!(
            binary20(&quoted(&format!("{}\u{e9}", "a".repeat(18)))),
            None
        );
    }

    #[test]
    fn binary_string_escapes() {
        let a19 = "a".repeat(19);
        for (escape, byte) in [
            (r#"\""#, b'"'),
            (r"\\", b'\\'),
            (r"\/", b'/'),
            (r"\b", 0x08),
            (r"\f", 0x0c),
            (r"\n", b'\n'),
            (r"\r", b'\r'),
            (r"\t", b'\t'),
            (r"\u0000", 0x00),
            (r"\u001F", 0x1f),
            (r"\u00e9", 0xe9),
            (r"\u00E9", 0xe9),
            (r"\u00fF", 0xff),
            (r"\u0041", b'A'),
        ] {
            let mut expected = [b'a'; 20];
            expected[19] = byte;
            assert_eq!(
                binary20(&quoted(&format!("{a19}{escape}"))),
                Some(expected),
                "{escape}"
            );
            // The same through serde_json, in a message.
            let text = format!(r#"{{"a":"{a19}{escape}"}}"#);
            let map: std::collections::HashMap<String, Box<RawValue>> =
                serde_json::from_str(&text).unwrap();
            assert_eq!(binary_slot(map["a"].get()).valid(), Some(Binary(expected)));
        }
        for broken in [r"\", r"\u00", r"\u00g0", r"\x41", r"\U0041"] {
            assert_eq!(
                binary20(&quoted(&format!("{a19}{broken}"))),
                None,
                "{broken}"
            );
        }
    }

    #[test]
    fn binary_slots() {
        assert!(matches!(binary_slot("null"), Slot::Absent));
        for raw in [
            "1",
            "[]",
            "{}",
            "true",
            r#"["aaaaaaaaaaaaaaaaaaaa"]"#,
            r#""a""#,
        ] {
            assert!(matches!(binary_slot(raw), Slot::Invalid), "{raw}");
        }
    }

    #[test]
    fn binary_writing_of_every_byte() {
        for byte in 0..=255u8 {
            let mut out = Vec::new();
            push_binary(&mut out, &[byte; 20]);
            let one = match byte {
                b'"' => "\\\"".to_owned(),
                b'\\' => "\\\\".to_owned(),
                0x00..=0x1F => format!("\\u{byte:04x}"),
                _ => char::from(byte).to_string(),
            };
            assert_eq!(
                String::from_utf8(out.clone()).unwrap(),
                format!("\"{}\"", one.repeat(20)),
                "{byte:#04x}"
            );
            let text: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(
                text.chars().map(u32::from).collect::<Vec<_>>(),
                [u32::from(byte); 20]
            );
            assert_eq!(
                binary20(std::str::from_utf8(&out).unwrap()),
                Some([byte; 20]),
                "{byte:#04x}"
            );
        }
    }

    #[test]
    fn text_writing() {
        let mut out = Vec::new();
        push_text(&mut out, "a\"b\\c\u{0}\u{1f}\n é\u{2028}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\u0000\\u001f\\u000a é\u{2028}\""
        );
    }

    #[test]
    fn numbers() {
        for value in [0, 1, 9, 10, 1234567890, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, value);
            assert_eq!(out, value.to_string().into_bytes());
        }
    }

    #[test]
    fn object_detection() {
        assert!(opens_object(b" \t\r\n{"));
        assert!(!opens_object(b""));
        assert!(!opens_object(b"  [{"));
        assert!(!opens_object(b"\x0c{"));
    }
}
