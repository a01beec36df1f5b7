//! What the simulated clients ask: which torrents, which peers, which kind of request,
//! which event. Pure: randomness comes in as an argument, and everything that identifies
//! a torrent or a peer is derived from its number, so the tables cost no memory and
//! every worker agrees on them.
//!
//! # The model
//! - Torrents are numbered by popularity, 0 the hottest. Popularity follows a Lomax
//!   (Pareto type II) law: rank = λ·((1−u)^(−1/α) − 1) for a uniform u, with shape α and
//!   scale λ = `popularity_scale` × `torrents`; ranks past the last torrent are drawn
//!   again. With α = 1, half of the draws land in the hottest λ torrents, 90 % in the
//!   hottest 9λ, and the rest form a long tail.
//! - Each simulated peer belongs to one torrent, drawn once from that law, so that hot
//!   torrents have big swarms. A peer also has a fixed peer id, port and seeder flag.
//!   Announces pick a peer (at random, or in turn with `sequential_peers`), so the swarm
//!   converges to at most `peers` entries instead of growing without end.
//! - Scrapes ask about 1..=`scrape_max_torrents` torrents, each drawn from the law.

use rand::Rng;
use tracker_common::config_section;
use tracker_common::types::{AnnounceEvent, InfoHash, PeerId};

config_section! {
    /// The simulated clients and what they ask.
    pub struct WorkloadConfig {
        /// Number of torrents. Large enough by default that the tracker's maps do not fit
        /// in the CPU caches.
        pub torrents: u64,
        /// Number of simulated peers, spread over the torrents by popularity.
        pub peers: u64,
        /// Shape α of the popularity law (> 0); smaller means a longer, heavier tail.
        pub popularity_shape: f64,
        /// Scale λ of the popularity law, as a fraction of `torrents` (> 0, ≤ 1). With
        /// shape 1, half of all peers and scrapes go to this share of the torrents.
        pub popularity_scale: f64,
        /// Relative weight of connect requests (UDP only; other protocols have no
        /// connect step and ignore it).
        pub weight_connect: u32,
        /// Relative weight of announce requests.
        pub weight_announce: u32,
        /// Relative weight of scrape requests.
        pub weight_scrape: u32,
        /// Relative weight of announces with event "started".
        pub weight_event_started: u32,
        /// Relative weight of announces with no event (the periodic re-announce).
        pub weight_event_none: u32,
        /// Relative weight of announces with event "completed".
        pub weight_event_completed: u32,
        /// Relative weight of announces with event "stopped" (these ask for 0 peers, as
        /// clients do).
        pub weight_event_stopped: u32,
        /// Share of peers that are seeders (0.0 to 1.0).
        pub seeder_share: f64,
        /// Peers asked for in each announce (except "stopped"); -1 = the tracker's default.
        pub numwant: i32,
        /// Scrapes ask about 1 to this many torrents (1 to 74).
        pub scrape_max_torrents: u8,
        /// Announce every peer in turn instead of at random, so that N announces store
        /// N distinct peers (for filling a swarm of a known size).
        pub sequential_peers: bool,
        /// Seed of the info hashes and peer ids; change it to get a different but
        /// equally shaped set.
        pub seed: u64,
    }
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            torrents: 1_000_000,
            peers: 1_000_000,
            popularity_shape: 1.0,
            popularity_scale: 0.001,
            weight_connect: 10,
            weight_announce: 80,
            weight_scrape: 10,
            weight_event_started: 10,
            weight_event_none: 80,
            weight_event_completed: 5,
            weight_event_stopped: 5,
            seeder_share: 0.25,
            numwant: 30,
            scrape_max_torrents: 10,
            sequential_peers: false,
            seed: 0x5ea1_0ad0,
        }
    }
}

