//! Peer change batches: [`PeerChange`]s written by [`BatchWriter`] and read by
//! [`decode_batch`], in the format the crate documentation lays out.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::reader::Reader;
use crate::{InfoHash, PeerId};

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

/// Kind byte, info hash and port: what every record of a peer with an address has
/// besides its address.
const RECORD_FIXED_BYTES: usize = 1 + 20 + 2;
/// Peer id and age: what an upsert has besides a removal.
const UPSERT_EXTRA_BYTES: usize = 20 + 2;
/// Kind byte, info hash and peer id: a WebTorrent peer's removal.
const WS_REMOVED_BYTES: usize = 1 + 20 + 20;
/// A WebTorrent peer's removal and its age: a WebTorrent peer's upsert.
const WS_UPSERT_BYTES: usize = WS_REMOVED_BYTES + 2;

/// Bits 0-1 of a record's first byte.
const KIND_MASK: u8 = 0b11;
const KIND_UPSERT: u8 = 0;
const KIND_REMOVED: u8 = 1;
const KIND_WS_UPSERT: u8 = 2;
const KIND_WS_REMOVED: u8 = 3;
const FLAG_IPV6: u8 = 1 << 2;
const FLAG_SEEDER: u8 = 1 << 3;
const FLAG_COMPLETED: u8 = 1 << 4;

/// Where the count sits in the header, patched by [`BatchWriter::finish`].
const COUNT_OFFSET: usize = HEADER_BYTES - 4;

/// What happened to one peer on the node that publishes the change, for the other nodes
/// to do the same.
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
    /// A WebTorrent peer stored or refreshed on the publishing node.
    WsUpsert(WsPeerUpsert),
    /// A WebTorrent peer that left the publishing node (it stopped, its connection closed,
    /// or its connection went by another peer id).
    WsRemoved {
        /// Its torrent.
        info_hash: InfoHash,
        /// The peer id it was known by in that torrent.
        peer_id: PeerId,
    },
}

impl PeerChange {
    /// The torrent the change is about (to route it to the shard that owns it).
    pub fn info_hash(&self) -> &InfoHash {
        match self {
            Self::Upsert(upsert) => &upsert.info_hash,
            Self::Removed { info_hash, .. } => info_hash,
            Self::WsUpsert(upsert) => &upsert.info_hash,
            Self::WsRemoved { info_hash, .. } => info_hash,
        }
    }

