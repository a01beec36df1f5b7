//! A resync's chunks: a shard's swarms cut into messages that fit the NATS server's
//! `max_payload`, each a snapshot in the format of [`crate::swarm::snapshot`] (header,
//! records, checksum), so that a chunk is checked and read by the same code as a file.
//!
//! A torrent whose peers do not fit one chunk is cut into several torrent records of
//! the same info hash, in consecutive chunks; merging them one after the other gives
//! the whole torrent. Archived counts are not sent: they are keyed by the sending
//! node's router, which means nothing here, and a torrent's count comes with its
//! peers.

use crate::swarm::saved::{SaveSink, SavedPeer, SavedTorrent};
use crate::swarm::snapshot::{
    self, CHECKSUM_BYTES, HEADER_BYTES, LoadSink, SnapshotError, SnapshotFile, SnapshotPart,
};
use crate::types::InfoHash;

/// Bytes of a torrent record in a snapshot.
const TORRENT_RECORD_BYTES: usize = 28;
/// Bytes of the largest peer record (IPv6).
const MAX_PEER_RECORD_BYTES: usize = 43;

/// A [`SaveSink`] that cuts what a shard saves into snapshots of at most `max_bytes`.
pub struct ChunkSink {
    max_records_bytes: usize,
    chunks: Vec<Vec<u8>>,
    part: SnapshotPart,
    part_bytes: usize,
    /// The torrent being saved: its info hash, completed count, and peers still to come.
    torrent: Option<(InfoHash, u32, u32)>,
    /// Peers of the current torrent record still to come in this chunk.
    record_left: u32,
}

impl ChunkSink {
    /// Chunks of at most `max_bytes` each (at least room for a torrent and one peer).
    pub fn new(max_bytes: usize) -> Self {
        let floor = HEADER_BYTES + CHECKSUM_BYTES + TORRENT_RECORD_BYTES + MAX_PEER_RECORD_BYTES;
        Self {
            max_records_bytes: max_bytes.max(floor) - HEADER_BYTES - CHECKSUM_BYTES,
            chunks: Vec::new(),
            part: SnapshotPart::new(),
            part_bytes: 0,
            torrent: None,
            record_left: 0,
        }
    }

    /// The chunks, each a whole snapshot; none if nothing was saved.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        self.close_chunk();
        self.chunks
    }

    fn close_chunk(&mut self) {
        if self.part_bytes == 0 {
            return;
        }
        let part = std::mem::take(&mut self.part);
        self.part_bytes = 0;
        let mut bytes = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = snapshot::encode([0; 16], snapshot::unix_now(), &[part], &mut bytes);
        self.chunks.push(bytes);
    }

    /// Opens a torrent record for as many of the torrent's remaining peers as fit.
    fn open_record(&mut self) {
        let Some((info_hash, completed, left)) = self.torrent else {
            return;
        };
        let room = |sink: &Self| {
            sink.max_records_bytes
                .saturating_sub(sink.part_bytes + TORRENT_RECORD_BYTES)
                / MAX_PEER_RECORD_BYTES
        };
        if room(self) == 0 {
            self.close_chunk();
        }
        let fits = u32::try_from(room(self)).unwrap_or(u32::MAX).max(1);
        let count = left.min(fits);
        self.part.torrent(&info_hash, completed, count);
        self.part_bytes += TORRENT_RECORD_BYTES;
        self.record_left = count;
    }
}

impl SaveSink for ChunkSink {
    fn torrent(&mut self, info_hash: &InfoHash, completed: u32, num_peers: u32) {
        self.torrent = Some((*info_hash, completed, num_peers));
        self.record_left = 0;
    }

    fn peer(&mut self, peer: &SavedPeer) {
        let Some((_, _, left)) = self.torrent else {
            return;
        };
        if left == 0 {
            return;
        }
        if self.record_left == 0 {
            self.open_record();
        }
        self.part.peer(peer);
        self.part_bytes += MAX_PEER_RECORD_BYTES;
        self.record_left -= 1;
        if let Some((_, _, left)) = &mut self.torrent {
            *left -= 1;
        }
    }