impl WorkloadConfig {
    /// Checks the values, naming the key of the first bad one.
    ///
    /// # Errors
    /// A message naming the key and what is wrong with it.
    pub fn validate(&self, section: &str) -> anyhow::Result<()> {
        let key = |name: &str| format!("{section}.{name}");
        if self.torrents == 0 || self.torrents > u64::from(u32::MAX) {
            anyhow::bail!("{}: must be between 1 and {}", key("torrents"), u32::MAX);
        }
        if self.peers == 0 {
            anyhow::bail!("{}: must be at least 1", key("peers"));
        }
        if !(self.popularity_shape.is_finite() && self.popularity_shape > 0.0) {
            anyhow::bail!("{}: must be a number above 0", key("popularity_shape"));
        }
        if !(self.popularity_scale > 0.0 && self.popularity_scale <= 1.0) {
            anyhow::bail!("{}: must be above 0 and at most 1", key("popularity_scale"));
        }
        if self.weight_connect == 0 && self.weight_announce == 0 && self.weight_scrape == 0 {
            anyhow::bail!("{}: the request weights are all 0", key("weight_announce"));
        }
        let events = [
            self.weight_event_started,
            self.weight_event_none,
            self.weight_event_completed,
            self.weight_event_stopped,
        ];
        if self.weight_announce > 0 && events.iter().all(|w| *w == 0) {
            anyhow::bail!("{}: the event weights are all 0", key("weight_event_none"));
        }
        if !(0.0..=1.0).contains(&self.seeder_share) {
            anyhow::bail!("{}: must be between 0.0 and 1.0", key("seeder_share"));
        }
        if !(1..=74).contains(&self.scrape_max_torrents) {
            anyhow::bail!("{}: must be between 1 and 74", key("scrape_max_torrents"));
        }
        Ok(())
    }
}

/// The kind of request to send next.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// A UDP connect.
    Connect,
    /// An announce.
    Announce,
    /// A scrape.
    Scrape,
}

/// A simulated peer's fixed identity.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SimPeer {
    /// The peer's number, 0..`peers`.
    pub index: u64,
    /// The torrent it is in (a popularity rank).
    pub torrent: u64,
    /// Its peer id.
    pub peer_id: PeerId,
    /// The port it announces.
    pub port: u16,
    /// Whether it has the whole torrent.
    pub seeder: bool,
}

/// SplitMix64: a fast, well-mixed hash of a 64-bit number.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A uniform number in [0, 1) from 53 bits of `x`.
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn cumulative<const N: usize>(weights: [u32; N]) -> [u64; N] {
    let mut sum = 0u64;
    weights.map(|w| {
        sum += u64::from(w);
        sum
    })
}

fn pick<const N: usize, T: Copy>(cumulative: &[u64; N], values: [T; N], r: u64) -> Option<T> {
    let total = *cumulative.last()?;
    if total == 0 {
        return None;
    }
    let x = r % total;
    cumulative
        .iter()
        .zip(values)
        .find(|(c, _)| x < **c)
        .map(|(_, v)| v)
}

/// The workload, ready to draw from.
#[derive(Clone, Debug)]
pub struct Workload {
    config: WorkloadConfig,
    scale: f64,
    inv_shape: f64,
    kinds: [u64; 3],
    events: [u64; 4],
    seeder_threshold: u64,
}

impl Workload {
    /// Prepares the workload of a validated config.
    pub fn new(config: &WorkloadConfig) -> Self {
        let seeder_threshold = if config.seeder_share >= 1.0 {
            u64::MAX
        } else {
            (config.seeder_share * (u64::MAX as f64)) as u64
        };
        Self {
            scale: (config.popularity_scale * config.torrents as f64).max(f64::MIN_POSITIVE),
            inv_shape: 1.0 / config.popularity_shape,
            kinds: cumulative([
                config.weight_connect,
                config.weight_announce,
                config.weight_scrape,
            ]),
            events: cumulative([
                config.weight_event_started,
                config.weight_event_none,
                config.weight_event_completed,
                config.weight_event_stopped,
            ]),
            seeder_threshold,
            config: config.clone(),
        }
    }

    /// The config it was made from.
    pub fn config(&self) -> &WorkloadConfig {
        &self.config
    }

    /// The popularity rank for a uniform `u` in [0, 1), or `None` past the last torrent.
    fn rank(&self, u: f64) -> Option<u64> {
        let x = self.scale * ((1.0 - u).powf(-self.inv_shape) - 1.0);
        (x.is_finite() && x < self.config.torrents as f64).then_some(x as u64)
    }

    /// Draws a torrent by popularity.
    pub fn sample_torrent(&self, rng: &mut impl Rng) -> u64 {
        // Ranks past the end are rare with sane parameters; after 64 misses in a row
        // (an absurdly heavy tail) fall back to a uniform choice.
        for _ in 0..64 {
            if let Some(rank) = self.rank(rng.random::<f64>()) {
                return rank;
            }
        }
        rng.random_range(0..self.config.torrents)
    }

