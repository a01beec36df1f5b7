//! The `cluster` thread: the NATS connection, on a current-thread tokio runtime of its
//! own (see the module doc of [`crate::cluster`] for what it publishes and applies).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, Event, ServerAddr};
use futures_util::{FutureExt, StreamExt};
use tracker_cluster_protocol::{
    BatchHeader, BatchWriter, MAX_CHANGE_BYTES, PeerChange, Relay, RelayWriter, decode_relays,
};

use crate::cluster::stats::ClusterStatistics;
use crate::cluster::sync::read_chunk;
use crate::cluster::{
    ChangeInbox, ClusterConfig, ClusterRelay, HEARTBEAT, Handoff, PUBLISH_DELAY, RESYNC_INTERVAL,
    ShardMessage,
};
use crate::observe::statistics::{RateLimitedWarning, add};
use crate::runtime::channel::{TrySendError, WeightedSender, reserve};
use crate::runtime::supervisor::ShutdownFlag;
use crate::swarm::routing::ShardRouter;
use crate::swarm::saved::SavedTorrent;

/// The largest batch of changes published, whatever the server allows: small batches
/// spread the work of the receiving nodes.
const MAX_BATCH_BYTES: usize = 64 * 1024;
/// The largest resync chunk, whatever the server allows.
const MAX_CHUNK_BYTES: usize = 1 << 20;
/// Room kept in a message for what the NATS protocol adds (subject, headers).
const PAYLOAD_MARGIN: usize = 1024;
/// Messages the client holds for a subscription this thread has not read yet.
const SUBSCRIPTION_CAPACITY: usize = 1024;
/// A node not heard for this long is not asked for a resync.
const LIVE_FOR: Duration = Duration::from_secs(3);
/// A node not heard for this long is gone: forgotten (heard again, it is new, and this
/// node resyncs from it), and the peers that live on its connections (WebTorrent peers,
/// reachable only through it) are dropped.
pub const NODE_GONE_AFTER: Duration = Duration::from_secs(10);
/// Other nodes tracked at most (a bus shared by a misconfigured fleet cannot grow the
/// table without bound).
const MAX_NODES: usize = 4096;
/// How long a resync waits for the next chunk, or a worker for room in its channel.
const RESYNC_STEP_TIMEOUT: Duration = Duration::from_secs(15);
/// Resync requests of other nodes waiting to be answered, at most: each node has at most
/// one resync running, so more is a node that misbehaves.
const MAX_WAITING_RESYNC_REQUESTS: usize = 64;
/// A resync chunk message: the first byte says which kind, the next four its index.
const CHUNK: u8 = 1;
/// The message after the last chunk; its index is the number of chunks.
const CHUNKS_END: u8 = 2;
/// A resync chunk of peer changes (peers without addresses: WebTorrent), in the
/// change batch format.
const CHUNK_CHANGES: u8 = 3;

/// Everything the `cluster` thread owns.
pub struct Bus {
    /// The `[cluster]` section.
    pub config: ClusterConfig,
    /// This node's id.
    pub node_id: String,
    /// The counters.
    pub statistics: Arc<ClusterStatistics>,
    /// Which request worker owns which torrent.
    pub router: ShardRouter,
    /// To each request worker, by index.
    pub workers: Vec<WeightedSender<ShardMessage>>,
    /// The request workers' changes.
    pub inbox: ChangeInbox,
    /// Set when the tracker stops.
    pub shutdown: ShutdownFlag,
    /// The connection's options, made at start (they read the credentials file).
    pub options: Option<ConnectOptions>,
    /// The kind of swarms, a subject token after the cluster's name ("ws" for
    /// WebTorrent swarms), so that nodes of two kinds on one NATS server under one name
    /// never mix theirs; empty for IP swarms.
    pub swarm_kind: &'static str,
}

