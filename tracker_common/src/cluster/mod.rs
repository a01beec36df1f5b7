//! Several nodes serving as one tracker, over NATS.
//!
//! # Full replication
//! Every node holds every swarm. A request worker records the peer changes of the
//! announces it handled (a peer stored or refreshed, a peer that stopped; see
//! `SwarmShard::record_changes`) and hands them, after each round of requests, to the
//! `cluster` thread over a bounded hand-off ([`ChangeOutbox`]): a worker never waits for
//! the bus, and what does not fit is dropped and counted. The `cluster` thread batches
//! them and publishes every few milliseconds on `shoal.<name>.peers.<node_id>`
//! (the wire format is `tracker_cluster_protocol`'s). It subscribes to
//! `shoal.<name>.peers.*`, routes each other node's changes to the request worker that
//! owns the torrent, and that worker applies them as remote peers
//! (`SwarmShard::apply_remote`), which are never published again. So any node answers
//! any announce from the whole swarm, with no round trip on the announce path.
//!
//! Remote peers expire like local ones: a node that dies stops refreshing its peers,
//! and they leave every other node within `swarm.max_peer_age_secs`. A completion
//! counted where it was announced is counted once on every node, so the `downloaded`
//! counts are the cluster's.
//!
//! # WebTorrent peers
//! WebSocket nodes use subjects of their own, with `ws` after the cluster's name
//! (`shoal.<name>.ws.peers.<node_id>`, ...): WebTorrent swarms and IP swarms never mix,
//! whatever names their nodes share. A WebTorrent peer is reachable only through its
//! WebSocket connection, so the other
//! nodes store it as a peer of its node (`swarm::ws::ConnectionRef::remote`, with the
//! node's number, which this thread gives each node it hears). Its changes carry no
//! address (`PeerChange::WsUpsert`, `PeerChange::WsRemoved`). An offer for a peer of
//! another node, or an answer for an offerer there, is handed to this thread with the
//! node's number ([`ChangeOutbox::send_relays`], bounded by bytes) and published at once
//! on `shoal.<name>.ws.relay.<node_id>`; the node that receives it routes it to the request
//! worker that owns the torrent, which hands it to the peer's connection if the peer is
//! still there (`RequestHandler::relay`). A node not heard for [`bus::NODE_GONE_AFTER`],
//! or heard under a new epoch (restarted), is gone: its peers that live on its
//! connections are dropped (`Shard::forget_node`), since nobody can reach them; IP
//! peers stay, reachable at their addresses, and expire by age.
//!
//! # Catching up
//! A batch is published at least every [`HEARTBEAT`] (empty if nothing changed), with a
//! per-process epoch and a sequence number. A node asks every live node (one heard from
//! lately) for the peers that node heard itself ("resync", on
//! `shoal.<name>.sync.<node_id>`, answered with chunks under the server's `max_payload`,
//! each a snapshot, see [`sync`]) and merges them as remote peers. Asking each node for
//! its own peers, rather than one node for all it holds, keeps a node from getting its
//! own peers back, and anyone's second-hand. (WebTorrent peers, which have no address
//! for a snapshot, come as chunks of changes, before the snapshot chunks that carry the
//! completed counts.) It resyncs:
//! - when it starts, and when it hears a node it had not heard (lately);
//! - when it reconnects to NATS after losing it;
//! - when a node's sequence skips (a batch lost), when NATS calls it a slow consumer,
//!   or when a request worker's channel was full and changes were dropped.
//!
//! Resyncs are at least [`RESYNC_INTERVAL`] apart; one that some node did not answer is
//! tried again after that. A merge adds what is missing and
//! keeps what is there; a peer that stopped while its node's answer was on its way
//! can come back as a remote peer, and then ages out (`swarm.max_peer_age_secs`).
//!
//! # The bus down
//! Announces are answered from the node's own swarms all along; changes are dropped
//! (counted) while the connection is down, the client reconnects by itself, and the
//! node resyncs. `/health` stays 200 and says that the bus is down.