    /// The info hash of torrent `rank`: 20 well-mixed bytes, so that hot torrents land
    /// on every shard of the tracker alike.
    pub fn info_hash(&self, rank: u64) -> InfoHash {
        let mut bytes = [0u8; 20];
        let base = mix(self.config.seed ^ rank.wrapping_mul(0x2545_f491_4f6c_dd1d));
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            let word = mix(base.wrapping_add(i as u64)).to_le_bytes();
            chunk.copy_from_slice(word.get(..chunk.len()).unwrap_or_default());
        }
        InfoHash(bytes)
    }

    /// The fixed identity of peer `index`.
    pub fn peer(&self, index: u64) -> SimPeer {
        let h = mix(self.config.seed.rotate_left(17) ^ mix(index));
        let mut torrent = None;
        let mut draw = h;
        for _ in 0..64 {
            torrent = self.rank(unit(draw));
            if torrent.is_some() {
                break;
            }
            draw = mix(draw);
        }
        let torrent = torrent.unwrap_or(h % self.config.torrents);
        let mut peer_id = [0u8; 20];
        // A client prefix, as real peer ids have, then the peer's number.
        peer_id[..8].copy_from_slice(b"-SH0100-");
        peer_id[8..16].copy_from_slice(&index.to_be_bytes());
        peer_id[16..].copy_from_slice(&(h as u32).to_be_bytes());
        SimPeer {
            index,
            torrent,
            peer_id: PeerId(peer_id),
            port: 1024 + (mix(h) % 64_000) as u16,
            seeder: mix(h ^ 0x5eed) < self.seeder_threshold,
        }
    }

    /// Draws the kind of the next request.
    pub fn sample_kind(&self, rng: &mut impl Rng) -> RequestKind {
        pick(
            &self.kinds,
            [
                RequestKind::Connect,
                RequestKind::Announce,
                RequestKind::Scrape,
            ],
            rng.random(),
        )
        .unwrap_or(RequestKind::Announce)
    }

    /// Draws the event of the next announce.
    pub fn sample_event(&self, rng: &mut impl Rng) -> AnnounceEvent {
        pick(
            &self.events,
            [
                AnnounceEvent::Started,
                AnnounceEvent::None,
                AnnounceEvent::Completed,
                AnnounceEvent::Stopped,
            ],
            rng.random(),
        )
        .unwrap_or(AnnounceEvent::None)
    }

    /// How many torrents the next scrape asks about.
    pub fn sample_scrape_len(&self, rng: &mut impl Rng) -> usize {
        rng.random_range(1..=usize::from(self.config.scrape_max_torrents.max(1)))
    }

    /// Peers to ask for with `event`: none when stopping, as clients do.
    pub fn numwant(&self, event: AnnounceEvent) -> i32 {
        if event == AnnounceEvent::Stopped {
            0
        } else {
            self.config.numwant
        }
    }

    /// Bytes left to announce for `peer` with `event`: 0 for seeders and on
    /// "completed", something for leechers.
    pub fn bytes_left(&self, peer: &SimPeer, event: AnnounceEvent) -> i64 {
        if peer.seeder || event == AnnounceEvent::Completed {
            0
        } else {
            1 + (peer.index % 1_000_000) as i64 * 16_384
        }
    }
}

/// The simulated peers one sender announces for: `count` peers numbered `first`,
/// `first + stride`, `first + 2·stride`, ... Each peer belongs to one sender only, so that
/// it always announces from the same source address (the tracker keys a peer by its
/// address too), and the senders together cover every peer once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSet {
    first: u64,
    stride: u64,
    count: u64,
    next: u64,
}

impl PeerSet {
    /// Part `part` of `parts` of the peers `0..peers`, cut into consecutive ranges
    /// (a load worker's peers). Never empty: with fewer peers than parts, a part gets
    /// peer `first` of its range.
    pub fn range(peers: u64, part: u64, parts: u64) -> Self {
        let parts = parts.max(1);
        let first = peers * part / parts;
        let last = peers * (part + 1) / parts;
        Self {
            first,
            stride: 1,
            count: (last - first).max(1),
            next: 0,
        }
    }

    /// Share `index` of `shares` of this set, taking every `shares`-th peer (a
    /// connection's peers among its worker's). Never empty: with fewer peers than
    /// shares, a share gets the set's peer `index % count`.
    pub fn interleaved(&self, index: u64, shares: u64) -> Self {
        let shares = shares.max(1);
        if index >= self.count {
            return Self {
                first: self.first + self.stride * (index % self.count),
                stride: self.stride,
                count: 1,
                next: 0,
            };
        }
        Self {
            first: self.first + self.stride * index,
            stride: self.stride * shares,
            count: (self.count - index).div_ceil(shares),
            next: 0,
        }
    }