/// The connection options of `config`: no echo of our own messages, reconnecting for
/// ever, credentials and TLS roots as configured.
///
/// # Errors
/// The credentials file cannot be read.
pub fn connect_options(config: &ClusterConfig, node_id: &str) -> anyhow::Result<ConnectOptions> {
    let mut options = if config.credentials_path.as_os_str().is_empty() {
        ConnectOptions::new()
    } else {
        let creds = std::fs::read_to_string(&config.credentials_path).with_context(|| {
            format!(
                "cluster.credentials_path: cannot read {}",
                config.credentials_path.display()
            )
        })?;
        ConnectOptions::with_credentials(&creds).with_context(|| {
            format!(
                "cluster.credentials_path: {} is not a NATS credentials file",
                config.credentials_path.display()
            )
        })?
    };
    if !config.tls_ca_path.as_os_str().is_empty() {
        anyhow::ensure!(
            config.tls_ca_path.is_file(),
            "cluster.tls_ca_path: {} is not a file",
            config.tls_ca_path.display()
        );
        options = options
            .add_root_certificates(config.tls_ca_path.clone())
            .require_tls(true);
    }
    // The client reads no credentials from the URL: they are taken from it here.
    for url in config.nats_url.split(',') {
        let Ok(addr) = url.trim().parse::<ServerAddr>() else {
            continue;
        };
        match (addr.username(), addr.password()) {
            (Some(user), Some(password)) => {
                options = options.user_and_password(user.to_owned(), password.to_owned());
                break;
            }
            (Some(token), None) if !token.is_empty() => {
                options = options.token(token.to_owned());
                break;
            }
            _ => {}
        }
    }
    Ok(options
        .name(format!("shoal {node_id}"))
        .no_echo()
        .retry_on_initial_connect()
        // Messages waiting in the client for this thread, per subscription: about five
        // seconds of one busy node's batches. Past it the client drops them and reports
        // a slow consumer, and the node resyncs, instead of holding what the other
        // nodes publish without bound.
        .subscription_capacity(SUBSCRIPTION_CAPACITY)
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2)))
}