pub mod bus;
pub mod stats;
pub mod sync;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use tracker_cluster_protocol::RelayKind;
use tracker_cluster_protocol::{MAX_CHANGE_BYTES, PeerChange, RELAY_FIXED_BYTES};

use crate::cluster::stats::ClusterStatistics;
use crate::config_section;
use crate::observe::statistics::add;
use crate::runtime::channel::{WeightedReceiver, reserve};
use crate::swarm::saved::SavedTorrent;
use crate::types::{InfoHash, PeerId};

/// The most time between two batches of a node: an empty one if nothing changed.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// The least time between two resyncs of a node.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(5);
/// How long changes wait to be batched before they are published.
pub const PUBLISH_DELAY: Duration = Duration::from_millis(5);
/// The longest node id and cluster name: a NATS subject token.
pub const MAX_NAME_LEN: usize = 64;
/// The least `max_queued_relay_bytes`: a few relays of the largest WebSocket message the
/// config allows (`ws.max_message_bytes`, at most 1 MiB).
pub const MIN_QUEUED_RELAY_BYTES: usize = 4 << 20;

config_section! {
    /// Several nodes serving as one tracker, over a NATS server (or cluster of them).
    pub struct ClusterConfig {
        /// Join the cluster: publish this node's peer changes and apply the others'.
        pub enabled: bool,
        /// The NATS server: "nats://host:4222", with "user:password@" or "token@" before
        /// the host if the server asks; "tls://host:4222" for TLS (see tls_ca_path).
        /// Several servers of one NATS cluster, comma-separated.
        pub nats_url: String,
        /// A NATS credentials file (JWT and NKey seed, as `nsc` writes it); empty: none.
        pub credentials_path: PathBuf,
        /// PEM root certificates to check the NATS server's TLS certificate with; empty:
        /// the system's roots.
        pub tls_ca_path: PathBuf,
        /// The cluster's name, the prefix of its subjects (shoal.NAME.peers.NODE): nodes
        /// with the same name share their swarms. Letters, digits, '-' and '_'.
        pub name: String,
        /// This node's name in the cluster, unique in it; empty: the host name (dots
        /// become '_'). Letters, digits, '-' and '_'.
        pub node_id: String,
        /// The most peer changes waiting for the bus thread; more are dropped (and
        /// counted), so that request workers never wait for the bus.
        pub max_queued_changes: usize,
        /// (WebSocket only.) Bytes of WebRTC offers and answers for peers on other nodes
        /// waiting for the bus thread; more are dropped (and counted), so that request
        /// workers never wait for the bus.
        pub max_queued_relay_bytes: usize,
        /// A peer that re-announces with nothing new (same status and peer id, no
        /// event) is published once per window of this many seconds: the other nodes'
        /// copy is refreshed at least every two windows, and a client announcing faster
        /// than the interval costs the bus one change per window. At most a third of
        /// swarm.max_peer_age_secs, so that a live peer never expires on another node. 0:
        /// every announce is published.
        pub refresh_window_secs: u32,
        /// (UDP only.) A file that only the tracker's user may read (mode 0600), whose
        /// first line is the cluster's connection id secret, 64 hex digits (`openssl rand
        /// -hex 32`), and whose optional second line is another secret also accepted,
        /// during a rotation. Nodes with the same secret accept each other's connection
        /// ids, timed by the wall clock: keep their clocks in step (NTP) within
        /// max_clock_skew_secs, and start them after the clock is synchronized. Read at
        /// start and on SIGUSR1 (a bad file is logged and the secrets in force stay).
        /// Empty: each process makes its own random key, and its ids die with it.
        pub connection_id_secret_path: PathBuf,
        /// (UDP only.) How far apart the nodes' clocks may be, in seconds (0 to 60): a
        /// connection id is accepted that much before and after its lifetime says.
        pub max_clock_skew_secs: u32,
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            nats_url: "nats://127.0.0.1:4222".into(),
            credentials_path: PathBuf::new(),
            tls_ca_path: PathBuf::new(),
            name: "shoal".into(),
            node_id: String::new(),
            max_queued_changes: 65_536,
            max_queued_relay_bytes: 16 << 20,
            refresh_window_secs: 600,
            connection_id_secret_path: PathBuf::new(),
            max_clock_skew_secs: 5,
        }
    }
}

