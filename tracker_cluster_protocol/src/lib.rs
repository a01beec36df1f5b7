#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The peer changes that shoal tracker nodes publish to each other over a message bus,
//! so that every node of a cluster answers from the same swarms: the wire format of a
//! batch of changes, written by [`BatchWriter`] and read by [`decode_batch`].
//!
//! A node records what its own announces did to its swarms (a peer stored or refreshed,
//! a peer that left with `event=stopped`) as [`PeerChange`]s, publishes them in batches,
//! and applies the batches of the other nodes. Every batch carries a [`BatchHeader`]: the
//! publishing process's random epoch and a sequence number, so that a receiver can tell
//! a lost batch (a gap) from a restarted node (a new epoch), and the time it was sent.
//!
//! # Guarantees
//!
//! - **No I/O, no clock, no logging, no configuration.** Bytes to values and back; the
//!   bus, the time in the header and the batch size limit belong to the caller.
//! - **No panics on any input.** Every read goes through `split_first_chunk` behind its
//!   own length check, and the crate denies `unwrap`, `expect`, `panic!` and unchecked
//!   indexing outside tests. Property tests and a fuzz target
//!   (`fuzz/fuzz_targets/peer_changes.rs`) feed the decoder arbitrary bytes.
//! - **Bounded by the input.** The header's count is checked against the bytes that
//!   follow before anything is allocated: a batch of `n` bytes never makes the decoder
//!   allocate room for more than `n / 27` changes.
//! - **One encoding per value.** The decoder rejects everything the writer would not
//!   write (unknown kinds or flags, port 0, an IPv4-mapped address sent as IPv6, a count
//!   that does not match the records, trailing bytes), so that a decoded batch written
//!   again gives the same bytes.
//!
//! # Format, version 1
//! All integers little-endian.
//!
//! ```text
//! header, 34 bytes
//!   magic             4  b"SHPC"
//!   version           1  1
//!   flags             1  0 (none defined yet)
//!   epoch             8  random per process start
//!   sequence          8  0, 1, 2, ... within the epoch, one per batch (heartbeats too)
//!   sent at           8  Unix milliseconds when the batch was published
//!   count             4  change records that follow
//! change record: upsert 49 bytes (IPv4) or 61 (IPv6); removed 27 (IPv4) or 39 (IPv6)
//!   kind and flags    1  bits 0-1: kind, 0 upsert, 1 removed (2 and 3 are invalid)
//!                        bit 2: IPv6 address
//!                        bit 3: seeder (upsert only)
//!                        bit 4: completion counted by the sender (upsert only)
//!                        bits 5-7: 0
//!   info hash        20
//!   address        4/16  an IPv4-mapped IPv6 address is sent as IPv4
//!   port              2  not 0
//!   upsert only:
//!   peer id          20
//!   age secs          2  seconds since the sender last saw the peer
//! ```
//!
//! # Example
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use tracker_cluster_protocol::{
//!     BatchHeader, BatchWriter, InfoHash, PeerChange, PeerId, PeerUpsert, decode_batch,
//! };
//!
//! let header = BatchHeader { epoch: 0x5eed, sequence: 0, sent_unix_millis: 1_700_000_000_000 };
//! let change = PeerChange::Upsert(PeerUpsert {
//!     info_hash: InfoHash([1; 20]),
//!     ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
//!     port: 6881,
//!     peer_id: PeerId([2; 20]),
//!     seeder: true,
//!     completed: false,
//!     age_secs: 0,
//! });
//! let mut writer = BatchWriter::new(&header);
//! writer.push(&change);
//! let bytes = writer.finish();
//! assert_eq!(bytes.len(), 34 + 49);
//! assert_eq!(decode_batch(&bytes), Ok((header, vec![change])));
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use tracker_types::{InfoHash, PeerId};

/// The first bytes of every batch.
pub const MAGIC: [u8; 4] = *b"SHPC";
/// The format version this code writes and reads.
pub const VERSION: u8 = 1;
/// Bytes of a batch's header.
pub const HEADER_BYTES: usize = 34;
/// Bytes of the largest change record (an upsert of an IPv6 peer), so that a publisher can
/// keep a batch under a byte limit: push while `len_bytes() + MAX_CHANGE_BYTES` fits.
pub const MAX_CHANGE_BYTES: usize = RECORD_FIXED_BYTES + 16 + UPSERT_EXTRA_BYTES;
/// Bytes of the smallest change record (the removal of an IPv4 peer).
pub const MIN_CHANGE_BYTES: usize = RECORD_FIXED_BYTES + 4;

/// Kind byte, info hash and port: what every record has besides its address.
const RECORD_FIXED_BYTES: usize = 1 + 20 + 2;
/// Peer id and age: what an upsert has besides a removal.
const UPSERT_EXTRA_BYTES: usize = 20 + 2;

/// Bits 0-1 of a record's first byte.
const KIND_MASK: u8 = 0b11;
const KIND_UPSERT: u8 = 0;
const KIND_REMOVED: u8 = 1;
const FLAG_IPV6: u8 = 1 << 2;
const FLAG_SEEDER: u8 = 1 << 3;
const FLAG_COMPLETED: u8 = 1 << 4;

/// Where the count sits in the header, patched by [`BatchWriter::finish`].
const COUNT_OFFSET: usize = HEADER_BYTES - 4;

/// What one node's announce did to one peer, for the other nodes to do the same.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerChange {
    /// A peer was stored or refreshed.
    Upsert(PeerUpsert),
    /// The peer at this endpoint left (`event=stopped`) and was removed.
    Removed {
        /// Its torrent.
        info_hash: InfoHash,
        /// Its address: an IPv4-mapped IPv6 address is written, and read back, as IPv4.
        ip: IpAddr,
        /// Its port, never 0 (the decoder rejects 0).
        port: u16,
    },
}

