//! Decimal numbers and IP address text, written into and read from byte buffers
//! without going through `String` (the answer path must not allocate per value) and
//! without `fmt`'s fallible `Result`s on infallible writes.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

/// Appends `value` in decimal.
pub(crate) fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    // u64::MAX has 20 digits.
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        if let Some(slot) = digits.get_mut(start) {
            // `value % 10` is below 10, so the cast cannot truncate.
            *slot = b'0' + (value % 10) as u8;
        }
        value /= 10;
        if value == 0 || start == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

/// Appends `value` in decimal, with a `-` when negative.
pub(crate) fn push_i64(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    // `unsigned_abs` covers i64::MIN, whose magnitude no i64 holds.
    push_u64(out, value.unsigned_abs());
}

/// Reads a decimal `u64`: one or more ASCII digits and nothing else (no sign, no
/// spaces); `None` if it is not that or does not fit.
pub(crate) fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &byte| {
        let digit = byte.checked_sub(b'0').filter(|d| *d < 10)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Reads a decimal `i64`: an optional `-`, then what [`parse_u64`] reads.
pub(crate) fn parse_i64(text: &[u8]) -> Option<i64> {
    match text.split_first() {
        Some((b'-', magnitude)) => 0i64.checked_sub_unsigned(parse_u64(magnitude)?),
        _ => i64::try_from(parse_u64(text)?).ok(),
    }
}

/// An IP address's text, on the stack.
pub(crate) struct IpText {
    // The longest text is an IPv4-mapped IPv6 address,
    // "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" (45 bytes).
    buf: [u8; 48],
    len: usize,
}

impl IpText {
    pub(crate) fn new(ip: IpAddr) -> Self {
        let mut text = Self {
            buf: [0; 48],
            len: 0,
        };
        // `write_str` below only fails past 48 bytes, which no address text reaches;
        // were it ever to, the text would be cut, never a panic.
        let _ = write!(text, "{ip}");
        text
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numbers_at_the_edges() {
        for value in [0, 9, 10, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, value);
            assert_eq!(out, value.to_string().as_bytes());
        }
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"+1"), None);
        assert_eq!(parse_u64(b"1 "), None);
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"-9223372036854775809"), None);
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"-"), None);
        assert_eq!(parse_i64(b"--1"), None);
    }

    #[test]
    fn longest_ip_text_fits() {
        let ip: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
            .parse()
            .unwrap();
        assert_eq!(IpText::new(ip).as_bytes(), ip.to_string().as_bytes());
    }

    proptest! {
        #[test]
        fn i64_round_trip(value in any::<i64>()) {
            let mut out = Vec::new();
            push_i64(&mut out, value);
            prop_assert_eq!(String::from_utf8(out.clone()).unwrap(), value.to_string());
            prop_assert_eq!(parse_i64(&out), Some(value));
        }

        #[test]
        fn ip_text_matches_display(ip in any::<IpAddr>()) {
            let text = IpText::new(ip);
            prop_assert_eq!(std::str::from_utf8(text.as_bytes()).unwrap(), ip.to_string());
        }
    }
}