/// `urls` with any "user:password@" or "token@" left out, for the log.
fn redacted(urls: &str) -> String {
    urls.split(',')
        .map(|url| {
            let url = url.trim();
            match (url.split_once("://"), url.rsplit_once('@')) {
                (Some((scheme, _)), Some((_, host))) => format!("{scheme}://{host}"),
                (None, Some((_, host))) => host.to_owned(),
                _ => url.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Unix time in milliseconds (0 before the epoch).
fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The numbers this thread gives the nodes it hears, in the order it hears them: a
/// node's number names it to the request workers (a WebTorrent peer of another node is
/// stored with its node's number) and never changes while the process runs. At most
/// [`MAX_NODES`].
#[derive(Default)]
struct NodeNames {
    numbers: HashMap<String, u32>,
    names: Vec<String>,
}

impl NodeNames {
    /// The number of node `name`, given now if it has none; `None` once [`MAX_NODES`]
    /// have numbers.
    fn number(&mut self, name: &str) -> Option<u32> {
        if let Some(number) = self.numbers.get(name) {
            return Some(*number);
        }
        if self.names.len() >= MAX_NODES {
            return None;
        }
        let number = u32::try_from(self.names.len()).ok()?;
        self.numbers.insert(name.to_owned(), number);
        self.names.push(name.to_owned());
        Some(number)
    }

    /// The name of node `number`.
    fn name(&self, number: u32) -> Option<&str> {
        self.names
            .get(usize::try_from(number).ok()?)
            .map(String::as_str)
    }
}

/// What this node knows of another.
struct NodeState {
    number: u32,
    epoch: u64,
    next_sequence: u64,
    last_heard: Instant,
}

/// The batch being filled.
struct Outgoing {
    /// Changes waiting, at most a batch's worth.
    pending: Vec<PeerChange>,
    /// When the first of them came.
    since: Instant,
    epoch: u64,
    sequence: u64,
    last_published: Instant,
}

impl Bus {
    /// Runs until shutdown.
    ///
    /// # Errors
    /// The runtime could not be made.
    pub fn run(self) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cluster: tokio runtime")?;
        runtime.block_on(self.main())
    }

    fn subject(&self, kind: &str, node: &str) -> String {
        if self.swarm_kind.is_empty() {
            format!("shoal.{}.{kind}.{node}", self.config.name)
        } else {
            format!(
                "shoal.{}.{}.{kind}.{node}",
                self.config.name, self.swarm_kind
            )
        }
    }

    async fn main(mut self) -> anyhow::Result<()> {
        let (events_sender, mut events) = tokio::sync::mpsc::unbounded_channel();
        let options = self
            .options
            .take()
            .unwrap_or_default()
            .event_callback(move |event| {
                let sender = events_sender.clone();
                async move {
                    let _ = sender.send(event);
                }
            });
        let addrs: Vec<ServerAddr> = self
            .config
            .nats_url
            .split(',')
            .filter_map(|url| url.trim().parse().ok())
            .collect();
        let client = options
            .connect(addrs)
            .await
            .context("cluster: NATS client")?;
        let mut peers = client
            .subscribe(self.subject("peers", "*"))
            .await
            .context("cluster: subscribe")?;
        let mut sync_requests = client
            .subscribe(self.subject("sync", &self.node_id))
            .await
            .context("cluster: subscribe")?;
        let mut relays = client
            .subscribe(self.subject("relay", &self.node_id))
            .await
            .context("cluster: subscribe")?;
        log::info!(
            "cluster {}: node {} on {}",
            self.config.name,
            self.node_id,
            redacted(&self.config.nats_url)
        );

        let start = Instant::now();
        let mut out = Outgoing {
            pending: Vec::new(),
            since: start,
            epoch: rand::Rng::random(
                &mut <rand::rngs::SmallRng as rand::SeedableRng>::from_os_rng(),
            ),
            sequence: 0,
            last_published: start,
        };
        let mut nodes: HashMap<String, NodeState> = HashMap::new();
        let mut names = NodeNames::default();
        // The first resync, once the other nodes have had a heartbeat to show themselves.
        let mut resync_due: Option<Instant> = Some(start + HEARTBEAT + HEARTBEAT / 2);
        let mut last_resync: Option<Instant> = None;
        let resyncing = Arc::new(AtomicBool::new(false));
        // Set by a resync that some node failed to answer: it is tried again (all
        // nodes), RESYNC_INTERVAL after the last.
        let resync_failed = Arc::new(AtomicBool::new(false));
        // Resync requests of other nodes being answered or waiting to be.
        let serving_requests = Arc::new(AtomicUsize::new(0));
        let serving = Arc::new(tokio::sync::Mutex::new(()));
        let mut disconnected = false;
        let mut tick = tokio::time::interval(PUBLISH_DELAY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut bad_batch_warning = RateLimitedWarning::new(Duration::from_secs(10));
        let mut event_warning = RateLimitedWarning::new(Duration::from_secs(10));

        loop {
            tokio::select! {
                Some(handoff) = self.inbox.recv() => match handoff {
                    Handoff::Changes(changes) => {
                        self.add_changes(&client, &mut out, &changes).await;
                    }
                    Handoff::Relays(outgoing) => {
                        // The changes first: an offer's target answers it through its
                        // own node, which must know the offerer by then (NATS keeps one
                        // connection's messages in order).
                        if !out.pending.is_empty() {
                            self.publish(&client, &mut out).await;
                        }
                        self.publish_relays(&client, &names, outgoing).await;
                    }
                },
                Some(message) = peers.next() => {
                    let want = self.on_batch(
                        &message,
                        (&mut nodes, &mut names),
                        &mut bad_batch_warning,
                    );
                    if want {
                        resync_due.get_or_insert_with(Instant::now);
                    }
                }
                Some(message) = relays.next() => {
                    // The batches that came before it first (the offerer of an offer
                    // must be known here when its answer comes back).
                    while let Some(Some(batch)) = peers.next().now_or_never() {
                        if self.on_batch(&batch, (&mut nodes, &mut names), &mut bad_batch_warning) {
                            resync_due.get_or_insert_with(Instant::now);
                        }
                    }
                    self.on_relays(&message.payload, &mut bad_batch_warning);
                }
                Some(message) = sync_requests.next() => {
                    // Answered one at a time; a node asks again after a while, so more
                    // waiting than there could be nodes is a misbehaving one, dropped.
                    let Some(reply) = message.reply else {
                        continue;
                    };
                    if !reserve(&serving_requests, 1, MAX_WAITING_RESYNC_REQUESTS) {
                        add(&self.statistics.resyncs_refused, 1);
                        continue;
                    }
                    let waiting = serving_requests.clone();
                    let serving = serving.clone();
                    let client = client.clone();
                    let workers = self.workers.clone();
                    let statistics = self.statistics.clone();
                    tokio::spawn(async move {
                        let _one_at_a_time = serving.lock().await;
                        if let Err(err) = serve_resync(&client, reply.to_string(), &workers).await {
                            log::warn!("cluster: answering a resync failed: {err:#}");
                        } else {
                            add(&statistics.resyncs_served, 1);
                        }
                        waiting.fetch_sub(1, Ordering::AcqRel);
                    });
                }
                Some(event) = events.recv() => {
                    match event {
                        Event::Connected => {
                            self.statistics.bus_up.store(true, Ordering::Relaxed);
                            log::info!("cluster: connected to NATS");
                            if disconnected {
                                disconnected = false;
                                resync_due = Some(Instant::now() + HEARTBEAT + HEARTBEAT / 2);
                            }
                        }
                        Event::Disconnected => {
                            disconnected = true;
                            self.statistics.bus_up.store(false, Ordering::Relaxed);
                            log::warn!(
                                "cluster: lost NATS; serving this node's swarms, reconnecting"
                            );
                        }
                        Event::SlowConsumer(_) => {
                            add(&self.statistics.slow_consumer, 1);
                            resync_due.get_or_insert_with(Instant::now);
                        }
                        other => {
                            if let Some(more) = event_warning.check(Instant::now()) {
                                log::warn!("cluster: NATS: {other} (and {more} more events)");
                            }
                        }
                    }
                }
                _ = tick.tick() => {
                    if self.shutdown.is_set() {
                        self.publish(&client, &mut out).await;
                        let _ = tokio::time::timeout(Duration::from_secs(1), client.flush()).await;
                        return Ok(());
                    }
                    let now = Instant::now();
                    if !out.pending.is_empty() && now.duration_since(out.since) >= PUBLISH_DELAY
                        || now.duration_since(out.last_published) >= HEARTBEAT
                    {
                        self.publish(&client, &mut out).await;
                    }
                    let gone: Vec<(String, u32)> = nodes
                        .iter()
                        .filter(|(_, node)| now.duration_since(node.last_heard) >= NODE_GONE_AFTER)
                        .map(|(id, node)| (id.clone(), node.number))
                        .collect();
                    for (id, number) in gone {
                        nodes.remove(&id);
                        log::warn!(
                            "cluster: node {id} not heard for {} s: gone, its connections' \
                             peers are dropped here",
                            NODE_GONE_AFTER.as_secs()
                        );
                        self.forget_node(number);
                    }
                    let live: Vec<&String> = nodes
                        .iter()
                        .filter(|(_, node)| now.duration_since(node.last_heard) < LIVE_FOR)
                        .map(|(id, _)| id)
                        .collect();
                    self.statistics.live_nodes.store(live.len() as u64, Ordering::Relaxed);
                    if resync_failed.swap(false, Ordering::AcqRel) {
                        resync_due.get_or_insert(now);
                    }
                    let due = resync_due.is_some_and(|due| now >= due)
                        && last_resync.is_none_or(|last| now.duration_since(last) >= RESYNC_INTERVAL)
                        && !resyncing.load(Ordering::Acquire)
                        && client.connection_state() == State::Connected;
                    if due {
                        resync_due = None;
                        // Every live node sends the peers it heard itself.
                        let mut targets: Vec<(String, u32)> = nodes
                            .iter()
                            .filter(|(_, node)| now.duration_since(node.last_heard) < LIVE_FOR)
                            .map(|(id, node)| (id.clone(), node.number))
                            .collect();
                        targets.sort();
                        if !targets.is_empty() {
                            last_resync = Some(now);
                            resyncing.store(true, Ordering::Release);
                            add(&self.statistics.resyncs, 1);
                            let task = Resync {
                                client: client.clone(),
                                targets: targets
                                    .into_iter()
                                    .map(|(node, number)| {
                                        let subject = self.subject("sync", &node);
                                        (node, number, subject)
                                    })
                                    .collect(),
                                workers: self.workers.clone(),
                                router: self.router.clone(),
                                statistics: self.statistics.clone(),
                                running: resyncing.clone(),
                                failed: resync_failed.clone(),
                            };
                            tokio::spawn(task.run());
                        }
                    }
                }
            }
        }
    }

    /// Adds `changes` to the batch being filled, publishing it whenever it is full.
    async fn add_changes(&self, client: &Client, out: &mut Outgoing, changes: &[PeerChange]) {
        let server_max = client.server_info().max_payload;
        let max_changes = if server_max > PAYLOAD_MARGIN + MAX_CHANGE_BYTES {
            MAX_BATCH_BYTES.min(server_max - PAYLOAD_MARGIN)
        } else {
            MAX_BATCH_BYTES
        } / MAX_CHANGE_BYTES;
        for change in changes {
            if out.pending.len() >= max_changes {
                self.publish(client, out).await;
            }
            if out.pending.is_empty() {
                out.since = Instant::now();
            }
            out.pending.push(*change);
        }
    }

    /// Publishes the batch being filled, or an empty one (a heartbeat). While the
    /// connection is down the batch is dropped and counted: the client would only queue
    /// it, and the other nodes resync once it is back.
    async fn publish(&self, client: &Client, out: &mut Outgoing) {
        let header = BatchHeader {
            epoch: out.epoch,
            sequence: out.sequence,
            sent_unix_millis: unix_millis(),
        };
        let mut writer = BatchWriter::new(&header);
        for change in &out.pending {
            writer.push(change);
        }
        let count = out.pending.len() as u64;
        out.pending.clear();
        out.sequence = out.sequence.wrapping_add(1);
        out.last_published = Instant::now();
        if client.connection_state() != State::Connected {
            add(&self.statistics.changes_dropped_outgoing, count);
            return;
        }
        let bytes = writer.finish();
        let len = bytes.len() as u64;
        match client
            .publish(self.subject("peers", &self.node_id), bytes.into())
            .await
        {
            Ok(()) => {
                add(&self.statistics.batches_published, 1);
                add(&self.statistics.changes_published, count);
                add(&self.statistics.bytes_published, len);
            }
            Err(err) => {
                add(&self.statistics.changes_dropped_outgoing, count);
                log::debug!("cluster: publish: {err}");
            }
        }
    }

    /// Reads another node's batch and hands its changes to the request workers; returns
    /// whether this node should resync (a batch was lost, or changes were dropped).
    fn on_batch(
        &self,
        message: &async_nats::Message,
        (nodes, names): (&mut HashMap<String, NodeState>, &mut NodeNames),
        warning: &mut RateLimitedWarning,
    ) -> bool {
        let Some(node) = message.subject.rsplit('.').next() else {
            return false;
        };
        if node == self.node_id {
            if let Some(more) = warning.check(Instant::now()) {
                log::warn!(
                    "cluster: another process publishes as node {node} (and {more} more \
                     warnings): node ids must be unique in a cluster"
                );
            }
            return false;
        }
        add(
            &self.statistics.bytes_received,
            message.payload.len() as u64,
        );
        let (header, changes) = match tracker_cluster_protocol::decode_batch(&message.payload) {
            Ok(batch) => batch,
            Err(err) => {
                add(&self.statistics.bad_batches, 1);
                if let Some(more) = warning.check(Instant::now()) {
                    log::warn!(
                        "cluster: unreadable batch from node {node}: {err} (and {more} more \
                         warnings)"
                    );
                }
                return false;
            }
        };
        let now = Instant::now();
        let mut want_resync = false;
        let Some(number) = names.number(node) else {
            return false;
        };
        let known = nodes.len();
        match nodes.get_mut(node) {
            Some(state) if state.epoch == header.epoch => {
                if header.sequence < state.next_sequence {
                    // Already seen (NATS does not reorder one publisher's messages).
                    return false;
                }
                if header.sequence > state.next_sequence {
                    add(
                        &self.statistics.sequence_gaps,
                        header.sequence - state.next_sequence,
                    );
                    want_resync = true;
                }
                state.next_sequence = header.sequence.wrapping_add(1);
                state.last_heard = now;
            }
            Some(state) => {
                // The node restarted: a new epoch, whose sequence starts anywhere. The
                // connections of the process that was are gone, and their peers with
                // them, before the new process's changes.
                self.forget_node(number);
                *state = NodeState {
                    number,
                    epoch: header.epoch,
                    next_sequence: header.sequence.wrapping_add(1),
                    last_heard: now,
                };
            }
            None if known >= MAX_NODES => return false,
            None => {
                // A node not heard before (one that joined, or one this node had lost
                // for a while): its peers are not all here.
                want_resync = true;
                nodes.insert(
                    node.to_owned(),
                    NodeState {
                        number,
                        epoch: header.epoch,
                        next_sequence: header.sequence.wrapping_add(1),
                        last_heard: now,
                    },
                );
            }
        }
        if changes.is_empty() {
            return want_resync;
        }
        let delay = unix_millis().saturating_sub(header.sent_unix_millis);
        self.statistics.record_delay(delay, changes.len() as u64);
        let mut by_shard: Vec<Vec<PeerChange>> = self.workers.iter().map(|_| Vec::new()).collect();
        for change in changes {
            if let Some(shard) = by_shard.get_mut(self.router.shard(change.info_hash())) {
                shard.push(change);
            }
        }
        for (changes, worker) in by_shard.into_iter().zip(&self.workers) {
            if changes.is_empty() {
                continue;
            }
            let message = ShardMessage::Changes {
                node: number,
                changes,
            };
            let weight = message.weight();
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                worker.try_send(message, weight)
            {
                add(&self.statistics.changes_dropped_incoming, weight as u64);
                want_resync = true;
            }
        }
        want_resync
    }
}

impl Bus {
    /// Tells every request worker that node `number`'s connections are gone. A worker
    /// whose channel is full misses it (counted as a dropped change): that node's
    /// peers then expire by age.
    fn forget_node(&self, number: u32) {
        for worker in &self.workers {
            if worker.try_send(ShardMessage::NodeGone(number), 1).is_err() {
                add(&self.statistics.changes_dropped_incoming, 1);
            }
        }
    }

    /// Publishes offers and answers to the nodes of their peers, in as few messages as
    /// the server's payload limit allows. Dropped and counted while the bus is down (the
    /// client would only queue them, and WebRTC signalling is worth nothing late) or for
    /// a node that has no name.
    async fn publish_relays(
        &self,
        client: &Client,
        names: &NodeNames,
        mut relays: Vec<(u32, ClusterRelay)>,
    ) {
        if client.connection_state() != State::Connected {
            add(
                &self.statistics.relays_dropped_outgoing,
                relays.len() as u64,
            );
            return;
        }
        // A relay larger than this goes alone, and the server refuses it (counted).
        let max_bytes = client
            .server_info()
            .max_payload
            .saturating_sub(PAYLOAD_MARGIN);
        relays.sort_by_key(|(node, _)| *node);
        let mut rest = relays.as_slice();
        while let Some(((node, _), _)) = rest.split_first() {
            let node = *node;
            let same = rest.iter().take_while(|(n, _)| *n == node).count();
            let (group, after) = rest.split_at(same);
            rest = after;
            let Some(name) = names.name(node) else {
                add(&self.statistics.relays_dropped_outgoing, same as u64);
                continue;
            };
            let subject = self.subject("relay", name);
            let mut writer = RelayWriter::new();
            for (_, relay) in group {
                if writer.count() > 0 && writer.len_bytes() + relay.weight() > max_bytes {
                    let full = std::mem::replace(&mut writer, RelayWriter::new());
                    self.publish_relay_message(client, &subject, full).await;
                }
                let written = writer.push(&Relay {
                    kind: relay.kind,
                    info_hash: relay.info_hash,
                    to: relay.to,
                    from: relay.from,
                    offer_id: relay.offer_id,
                    sdp: relay.sdp.as_bytes(),
                });
                if !written {
                    add(&self.statistics.relays_dropped_outgoing, 1);
                }
            }
            self.publish_relay_message(client, &subject, writer).await;
        }
    }

    /// Publishes one message of relays, counting them.
    async fn publish_relay_message(&self, client: &Client, subject: &str, writer: RelayWriter) {
        let count = u64::from(writer.count());
        if count == 0 {
            return;
        }
        let bytes = writer.finish();
        match client.publish(subject.to_owned(), bytes.into()).await {
            Ok(()) => add(&self.statistics.relays_published, count),
            Err(err) => {
                add(&self.statistics.relays_dropped_outgoing, count);
                log::debug!("cluster: publish relays: {err}");
            }
        }
    }

    /// Hands offers and answers another node relayed to this one to the request workers
    /// that own their torrents. A relay whose session description is not UTF-8 is
    /// dropped (counted) here; the request worker checks that it is JSON.
    fn on_relays(&self, payload: &[u8], warning: &mut RateLimitedWarning) {
        let relays = match decode_relays(payload) {
            Ok(relays) => relays,
            Err(err) => {
                add(&self.statistics.relays_dropped_incoming, 1);
                if let Some(more) = warning.check(Instant::now()) {
                    log::warn!("cluster: unreadable relays: {err} (and {more} more warnings)");
                }
                return;
            }
        };
        let mut by_shard: Vec<Vec<ClusterRelay>> =
            self.workers.iter().map(|_| Vec::new()).collect();
        for relay in relays {
            let Ok(sdp) = std::str::from_utf8(relay.sdp) else {
                add(&self.statistics.relays_dropped_incoming, 1);
                continue;
            };
            if let Some(shard) = by_shard.get_mut(self.router.shard(&relay.info_hash)) {
                shard.push(ClusterRelay {
                    kind: relay.kind,
                    info_hash: relay.info_hash,
                    to: relay.to,
                    from: relay.from,
                    offer_id: relay.offer_id,
                    sdp: sdp.into(),
                });
            }
        }
        for (relays, worker) in by_shard.into_iter().zip(&self.workers) {
            if relays.is_empty() {
                continue;
            }
            let n = relays.len() as u64;
            let message = ShardMessage::Relays(relays);
            let weight = message.weight().min(worker.capacity());
            if worker.try_send(message, weight).is_err() {
                add(&self.statistics.relays_dropped_incoming, n);
            }
        }
    }
}

/// Answers a resync: every request worker's shard as chunks, one worker after the other
/// (so that one shard's chunks are in memory at a time), then the end.
async fn serve_resync(
    client: &Client,
    reply: String,
    workers: &[WeightedSender<ShardMessage>],
) -> anyhow::Result<()> {
    let max_bytes = client
        .server_info()
        .max_payload
        .saturating_sub(PAYLOAD_MARGIN)
        .clamp(4096, MAX_CHUNK_BYTES);
    let mut index: u32 = 0;
    for worker in workers {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        send_waiting(
            worker,
            ShardMessage::Save {
                max_bytes: max_bytes - 5,
                reply: sender,
            },
        )
        .await?;
        let chunks = tokio::time::timeout(RESYNC_STEP_TIMEOUT, receiver)
            .await
            .context("a request worker did not save its shard in time")?
            .context("a request worker is gone")?;
        // Changes first: the torrents they make are there when the snapshot chunks'
        // completed counts come (a torrent the receiver does not hold takes its count
        // into the archive, which may be off).
        let kinds = (chunks.changes.into_iter().map(|c| (CHUNK_CHANGES, c)))
            .chain(chunks.snapshots.into_iter().map(|c| (CHUNK, c)));
        for (kind, chunk) in kinds {
            let mut message = Vec::with_capacity(chunk.len() + 5);
            message.push(kind);
            message.extend_from_slice(&index.to_le_bytes());
            message.extend_from_slice(&chunk);
            client.publish(reply.clone(), message.into()).await?;
            index += 1;
        }
    }
    let mut end = vec![CHUNKS_END];
    end.extend_from_slice(&index.to_le_bytes());
    client.publish(reply, end.into()).await?;
    client.flush().await?;
    Ok(())
}

/// Sends `message` to a request worker, waiting for room (a resync must not lose
/// torrents to a full channel), at most [`RESYNC_STEP_TIMEOUT`].
async fn send_waiting(
    worker: &WeightedSender<ShardMessage>,
    mut message: ShardMessage,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + RESYNC_STEP_TIMEOUT;
    loop {
        let weight = message.weight().min(worker.capacity());
        match worker.try_send(message, weight) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(back)) => {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "a request worker's channel stayed full"
                );
                message = back;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(TrySendError::Disconnected(_)) => anyhow::bail!("a request worker is gone"),
        }
    }
}

/// A resync from the other nodes, one after the other, as a task of its own.
struct Resync {
    client: Client,
    /// Each live node, its number and its sync subject.
    targets: Vec<(String, u32, String)>,
    workers: Vec<WeightedSender<ShardMessage>>,
    router: ShardRouter,
    statistics: Arc<ClusterStatistics>,
    running: Arc<AtomicBool>,
    failed: Arc<AtomicBool>,
}

impl Resync {
    async fn run(self) {
        for (node, number, subject) in &self.targets {
            let started = Instant::now();
            match self.fetch(*number, subject).await {
                Ok((chunks, peers)) => {
                    add(&self.statistics.resync_peers, peers);
                    log::info!(
                        "cluster: resync from node {node}: {peers} peers in {chunks} chunks, \
                         {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                }
                Err(err) => {
                    add(&self.statistics.resyncs_failed, 1);
                    self.failed.store(true, Ordering::Release);
                    log::warn!(
                        "cluster: resync from node {node} failed: {err:#} (tried again in \
                         {} s)",
                        RESYNC_INTERVAL.as_secs()
                    );
                }
            }
        }
        self.running.store(false, Ordering::Release);
    }

    /// Asks the node of `subject` for its peers and merges them; returns the chunks and
    /// peers.
    async fn fetch(&self, node: u32, subject: &str) -> anyhow::Result<(u32, u64)> {
        let inbox = self.client.new_inbox();
        let mut replies = self.client.subscribe(inbox.clone()).await?;
        self.client
            .publish_with_reply(subject.to_owned(), inbox, Default::default())
            .await?;
        self.client.flush().await?;
        let mut expected: u32 = 0;
        let mut peers = 0u64;
        loop {
            let message = tokio::time::timeout(RESYNC_STEP_TIMEOUT, replies.next())
                .await
                .context("no answer in time")?
                .context("the subscription ended")?;
            let payload = &message.payload;
            let (Some(&kind), Some(index)) = (payload.first(), payload.get(1..5)) else {
                anyhow::bail!("a chunk of {} bytes", payload.len());
            };
            let index = u32::from_le_bytes(index.try_into().unwrap_or_default());
            anyhow::ensure!(
                index == expected,
                "chunk {index} came where {expected} was expected"
            );
            let chunk = payload.get(5..).unwrap_or_default();
            match kind {
                CHUNKS_END => break,
                CHUNK => peers += self.merge_snapshot_chunk(chunk, index).await?,
                CHUNK_CHANGES => peers += self.apply_change_chunk(node, chunk, index).await?,
                other => anyhow::bail!("a chunk of unknown kind {other}"),
            }
            expected += 1;
        }
        let _ = replies.unsubscribe().await;
        Ok((expected, peers))
    }

    /// Merges a snapshot chunk into the shards; returns its peers.
    async fn merge_snapshot_chunk(&self, chunk: &[u8], index: u32) -> anyhow::Result<u64> {
        let mut peers = 0u64;
        let mut by_shard: Vec<Vec<SavedTorrent>> =
            self.workers.iter().map(|_| Vec::new()).collect();
        read_chunk(chunk.to_vec(), |torrent| {
            peers += torrent.peers.len() as u64;
            if let Some(shard) = by_shard.get_mut(self.router.shard(&torrent.info_hash)) {
                shard.push(torrent);
            }
        })
        .map_err(|err| anyhow::anyhow!("chunk {index}: {err}"))?;
        for (torrents, worker) in by_shard.into_iter().zip(&self.workers) {
            if !torrents.is_empty() {
                send_waiting(worker, ShardMessage::Merge(torrents)).await?;
            }
        }
        Ok(peers)
    }

    /// Applies a chunk of node `node`'s changes to the shards; returns its changes.
    async fn apply_change_chunk(&self, node: u32, chunk: &[u8], index: u32) -> anyhow::Result<u64> {
        let (_, changes) = tracker_cluster_protocol::decode_batch(chunk)
            .map_err(|err| anyhow::anyhow!("chunk {index}: {err}"))?;
        let count = changes.len() as u64;
        let mut by_shard: Vec<Vec<PeerChange>> = self.workers.iter().map(|_| Vec::new()).collect();
        for change in changes {
            if let Some(shard) = by_shard.get_mut(self.router.shard(change.info_hash())) {
                shard.push(change);
            }
        }
        for (changes, worker) in by_shard.into_iter().zip(&self.workers) {
            if !changes.is_empty() {
                send_waiting(worker, ShardMessage::Changes { node, changes }).await?;
            }
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_the_log() {
        assert_eq!(
            redacted("nats://user:secret@10.0.0.1:4222, tls://token@host:4443,host2:4222"),
            "nats://10.0.0.1:4222,tls://host:4443,host2:4222"
        );
    }
}