impl PeerChange {
    /// The torrent the change is about (to route it to the shard that owns it).
    pub fn info_hash(&self) -> &InfoHash {
        match self {
            Self::Upsert(upsert) => &upsert.info_hash,
            Self::Removed { info_hash, .. } => info_hash,
        }
    }

    /// Bytes of the change's record.
    pub fn encoded_len(&self) -> usize {
        let (ip, extra) = match self {
            Self::Upsert(upsert) => (upsert.ip, UPSERT_EXTRA_BYTES),
            Self::Removed { ip, .. } => (*ip, 0),
        };
        let address = match ip.to_canonical() {
            IpAddr::V4(_) => 4,
            IpAddr::V6(_) => 16,
        };
        RECORD_FIXED_BYTES + address + extra
    }
}

/// A peer stored or refreshed by an announce on the node that publishes it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerUpsert {
    /// Its torrent.
    pub info_hash: InfoHash,
    /// Its address: an IPv4-mapped IPv6 address is written, and read back, as IPv4.
    pub ip: IpAddr,
    /// Its port, never 0 (the decoder rejects 0).
    pub port: u16,
    /// The peer id it announced last.
    pub peer_id: PeerId,
    /// Whether it is a seeder.
    pub seeder: bool,
    /// This announce's completion was counted on the node that handled it: every other
    /// node adds one to the torrent's completed count.
    pub completed: bool,
    /// Seconds since the origin node last saw the peer (0 for a change published as it
    /// happens).
    pub age_secs: u16,
}

/// What every batch starts with.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct BatchHeader {
    /// Random per process start: a restarted node's sequence starts again under a new
    /// epoch.
    pub epoch: u64,
    /// 0, 1, 2, ... per epoch, one per batch published (also for an empty batch, a
    /// heartbeat).
    pub sequence: u64,
    /// Wall-clock time the batch was published, Unix milliseconds (for measuring how long
    /// changes take to reach other nodes).
    pub sent_unix_millis: u64,
}