/// Whether `s` can be one token of a NATS subject as this module writes them.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl ClusterConfig {
    /// Checks the section; `connection_ids` says whether the tracker has connection ids
    /// (UDP), whose keys only it reads, and `max_peer_age_secs` is the swarm's.
    ///
    /// # Errors
    /// A bad value, naming its key.
    pub fn validate(&self, connection_ids: bool, max_peer_age_secs: u32) -> anyhow::Result<()> {
        if self.max_clock_skew_secs > 60 {
            anyhow::bail!(
                "cluster.max_clock_skew_secs: must be at most 60 (clocks further apart need \
                 NTP, not a longer id lifetime)"
            );
        }
        if !connection_ids && !self.connection_id_secret_path.as_os_str().is_empty() {
            anyhow::bail!(
                "cluster.connection_id_secret_path: only the UDP tracker has connection ids; \
                 remove the key"
            );
        }
        if !self.enabled {
            return Ok(());
        }
        if !is_token(&self.name) {
            anyhow::bail!(
                "cluster.name: {:?} must be 1 to {MAX_NAME_LEN} letters, digits, '-' or '_'",
                self.name
            );
        }
        if !self.node_id.is_empty() && !is_token(&self.node_id) {
            anyhow::bail!(
                "cluster.node_id: {:?} must be 1 to {MAX_NAME_LEN} letters, digits, '-' or '_'",
                self.node_id
            );
        }
        if self.nats_url.trim().is_empty() {
            anyhow::bail!("cluster.nats_url: must name a NATS server, e.g. nats://127.0.0.1:4222");
        }
        for url in self.nats_url.split(',') {
            let addr = url
                .trim()
                .parse::<async_nats::ServerAddr>()
                .map_err(|err| anyhow::anyhow!("cluster.nats_url: {url:?}: {err}"))?;
            if addr.host().is_empty() {
                anyhow::bail!("cluster.nats_url: {url:?} names no host");
            }
            if addr.is_websocket() {
                anyhow::bail!(
                    "cluster.nats_url: {url:?}: NATS over WebSocket is not supported; use \
                     nats:// or tls://"
                );
            }
        }
        if self.max_queued_changes == 0 {
            anyhow::bail!("cluster.max_queued_changes: must be at least 1");
        }
        if self.max_queued_relay_bytes < MIN_QUEUED_RELAY_BYTES {
            anyhow::bail!(
                "cluster.max_queued_relay_bytes: must be at least {MIN_QUEUED_RELAY_BYTES} \
                 (an offer or answer of the largest WebSocket message must fit)"
            );
        }
        if self.refresh_window_secs > max_peer_age_secs / 3 {
            anyhow::bail!(
                "cluster.refresh_window_secs: must be at most a third of \
                 swarm.max_peer_age_secs ({}), or a peer that announces could expire on \
                 the other nodes",
                max_peer_age_secs / 3
            );
        }
        Ok(())
    }

    /// The node id: the configured one, or the host name made a subject token.
    ///
    /// # Errors
    /// No node id is set and the host name cannot be read or made one.
    pub fn resolved_node_id(&self) -> anyhow::Result<String> {
        if !self.node_id.is_empty() {
            return Ok(self.node_id.clone());
        }
        let host = nix::unistd::gethostname()
            .map_err(|err| anyhow::anyhow!("cluster.node_id: empty, and no host name: {err}"))?;
        let id: String = host
            .to_string_lossy()
            .chars()
            .map(|c| if c == '.' { '_' } else { c })
            .collect();
        anyhow::ensure!(
            is_token(&id),
            "cluster.node_id: empty, and the host name {id:?} is not 1 to {MAX_NAME_LEN} \
             letters, digits, '-' or '_': set node_id"
        );
        Ok(id)
    }
}

