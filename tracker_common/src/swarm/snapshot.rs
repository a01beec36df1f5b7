//! Swarm snapshots: the request workers' torrents, peers and completed counts in a file,
//! so that a restart loses no swarm.
//!
//! # Who writes, who reads
//! One file, gathered by one thread: every request worker encodes its own shard into a
//! [`SnapshotPart`] (a few milliseconds per hundred thousand peers, while it handles no
//! request) and hands it over; the writer puts the parts of all workers together behind
//! one header and writes the file. The periodic snapshots are written by the `snapshot`
//! thread, the one at a clean shutdown by the thread that stops the tracker, after the
//! workers have ended. One file, rather than one per worker, has no set of files that
//! can disagree (a worker count that changed, a file left from another run).
//!
//! At start, before any request worker runs, the file is read whole and checked (its
//! checksum, then every record's shape), and the tracker takes over its routing key (see
//! [`crate::swarm::routing`]): the archive is keyed by the router's fingerprints of the info
//! hashes, so they must mean the same after the restart. Each torrent then goes to the
//! shard that owns it now (`ShardRouter::shard`), each archived count to the shard of
//! its fingerprint, whatever the number of workers was when it was saved. Peers whose
//! time ran out while the tracker was down are skipped, and what is restored goes
//! through the swarm's own admission (limits of torrents, peers, peers per torrent and
//! per address).
//!
//! A missing file starts an empty tracker. A file that cannot be read as a snapshot
//! (truncated, corrupted, of another version or not a snapshot) is logged, renamed to
//! `<path>.corrupt-<unix time>` and the tracker starts empty: it is never deleted and
//! never stops a start.
//!
//! # Format, version 1
//! All integers little-endian.
//!
//! ```text
//! header, 60 bytes
//!   magic             8  b"SHOALSNP"
//!   version           2  1
//!   reserved          2  0
//!   router key       16  the SipHash key of the shard router (routing.rs)
//!   written at        8  unix seconds when the snapshot was taken
//!   torrents          8  torrent records that follow
//!   peers             8  peer records, over all torrents
//!   archived          8  archived-count records after the torrents
//! torrent record, 28 bytes, followed by its peer records
//!   info hash        20
//!   completed         4
//!   peers             4  peer records that follow, at least 1
//! peer record, 31 bytes (IPv4) or 43 (IPv6)
//!   flags             1  bit 0: IPv6, bit 1: seeder, bit 2: completion counted
//!   address        4/16
//!   port              2  not 0
//!   peer id          20
//!   remaining secs    4  seconds it had left before expiring, at least 1
//! archived record, 12 bytes
//!   fingerprint       8  the router's SipHash of the info hash
//!   completed         4  not 0
//! checksum, 8 bytes
//!   SipHash-2-4 under a fixed, published key of every byte before it
//! ```
//!
//! The checksum finds corruption (a flipped bit, a torn write), not forgery: whoever can
//! write the file can write a valid one, which is why a valid file is still bounded by
//! the tracker's limits when it is loaded. Every count in the header is checked against
//! the file's size before anything is read.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fmt;
use std::fs::{self, File};
use std::hash::Hasher;
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use siphasher::sip::SipHasher24;

use crate::swarm::saved::{SaveSink, SavedPeer, SavedTorrent};
use crate::types::{InfoHash, PeerId};

/// The first bytes of every snapshot.
pub const MAGIC: [u8; 8] = *b"SHOALSNP";
/// The format version this code writes and reads.
pub const VERSION: u16 = 1;
/// Bytes of the header.
pub const HEADER_BYTES: usize = 60;
/// Bytes of the checksum at the end.
pub const CHECKSUM_BYTES: usize = 8;
/// Bytes of a torrent record.
const TORRENT_BYTES: usize = 28;
/// Bytes of the smallest peer record (IPv4).
const MIN_PEER_BYTES: usize = 31;
/// Bytes of an archived record.
const ARCHIVED_BYTES: usize = 12;
/// The checksum's key: fixed, since the checksum only has to find accidents.
const CHECKSUM_KEY: [u8; 16] = *b"shoal snapshot 1";

const FLAG_IPV6: u8 = 1;
const FLAG_SEEDER: u8 = 2;
const FLAG_COUNTED: u8 = 4;
const KNOWN_FLAGS: u8 = FLAG_IPV6 | FLAG_SEEDER | FLAG_COUNTED;