/// Writes one batch: the header, then the changes pushed, then [`Self::finish`] puts
/// their count in the header.
#[derive(Clone, Debug)]
pub struct BatchWriter {
    bytes: Vec<u8>,
    count: u32,
}

impl BatchWriter {
    /// A batch of no changes yet, under `header`.
    pub fn new(header: &BatchHeader) -> Self {
        Self::with_capacity(header, HEADER_BYTES)
    }

    /// [`Self::new`], with room for `capacity_bytes` (header included) allocated up front.
    pub fn with_capacity(header: &BatchHeader, capacity_bytes: usize) -> Self {
        let mut bytes = Vec::with_capacity(capacity_bytes.max(HEADER_BYTES));
        bytes.extend_from_slice(&MAGIC);
        bytes.push(VERSION);
        bytes.push(0);
        bytes.extend_from_slice(&header.epoch.to_le_bytes());
        bytes.extend_from_slice(&header.sequence.to_le_bytes());
        bytes.extend_from_slice(&header.sent_unix_millis.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        Self { bytes, count: 0 }
    }

    /// Appends `change` (at most [`MAX_CHANGE_BYTES`]; see [`PeerChange::encoded_len`]).
    /// An IPv4-mapped IPv6 address is written as IPv4. A batch holds at most `u32::MAX`
    /// changes (over 100 GB): pushing more is a caller's bug, and the count then stays at
    /// `u32::MAX`, which the decoder rejects.
    pub fn push(&mut self, change: &PeerChange) {
        let (kind, info_hash, ip, port) = match change {
            PeerChange::Upsert(upsert) => {
                let mut kind = KIND_UPSERT;
                if upsert.seeder {
                    kind |= FLAG_SEEDER;
                }
                if upsert.completed {
                    kind |= FLAG_COMPLETED;
                }
                (kind, &upsert.info_hash, upsert.ip, upsert.port)
            }
            PeerChange::Removed {
                info_hash,
                ip,
                port,
            } => (KIND_REMOVED, info_hash, *ip, *port),
        };
        match ip.to_canonical() {
            IpAddr::V4(ip) => {
                self.bytes.push(kind);
                self.bytes.extend_from_slice(&info_hash.0);
                self.bytes.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                self.bytes.push(kind | FLAG_IPV6);
                self.bytes.extend_from_slice(&info_hash.0);
                self.bytes.extend_from_slice(&ip.octets());
            }
        }
        self.bytes.extend_from_slice(&port.to_le_bytes());
        if let PeerChange::Upsert(upsert) = change {
            self.bytes.extend_from_slice(&upsert.peer_id.0);
            self.bytes.extend_from_slice(&upsert.age_secs.to_le_bytes());
        }
        self.count = self.count.saturating_add(1);
    }

    /// Changes pushed so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes of the batch so far, header included: what [`Self::finish`] returns.
    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The batch's bytes, with the count of the changes pushed in its header.
    pub fn finish(mut self) -> Vec<u8> {
        if let Some(count) = self
            .bytes
            .get_mut(COUNT_OFFSET..HEADER_BYTES)
            .and_then(|field| <&mut [u8; 4]>::try_from(field).ok())
        {
            *count = self.count.to_le_bytes();
        }
        self.bytes
    }
}

/// Why bytes are not a batch this code reads. Offsets are from the start of the batch.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than a header.
    TooShort {
        /// The input's length.
        len: usize,
    },
    /// Does not start with [`MAGIC`].
    BadMagic,
    /// Of a version this code does not read.
    UnsupportedVersion(u8),
    /// The header's flags byte has bits this version does not define.
    UnknownHeaderFlags(u8),
    /// The header counts more changes than the bytes after it could hold.
    CountTooLarge {
        /// The header's count.
        count: u32,
        /// Bytes after the header.
        remaining: usize,
    },
    /// A record's first byte names no kind, sets bits this version does not define, or
    /// sets the seeder or completed bit on a removal.
    UnknownKind {
        /// Where the record starts.
        offset: usize,
        /// The record's first byte.
        byte: u8,
    },
    /// The input ends inside a record: fewer records than the header counts.
    Truncated {
        /// Where the record starts.
        offset: usize,
    },
    /// A record with port 0.
    ZeroPort {
        /// Where the record starts.
        offset: usize,
    },
    /// An IPv4-mapped IPv6 address in an IPv6 record: it is written as IPv4.
    MappedIpv4 {
        /// Where the record starts.
        offset: usize,
    },
    /// Bytes after the records the header counts.
    TrailingBytes {
        /// Where the first one is.
        offset: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => {
                write!(f, "{len} bytes is too short for a peer change batch")
            }
            Self::BadMagic => write!(f, "not a peer change batch (bad magic bytes)"),
            Self::UnsupportedVersion(v) => {
                write!(f, "batch version {v}, this code reads version {VERSION}")
            }
            Self::UnknownHeaderFlags(flags) => write!(f, "unknown header flags {flags:#04x}"),
            Self::CountTooLarge { count, remaining } => write!(
                f,
                "{count} changes cannot fit in the {remaining} bytes after the header"
            ),
            Self::UnknownKind { offset, byte } => {
                write!(
                    f,
                    "unknown change kind or flags {byte:#04x} at byte {offset}"
                )
            }
            Self::Truncated { offset } => write!(f, "change record cut off at byte {offset}"),
            Self::ZeroPort { offset } => write!(f, "port 0 in the record at byte {offset}"),
            Self::MappedIpv4 { offset } => write!(
                f,
                "IPv4-mapped address sent as IPv6 in the record at byte {offset}"
            ),
            Self::TrailingBytes { offset } => {
                write!(f, "bytes after the last change record, from byte {offset}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// The input not read yet, and where it is in the batch.
struct Reader<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl Reader<'_> {
    /// The next `N` bytes, or `err` if fewer are left.
    fn take<const N: usize>(&mut self, err: DecodeError) -> Result<[u8; N], DecodeError> {
        let (head, rest) = self.rest.split_first_chunk::<N>().ok_or(err)?;
        self.rest = rest;
        self.offset = self.offset.saturating_add(N);
        Ok(*head)
    }

    fn u64(&mut self, err: DecodeError) -> Result<u64, DecodeError> {
        self.take(err).map(u64::from_le_bytes)
    }
}

/// Reads a whole batch: its header and its changes, in the order they were pushed.
///
/// # Errors
/// The bytes are not a batch that [`BatchWriter`] writes (see [`DecodeError`]); nothing
/// is returned of a batch with any fault.
pub fn decode_batch(bytes: &[u8]) -> Result<(BatchHeader, Vec<PeerChange>), DecodeError> {
    let mut reader = Reader {
        rest: bytes,
        offset: 0,
    };
    let too_short = DecodeError::TooShort { len: bytes.len() };
    if bytes.len() < HEADER_BYTES {
        return Err(too_short);
    }
    if reader.take::<4>(too_short)? != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let [version, flags] = reader.take::<2>(too_short)?;
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    if flags != 0 {
        return Err(DecodeError::UnknownHeaderFlags(flags));
    }
    let header = BatchHeader {
        epoch: reader.u64(too_short)?,
        sequence: reader.u64(too_short)?,
        sent_unix_millis: reader.u64(too_short)?,
    };
    let count = u32::from_le_bytes(reader.take::<4>(too_short)?);
    let remaining = reader.rest.len();
    // Checked before allocating: a forged count can ask for no more room than the bytes
    // that carry it.
    let fits = usize::try_from(count).is_ok_and(|n| n <= remaining / MIN_CHANGE_BYTES);
    if !fits {
        return Err(DecodeError::CountTooLarge { count, remaining });
    }
    let mut changes = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for _ in 0..count {
        changes.push(decode_change(&mut reader)?);
    }
    if !reader.rest.is_empty() {
        return Err(DecodeError::TrailingBytes {
            offset: reader.offset,
        });
    }
    Ok((header, changes))
}

/// Reads one change record.
fn decode_change(reader: &mut Reader<'_>) -> Result<PeerChange, DecodeError> {
    let offset = reader.offset;
    let truncated = DecodeError::Truncated { offset };
    let [byte] = reader.take::<1>(truncated)?;
    let unknown = DecodeError::UnknownKind { offset, byte };
    let allowed = match byte & KIND_MASK {
        KIND_UPSERT => KIND_MASK | FLAG_IPV6 | FLAG_SEEDER | FLAG_COMPLETED,
        KIND_REMOVED => KIND_MASK | FLAG_IPV6,
        _ => return Err(unknown),
    };
    if byte & !allowed != 0 {
        return Err(unknown);
    }
    let info_hash = InfoHash(reader.take::<20>(truncated)?);
    let ip = if byte & FLAG_IPV6 != 0 {
        let ip = Ipv6Addr::from(reader.take::<16>(truncated)?);
        if ip.to_ipv4_mapped().is_some() {
            return Err(DecodeError::MappedIpv4 { offset });
        }
        IpAddr::V6(ip)
    } else {
        IpAddr::V4(Ipv4Addr::from(reader.take::<4>(truncated)?))
    };
    let port = u16::from_le_bytes(reader.take::<2>(truncated)?);
    if port == 0 {
        return Err(DecodeError::ZeroPort { offset });
    }
    if byte & KIND_MASK == KIND_REMOVED {
        return Ok(PeerChange::Removed {
            info_hash,
            ip,
            port,
        });
    }
    let peer_id = PeerId(reader.take::<20>(truncated)?);
    let age_secs = u16::from_le_bytes(reader.take::<2>(truncated)?);
    Ok(PeerChange::Upsert(PeerUpsert {
        info_hash,
        ip,
        port,
        peer_id,
        seeder: byte & FLAG_SEEDER != 0,
        completed: byte & FLAG_COMPLETED != 0,
        age_secs,
    }))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const HEADER: BatchHeader = BatchHeader {
        epoch: 0x0102_0304_0506_0708,
        sequence: 9,
        sent_unix_millis: 1_700_000_000_123,
    };

    fn upsert(ip: IpAddr) -> PeerChange {
        PeerChange::Upsert(PeerUpsert {
            info_hash: InfoHash([0xaa; 20]),
            ip,
            port: 0x1ae1,
            peer_id: PeerId([0xbb; 20]),
            seeder: true,
            completed: true,
            age_secs: 0x0203,
        })
    }

    fn removed(ip: IpAddr) -> PeerChange {
        PeerChange::Removed {
            info_hash: InfoHash([0xcc; 20]),
            ip,
            port: 80,
        }
    }

    const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));

    fn encode(header: &BatchHeader, changes: &[PeerChange]) -> Vec<u8> {
        let mut writer = BatchWriter::new(header);
        for change in changes {
            writer.push(change);
        }
        writer.finish()
    }

    /// One upsert of an IPv4 peer, byte by byte.
    #[test]
    fn known_answer_upsert_ipv4() {
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            &b"SHPC"[..],                                 // magic
            &[1],                                         // version
            &[0],                                         // flags
            &[8, 7, 6, 5, 4, 3, 2, 1],                    // epoch
            &[9, 0, 0, 0, 0, 0, 0, 0],                    // sequence
            &1_700_000_000_123u64.to_le_bytes(),          // sent at
            &[1, 0, 0, 0],                                // count
            &[0b0001_1000],                               // upsert, IPv4, seeder, completed
            &[0xaa; 20],                                  // info hash
            &[10, 0, 0, 1],                               // address
            &[0xe1, 0x1a],                                // port 6881
            &[0xbb; 20],                                  // peer id
            &[0x03, 0x02],                                // age
        ]
        .concat();
        let bytes = encode(&HEADER, &[upsert(V4)]);
        assert_eq!(bytes, expected);
        assert_eq!(bytes.len(), HEADER_BYTES + 49);
        assert_eq!(decode_batch(&bytes), Ok((HEADER, vec![upsert(V4)])));
    }