/// A WebRTC offer or answer on its way between a WebTorrent peer of one node and a peer
/// of another (see [`crate::cluster`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterRelay {
    /// An offer or an answer.
    pub kind: RelayKind,
    /// The torrent.
    pub info_hash: InfoHash,
    /// The peer it is for.
    pub to: PeerId,
    /// The peer that sent it.
    pub from: PeerId,
    /// The offer's id, as its offerer chose it.
    pub offer_id: [u8; 20],
    /// The session description, the JSON text the client sent.
    pub sdp: Box<str>,
}

impl ClusterRelay {
    /// Bytes it takes on the wire, and its weight in the hand-off.
    pub fn weight(&self) -> usize {
        RELAY_FIXED_BYTES + self.sdp.len()
    }
}

/// A resync's answer from one request worker: snapshot chunks of its IP peers and
/// completed counts, and change batches of its peers without addresses (WebTorrent).
#[derive(Debug, Default)]
pub struct ResyncChunks {
    /// Chunks in the snapshot format ([`sync`]).
    pub snapshots: Vec<Vec<u8>>,
    /// Change batches (`tracker_cluster_protocol`).
    pub changes: Vec<Vec<u8>>,
}

/// What the `cluster` thread asks of a request worker.
#[derive(Debug)]
pub enum ShardMessage {
    /// Another node's changes to the worker's torrents, to apply.
    Changes {
        /// The node, as the `cluster` thread numbers the nodes it hears.
        node: u32,
        /// The changes.
        changes: Vec<PeerChange>,
    },
    /// Torrents of a resync, to merge.
    Merge(Vec<SavedTorrent>),
    /// Save the shard's own peers (not other nodes') as resync chunks of at most
    /// `max_bytes` each, for another node.
    Save {
        /// The largest chunk.
        max_bytes: usize,
        /// Where the chunks go.
        reply: tokio::sync::oneshot::Sender<ResyncChunks>,
    },
    /// Offers and answers from other nodes for WebTorrent peers of the worker's
    /// torrents, to hand to their connections.
    Relays(Vec<ClusterRelay>),
    /// The node of this number is gone (not heard for a while, or restarted): the
    /// peers that live on its connections go.
    NodeGone(u32),
}

impl ShardMessage {
    /// Its weight in the worker's channel: changes or torrents carried, offers and
    /// answers as the changes their bytes would make.
    pub fn weight(&self) -> usize {
        match self {
            Self::Changes { changes, .. } => changes.len().max(1),
            Self::Merge(torrents) => torrents.iter().map(|t| t.peers.len().max(1)).sum(),
            Self::Save { .. } | Self::NodeGone(_) => 1,
            Self::Relays(relays) => relays
                .iter()
                .map(|relay| relay.weight().div_ceil(MAX_CHANGE_BYTES))
                .sum::<usize>()
                .max(1),
        }
    }
}

/// What a request worker hands the `cluster` thread.
#[derive(Debug)]
pub enum Handoff {
    /// Its peer changes, to publish.
    Changes(Vec<PeerChange>),
    /// Offers and answers for peers of other nodes, each with its node's number.
    Relays(Vec<(u32, ClusterRelay)>),
}

/// A request worker's end of the hand-off to the `cluster` thread: bounded over all
/// workers (by changes, and by bytes of offers and answers), never waiting.
#[derive(Clone, Debug)]
pub struct ChangeOutbox {
    sender: tokio::sync::mpsc::UnboundedSender<Handoff>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    relay_bytes_queued: Arc<AtomicUsize>,
    relay_bytes_capacity: usize,
    statistics: Arc<ClusterStatistics>,
}