/// Why a file is not a snapshot this code can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// Shorter than a header and a checksum.
    TooShort(usize),
    /// Does not start with [`MAGIC`].
    BadMagic,
    /// Of a version this code does not read.
    UnsupportedVersion(u16),
    /// The checksum does not match the contents (corrupted or cut off).
    BadChecksum,
    /// The checksum matches but the records do not: what is wrong, and where.
    Malformed {
        /// What was wrong.
        what: &'static str,
        /// Byte offset in the file.
        offset: usize,
    },
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(len) => write!(f, "{len} bytes is too short for a snapshot"),
            Self::BadMagic => write!(f, "not a shoal snapshot (bad magic bytes)"),
            Self::UnsupportedVersion(v) => {
                write!(
                    f,
                    "snapshot version {v}, this tracker reads version {VERSION}"
                )
            }
            Self::BadChecksum => write!(f, "checksum mismatch (corrupted or truncated)"),
            Self::Malformed { what, offset } => write!(f, "{what} at byte {offset}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

/// One request worker's shard, encoded as records (without header or checksum). It is a
/// [`SaveSink`]: hand it to the shard's `save`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SnapshotPart {
    bytes: Vec<u8>,
    torrents: u64,
    peers: u64,
    archived: Vec<u8>,
    num_archived: u64,
}

impl SnapshotPart {
    /// An empty part.
    pub fn new() -> Self {
        Self::default()
    }

    /// Torrents in the part.
    pub fn num_torrents(&self) -> u64 {
        self.torrents
    }

    /// Peers in the part.
    pub fn num_peers(&self) -> u64 {
        self.peers
    }

    /// Archived counts in the part.
    pub fn num_archived(&self) -> u64 {
        self.num_archived
    }
}

impl SaveSink for SnapshotPart {
    fn torrent(&mut self, info_hash: &InfoHash, completed: u32, num_peers: u32) {
        self.torrents += 1;
        self.bytes.extend_from_slice(&info_hash.0);
        self.bytes.extend_from_slice(&completed.to_le_bytes());
        self.bytes.extend_from_slice(&num_peers.to_le_bytes());
    }

    fn peer(&mut self, peer: &SavedPeer) {
        self.peers += 1;
        let mut flags = 0;
        if peer.seeder {
            flags |= FLAG_SEEDER;
        }
        if peer.completion_counted {
            flags |= FLAG_COUNTED;
        }
        match peer.ip {
            IpAddr::V4(ip) => {
                self.bytes.push(flags);
                self.bytes.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                self.bytes.push(flags | FLAG_IPV6);
                self.bytes.extend_from_slice(&ip.octets());
            }
        }
        self.bytes.extend_from_slice(&peer.port.to_le_bytes());
        self.bytes.extend_from_slice(&peer.peer_id.0);
        self.bytes
            .extend_from_slice(&peer.remaining_secs.to_le_bytes());
    }

    fn archived(&mut self, fingerprint: u64, completed: u32) {
        if completed == 0 {
            return;
        }
        self.num_archived += 1;
        self.archived.extend_from_slice(&fingerprint.to_le_bytes());
        self.archived.extend_from_slice(&completed.to_le_bytes());
    }
}

/// Writes through to `inner` and hashes what it writes.
struct Checksummed<W> {
    inner: W,
    hasher: SipHasher24,
}

impl<W: Write> Checksummed<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.write(bytes);
        self.inner.write_all(bytes)
    }
}

/// Writes the snapshot of `parts` (one per request worker, in any order) to `out`.
///
/// # Errors
/// `out` failed.
pub fn encode(
    router_key: [u8; 16],
    written_at_unix_secs: u64,
    parts: &[SnapshotPart],
    out: impl Write,
) -> io::Result<()> {
    let sum = |f: fn(&SnapshotPart) -> u64| parts.iter().map(f).fold(0u64, u64::saturating_add);
    let mut header = Vec::with_capacity(HEADER_BYTES);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&0u16.to_le_bytes());
    header.extend_from_slice(&router_key);
    header.extend_from_slice(&written_at_unix_secs.to_le_bytes());
    header.extend_from_slice(&sum(|p| p.torrents).to_le_bytes());
    header.extend_from_slice(&sum(|p| p.peers).to_le_bytes());
    header.extend_from_slice(&sum(|p| p.num_archived).to_le_bytes());
    let mut out = Checksummed {
        inner: out,
        hasher: SipHasher24::new_with_key(&CHECKSUM_KEY),
    };
    out.put(&header)?;
    for part in parts {
        out.put(&part.bytes)?;
    }
    for part in parts {
        out.put(&part.archived)?;
    }
    let checksum = out.hasher.finish();
    out.inner.write_all(&checksum.to_le_bytes())
}