    /// Number of peers in the set.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether the set is empty (never, as made by [`PeerSet::range`]).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The next peer to announce: each in turn when `sequential`, else one at random.
    pub fn pick(&mut self, sequential: bool, rng: &mut impl Rng) -> u64 {
        let local = if sequential {
            let local = self.next;
            self.next = (self.next + 1) % self.count.max(1);
            local
        } else {
            rng.random_range(0..self.count.max(1))
        };
        self.first + self.stride * local
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn workload(config: WorkloadConfig) -> Workload {
        config.validate("workload").unwrap();
        Workload::new(&config)
    }

    #[test]
    fn the_default_config_is_valid() {
        WorkloadConfig::default().validate("workload").unwrap();
    }

    #[test]
    fn popularity_follows_the_law() {
        let w = workload(WorkloadConfig {
            torrents: 1_000_000,
            popularity_shape: 1.0,
            popularity_scale: 0.001,
            ..WorkloadConfig::default()
        });
        let mut rng = SmallRng::seed_from_u64(1);
        let n = 200_000;
        let draws: Vec<u64> = (0..n).map(|_| w.sample_torrent(&mut rng)).collect();
        let share_below = |k: u64| draws.iter().filter(|r| **r < k).count() as f64 / n as f64;
        // Lomax with α = 1: P(rank < k) = k / (k + λ), λ = 1000; the truncation at 1M
        // torrents (0.1 % of the mass, drawn again) barely moves it.
        for (k, want) in [(1000, 0.5), (9000, 0.9), (99_000, 0.99)] {
            let got = share_below(k);
            assert!(
                (got - want).abs() < 0.01,
                "P(rank < {k}) = {got}, want {want}"
            );
        }
        assert!(draws.iter().all(|r| *r < 1_000_000));
        // Every part of the range is reached: the tail is long, not cut.
        assert!(draws.iter().any(|r| *r > 500_000));
    }

    #[test]
    fn a_heavier_shape_flattens_the_law() {
        let mut rng = SmallRng::seed_from_u64(2);
        let hot_share = |shape: f64, rng: &mut SmallRng| {
            let w = workload(WorkloadConfig {
                torrents: 100_000,
                popularity_shape: shape,
                popularity_scale: 0.01,
                ..WorkloadConfig::default()
            });
            (0..50_000).filter(|_| w.sample_torrent(rng) < 1000).count()
        };
        assert!(hot_share(0.5, &mut rng) < hot_share(2.0, &mut rng));
    }

    #[test]
    fn peers_crowd_into_hot_torrents() {
        let w = workload(WorkloadConfig {
            torrents: 100_000,
            peers: 100_000,
            popularity_scale: 0.01,
            ..WorkloadConfig::default()
        });
        let in_hot = (0..100_000).filter(|i| w.peer(*i).torrent < 1000).count();
        // λ = 1000: about half the peers are in the hottest 1 % of the torrents.
        assert!((45_000..55_000).contains(&in_hot), "{in_hot}");
        // Identities are fixed and distinct.
        assert_eq!(w.peer(7), w.peer(7));
        assert_ne!(w.peer(7).peer_id, w.peer(8).peer_id);
        assert!(w.peer(7).port >= 1024);
    }

    #[test]
    fn seeder_share_holds() {
        let w = workload(WorkloadConfig {
            seeder_share: 0.3,
            ..WorkloadConfig::default()
        });
        let seeders = (0..100_000).filter(|i| w.peer(*i).seeder).count();
        assert!((29_000..31_000).contains(&seeders), "{seeders}");
        let none = workload(WorkloadConfig {
            seeder_share: 0.0,
            ..WorkloadConfig::default()
        });
        assert!((0..10_000).all(|i| !none.peer(i).seeder));
        let all = workload(WorkloadConfig {
            seeder_share: 1.0,
            ..WorkloadConfig::default()
        });
        assert!((0..10_000).all(|i| all.peer(i).seeder));
    }

    #[test]
    fn request_mix_follows_the_weights() {
        let w = workload(WorkloadConfig {
            weight_connect: 1,
            weight_announce: 6,
            weight_scrape: 3,
            ..WorkloadConfig::default()
        });
        let mut rng = SmallRng::seed_from_u64(3);
        let n = 100_000;
        let mut counts = [0usize; 3];
        for _ in 0..n {
            counts[w.sample_kind(&mut rng) as usize] += 1;
        }
        for (count, want) in counts.iter().zip([0.1, 0.6, 0.3]) {
            let share = *count as f64 / n as f64;
            assert!((share - want).abs() < 0.01, "{counts:?}");
        }
        let only_announces = workload(WorkloadConfig {
            weight_connect: 0,
            weight_scrape: 0,
            ..WorkloadConfig::default()
        });
        assert!((0..1000).all(|_| only_announces.sample_kind(&mut rng) == RequestKind::Announce));
    }

    #[test]
    fn event_mix_follows_the_weights() {
        let w = workload(WorkloadConfig::default());
        let mut rng = SmallRng::seed_from_u64(4);
        let n = 100_000;
        let mut counts = [0usize; 4];
        for _ in 0..n {
            let i = match w.sample_event(&mut rng) {
                AnnounceEvent::Started => 0,
                AnnounceEvent::None => 1,
                AnnounceEvent::Completed => 2,
                AnnounceEvent::Stopped => 3,
            };
            counts[i] += 1;
        }
        for (count, want) in counts.iter().zip([0.10, 0.80, 0.05, 0.05]) {
            let share = *count as f64 / n as f64;
            assert!((share - want).abs() < 0.01, "{counts:?}");
        }
        assert_eq!(w.numwant(AnnounceEvent::Stopped), 0);
        assert_eq!(w.numwant(AnnounceEvent::Started), 30);
    }

    #[test]
    fn scrape_sizes_cover_the_range() {
        let w = workload(WorkloadConfig {
            scrape_max_torrents: 5,
            ..WorkloadConfig::default()
        });
        let mut rng = SmallRng::seed_from_u64(5);
        let mut seen = [false; 6];
        for _ in 0..1000 {
            let n = w.sample_scrape_len(&mut rng);
            assert!((1..=5).contains(&n));
            seen[n] = true;
        }
        assert_eq!(seen, [false, true, true, true, true, true]);
    }

    #[test]
    fn info_hashes_are_distinct_and_stable() {
        let w = workload(WorkloadConfig::default());
        let hashes: std::collections::HashSet<_> = (0..100_000).map(|r| w.info_hash(r)).collect();
        assert_eq!(hashes.len(), 100_000);
        assert_eq!(w.info_hash(42), w.info_hash(42));
        let other = workload(WorkloadConfig {
            seed: 1,
            ..WorkloadConfig::default()
        });
        assert_ne!(w.info_hash(42), other.info_hash(42));
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: [(WorkloadConfig, &str); 5] = [
            (
                WorkloadConfig {
                    torrents: 0,
                    ..WorkloadConfig::default()
                },
                "workload.torrents",
            ),
            (
                WorkloadConfig {
                    popularity_shape: 0.0,
                    ..WorkloadConfig::default()
                },
                "workload.popularity_shape",
            ),
            (
                WorkloadConfig {
                    popularity_scale: 2.0,
                    ..WorkloadConfig::default()
                },
                "workload.popularity_scale",
            ),
            (
                WorkloadConfig {
                    seeder_share: 1.5,
                    ..WorkloadConfig::default()
                },
                "workload.seeder_share",
            ),
            (
                WorkloadConfig {
                    scrape_max_torrents: 75,
                    ..WorkloadConfig::default()
                },
                "workload.scrape_max_torrents",
            ),
        ];
        for (config, key) in cases {
            let err = config.validate("workload").unwrap_err().to_string();
            assert!(err.starts_with(key), "{err}");
        }
    }

    #[test]
    fn peer_sets_cover_every_peer_once() {
        let mut rng = SmallRng::seed_from_u64(6);
        for (peers, workers, connections) in [(1000, 3, 7), (10, 2, 5), (7, 1, 1)] {
            let mut seen = vec![0u32; peers as usize];
            for w in 0..workers {
                let range = PeerSet::range(peers, w, workers);
                for c in 0..connections {
                    let mut set = range.interleaved(c, connections);
                    assert!(!set.is_empty());
                    for _ in 0..set.len() {
                        seen[set.pick(true, &mut rng) as usize] += 1;
                    }
                    for _ in 0..100 {
                        let p = set.pick(false, &mut rng);
                        assert!(p < peers && (p - set.first).is_multiple_of(set.stride));
                    }
                }
            }
            assert!(
                seen.iter().all(|n| *n == 1),
                "{peers} {workers} {connections}"
            );
        }
        // More shares than peers: each share still has one.
        let tiny = PeerSet::range(2, 0, 1);
        assert_eq!(tiny.interleaved(5, 8).len(), 1);
    }
}