impl ChangeOutbox {
    /// Hands `changes` over, or drops and counts them if that would queue more than the
    /// capacity (or the thread is gone).
    pub fn send(&self, changes: Vec<PeerChange>) {
        let n = changes.len();
        if n == 0 {
            return;
        }
        if !reserve(&self.queued, n, self.capacity) {
            add(&self.statistics.changes_dropped_outgoing, n as u64);
            return;
        }
        if self.sender.send(Handoff::Changes(changes)).is_err() {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            add(&self.statistics.changes_dropped_outgoing, n as u64);
        }
    }

    /// Hands `relays` over, or drops and counts them if their bytes would take the
    /// queue past its capacity (or the thread is gone).
    pub fn send_relays(&self, relays: Vec<(u32, ClusterRelay)>) {
        let n = relays.len() as u64;
        if n == 0 {
            return;
        }
        let bytes = relay_bytes(&relays);
        if !reserve(&self.relay_bytes_queued, bytes, self.relay_bytes_capacity) {
            add(&self.statistics.relays_dropped_outgoing, n);
            return;
        }
        if self.sender.send(Handoff::Relays(relays)).is_err() {
            self.relay_bytes_queued.fetch_sub(bytes, Ordering::AcqRel);
            add(&self.statistics.relays_dropped_outgoing, n);
        }
    }
}

/// The bytes of `relays` on the wire.
fn relay_bytes(relays: &[(u32, ClusterRelay)]) -> usize {
    relays.iter().map(|(_, relay)| relay.weight()).sum()
}

/// The `cluster` thread's end of the hand-off.
#[derive(Debug)]
pub struct ChangeInbox {
    receiver: tokio::sync::mpsc::UnboundedReceiver<Handoff>,
    queued: Arc<AtomicUsize>,
    relay_bytes_queued: Arc<AtomicUsize>,
}

impl ChangeInbox {
    /// The next hand-off; `None` once every outbox is gone.
    pub async fn recv(&mut self) -> Option<Handoff> {
        let handoff = self.receiver.recv().await?;
        match &handoff {
            Handoff::Changes(changes) => {
                self.queued.fetch_sub(changes.len(), Ordering::AcqRel);
            }
            Handoff::Relays(relays) => {
                self.relay_bytes_queued
                    .fetch_sub(relay_bytes(relays), Ordering::AcqRel);
            }
        }
        Some(handoff)
    }
}

/// A hand-off of at most `capacity` changes and `relay_bytes_capacity` bytes of relays
/// queued.
pub fn change_channel(
    capacity: usize,
    relay_bytes_capacity: usize,
    statistics: Arc<ClusterStatistics>,
) -> (ChangeOutbox, ChangeInbox) {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let relay_bytes_queued = Arc::new(AtomicUsize::new(0));
    (
        ChangeOutbox {
            sender,
            queued: queued.clone(),
            capacity,
            relay_bytes_queued: relay_bytes_queued.clone(),
            relay_bytes_capacity,
            statistics,
        },
        ChangeInbox {
            receiver,
            queued,
            relay_bytes_queued,
        },
    )
}

/// What a request worker of a cluster node has: its shard's messages from the
/// `cluster` thread and the hand-off of its own changes.
pub struct ClusterDuty {
    /// Other nodes' changes, resync merges and save requests for this worker's shard.
    pub incoming: WeightedReceiver<ShardMessage>,
    /// This worker's changes, to publish.
    pub outgoing: ChangeOutbox,
    /// The counters.
    pub statistics: Arc<ClusterStatistics>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_subject_tokens() {
        let valid = ClusterConfig {
            enabled: true,
            node_id: "node-1_a".into(),
            ..ClusterConfig::default()
        };
        valid.validate(true, 3600).unwrap();
        for (name, node_id, key) in [
            ("a.b", "n", "cluster.name"),
            ("", "n", "cluster.name"),
            ("a", "n.1", "cluster.node_id"),
            ("a", "n*", "cluster.node_id"),
            ("a", "n>", "cluster.node_id"),
        ] {
            let config = ClusterConfig {
                name: name.into(),
                node_id: node_id.into(),
                ..valid.clone()
            };
            let err = config.validate(true, 3600).unwrap_err().to_string();
            assert!(err.starts_with(key), "{name:?} {node_id:?}: {err}");
        }
    }

