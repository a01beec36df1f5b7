//! The WebSocket tracker's configuration: every key, its meaning and its default.
//!
//! Print it with `tracker_ws -p`; the committed `config.example.toml` is that output.

use std::net::SocketAddr;

use tracker_common::cluster::ClusterConfig;
use tracker_common::config::{
    LogLevel, StatisticsConfig, SwarmConfig, TrackerConfig, WorkerConfig,
};
use tracker_common::config_section;
use tracker_common::net::bans::BanConfig;
use tracker_common::net::listen::SocketOptions;
use tracker_common::net::rate_limit::RateLimitConfig;
use tracker_common::net::tls::TlsConfig;
use tracker_common::private::{AccountingConfig, PrivateConfig};
use tracker_common::runtime::channel::{BATCHES_PER_BYTE_CHANNEL, max_batch_bytes};
use tracker_common::runtime::privileges::PrivilegeConfig;
use tracker_common::swarm::access_list::AccessListConfig;
use tracker_ws_protocol::max_scrape_response_bytes;
use tracker_ws_protocol::websocket::MAX_SERVER_FRAME_HEADER;

use crate::messages::{WeightLimits, max_weight};

tracker_common::metrics_config_section!(9003);
tracker_common::api_config_section!(9103);

config_section! {
    /// The whole configuration of the WebSocket (WebTorrent) tracker.
    pub struct Config {
        /// Log level: "off", "error", "warn", "info", "debug" or "trace". Rejected client
        /// messages are logged at "debug" only.
        pub log_level: LogLevel,
        /// Where to listen and how the listening sockets are set up.
        pub network: NetworkConfig,
        /// Limits of the WebSocket protocol and of connections.
        pub ws: WsConfig,
        /// Which web pages may connect, by their Origin header.
        pub origin: OriginConfig,
        /// wss:// (WebSocket over TLS). Certificates are re-read on SIGUSR1, with the
        /// access list.
        pub tls: TlsConfig,
        /// Swarm rules: intervals, offers per announce, expiry, memory bounds. A
        /// WebTorrent peer is a peer id on a connection, not an address: max_peers_per_ip
        /// and trust_client_ip do not apply here (ws.max_swarms_per_connection bounds
        /// what one connection holds).
        pub swarm: SwarmConfig,
        /// Worker threads and channels.
        pub workers: WorkerConfig,
        /// Which torrents are served.
        pub access_list: AccessListConfig,
        /// Statistics in the log.
        pub statistics: StatisticsConfig,
        /// Giving up root once the sockets are bound (the tracker must start as root). A
        /// chroot changes where SIGUSR1 finds the files it re-reads: see chroot_dir.
        pub privileges: PrivilegeConfig,
        /// Live statistics over HTTP: Prometheus text at /metrics, JSON at /stats.json,
        /// whether the tracker is whole at /health (200 or 503), a page with charts of
        /// the last hour at /.
        pub metrics: MetricsConfig,
        /// Private mode: a connection opens on ws://HOST:PORT/PASSKEY/announce (or
        /// /announce/PASSKEY), and every announce on it needs that passkey in force,
        /// checked at each announce; answers from a connection without one are not
        /// relayed. Off: the path's passkey is ignored.
        pub private: PrivateConfig,
        /// Private mode's accounting database (used only when private.enabled is on).
        /// uploaded and downloaded are the counters the WebTorrent client sends with
        /// each announce.
        pub accounting: AccountingConfig,
        /// Several nodes serving as one tracker, sharing their swarms over NATS.
        pub cluster: ClusterConfig,
        /// Rate limits per client address, off by default (connects do not apply).
        pub rate_limits: RateLimitConfig,
        /// Banned networks: their UDP packets are dropped unanswered and their TCP
        /// connections closed at accept. Re-read on SIGUSR1; changed by the admin API.
        pub bans: BanConfig,
        /// The admin API, off by default.
        pub api: ApiConfig,
    }
}

