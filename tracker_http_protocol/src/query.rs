//! Query strings: `key=value` pairs separated by `&`, percent-decoded.

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
        let _ = self.rest;
        todo!("implemented on the http-protocol branch")
    }
}

/// Percent-decodes `input` into `out` (cleared first): `%XY` with hex digits of either
/// case becomes the byte 0xXY and `+` a space; a `%` not followed by two hex digits is
/// kept as it is. Never fails: any input gives some bytes.
pub fn percent_decode(input: &[u8], out: &mut Vec<u8>) {
    let _ = (input, out);
    todo!("implemented on the http-protocol branch")
}