    #[test]
    fn a_bad_url_or_a_secret_for_a_tracker_without_ids_is_refused() {
        let config = ClusterConfig {
            enabled: true,
            ..ClusterConfig::default()
        };
        for url in [
            "nats://",
            "nats://host:port",
            "ws://127.0.0.1:80",
            "",
            "a, nats://",
        ] {
            let config = ClusterConfig {
                nats_url: url.into(),
                ..config.clone()
            };
            let err = config.validate(true, 3600).unwrap_err().to_string();
            assert!(err.starts_with("cluster.nats_url"), "{url:?}: {err}");
        }
        for url in [
            "nats://10.0.0.1:4222",
            "tls://user:pw@host:4443,host2",
            "127.0.0.1",
        ] {
            let config = ClusterConfig {
                nats_url: url.into(),
                ..config.clone()
            };
            config.validate(true, 3600).unwrap();
        }
        let config = ClusterConfig {
            connection_id_secret_path: "/etc/shoal/secret".into(),
            ..ClusterConfig::default()
        };
        let err = config.validate(false, 3600).unwrap_err().to_string();
        assert!(
            err.starts_with("cluster.connection_id_secret_path"),
            "{err}"
        );
        config.validate(true, 3600).unwrap();
    }

    #[test]
    fn the_outbox_never_queues_more_than_its_capacity() {
        let stats = Arc::new(ClusterStatistics::default());
        let (outbox, mut inbox) = change_channel(3, 1000, stats.clone());
        let change = || PeerChange::Removed {
            info_hash: crate::types::InfoHash([1; 20]),
            ip: std::net::Ipv4Addr::LOCALHOST.into(),
            port: 1,
        };
        outbox.send(vec![change(), change()]);
        outbox.send(vec![change(), change()]);
        outbox.send(vec![change()]);
        assert_eq!(stats.changes_dropped_outgoing.load(Ordering::Relaxed), 2);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(matches!(rt.block_on(inbox.recv()), Some(Handoff::Changes(c)) if c.len() == 2));
        outbox.send(vec![change(), change()]);
        assert_eq!(stats.changes_dropped_outgoing.load(Ordering::Relaxed), 2);
    }

    /// Relays are bounded by their bytes on the wire, over all outboxes: what would take
    /// the queue past the capacity is dropped and counted, and room comes back as the
    /// bus thread takes them.
    #[test]
    fn the_outbox_never_queues_more_relay_bytes_than_its_capacity() {
        let stats = Arc::new(ClusterStatistics::default());
        let relay = |sdp_bytes: usize| ClusterRelay {
            kind: RelayKind::Offer,
            info_hash: InfoHash([1; 20]),
            to: PeerId([2; 20]),
            from: PeerId([3; 20]),
            offer_id: [4; 20],
            sdp: "x".repeat(sdp_bytes).into(),
        };
        // Room for exactly two relays of 115 bytes on the wire.
        let (outbox, mut inbox) = change_channel(10, 2 * (RELAY_FIXED_BYTES + 30), stats.clone());
        let other = outbox.clone();
        outbox.send_relays(vec![(0, relay(30))]);
        other.send_relays(vec![(1, relay(30)), (1, relay(0))]);
        other.send_relays(vec![(1, relay(30))]);
        outbox.send_relays(vec![(0, relay(31))]);
        assert_eq!(stats.relays_dropped_outgoing.load(Ordering::Relaxed), 3);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(matches!(rt.block_on(inbox.recv()), Some(Handoff::Relays(r)) if r.len() == 1));
        outbox.send_relays(vec![(0, relay(31))]);
        assert_eq!(stats.relays_dropped_outgoing.load(Ordering::Relaxed), 4);
        outbox.send_relays(vec![(0, relay(30))]);
        assert_eq!(stats.relays_dropped_outgoing.load(Ordering::Relaxed), 4);
    }
}