#[expect(
    clippy::derivable_impls,
    reason = "every config section spells out its defaults in one hand-written place"
)]
impl Default for Config {
    fn default() -> Self {
        Self {
            log_level: LogLevel::default(),
            network: NetworkConfig::default(),
            ws: WsConfig::default(),
            origin: OriginConfig::default(),
            tls: TlsConfig::default(),
            swarm: SwarmConfig::default(),
            workers: WorkerConfig::default(),
            access_list: AccessListConfig::default(),
            statistics: StatisticsConfig::default(),
            privileges: PrivilegeConfig::default(),
            metrics: MetricsConfig::default(),
            private: PrivateConfig::default(),
            accounting: AccountingConfig::default(),
            cluster: ClusterConfig::default(),
            rate_limits: RateLimitConfig::default(),
            bans: BanConfig::default(),
            api: ApiConfig::default(),
        }
    }
}

impl TrackerConfig for Config {
    const ENV_PREFIX: Option<&'static str> = Some("SHOAL_WS");

    fn log_level(&self) -> LogLevel {
        self.log_level
    }

    /// Checks the whole config and resolves "0 = automatic" worker counts.
    fn validate(&mut self) -> anyhow::Result<()> {
        self.network.validate()?;
        self.ws.validate()?;
        self.origin.validate()?;
        self.tls.validate()?;
        self.swarm.validate()?;
        self.workers.validate()?;
        self.access_list.validate()?;
        self.privileges.validate()?;
        self.metrics.validate()?;
        self.cluster.validate(false, self.swarm.max_peer_age_secs)?;
        self.rate_limits.validate()?;
        self.bans.validate()?;
        self.api.validate()?;
        self.private.validate_with(&self.accounting)?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.workers.resolve(cpus);
        if self.workers.socket_workers > usize::from(u16::MAX) {
            anyhow::bail!("workers.socket_workers: must be at most 65535");
        }
        Ok(())
    }
}

config_section! {
    /// Listening address and socket options.
    pub struct NetworkConfig {
        /// Address and port to listen on (TCP). `"[::]:PORT"` serves IPv6 and (unless
        /// only_ipv6) IPv4 on all interfaces; `"0.0.0.0:PORT"` serves IPv4 only. Port 0
        /// lets the OS choose (the chosen port is logged). The default port is one above
        /// the HTTP tracker's, so that both run side by side on their defaults.
        pub address: SocketAddr,
        /// With an IPv6 address: serve IPv6 only (IPV6_V6ONLY). Ignored for IPv4 addresses.
        pub only_ipv6: bool,
        /// Pending connections the kernel queues per listening socket (listen backlog).
        pub backlog: u32,
        /// Milliseconds a socket worker sleeps in poll when idle; it bounds how late a
        /// shutdown is noticed.
        pub poll_timeout_ms: u64,
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            address: SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 6970)),
            only_ipv6: false,
            backlog: 1024,
            poll_timeout_ms: 50,
        }
    }
}

