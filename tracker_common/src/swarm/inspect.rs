//! One torrent as the admin API shows it: its counts and its peers.
//!
//! A read of one torrent, on the request worker that owns it, between two batches of
//! requests: no lock, and no walk over other torrents. The peers listed are bounded by
//! the caller (a torrent may hold a million).

use std::net::IpAddr;

use crate::time::SecondsSinceServerStart;
use crate::types::{InfoHash, PeerId};

use super::rules::Status;
use super::saved::for_each_peer;
use super::{ScrapeCounts, StoredPeerId, SwarmShard};

/// A torrent's counts and (some of) its peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorrentDetail {
    /// Its info hash.
    pub info_hash: InfoHash,
    /// Seeders, leechers and completed downloads, as a scrape answers them.
    pub counts: ScrapeCounts,
    /// Peers stored, all of them (the list may hold fewer).
    pub num_peers: usize,
    /// The peers listed, at most the number asked for, in no particular order.
    pub peers: Vec<PeerDetail>,
}

/// One peer of a [`TorrentDetail`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerDetail {
    /// The address and port it announced from (IP swarms); `None` for a WebTorrent
    /// peer, which is a connection and has none in the swarm.
    pub endpoint: Option<(IpAddr, u16)>,
    /// The peer id it announced last; `None` where the swarm keeps none (the UDP
    /// tracker's, see [`super::NoPeerId`]).
    pub peer_id: Option<PeerId>,
    /// Whether it is a seeder.
    pub seeder: bool,
    /// Seconds since its last announce.
    pub age_secs: u32,
    /// Whether it was heard from another cluster node rather than announced here.
    pub remote: bool,
}

impl TorrentDetail {
    /// A torrent that is not stored: its detail if it has counts (an archived completed
    /// count), `None` if the shard knows nothing of it.
    pub(super) fn not_stored(info_hash: &InfoHash, counts: ScrapeCounts) -> Option<Self> {
        (counts != ScrapeCounts::default()).then(|| Self {
            info_hash: *info_hash,
            counts,
            num_peers: 0,
            peers: Vec::new(),
        })
    }
}

impl<D: StoredPeerId> SwarmShard<D> {
    /// The torrent `info_hash` with at most `max_peers` of its peers; `None` when the
    /// shard knows nothing of it (not stored, and no archived completed count).
    pub fn torrent_detail(
        &self,
        info_hash: &InfoHash,
        now: SecondsSinceServerStart,
        max_peers: usize,
    ) -> Option<TorrentDetail> {
        let counts = self.scrape(info_hash);
        let hash = self.hash(info_hash);
        let Some(torrent) = self.torrents.find(hash, |t| t.info_hash == *info_hash) else {
            return TorrentDetail::not_stored(info_hash, counts);
        };
        let mut peers = Vec::with_capacity(torrent.num_peers().min(max_peers));
        for_each_peer(torrent, &mut |ip, (port, status), peer| {
            if peers.len() < max_peers {
                peers.push(PeerDetail {
                    endpoint: Some((ip, port)),
                    peer_id: peer.peer_id.peer_id(),
                    seeder: status == Status::Seeder,
                    age_secs: now.0.saturating_sub(peer.last_seen.time().0),
                    remote: peer.last_seen.is_remote(),
                });
            }
        });
        Some(TorrentDetail {
            info_hash: *info_hash,
            counts,
            num_peers: torrent.num_peers(),
            peers,
        })
    }
}