/// Seconds since the Unix epoch now (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes the snapshot of `parts` to `path` so that `path` always holds a whole
/// snapshot, the old or the new: into a temporary file in the same directory, synced,
/// renamed over `path`, and the directory synced so that the rename survives a crash.
///
/// # Errors
/// Creating, writing, syncing or renaming failed; the old file is then untouched.
pub fn write_file(path: &Path, router_key: [u8; 16], parts: &[SnapshotPart]) -> io::Result<()> {
    let tmp = sibling(path, &format!("tmp-{}", std::process::id()));
    let result = (|| {
        // Owner only: the file holds the routing key and every peer's address.
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        encode(router_key, unix_now(), parts, &mut writer)?;
        let file = writer.into_inner().map_err(|err| err.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `path` with `.suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(parent_dir(path))?.sync_all()
}

/// Whether the directory `path` would be written in exists.
pub fn directory_exists(path: &Path) -> bool {
    parent_dir(path).is_dir()
}

/// A snapshot read and checked: its header, and records known to be well formed.
#[derive(Debug)]
pub struct SnapshotFile {
    /// The shard router's key when it was taken.
    pub router_key: [u8; 16],
    /// When it was taken, in Unix seconds.
    pub written_at_unix_secs: u64,
    /// Torrent records.
    pub num_torrents: u64,
    /// Peer records.
    pub num_peers: u64,
    /// Archived records.
    pub num_archived: u64,
    bytes: Vec<u8>,
}

/// Where a snapshot's records go when it is read.
pub trait LoadSink {
    /// A torrent and its peers, in the file's order.
    fn torrent(&mut self, torrent: &SavedTorrent);
    /// An archived count.
    fn archived(&mut self, fingerprint: u64, completed: u32);
}

struct Discard;

impl LoadSink for Discard {
    fn torrent(&mut self, _: &SavedTorrent) {}
    fn archived(&mut self, _: u64, _: u32) {}
}

/// Reads `N` bytes at the cursor.
struct Cursor<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Cursor<'a> {
    fn take<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], SnapshotError> {
        let end = self.offset.checked_add(N);
        let slice = end.and_then(|end| self.bytes.get(self.offset..end)).ok_or(
            SnapshotError::Malformed {
                what,
                offset: self.offset,
            },
        )?;
        let mut out = [0; N];
        out.copy_from_slice(slice);
        self.offset += N;
        Ok(out)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, SnapshotError> {
        self.take(what).map(u16::from_le_bytes)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, SnapshotError> {
        self.take(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, SnapshotError> {
        self.take(what).map(u64::from_le_bytes)
    }

    fn malformed(&self, what: &'static str) -> SnapshotError {
        SnapshotError::Malformed {
            what,
            offset: self.offset,
        }
    }
}

impl SnapshotFile {
    /// Checks `bytes` (a whole file): size, magic, version, checksum, then the counts
    /// against the size and every record's shape.
    ///
    /// # Errors
    /// What makes the file unreadable.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, SnapshotError> {
        let len = bytes.len();
        if len < HEADER_BYTES + CHECKSUM_BYTES {
            return Err(SnapshotError::TooShort(len));
        }
        if bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
            return Err(SnapshotError::BadMagic);
        }
        let (content, checksum) = bytes.split_at(len - CHECKSUM_BYTES);
        let mut hasher = SipHasher24::new_with_key(&CHECKSUM_KEY);
        hasher.write(content);
        let mut header = Cursor {
            bytes: content,
            offset: MAGIC.len(),
        };
        let version = header.u16("version")?;
        if version != VERSION {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        if checksum != hasher.finish().to_le_bytes() {
            return Err(SnapshotError::BadChecksum);
        }
        if header.u16("reserved")? != 0 {
            return Err(header.malformed("reserved field not 0"));
        }
        let router_key = header.take::<16>("router key")?;
        let written_at_unix_secs = header.u64("time")?;
        let num_torrents = header.u64("torrent count")?;
        let num_peers = header.u64("peer count")?;
        let num_archived = header.u64("archived count")?;
        // The records the counts promise must fit in the file before any is read.
        let needed = [
            (num_torrents, TORRENT_BYTES),
            (num_peers, MIN_PEER_BYTES),
            (num_archived, ARCHIVED_BYTES),
        ]
        .iter()
        .try_fold(0u64, |total, &(count, size)| {
            count
                .checked_mul(size as u64)
                .and_then(|bytes| total.checked_add(bytes))
        });
        let body = (content.len() - HEADER_BYTES) as u64;
        if needed.is_none_or(|needed| needed > body) {
            return Err(SnapshotError::Malformed {
                what: "header counts larger than the file",
                offset: HEADER_BYTES,
            });
        }
        let snapshot = Self {
            router_key,
            written_at_unix_secs,
            num_torrents,
            num_peers,
            num_archived,
            bytes,
        };
        snapshot.read(&mut Discard)?;
        Ok(snapshot)
    }

    /// Hands every record to `sink`, torrents first.
    ///
    /// # Errors
    /// A record is malformed (never for a snapshot from [`Self::parse`], which read them
    /// all once).
    pub fn read(&self, sink: &mut impl LoadSink) -> Result<(), SnapshotError> {
        let content = self
            .bytes
            .get(..self.bytes.len().saturating_sub(CHECKSUM_BYTES))
            .unwrap_or_default();
        let mut cursor = Cursor {
            bytes: content,
            offset: HEADER_BYTES,
        };
        let mut torrent = SavedTorrent {
            info_hash: InfoHash([0; 20]),
            completed: 0,
            peers: Vec::new(),
        };
        let mut peers_left = self.num_peers;
        for _ in 0..self.num_torrents {
            torrent.info_hash = InfoHash(cursor.take("info hash")?);
            torrent.completed = cursor.u32("completed")?;
            let count = cursor.u32("peer count")?;
            if count == 0 {
                return Err(cursor.malformed("torrent without peers"));
            }
            peers_left = peers_left
                .checked_sub(u64::from(count))
                .ok_or_else(|| cursor.malformed("more peers than the header says"))?;
            torrent.peers.clear();
            for _ in 0..count {
                torrent.peers.push(read_peer(&mut cursor)?);
            }
            sink.torrent(&torrent);
        }
        if peers_left != 0 {
            return Err(cursor.malformed("fewer peers than the header says"));
        }
        for _ in 0..self.num_archived {
            let fingerprint = cursor.u64("fingerprint")?;
            let completed = cursor.u32("archived count")?;
            if completed == 0 {
                return Err(cursor.malformed("archived count of 0"));
            }
            sink.archived(fingerprint, completed);
        }
        if cursor.offset != content.len() {
            return Err(cursor.malformed("bytes after the last record"));
        }
        Ok(())
    }
}

fn read_peer(cursor: &mut Cursor<'_>) -> Result<SavedPeer, SnapshotError> {
    let [flags] = cursor.take("peer flags")?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(cursor.malformed("unknown peer flags"));
    }
    let ip = if flags & FLAG_IPV6 != 0 {
        IpAddr::V6(Ipv6Addr::from(cursor.take::<16>("IPv6 address")?))
    } else {
        IpAddr::V4(Ipv4Addr::from(cursor.take::<4>("IPv4 address")?))
    };
    let port = cursor.u16("port")?;
    let peer_id = PeerId(cursor.take("peer id")?);
    let remaining_secs = cursor.u32("remaining seconds")?;
    if port == 0 || remaining_secs == 0 {
        return Err(cursor.malformed("peer of port 0 or no time left"));
    }
    Ok(SavedPeer {
        ip,
        port,
        peer_id,
        seeder: flags & FLAG_SEEDER != 0,
        completion_counted: flags & FLAG_COUNTED != 0,
        remaining_secs,
    })
}

/// Reads the snapshot at `path` for a start: `None` if there is none or it is unusable.
/// An unusable file is logged and renamed to `<path>.corrupt-<unix time>`, so that the
/// tracker starts empty and the file stays for inspection; one that cannot be read at
/// all (permissions) is logged and left where it is.
pub fn load(path: &Path) -> Option<SnapshotFile> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            log::info!("snapshot {}: none yet, starting empty", path.display());
            return None;
        }
        Err(err) => {
            log::error!(
                "snapshot {}: cannot read it ({err}), starting empty",
                path.display()
            );
            return None;
        }
    };
    match SnapshotFile::parse(bytes) {
        Ok(snapshot) => Some(snapshot),
        Err(err) => {
            let aside = sibling(path, &format!("corrupt-{}", unix_now()));
            match fs::rename(path, &aside) {
                Ok(()) => log::error!(
                    "snapshot {}: {err}; moved to {} and starting empty",
                    path.display(),
                    aside.display()
                ),
                Err(rename_err) => log::error!(
                    "snapshot {}: {err}; could not move it aside ({rename_err}), starting \
                     empty",
                    path.display()
                ),
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::Arc;

    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;
    use crate::swarm::routing::ShardRouter;
    use crate::swarm::{
        AnnounceParams, NoPeerId, StoredPeerId, SwarmBudget, SwarmLimits, SwarmShard,
    };
    use crate::time::SecondsSinceServerStart;
    use crate::types::{AnnounceEvent, ResponsePeer};

    const LIMITS: SwarmLimits = SwarmLimits {
        max_torrents: 1000,
        max_peers: 100_000,
        max_peers_per_torrent: 1000,
        max_peers_per_ip: 1000,
        max_archived_torrents: 1024,
        min_announce_interval_secs: 0,
    };
    const AGE: u32 = 3600;
    const KEY: [u8; 16] = [7; 16];

    /// Everything read back from a snapshot, in a form that ignores record order.
    #[derive(Debug, Default, PartialEq)]
    struct Collected {
        torrents: BTreeMap<[u8; 20], (u32, Vec<String>)>,
        archived: BTreeMap<u64, u32>,
    }

    impl LoadSink for Collected {
        fn torrent(&mut self, torrent: &SavedTorrent) {
            let mut peers: Vec<String> = torrent.peers.iter().map(|p| format!("{p:?}")).collect();
            peers.sort();
            self.torrents
                .insert(torrent.info_hash.0, (torrent.completed, peers));
        }
        fn archived(&mut self, fingerprint: u64, completed: u32) {
            self.archived.insert(fingerprint, completed);
        }
    }

    /// A shard of either kind (the UDP tracker's keeps no peer ids).
    fn shard<D: StoredPeerId>(router: &ShardRouter) -> SwarmShard<D> {
        SwarmShard::with_router(LIMITS, Arc::new(SwarmBudget::new(&LIMITS)), router)
    }

    fn announce<D: StoredPeerId>(
        shard: &mut SwarmShard<D>,
        hash: u8,
        ip: u32,
        left: u64,
        event: AnnounceEvent,
        now: u32,
    ) {
        let params = AnnounceParams {
            info_hash: InfoHash([hash; 20]),
            peer_id: PeerId([ip as u8; 20]),
            port: 6881,
            bytes_left: left,
            event,
            numwant: 0,
        };
        let mut out: Vec<ResponsePeer<Ipv4Addr>> = Vec::new();
        let mut rng = SmallRng::seed_from_u64(1);
        shard.announce_ipv4(
            &params,
            Ipv4Addr::from(ip),
            SecondsSinceServerStart(now),
            &mut rng,
            &mut out,
        );
    }

    /// A shard with seeders, leechers, IPv6, a counted completion and archived counts.
    fn populated<D: StoredPeerId>(router: &ShardRouter) -> SwarmShard<D> {
        let mut s = shard(router);
        for hash in 1..=5u8 {
            for ip in 1..=u32::from(hash) {
                announce(
                    &mut s,
                    hash,
                    ip,
                    u64::from(ip % 2),
                    AnnounceEvent::Started,
                    100 + ip,
                );
            }
        }
        // A leecher that completes: counted, with its flag.
        announce(&mut s, 5, 1, 0, AnnounceEvent::Completed, 200);
        // Torrents 6 and 7 complete and empty: archived counts.
        for hash in [6, 7] {
            announce(&mut s, hash, 9, 1, AnnounceEvent::Started, 100);
            announce(&mut s, hash, 9, 0, AnnounceEvent::Completed, 100);
            announce(&mut s, hash, 9, 0, AnnounceEvent::Stopped, 100);
        }
        let params = AnnounceParams {
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([66; 20]),
            port: 51413,
            bytes_left: 0,
            event: AnnounceEvent::Started,
            numwant: 0,
        };
        let mut out: Vec<ResponsePeer<Ipv6Addr>> = Vec::new();
        s.announce_ipv6(
            &params,
            Ipv6Addr::LOCALHOST,
            SecondsSinceServerStart(300),
            &mut SmallRng::seed_from_u64(2),
            &mut out,
        );
        s
    }

    fn save<D: StoredPeerId>(shards: &[&SwarmShard<D>], now: u32) -> Vec<u8> {
        let parts: Vec<SnapshotPart> = shards
            .iter()
            .map(|s| {
                let mut part = SnapshotPart::new();
                s.save(SecondsSinceServerStart(now), AGE, &mut part);
                part
            })
            .collect();
        let mut bytes = Vec::new();
        encode(KEY, 1_700_000_000, &parts, &mut bytes).unwrap();
        bytes
    }

    fn collect(bytes: Vec<u8>) -> Collected {
        let file = SnapshotFile::parse(bytes).unwrap();
        let mut collected = Collected::default();
        file.read(&mut collected).unwrap();
        collected
    }

    fn restore_into<D: StoredPeerId>(shard: &mut SwarmShard<D>, bytes: Vec<u8>, now: u32) {
        struct Into<'a, D: StoredPeerId>(&'a mut SwarmShard<D>, u32);
        impl<D: StoredPeerId> LoadSink for Into<'_, D> {
            fn torrent(&mut self, t: &SavedTorrent) {
                self.0
                    .restore_torrent(t, SecondsSinceServerStart(self.1), AGE);
            }
            fn archived(&mut self, f: u64, c: u32) {
                self.0.restore_archived(f, c);
            }
        }
        SnapshotFile::parse(bytes)
            .unwrap()
            .read(&mut Into(shard, now))
            .unwrap();
    }

    #[test]
    fn round_trip_keeps_peers_flags_times_and_counts() {
        round_trip::<PeerId>();
        round_trip::<NoPeerId>();
    }

    /// The round trip on a shard of kind `D`; returns the snapshot it made.
    fn round_trip<D: StoredPeerId>() -> Vec<u8> {
        let router = ShardRouter::with_key(KEY, 1);
        let original = populated::<D>(&router);
        let bytes = save(&[&original], 400);
        let file = SnapshotFile::parse(bytes.clone()).unwrap();
        assert_eq!(
            (file.num_torrents, file.num_peers, file.num_archived),
            (5, 16, 2)
        );
        assert_eq!(file.router_key, KEY);
        let saved = collect(bytes.clone());
        let (completed, peers) = &saved.torrents[&[5; 20]];
        assert_eq!(*completed, 1);
        assert!(peers.iter().any(|p| p.contains("completion_counted: true")));
        // Last seen at 101 with an hour to live, saved at 400: 3301 s left.
        assert!(
            saved.torrents[&[1; 20]]
                .1
                .iter()
                .any(|p| p.contains("remaining_secs: 3301"))
        );

        // Restored elsewhere at another time, it saves the same records.
        let mut restored = shard::<D>(&router);
        restore_into(&mut restored, bytes.clone(), 4000);
        assert_eq!(collect(save(&[&restored], 4000)), saved);
        for hash in 1..=7u8 {
            assert_eq!(
                restored.scrape(&InfoHash([hash; 20])),
                original.scrape(&InfoHash([hash; 20]))
            );
        }
        assert_eq!(restored.scrape(&InfoHash([6; 20])).completed, 1);
        // The restored completion flag holds: completing again does not count.
        announce(&mut restored, 5, 1, 1, AnnounceEvent::None, 4001);
        announce(&mut restored, 5, 1, 0, AnnounceEvent::Completed, 4002);
        assert_eq!(restored.scrape(&InfoHash([5; 20])).completed, 1);
        bytes
    }

    /// Every peer of a snapshot with its torrent, by torrent and endpoint.
    fn saved_peers(bytes: Vec<u8>) -> Vec<(InfoHash, SavedPeer)> {
        struct Peers(Vec<(InfoHash, SavedPeer)>);
        impl LoadSink for Peers {
            fn torrent(&mut self, t: &SavedTorrent) {
                self.0.extend(t.peers.iter().map(|p| (t.info_hash, *p)));
            }
            fn archived(&mut self, _: u64, _: u32) {}
        }
        let mut peers = Peers(Vec::new());
        SnapshotFile::parse(bytes)
            .unwrap()
            .read(&mut peers)
            .unwrap();
        peers.0.sort_by_key(|(hash, p)| (hash.0, p.ip, p.port));
        peers.0
    }

    /// A shard that keeps no peer ids (the UDP tracker's) saves zeros for them and
    /// restores from either kind's snapshot; peer ids aside, its records are the other
    /// kind's.
    #[test]
    fn without_peer_ids_saves_zeros_and_restores_either_kind() {
        let zeros = PeerId([0; 20]);
        let kept = saved_peers(round_trip::<PeerId>());
        let bare = saved_peers(round_trip::<NoPeerId>());
        assert_eq!(bare.len(), 16);
        assert!(bare.iter().all(|(_, p)| p.peer_id == zeros));
        assert!(kept.iter().all(|(_, p)| p.peer_id != zeros));
        let zeroed: Vec<_> = kept
            .iter()
            .map(|(hash, p)| {
                (
                    *hash,
                    SavedPeer {
                        peer_id: zeros,
                        ..*p
                    },
                )
            })
            .collect();
        assert_eq!(bare, zeroed);
        let bare_bytes = round_trip::<NoPeerId>();
        // The HTTP kind's snapshot into the UDP kind: the ids are dropped.
        let router = ShardRouter::with_key(KEY, 1);
        let mut udp = shard::<NoPeerId>(&router);
        restore_into(&mut udp, save(&[&populated::<PeerId>(&router)], 400), 400);
        assert_eq!(collect(save(&[&udp], 400)), collect(bare_bytes.clone()));
        // The UDP kind's snapshot into the HTTP kind: zero ids, the rest whole.
        let mut http = shard::<PeerId>(&router);
        restore_into(&mut http, bare_bytes.clone(), 400);
        assert_eq!(collect(save(&[&http], 400)), collect(bare_bytes));
    }

    #[test]
    fn expired_peers_are_not_saved_and_empty_torrents_become_archived() {
        let router = ShardRouter::with_key(KEY, 1);
        let s = populated::<PeerId>(&router);
        // At 101 + AGE, the peers seen at 101 have no time left; torrent 1 keeps its
        // IPv6 peer (seen at 300).
        let saved = collect(save(&[&s], 101 + AGE));
        assert_eq!(saved.torrents[&[1; 20]].1.len(), 1);
        let saved = collect(save(&[&s], 1_000_000));
        assert!(saved.torrents.is_empty());
        // Torrent 5's count goes to the archive with the two that were there.
        assert_eq!(saved.archived.len(), 3);
    }

    #[test]
    fn another_worker_count_routes_every_record_to_its_owner() {
        let two = ShardRouter::with_key(KEY, 2);
        let mut old = [shard::<PeerId>(&two), shard(&two)];
        for hash in 1..=40u8 {
            let owner = two.shard(&InfoHash([hash; 20]));
            announce(&mut old[owner], hash, 1, 1, AnnounceEvent::Started, 10);
            announce(&mut old[owner], hash, 1, 0, AnnounceEvent::Completed, 10);
            if hash % 2 == 0 {
                announce(&mut old[owner], hash, 1, 0, AnnounceEvent::Stopped, 10);
            }
        }
        let bytes = save(&[&old[0], &old[1]], 20);
        let three = ShardRouter::with_key(KEY, 3);
        let mut new = [shard::<PeerId>(&three), shard(&three), shard(&three)];
        struct Route<'a>(&'a mut [SwarmShard; 3], &'a ShardRouter);
        impl LoadSink for Route<'_> {
            fn torrent(&mut self, t: &SavedTorrent) {
                self.0[self.1.shard(&t.info_hash)].restore_torrent(
                    t,
                    SecondsSinceServerStart(20),
                    AGE,
                );
            }
            fn archived(&mut self, f: u64, c: u32) {
                self.0[self.1.shard_of_fingerprint(f)].restore_archived(f, c);
            }
        }
        SnapshotFile::parse(bytes)
            .unwrap()
            .read(&mut Route(&mut new, &three))
            .unwrap();
        for hash in 1..=40u8 {
            let h = InfoHash([hash; 20]);
            let counts = new[three.shard(&h)].scrape(&h);
            assert_eq!(counts.completed, 1, "{hash}");
            assert_eq!(counts.seeders, u32::from(hash % 2), "{hash}");
        }
        let torrents: usize = new.iter().map(SwarmShard::num_torrents).sum();
        assert_eq!(torrents, 20);
    }

    #[test]
    fn restoring_respects_the_limits() {
        let router = ShardRouter::with_key(KEY, 1);
        let bytes = save(&[&populated::<PeerId>(&router)], 400);
        let limits = SwarmLimits {
            max_torrents: 3,
            max_peers: 5,
            max_peers_per_torrent: 2,
            max_peers_per_ip: 1,
            max_archived_torrents: 1024,
            min_announce_interval_secs: 0,
        };
        let budget = Arc::new(SwarmBudget::new(&limits));
        let mut small: SwarmShard = SwarmShard::with_router(limits, budget.clone(), &router);
        restore_into(&mut small, bytes, 400);
        assert!(small.num_torrents() <= 3);
        assert!(small.num_seeders() + small.num_leechers() <= 5);
        assert_eq!(
            budget.num_peers(),
            small.num_seeders() + small.num_leechers()
        );
        assert!(small.num_rejected_by_limits() > 0);
    }

    fn small_file() -> Vec<u8> {
        save(&[&populated::<PeerId>(&ShardRouter::with_key(KEY, 1))], 400)
    }

    #[test]
    fn every_truncation_is_detected() {
        let bytes = small_file();
        for len in 0..bytes.len() {
            assert!(SnapshotFile::parse(bytes[..len].to_vec()).is_err(), "{len}");
        }
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let bytes = small_file();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[i] ^= 1 << bit;
                assert!(SnapshotFile::parse(flipped).is_err(), "byte {i} bit {bit}");
            }
        }
    }

    /// `bytes` with its checksum made right again.
    fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
        let len = bytes.len() - CHECKSUM_BYTES;
        let mut hasher = SipHasher24::new_with_key(&CHECKSUM_KEY);
        hasher.write(&bytes[..len]);
        bytes[len..].copy_from_slice(&hasher.finish().to_le_bytes());
        bytes
    }

    #[test]
    fn wrong_magic_version_and_counts_are_refused() {
        let bytes = small_file();
        let mut magic = bytes.clone();
        magic[0] = b'X';
        assert_eq!(
            SnapshotFile::parse(reseal(magic)).unwrap_err(),
            SnapshotError::BadMagic
        );
        let mut version = bytes.clone();
        version[8..10].copy_from_slice(&2u16.to_le_bytes());
        assert_eq!(
            SnapshotFile::parse(reseal(version)).unwrap_err(),
            SnapshotError::UnsupportedVersion(2)
        );
        // Counts that the file cannot hold are refused before anything is allocated.
        for field in [36, 44, 52] {
            let mut huge = bytes.clone();
            huge[field..field + 8].copy_from_slice(&u64::MAX.to_le_bytes());
            let err = SnapshotFile::parse(reseal(huge)).unwrap_err();
            assert!(matches!(err, SnapshotError::Malformed { .. }), "{err}");
        }
        // Counts that fit but disagree with the records.
        let mut fewer = bytes.clone();
        fewer[44..52].copy_from_slice(&15u64.to_le_bytes());
        assert!(SnapshotFile::parse(reseal(fewer)).is_err());
        assert!(
            SnapshotFile::parse(
                b"not a snapshot at all, just some text that is long enough to be one".to_vec()
            )
            .is_err()
        );
    }

    #[test]
    fn loading_moves_a_bad_file_aside_and_a_missing_one_is_none() {
        let dir = std::env::temp_dir().join(format!("shoal-snapshot-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("swarm.snapshot");
        assert!(load(&path).is_none());
        write_file(&path, KEY, &[SnapshotPart::new()]).unwrap();
        let good = load(&path).unwrap();
        assert_eq!((good.router_key, good.num_torrents), (KEY, 0));
        let mut bytes = fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 1);
        fs::write(&path, &bytes).unwrap();
        assert!(load(&path).is_none());
        assert!(!path.exists());
        let aside: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            aside
                .iter()
                .any(|n| n.starts_with("swarm.snapshot.corrupt-")),
            "{aside:?}"
        );
        assert!(!aside.iter().any(|n| n.contains(".tmp-")), "{aside:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    fn saved_peer() -> impl Strategy<Value = SavedPeer> {
        (
            prop_oneof![
                any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
                any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
            ],
            1..=u16::MAX,
            any::<[u8; 20]>(),
            any::<bool>(),
            any::<bool>(),
            1..=u32::MAX,
        )
            .prop_map(
                |(ip, port, id, seeder, completion_counted, remaining_secs)| SavedPeer {
                    ip,
                    port,
                    peer_id: PeerId(id),
                    seeder,
                    completion_counted,
                    remaining_secs,
                },
            )
    }

    fn saved_torrent() -> impl Strategy<Value = SavedTorrent> {
        (
            any::<[u8; 20]>(),
            any::<u32>(),
            prop::collection::vec(saved_peer(), 1..6),
        )
            .prop_map(|(hash, completed, peers)| SavedTorrent {
                info_hash: InfoHash(hash),
                completed,
                peers,
            })
    }

    proptest! {
        /// Records written through the sink, over any number of parts, read back the same,
        /// in the same order within each kind.
        #[test]
        fn proptest_records_round_trip(
            parts in prop::collection::vec(
                (
                    prop::collection::vec(saved_torrent(), 0..5),
                    prop::collection::vec((any::<u64>(), 1..=u32::MAX), 0..5),
                ),
                1..4,
            ),
            key in any::<[u8; 16]>(),
            written_at in any::<u64>(),
        ) {
            let mut encoded = Vec::new();
            for (torrents, archived) in &parts {
                let mut part = SnapshotPart::new();
                for t in torrents {
                    part.torrent(&t.info_hash, t.completed, t.peers.len() as u32);
                    for p in &t.peers {
                        part.peer(p);
                    }
                }
                for &(f, c) in archived {
                    part.archived(f, c);
                }
                encoded.push(part);
            }
            let mut bytes = Vec::new();
            encode(key, written_at, &encoded, &mut bytes).unwrap();
            let file = SnapshotFile::parse(bytes).unwrap();
            prop_assert_eq!(file.router_key, key);
            prop_assert_eq!(file.written_at_unix_secs, written_at);
            struct All(Vec<SavedTorrent>, Vec<(u64, u32)>);
            impl LoadSink for All {
                fn torrent(&mut self, t: &SavedTorrent) { self.0.push(t.clone()); }
                fn archived(&mut self, f: u64, c: u32) { self.1.push((f, c)); }
            }
            let mut all = All(Vec::new(), Vec::new());
            file.read(&mut all).unwrap();
            let torrents: Vec<SavedTorrent> = parts.iter().flat_map(|(t, _)| t.clone()).collect();
            let archived: Vec<(u64, u32)> = parts.iter().flat_map(|(_, a)| a.clone()).collect();
            prop_assert_eq!(all.0, torrents);
            prop_assert_eq!(all.1, archived);
        }

        /// Arbitrary bytes, with or without a valid header and checksum, never panic.
        #[test]
        fn proptest_arbitrary_bytes_never_panic(
            body in prop::collection::vec(any::<u8>(), 0..400),
            counts in any::<[u8; 24]>(),
        ) {
            let _ = SnapshotFile::parse(body.clone());
            let mut bytes = small_file()[..36].to_vec();
            bytes.extend_from_slice(&counts);
            bytes.extend_from_slice(&body);
            bytes.extend_from_slice(&[0; CHECKSUM_BYTES]);
            let _ = SnapshotFile::parse(reseal(bytes));
        }
    }
}