impl NetworkConfig {
    /// The socket options these keys ask for.
    pub fn socket_options(&self) -> SocketOptions {
        SocketOptions {
            only_ipv6: self.only_ipv6,
            recv_buffer_bytes: 0,
            send_buffer_bytes: 0,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.poll_timeout_ms == 0 || self.poll_timeout_ms > 10_000 {
            anyhow::bail!("network.poll_timeout_ms: must be between 1 and 10000");
        }
        if self.backlog == 0 || self.backlog > 65_535 {
            anyhow::bail!("network.backlog: must be between 1 and 65535");
        }
        Ok(())
    }
}

config_section! {
    /// Limits of the WebSocket protocol and of connections. Each bounds what one client
    /// can hold: memory, swarms, or time.
    pub struct WsConfig {
        /// Most bytes of the HTTP upgrade request that opens a connection (request line
        /// and headers); a larger one is answered 431 and the connection closed.
        pub max_handshake_bytes: usize,
        /// Most bytes of one message (a JSON text, all its fragments together); a larger
        /// one closes the connection (close code 1009).
        pub max_message_bytes: usize,
        /// Most open connections of the whole tracker; further ones are closed at once.
        pub max_connections: usize,
        /// Most open connections from one client address (an IPv4 address, or an IPv6
        /// /64, the prefix one subscriber or host is given), over the whole tracker;
        /// further ones are closed at once (counted as refused per ip). It keeps one
        /// address from taking all of max_connections. 0 = no cap. The default leaves
        /// room for the many subscribers carrier-grade NAT puts behind one IPv4
        /// address: a BitTorrent client keeps at most a keep-alive connection or two
        /// per tracker (over HTTP only for a while after each announce), a WebTorrent
        /// page a few, so well over a hundred clients can be connected at once from one
        /// shared address, while one address holds only a small part of
        /// max_connections. Raise it for a tracker that serves large NATs. Behind a
        /// reverse proxy every connection comes from the proxy's address: set 0.
        pub max_connections_per_ip: u32,
        /// Seconds a connection may go without sending anything. After half of it the
        /// tracker sends a ping (browsers answer pings by themselves); after all of it
        /// the connection is closed. An upgrade request must also be complete in this
        /// time.
        pub idle_timeout_secs: u32,
        /// Most offers of one announce relayed; further ones are dropped unread.
        pub max_offers_per_announce: usize,
        /// Most torrents one connection may be a peer of at once; an announce for one more
        /// is refused with a failure reason.
        pub max_swarms_per_connection: usize,
        /// Most bytes waiting to be sent to one connection. Past half of it, offers and
        /// answers relayed to the connection are dropped (counted as shed); a client
        /// that does not read even the replies to its own messages is disconnected
        /// rather than buffered for.
        pub max_outgoing_bytes_per_connection: usize,
        /// Most bytes waiting to be sent over all connections of the whole tracker. Past
        /// half of it, offers and answers relayed to connections that still have unsent
        /// bytes are shed; once all of it waits, such a connection is disconnected as a
        /// slow reader when more is queued for it, so that many connections that do not
        /// read cannot make the tracker hold max_connections times the per-connection
        /// bound.
        pub max_outgoing_bytes_total: usize,
        /// Most info hashes one scrape may name; a scrape naming more is refused.
        pub max_scrape_torrents: usize,
        /// Most scrapes per socket worker waiting for answers from several request
        /// workers; further scrapes over several request workers are refused.
        pub max_pending_scrapes: usize,
        /// A scrape without info_hash (a full scrape) answers the torrents with the most
        /// peers, at most this many. 0 = full scrapes are refused with a failure reason.
        /// The answer is one message, so its largest size (about 200 bytes a torrent)
        /// must fit in max_outgoing_bytes_per_connection: a config where it cannot is
        /// refused.
        pub full_scrape_max_torrents: usize,
        /// Seconds a full scrape's answer is reused (per socket worker), so that asking
        /// for it often costs one walk over the torrents per period, not one per request.
        pub full_scrape_cache_secs: u32,
        /// Most bytes of messages (announces with their offers, answers, relayed offers,
        /// replies, scrapes) waiting in each channel between workers; a batch that would
        /// not fit is dropped and counted, never waited for. It replaces
        /// workers.channel_capacity_requests here, because offers and answers vary in size
        /// up to max_message_bytes: counting them would let a channel hold 65,536 whole
        /// messages. A message weighs its own size and the bytes it holds (its session
        /// descriptions). Must hold 4 times the heaviest message the other limits allow
        /// (max_message_bytes, max_offers_per_announce, max_scrape_torrents,
        /// full_scrape_max_torrents).
        pub max_channel_bytes: usize,
    }
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            max_handshake_bytes: 4096,
            max_message_bytes: 64 * 1024,
            max_connections: 50_000,
            max_connections_per_ip: 256,
            idle_timeout_secs: 120,
            max_offers_per_announce: 10,
            max_swarms_per_connection: 128,
            max_outgoing_bytes_per_connection: 256 * 1024,
            max_outgoing_bytes_total: 256 * 1024 * 1024,
            max_scrape_torrents: 100,
            max_pending_scrapes: 65_536,
            full_scrape_max_torrents: 0,
            full_scrape_cache_secs: 60,
            // Channels fill only when request or socket workers fall behind, and what
            // waits then only adds delay. 64 MiB holds about 6,000 announces with ten
            // 1 KiB offers, or 1,000 of the largest default messages (64 KiB), far more
            // than one poll round sends, and bounds each channel at 1/64 of what 65,536
            // such messages counted by number would hold.
            max_channel_bytes: 64 * 1024 * 1024,
        }
    }
}