    /// Bytes of the change's record.
    pub fn encoded_len(&self) -> usize {
        let (ip, extra) = match self {
            Self::Upsert(upsert) => (upsert.ip, UPSERT_EXTRA_BYTES),
            Self::Removed { ip, .. } => (*ip, 0),
            Self::WsUpsert(_) => return WS_UPSERT_BYTES,
            Self::WsRemoved { .. } => return WS_REMOVED_BYTES,
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

/// A WebTorrent peer stored or refreshed by an announce on the node that publishes it.
/// It has no address: it is known by its peer id within its torrent, and it lives on
/// that node, where its connection is (offers and answers for it are relayed there).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct WsPeerUpsert {
    /// Its torrent.
    pub info_hash: InfoHash,
    /// The peer id it is known by in that torrent.
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
        match change {
            PeerChange::Upsert(upsert) => {
                let kind = KIND_UPSERT | seeder_completed(upsert.seeder, upsert.completed);
                self.push_address(kind, &upsert.info_hash, upsert.ip, upsert.port);
                self.bytes.extend_from_slice(&upsert.peer_id.0);
                self.bytes.extend_from_slice(&upsert.age_secs.to_le_bytes());
            }
            PeerChange::Removed {
                info_hash,
                ip,
                port,
            } => self.push_address(KIND_REMOVED, info_hash, *ip, *port),
            PeerChange::WsUpsert(upsert) => {
                self.bytes
                    .push(KIND_WS_UPSERT | seeder_completed(upsert.seeder, upsert.completed));
                self.bytes.extend_from_slice(&upsert.info_hash.0);
                self.bytes.extend_from_slice(&upsert.peer_id.0);
                self.bytes.extend_from_slice(&upsert.age_secs.to_le_bytes());
            }
            PeerChange::WsRemoved { info_hash, peer_id } => {
                self.bytes.push(KIND_WS_REMOVED);
                self.bytes.extend_from_slice(&info_hash.0);
                self.bytes.extend_from_slice(&peer_id.0);
            }
        }
        self.count = self.count.saturating_add(1);
    }

    /// Appends the part that a peer with an address starts its record with: the kind
    /// byte (with the IPv6 bit if the canonical address is IPv6), info hash, address and
    /// port.
    fn push_address(&mut self, kind: u8, info_hash: &InfoHash, ip: IpAddr, port: u16) {
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

/// The seeder and completed bits of an upsert's kind byte.
fn seeder_completed(seeder: bool, completed: bool) -> u8 {
    let mut flags = 0;
    if seeder {
        flags |= FLAG_SEEDER;
    }
    if completed {
        flags |= FLAG_COMPLETED;
    }
    flags
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
    /// A record's first byte sets bits this version does not define (bits 5-7), or flags
    /// its kind does not allow: the seeder or completed bit on a removal (kinds 1 and 3),
    /// the IPv6 bit on a WebTorrent peer (kinds 2 and 3).
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

/// Reads a whole batch: its header and its changes, in the order they were pushed.
///
/// # Errors
/// The bytes are not a batch that [`BatchWriter`] writes (see [`DecodeError`]); nothing
/// is returned of a batch with any fault.
pub fn decode_batch(bytes: &[u8]) -> Result<(BatchHeader, Vec<PeerChange>), DecodeError> {
    let mut reader = Reader::new(bytes);
    let too_short = DecodeError::TooShort { len: bytes.len() };
    if bytes.len() < HEADER_BYTES {
        return Err(too_short);
    }
    if reader.take::<4, _>(too_short)? != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let [version, flags] = reader.take::<2, _>(too_short)?;
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
    let count = reader.u32(too_short)?;
    let remaining = reader.remaining();
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
    if reader.remaining() != 0 {
        return Err(DecodeError::TrailingBytes {
            offset: reader.offset(),
        });
    }
    Ok((header, changes))
}

/// Reads one change record.
fn decode_change(reader: &mut Reader<'_>) -> Result<PeerChange, DecodeError> {
    let offset = reader.offset();
    let truncated = DecodeError::Truncated { offset };
    let [byte] = reader.take::<1, _>(truncated)?;
    let kind = byte & KIND_MASK;
    let allowed = match kind {
        KIND_UPSERT => KIND_MASK | FLAG_IPV6 | FLAG_SEEDER | FLAG_COMPLETED,
        KIND_REMOVED => KIND_MASK | FLAG_IPV6,
        KIND_WS_UPSERT => KIND_MASK | FLAG_SEEDER | FLAG_COMPLETED,
        // KIND_WS_REMOVED, the last value two bits hold.
        _ => KIND_MASK,
    };
    if byte & !allowed != 0 {
        return Err(DecodeError::UnknownKind { offset, byte });
    }
    let info_hash = InfoHash(reader.take::<20, _>(truncated)?);
    let seeder = byte & FLAG_SEEDER != 0;
    let completed = byte & FLAG_COMPLETED != 0;
    if kind == KIND_WS_REMOVED {
        let peer_id = PeerId(reader.take::<20, _>(truncated)?);
        return Ok(PeerChange::WsRemoved { info_hash, peer_id });
    }
    if kind == KIND_WS_UPSERT {
        let peer_id = PeerId(reader.take::<20, _>(truncated)?);
        let age_secs = u16::from_le_bytes(reader.take::<2, _>(truncated)?);
        return Ok(PeerChange::WsUpsert(WsPeerUpsert {
            info_hash,
            peer_id,
            seeder,
            completed,
            age_secs,
        }));
    }
    let ip = if byte & FLAG_IPV6 != 0 {
        let ip = Ipv6Addr::from(reader.take::<16, _>(truncated)?);
        if ip.to_ipv4_mapped().is_some() {
            return Err(DecodeError::MappedIpv4 { offset });
        }
        IpAddr::V6(ip)
    } else {
        IpAddr::V4(Ipv4Addr::from(reader.take::<4, _>(truncated)?))
    };
    let port = u16::from_le_bytes(reader.take::<2, _>(truncated)?);
    if port == 0 {
        return Err(DecodeError::ZeroPort { offset });
    }
    if kind == KIND_REMOVED {
        return Ok(PeerChange::Removed {
            info_hash,
            ip,
            port,
        });
    }
    let peer_id = PeerId(reader.take::<20, _>(truncated)?);
    let age_secs = u16::from_le_bytes(reader.take::<2, _>(truncated)?);
    Ok(PeerChange::Upsert(PeerUpsert {
        info_hash,
        ip,
        port,
        peer_id,
        seeder,
        completed,
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

    fn ws_upsert() -> PeerChange {
        PeerChange::WsUpsert(WsPeerUpsert {
            info_hash: InfoHash([0xdd; 20]),
            peer_id: PeerId([0xee; 20]),
            seeder: true,
            completed: false,
            age_secs: 0x0405,
        })
    }

    fn ws_removed() -> PeerChange {
        PeerChange::WsRemoved {
            info_hash: InfoHash([0x11; 20]),
            peer_id: PeerId([0x22; 20]),
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

    /// One upsert of a WebTorrent peer, byte by byte.
    #[test]
    fn known_answer_ws_upsert() {
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            &b"SHPC"[..],                                 // magic
            &[1],                                         // version
            &[0],                                         // flags
            &[8, 7, 6, 5, 4, 3, 2, 1],                    // epoch
            &[9, 0, 0, 0, 0, 0, 0, 0],                    // sequence
            &1_700_000_000_123u64.to_le_bytes(),          // sent at
            &[1, 0, 0, 0],                                // count
            &[0b0000_1010],                               // WebTorrent upsert, seeder
            &[0xdd; 20],                                  // info hash
            &[0xee; 20],                                  // peer id
            &[0x05, 0x04],                                // age
        ]
        .concat();
        let bytes = encode(&HEADER, &[ws_upsert()]);
        assert_eq!(bytes, expected);
        assert_eq!(bytes.len(), HEADER_BYTES + 43);
        assert_eq!(decode_batch(&bytes), Ok((HEADER, vec![ws_upsert()])));

        // The completed bit, alone.
        let change = PeerChange::WsUpsert(WsPeerUpsert {
            seeder: false,
            completed: true,
            age_secs: 0,
            info_hash: InfoHash([0xdd; 20]),
            peer_id: PeerId([0xee; 20]),
        });
        let bytes = encode(&HEADER, &[change]);
        assert_eq!(bytes[FIRST], 0b0001_0010);
        assert_eq!(bytes[FIRST + 41..], [0, 0]);
        assert_eq!(decode_batch(&bytes), Ok((HEADER, vec![change])));
    }

    /// One removal of a WebTorrent peer, byte by byte.
    #[test]
    fn known_answer_ws_removed() {
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            &b"SHPC"[..],                                 // magic
            &[1],                                         // version
            &[0],                                         // flags
            &[8, 7, 6, 5, 4, 3, 2, 1],                    // epoch
            &[9, 0, 0, 0, 0, 0, 0, 0],                    // sequence
            &1_700_000_000_123u64.to_le_bytes(),          // sent at
            &[1, 0, 0, 0],                                // count
            &[0b0000_0011],                               // WebTorrent removed
            &[0x11; 20],                                  // info hash
            &[0x22; 20],                                  // peer id
        ]
        .concat();
        let bytes = encode(&HEADER, &[ws_removed()]);
        assert_eq!(bytes, expected);
        assert_eq!(bytes.len(), HEADER_BYTES + 41);
        assert_eq!(decode_batch(&bytes), Ok((HEADER, vec![ws_removed()])));
    }

    #[test]
    fn info_hash_of_every_kind() {
        assert_eq!(upsert(V4).info_hash(), &InfoHash([0xaa; 20]));
        assert_eq!(removed(V6).info_hash(), &InfoHash([0xcc; 20]));
        assert_eq!(ws_upsert().info_hash(), &InfoHash([0xdd; 20]));
        assert_eq!(ws_removed().info_hash(), &InfoHash([0x11; 20]));
    }

    #[test]
    fn record_sizes() {
        let sizes = [
            (upsert(V4), 49),
            (upsert(V6), 61),
            (removed(V4), 27),
            (removed(V6), 39),
            (ws_upsert(), 43),
            (ws_removed(), 41),
        ];
        for (change, size) in sizes {
            assert_eq!(change.encoded_len(), size);
            let mut writer = BatchWriter::new(&HEADER);
            writer.push(&change);
            assert_eq!(writer.len_bytes(), HEADER_BYTES + size);
            assert_eq!(writer.count(), 1);
        }
        // The bounds hold for every kind.
        assert_eq!(MAX_CHANGE_BYTES, 61);
        assert_eq!(MIN_CHANGE_BYTES, 27);
        for (change, _) in sizes {
            assert!((MIN_CHANGE_BYTES..=MAX_CHANGE_BYTES).contains(&change.encoded_len()));
        }
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

    /// A valid batch of one change of each form, to break. The last one is the smallest.
    fn sample() -> Vec<u8> {
        encode(
            &HEADER,
            &[
                upsert(V4),
                removed(V6),
                ws_upsert(),
                upsert(V6),
                ws_removed(),
                removed(V4),
            ],
        )
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
        bytes[COUNT_OFFSET..HEADER_BYTES].copy_from_slice(&7u32.to_le_bytes());
        assert_eq!(
            decode_batch(&bytes),
            Err(DecodeError::Truncated {
                offset: bytes.len()
            })
        );
        // More records than counted: the rest is trailing bytes.
        bytes[COUNT_OFFSET..HEADER_BYTES].copy_from_slice(&5u32.to_le_bytes());
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
            // Written from the format table, not from the decoder's masks.
            let known = match byte & KIND_MASK {
                KIND_UPSERT => byte & 0b1110_0000 == 0,
                KIND_REMOVED => byte & 0b1111_1000 == 0,
                KIND_WS_UPSERT => byte & 0b1110_0100 == 0,
                KIND_WS_REMOVED => byte & 0b1111_1100 == 0,
                _ => unreachable!("two bits hold four kinds"),
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
    fn rejects_flags_on_a_ws_removal() {
        for flag in [FLAG_IPV6, FLAG_SEEDER, FLAG_COMPLETED] {
            let mut bytes = encode(&HEADER, &[ws_removed()]);
            bytes[FIRST] |= flag;
            assert_eq!(
                decode_batch(&bytes),
                Err(DecodeError::UnknownKind {
                    offset: FIRST,
                    byte: KIND_WS_REMOVED | flag
                })
            );
        }
    }

    #[test]
    fn rejects_an_ipv6_ws_upsert() {
        let mut bytes = encode(&HEADER, &[ws_upsert()]);
        bytes[FIRST] |= FLAG_IPV6;
        assert_eq!(
            decode_batch(&bytes),
            Err(DecodeError::UnknownKind {
                offset: FIRST,
                byte: KIND_WS_UPSERT | FLAG_SEEDER | FLAG_IPV6
            })
        );
    }

    /// Cut anywhere inside a WebTorrent record that follows a large one, so that the count
    /// still fits the bytes and the decoder reaches the cut record.
    #[test]
    fn rejects_truncation_inside_ws_records() {
        for change in [ws_upsert(), ws_removed()] {
            let bytes = encode(&HEADER, &[upsert(V6), change]);
            let second = FIRST + 61;
            for len in second..bytes.len() {
                assert_eq!(
                    decode_batch(&bytes[..len]),
                    Err(DecodeError::Truncated { offset: second }),
                    "{change:?} cut to {len}"
                );
            }
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
        let ws_upsert = (
            any::<[u8; 20]>(),
            any::<[u8; 20]>(),
            any::<(bool, bool, u16)>(),
        )
            .prop_map(|(hash, id, (seeder, completed, age_secs))| {
                PeerChange::WsUpsert(WsPeerUpsert {
                    info_hash: InfoHash(hash),
                    peer_id: PeerId(id),
                    seeder,
                    completed,
                    age_secs,
                })
            });
        let ws_removed =
            (any::<[u8; 20]>(), any::<[u8; 20]>()).prop_map(|(hash, id)| PeerChange::WsRemoved {
                info_hash: InfoHash(hash),
                peer_id: PeerId(id),
            });
        prop_oneof![upsert, removed, ws_upsert, ws_removed]
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
            PeerChange::WsUpsert(_) | PeerChange::WsRemoved { .. } => *change,
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