    /// One removal of an IPv6 peer, byte by byte.
    #[test]
    fn known_answer_removed_ipv6() {
        let bytes = encode(&BatchHeader::default(), &[removed(V6)]);
        let mut expected = b"SHPC\x01\x00".to_vec();
        expected.extend_from_slice(&[0; 24]); // epoch, sequence, sent at
        expected.extend_from_slice(&[1, 0, 0, 0]); // count
        expected.push(0b0000_0101); // removed, IPv6
        expected.extend_from_slice(&[0xcc; 20]); // info hash
        expected.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]); // address
        expected.extend_from_slice(&[0; 11]);
        expected.push(1);
        expected.extend_from_slice(&[80, 0]); // port
        assert_eq!(bytes, expected);
        assert_eq!(bytes.len(), HEADER_BYTES + 39);
    }

    #[test]
    fn record_sizes() {
        let sizes = [
            (upsert(V4), 49),
            (upsert(V6), 61),
            (removed(V4), 27),
            (removed(V6), 39),
        ];
        for (change, size) in sizes {
            assert_eq!(change.encoded_len(), size);
            let mut writer = BatchWriter::new(&HEADER);
            writer.push(&change);
            assert_eq!(writer.len_bytes(), HEADER_BYTES + size);
            assert_eq!(writer.count(), 1);
        }
        assert_eq!(MAX_CHANGE_BYTES, 61);
        assert_eq!(MIN_CHANGE_BYTES, 27);
        assert_eq!(encode(&HEADER, &[]).len(), HEADER_BYTES);
    }

    /// A heartbeat: a header and no changes.
    #[test]
    fn empty_batch_round_trips() {
        let bytes = encode(&HEADER, &[]);
        assert_eq!(decode_batch(&bytes), Ok((HEADER, Vec::new())));
    }

    #[test]
    fn mapped_ipv6_is_written_as_ipv4() {
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(upsert(mapped).encoded_len(), 49);
        let bytes = encode(&HEADER, &[upsert(mapped), removed(mapped)]);
        assert_eq!(bytes, encode(&HEADER, &[upsert(V4), removed(V4)]));
    }

    /// A valid batch of one change of each form, to break.
    fn sample() -> Vec<u8> {
        encode(&HEADER, &[upsert(V4), removed(V6), upsert(V6), removed(V4)])
    }

    /// The offset of the first record's kind byte in `sample()`.
    const FIRST: usize = HEADER_BYTES;

    #[test]
    fn rejects_short_input() {
        for len in 0..HEADER_BYTES {
            assert_eq!(
                decode_batch(&sample()[..len]),
                Err(DecodeError::TooShort { len })
            );
        }
    }

    #[test]
    fn rejects_bad_magic_version_and_header_flags() {
        let mut bytes = sample();
        bytes[0] = b'X';
        assert_eq!(decode_batch(&bytes), Err(DecodeError::BadMagic));
        let mut bytes = sample();
        bytes[4] = 2;
        assert_eq!(
            decode_batch(&bytes),
            Err(DecodeError::UnsupportedVersion(2))
        );
        let mut bytes = sample();
        bytes[5] = 0x80;
        assert_eq!(
            decode_batch(&bytes),
            Err(DecodeError::UnknownHeaderFlags(0x80))
        );
    }

    #[test]
    fn rejects_a_count_the_input_cannot_hold_before_allocating() {
        let mut bytes = encode(&HEADER, &[removed(V4)]);
        bytes[COUNT_OFFSET..HEADER_BYTES].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode_batch(&bytes),
            Err(DecodeError::CountTooLarge {
                count: u32::MAX,
                remaining: 27
            })
        );
        // Two of the smallest records would need 54 bytes.
        bytes[COUNT_OFFSET..HEADER_BYTES].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(
            decode_batch(&bytes),
            Err(DecodeError::CountTooLarge {
                count: 2,
                remaining: 27
            })
        );
    }

    #[test]
    fn rejects_a_count_that_does_not_match_the_records() {
        // Fewer records than counted: the input ends where the next should start.
        let mut bytes = sample();
        bytes[COUNT_OFFSET..HEADER_BYTES].copy_from_slice(&5u32.to_le_bytes());
        assert_eq!(
            decode_batch(&bytes),
            Err(DecodeError::Truncated {
                offset: bytes.len()
            })
        );
        // More records than counted: the rest is trailing bytes.
        bytes[COUNT_OFFSET..HEADER_BYTES].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(
            decode_batch(&bytes),
            Err(DecodeError::TrailingBytes {
                offset: bytes.len() - 27
            })
        );
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut bytes = sample();
        let end = bytes.len();
        bytes.push(0);
        assert_eq!(
            decode_batch(&bytes),
            Err(DecodeError::TrailingBytes { offset: end })
        );
    }

    #[test]
    fn rejects_every_truncation() {
        let bytes = sample();
        for len in HEADER_BYTES..bytes.len() {
            assert!(
                matches!(
                    decode_batch(&bytes[..len]),
                    Err(DecodeError::Truncated { .. } | DecodeError::CountTooLarge { .. })
                ),
                "{len}"
            );
        }
    }

    #[test]
    fn rejects_unknown_kinds_and_flags() {
        for byte in 0..=u8::MAX {
            let mut bytes = encode(&HEADER, &[upsert(V4)]);
            bytes[FIRST] = byte;
            let known = match byte & KIND_MASK {
                KIND_UPSERT => byte & 0b1110_0000 == 0,
                KIND_REMOVED => byte & 0b1111_1000 == 0,
                _ => false,
            };
            let result = decode_batch(&bytes);
            if !known {
                assert_eq!(
                    result,
                    Err(DecodeError::UnknownKind {
                        offset: FIRST,
                        byte
                    })
                );
            } else {
                // A known byte reads on (as another record shape, which may not fit).
                assert!(
                    !matches!(result, Err(DecodeError::UnknownKind { .. })),
                    "{byte:#x}"
                );
            }
        }
    }

    #[test]
    fn rejects_a_seeder_or_completed_removal() {
        for flag in [FLAG_SEEDER, FLAG_COMPLETED] {
            let mut bytes = encode(&HEADER, &[removed(V4)]);
            bytes[FIRST] |= flag;
            assert_eq!(
                decode_batch(&bytes),
                Err(DecodeError::UnknownKind {
                    offset: FIRST,
                    byte: KIND_REMOVED | flag
                })
            );
        }
    }

    #[test]
    fn rejects_port_zero() {
        for (change, port_at) in [(upsert(V4), 25), (removed(V6), 37)] {
            let mut bytes = encode(&HEADER, &[change]);
            bytes[FIRST + port_at..FIRST + port_at + 2].copy_from_slice(&[0, 0]);
            assert_eq!(
                decode_batch(&bytes),
                Err(DecodeError::ZeroPort { offset: FIRST })
            );
        }
    }

    #[test]
    fn rejects_a_mapped_address_sent_as_ipv6() {
        let mut bytes = encode(&HEADER, &[removed(V6)]);
        let mapped = Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped().octets();
        bytes[FIRST + 21..FIRST + 37].copy_from_slice(&mapped);
        assert_eq!(
            decode_batch(&bytes),
            Err(DecodeError::MappedIpv4 { offset: FIRST })
        );
    }

    #[test]
    fn errors_display() {
        let errors = [
            DecodeError::TooShort { len: 3 },
            DecodeError::BadMagic,
            DecodeError::UnsupportedVersion(9),
            DecodeError::UnknownHeaderFlags(1),
            DecodeError::CountTooLarge {
                count: 5,
                remaining: 4,
            },
            DecodeError::UnknownKind {
                offset: 34,
                byte: 3,
            },
            DecodeError::Truncated { offset: 40 },
            DecodeError::ZeroPort { offset: 34 },
            DecodeError::MappedIpv4 { offset: 34 },
            DecodeError::TrailingBytes { offset: 70 },
        ];
        for error in errors {
            assert!(!error.to_string().is_empty());
        }
    }

    fn ip_strategy() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
            any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
            // Mapped addresses, which read back as IPv4.
            any::<u32>().prop_map(|n| IpAddr::V6(Ipv4Addr::from(n).to_ipv6_mapped())),
        ]
    }

    fn change_strategy() -> impl Strategy<Value = PeerChange> {
        let upsert = (
            any::<[u8; 20]>(),
            ip_strategy(),
            1..=u16::MAX,
            any::<[u8; 20]>(),
            any::<(bool, bool, u16)>(),
        )
            .prop_map(|(hash, ip, port, id, (seeder, completed, age_secs))| {
                PeerChange::Upsert(PeerUpsert {
                    info_hash: InfoHash(hash),
                    ip,
                    port,
                    peer_id: PeerId(id),
                    seeder,
                    completed,
                    age_secs,
                })
            });
        let removed =
            (any::<[u8; 20]>(), ip_strategy(), 1..=u16::MAX).prop_map(|(hash, ip, port)| {
                PeerChange::Removed {
                    info_hash: InfoHash(hash),
                    ip,
                    port,
                }
            });
        prop_oneof![upsert, removed]
    }

    /// What a change reads back as: the same, with its address canonical.
    fn canonical(change: &PeerChange) -> PeerChange {
        match *change {
            PeerChange::Upsert(upsert) => PeerChange::Upsert(PeerUpsert {
                ip: upsert.ip.to_canonical(),
                ..upsert
            }),
            PeerChange::Removed {
                info_hash,
                ip,
                port,
            } => PeerChange::Removed {
                info_hash,
                ip: ip.to_canonical(),
                port,
            },
        }
    }

    fn header_strategy() -> impl Strategy<Value = BatchHeader> {
        any::<(u64, u64, u64)>().prop_map(|(epoch, sequence, sent_unix_millis)| BatchHeader {
            epoch,
            sequence,
            sent_unix_millis,
        })
    }

    proptest! {
        #[test]
        fn round_trip(
            header in header_strategy(),
            changes in prop::collection::vec(change_strategy(), 0..40),
        ) {
            let mut writer = BatchWriter::new(&header);
            for change in &changes {
                writer.push(change);
            }
            prop_assert_eq!(writer.count() as usize, changes.len());
            let expected_len =
                HEADER_BYTES + changes.iter().map(PeerChange::encoded_len).sum::<usize>();
            prop_assert_eq!(writer.len_bytes(), expected_len);
            let bytes = writer.finish();
            prop_assert_eq!(bytes.len(), expected_len);
            let (read_header, read) = decode_batch(&bytes).unwrap();
            prop_assert_eq!(read_header, header);
            let expected: Vec<PeerChange> = changes.iter().map(canonical).collect();
            prop_assert_eq!(read, expected);
        }

        /// Should never panic; whatever decodes writes back to the same bytes.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1500)) {
            if let Ok((header, changes)) = decode_batch(&bytes) {
                prop_assert_eq!(encode(&header, &changes), bytes);
            }
        }

        /// Valid batches with a few bytes overwritten or cut: the decoder gets past the
        /// header and into the records, where arbitrary bytes rarely go.
        #[test]
        fn damaged_batches_never_panic_and_reencode(
            header in header_strategy(),
            changes in prop::collection::vec(change_strategy(), 0..8),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
            do_cut in prop::bool::weighted(0.2),
        ) {
            let mut bytes = encode(&header, &changes);
            for (at, value) in edits {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            if do_cut {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            if let Ok((header, changes)) = decode_batch(&bytes) {
                prop_assert_eq!(encode(&header, &changes), bytes);
            }
        }
    }
}