impl WsConfig {
    fn validate(&self) -> anyhow::Result<()> {
        if !(256..=65_536).contains(&self.max_handshake_bytes) {
            anyhow::bail!("ws.max_handshake_bytes: must be between 256 and 65536");
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_message_bytes) {
            anyhow::bail!("ws.max_message_bytes: must be between 1024 and 16777216");
        }
        if self.max_connections == 0 {
            anyhow::bail!("ws.max_connections: must be at least 1");
        }
        if self.idle_timeout_secs < 2 {
            anyhow::bail!("ws.idle_timeout_secs: must be at least 2");
        }
        if self.max_offers_per_announce > 1024 {
            anyhow::bail!("ws.max_offers_per_announce: must be at most 1024");
        }
        if self.max_swarms_per_connection == 0 || self.max_swarms_per_connection > 65_536 {
            anyhow::bail!("ws.max_swarms_per_connection: must be between 1 and 65536");
        }
        if self.max_outgoing_bytes_per_connection < self.max_message_bytes.saturating_add(14) {
            anyhow::bail!(
                "ws.max_outgoing_bytes_per_connection: must hold at least one message \
                 (ws.max_message_bytes + 14)"
            );
        }
        if self.max_outgoing_bytes_total < self.max_message_bytes.saturating_add(14) {
            anyhow::bail!(
                "ws.max_outgoing_bytes_total: must hold at least one message \
                 (ws.max_message_bytes + 14)"
            );
        }
        if !(1..=u16::MAX as usize).contains(&self.max_scrape_torrents) {
            anyhow::bail!("ws.max_scrape_torrents: must be between 1 and 65535");
        }
        if self.max_pending_scrapes == 0 {
            anyhow::bail!("ws.max_pending_scrapes: must be at least 1");
        }
        if self.full_scrape_max_torrents > 1_000_000 {
            anyhow::bail!("ws.full_scrape_max_torrents: must be at most 1000000");
        }
        if self.full_scrape_cache_secs == 0 {
            anyhow::bail!("ws.full_scrape_cache_secs: must be at least 1");
        }
        // A full scrape's answer is one frame that a connection must take whole: one
        // larger than its bound would disconnect every client that asks, as a slow
        // reader. Refused here rather than cut short, so that a full scrape lists what
        // the operator configured, or is refused before the tracker starts.
        let full_scrape_bytes = match self.full_scrape_max_torrents {
            0 => 0,
            n => max_scrape_response_bytes(n).saturating_add(MAX_SERVER_FRAME_HEADER),
        };
        if full_scrape_bytes > self.max_outgoing_bytes_per_connection {
            anyhow::bail!(
                "ws.full_scrape_max_torrents: an answer of {} torrents takes up to {} bytes, \
                 more than ws.max_outgoing_bytes_per_connection ({}) lets wait for one \
                 connection: lower the first or raise the second",
                self.full_scrape_max_torrents,
                full_scrape_bytes,
                self.max_outgoing_bytes_per_connection
            );
        }
        // So is a scrape's answer: one of ws.max_scrape_torrents torrents must fit.
        let scrape_bytes = max_scrape_response_bytes(self.max_scrape_torrents)
            .saturating_add(MAX_SERVER_FRAME_HEADER);
        if scrape_bytes > self.max_outgoing_bytes_per_connection {
            anyhow::bail!(
                "ws.max_scrape_torrents: an answer of {} torrents takes up to {} bytes, \
                 more than ws.max_outgoing_bytes_per_connection ({}) lets wait for one \
                 connection: lower the first or raise the second",
                self.max_scrape_torrents,
                scrape_bytes,
                self.max_outgoing_bytes_per_connection
            );
        }
        // After the full scrape's own bound, which names the key to lower first.
        let heaviest = max_weight(WeightLimits {
            max_message_bytes: self.max_message_bytes,
            max_offers: self.max_offers_per_announce,
            max_scrape_torrents: self.max_scrape_torrents,
            full_scrape_max_torrents: self.full_scrape_max_torrents,
        });
        if max_batch_bytes(self.max_channel_bytes) < heaviest {
            anyhow::bail!(
                "ws.max_channel_bytes: must be at least {} ({BATCHES_PER_BYTE_CHANNEL} times \
                 the heaviest message that ws.max_message_bytes, ws.max_offers_per_announce, \
                 ws.max_scrape_torrents and ws.full_scrape_max_torrents allow), so that any \
                 batch can pass",
                heaviest.saturating_mul(BATCHES_PER_BYTE_CHANNEL)
            );
        }
        Ok(())
    }
}

