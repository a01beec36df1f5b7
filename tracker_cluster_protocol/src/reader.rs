//! The cursor both decoders read through: every read is one `split_first_chunk` or
//! `split_at_checked` behind its own length check, so that no input can make a decoder
//! index out of bounds. It knows nothing of either format; each read is handed the error
//! to return if the input ends first.

/// The input not read yet, and where it is in the message.
pub(crate) struct Reader<'a> {
    /// The bytes not read yet.
    rest: &'a [u8],
    /// How many bytes were read before `rest`.
    offset: usize,
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes,
            offset: 0,
        }
    }

    /// Where the next read starts, from the start of the message.
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The next `N` bytes, or `err` if fewer are left.
    pub(crate) fn take<const N: usize, E>(&mut self, err: E) -> Result<[u8; N], E> {
        let (head, rest) = self.rest.split_first_chunk::<N>().ok_or(err)?;
        self.rest = rest;
        self.offset = self.offset.saturating_add(N);
        Ok(*head)
    }

    /// The next `len` bytes, borrowed from the input, or `err` if fewer are left.
    pub(crate) fn take_slice<E>(&mut self, len: usize, err: E) -> Result<&'a [u8], E> {
        let (head, rest) = self.rest.split_at_checked(len).ok_or(err)?;
        self.rest = rest;
        self.offset = self.offset.saturating_add(len);
        Ok(head)
    }

    /// The next 4 bytes as a little-endian integer, or `err` if fewer are left.
    pub(crate) fn u32<E>(&mut self, err: E) -> Result<u32, E> {
        self.take(err).map(u32::from_le_bytes)
    }

    /// The next 8 bytes as a little-endian integer, or `err` if fewer are left.
    pub(crate) fn u64<E>(&mut self, err: E) -> Result<u64, E> {
        self.take(err).map(u64::from_le_bytes)
    }
}