    fn archived(&mut self, _fingerprint: u64, _completed: u32) {}
}

/// Reads a chunk's torrents, each handed to `f`.
///
/// # Errors
/// The chunk is not a readable snapshot.
pub fn read_chunk(bytes: Vec<u8>, f: impl FnMut(SavedTorrent)) -> Result<(), SnapshotError> {
    struct Each<F>(F);
    impl<F: FnMut(SavedTorrent)> LoadSink for Each<F> {
        fn torrent(&mut self, torrent: &SavedTorrent) {
            (self.0)(torrent.clone());
        }
        fn archived(&mut self, _: u64, _: u32) {}
    }
    SnapshotFile::parse(bytes)?.read(&mut Each(f))
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::types::PeerId;

    fn peer(n: u32, v6: bool) -> SavedPeer {
        SavedPeer {
            ip: if v6 {
                IpAddr::V6(Ipv6Addr::from(u128::from(n) + 1))
            } else {
                IpAddr::V4(Ipv4Addr::from(n + 1))
            },
            port: 6881,
            peer_id: PeerId([n as u8; 20]),
            seeder: n.is_multiple_of(2),
            completion_counted: n.is_multiple_of(3),
            remaining_secs: 100 + n,
        }
    }

    /// Saves `torrents` (info hash byte, completed, peers) through a sink of `max_bytes`.
    fn chunk(max_bytes: usize, torrents: &[(u8, u32, u32)]) -> (Vec<Vec<u8>>, Vec<SavedTorrent>) {
        let mut sink = ChunkSink::new(max_bytes);
        let mut expected = Vec::new();
        for &(byte, completed, peers) in torrents {
            let info_hash = InfoHash([byte; 20]);
            sink.torrent(&info_hash, completed, peers);
            sink.archived(7, 9);
            let peers: Vec<_> = (0..peers).map(|n| peer(n, n % 4 == 1)).collect();
            for p in &peers {
                sink.peer(p);
            }
            expected.push(SavedTorrent {
                info_hash,
                completed,
                peers,
            });
        }
        (sink.finish(), expected)
    }

    /// Reads the chunks back, joining consecutive records of one torrent.
    fn read_all(chunks: Vec<Vec<u8>>) -> Vec<SavedTorrent> {
        let mut out: Vec<SavedTorrent> = Vec::new();
        for bytes in chunks {
            read_chunk(bytes, |t| match out.last_mut() {
                Some(last) if last.info_hash == t.info_hash => last.peers.extend(t.peers),
                _ => out.push(t),
            })
            .unwrap();
        }
        out
    }

    #[test]
    fn everything_fits_one_chunk_when_it_is_small() {
        let (chunks, expected) = chunk(1 << 20, &[(1, 5, 3), (2, 0, 10)]);
        assert_eq!(chunks.len(), 1);
        assert_eq!(read_all(chunks), expected);
    }

    #[test]
    fn chunks_stay_under_the_limit_and_a_large_torrent_is_cut() {
        let max = 1024;
        let (chunks, expected) = chunk(max, &[(1, 5, 3), (2, 4, 200), (3, 1, 1), (4, 0, 30)]);
        assert!(chunks.len() > 5, "{} chunks", chunks.len());
        for c in &chunks {
            assert!(c.len() <= max, "a chunk of {} bytes", c.len());
        }
        assert_eq!(read_all(chunks), expected);
    }

    #[test]
    fn nothing_saved_is_no_chunk() {
        let (chunks, _) = chunk(1024, &[]);
        assert!(chunks.is_empty());
    }

    #[test]
    fn a_tiny_limit_still_makes_progress() {
        let (chunks, expected) = chunk(1, &[(1, 5, 4)]);
        assert_eq!(chunks.len(), 4);
        assert_eq!(read_all(chunks), expected);
    }
}