/// What the Origin list does.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OriginMode {
    /// Every page may connect, and clients that send no Origin.
    Off,
    /// Only pages whose Origin is listed may connect; a connection without an Origin
    /// header (not a browser) is refused too.
    Allow,
    /// Pages whose Origin is listed are refused; all others may connect.
    Deny,
}

impl tracker_common::config::ConfigDoc for OriginMode {}

config_section! {
    /// Which web pages may connect: browsers send the page's origin
    /// ("https://example.com") in the Origin header of the upgrade request. A refused
    /// upgrade is answered 403 and closed.
    pub struct OriginConfig {
        /// "off", "allow" (only the listed origins) or "deny" (all but the listed ones).
        pub mode: OriginMode,
        /// Origins as browsers send them: scheme, host and port if not the default
        /// ("https://example.com", "http://localhost:8080"); compared without regard to
        /// case.
        pub origins: Vec<String>,
    }
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            mode: OriginMode::Off,
            origins: Vec::new(),
        }
    }
}

impl OriginConfig {
    fn validate(&self) -> anyhow::Result<()> {
        for origin in &self.origins {
            let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.ends_with('/')
                && !origin.contains(char::is_whitespace);
            if !ok {
                anyhow::bail!(
                    "origin.origins: {origin:?} is not an origin such as \"https://example.com\" \
                     (scheme and host, no path or trailing slash)"
                );
            }
        }
        if self.mode == OriginMode::Allow && self.origins.is_empty() {
            anyhow::bail!("origin.origins: must list at least one origin when mode is \"allow\"");
        }
        Ok(())
    }

    /// Whether a page with this Origin header (`None`: none sent) may connect.
    pub fn allows(&self, origin: Option<&[u8]>) -> bool {
        let listed = |o: &[u8]| {
            self.origins
                .iter()
                .any(|allowed| allowed.as_bytes().eq_ignore_ascii_case(o))
        };
        match (self.mode, origin) {
            (OriginMode::Off, _) => true,
            (OriginMode::Allow, Some(o)) => listed(o),
            (OriginMode::Allow, None) => false,
            (OriginMode::Deny, Some(o)) => !listed(o),
            (OriginMode::Deny, None) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracker_common::config::{documented_default_toml, parse_config};

    #[test]
    fn printed_default_parses_back_to_default() {
        let text = documented_default_toml::<Config>().unwrap();
        let parsed: Config = parse_config(&text).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn example_file_is_the_printed_default() {
        let text = tracker_common::config::documented_config_toml::<Config>().unwrap();
        let example = include_str!("../config.example.toml");
        assert_eq!(
            example, text,
            "regenerate with: cargo run -p tracker_ws -- -p > tracker_ws/config.example.toml"
        );
    }

    #[test]
    fn validation_names_keys() {
        let mut c = Config::default();
        c.validate().unwrap();
        type Spoil = fn(&mut Config);
        let cases: [(&str, Spoil); 7] = [
            ("ws.max_message_bytes", |c| c.ws.max_message_bytes = 10),
            ("ws.max_connections", |c| c.ws.max_connections = 0),
            ("ws.max_outgoing_bytes_per_connection", |c| {
                c.ws.max_outgoing_bytes_per_connection = 100
            }),
            ("origin.origins", |c| {
                c.origin.origins = vec!["example.com".into()];
            }),
            ("origin.origins", |c| c.origin.mode = OriginMode::Allow),
            ("network.backlog", |c| c.network.backlog = 0),
            ("ws.max_channel_bytes", |c| {
                c.ws.max_channel_bytes = 4 * c.ws.max_message_bytes
            }),
        ];
        for (key, spoil) in cases {
            let mut c = Config::default();
            spoil(&mut c);
            let msg = c.validate().unwrap_err().to_string();
            assert!(msg.starts_with(key), "{key}: {msg}");
        }
    }

    /// The largest full scrape must fit a connection's outgoing bound: the largest
    /// count that fits passes, one more is refused naming both keys.
    #[test]
    fn a_full_scrape_must_fit_the_outgoing_bound() {
        let mut c = Config::default();
        let bound = c.ws.max_outgoing_bytes_per_connection;
        let fits = (1..)
            .take_while(|&n| max_scrape_response_bytes(n) + MAX_SERVER_FRAME_HEADER <= bound)
            .last()
            .unwrap();
        c.ws.full_scrape_max_torrents = fits;
        c.validate().unwrap();
        c.ws.full_scrape_max_torrents = fits + 1;
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.starts_with("ws.full_scrape_max_torrents"), "{msg}");
        assert!(
            msg.contains("ws.max_outgoing_bytes_per_connection"),
            "{msg}"
        );
        c.ws.max_outgoing_bytes_per_connection *= 2;
        c.validate().unwrap();
    }

    /// So must the answer to a scrape of ws.max_scrape_torrents torrents: a client
    /// asking for as many as the config allows is answered, not disconnected as a slow
    /// reader.
    #[test]
    fn a_scrape_must_fit_the_outgoing_bound() {
        let mut c = Config::default();
        let bound = c.ws.max_outgoing_bytes_per_connection;
        let fits = (1..=usize::from(u16::MAX))
            .take_while(|&n| max_scrape_response_bytes(n) + MAX_SERVER_FRAME_HEADER <= bound)
            .last()
            .unwrap();
        c.ws.max_scrape_torrents = fits;
        c.validate().unwrap();
        c.ws.max_scrape_torrents = fits + 1;
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.starts_with("ws.max_scrape_torrents"), "{msg}");
        c.ws.max_outgoing_bytes_per_connection *= 2;
        c.validate().unwrap();
    }

    #[test]
    fn origin_rules() {
        let mut o = OriginConfig {
            mode: OriginMode::Off,
            origins: vec!["https://good.example".into()],
        };
        assert!(o.allows(None) && o.allows(Some(b"https://bad.example")));
        o.mode = OriginMode::Allow;
        assert!(o.allows(Some(b"HTTPS://Good.Example")));
        assert!(!o.allows(Some(b"https://bad.example")));
        assert!(!o.allows(Some(b"https://good.example.evil")));
        assert!(!o.allows(None));
        o.mode = OriginMode::Deny;
        assert!(!o.allows(Some(b"https://good.example")));
        assert!(o.allows(Some(b"https://bad.example")));
        assert!(o.allows(None));
    }
}
