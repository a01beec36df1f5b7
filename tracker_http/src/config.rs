//! The HTTP tracker's configuration: every key, its meaning and its default.
//!
//! Print it with `tracker_http -p`; the committed `config.example.toml` is that output.

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
use tracker_common::runtime::privileges::PrivilegeConfig;
use tracker_common::swarm::access_list::AccessListConfig;

use crate::proxy::TrustedProxies;
use tracker_http_protocol::{max_announce_answer_bytes, max_scrape_answer_bytes};

tracker_common::metrics_config_section!(9002);
tracker_common::api_config_section!(9102);

config_section! {
    /// The whole configuration of the HTTP tracker.
    pub struct Config {
        /// Log level: "off", "error", "warn", "info", "debug" or "trace". Rejected client
        /// requests are logged at "debug" only.
        pub log_level: LogLevel,
        /// Where to listen and how the listening sockets are set up.
        pub network: NetworkConfig,
        /// Limits of the HTTP protocol and of connections.
        pub http: HttpConfig,
        /// Clients behind a reverse proxy.
        pub proxy: ProxyConfig,
        /// HTTPS. Certificates are re-read on SIGUSR1, with the access list.
        pub tls: TlsConfig,
        /// Swarm rules: intervals, peer lists, expiry, memory bounds.
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
        /// Private mode: announces (and, if so configured, scrapes) need a known passkey
        /// in the path, `/PASSKEY/announce` or `/announce/PASSKEY`; others get a failure
        /// reason and are stored nowhere.
        pub private: PrivateConfig,
        /// The accounting database of private mode (read only when private.enabled).
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
            http: HttpConfig::default(),
            proxy: ProxyConfig::default(),
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
    const ENV_PREFIX: Option<&'static str> = Some("SHOAL_HTTP");

    fn log_level(&self) -> LogLevel {
        self.log_level
    }

    /// Checks the whole config and resolves "0 = automatic" worker counts.
    fn validate(&mut self) -> anyhow::Result<()> {
        self.network.validate()?;
        self.http.validate()?;
        self.proxy.trusted()?;
        self.tls.validate()?;
        self.swarm.validate()?;
        if self.http.min_announce_interval_secs > self.swarm.announce_interval_secs {
            anyhow::bail!(
                "http.min_announce_interval_secs: must not exceed swarm.announce_interval_secs ({})",
                self.swarm.announce_interval_secs
            );
        }
        if self.swarm.min_announce_interval_secs > self.http.min_announce_interval_secs {
            anyhow::bail!(
                "swarm.min_announce_interval_secs: must not exceed http.min_announce_interval_secs \
                 ({}), the min interval clients are told: a client that waits what it was told \
                 would be throttled",
                self.http.min_announce_interval_secs
            );
        }
        let largest = max_announce_answer_bytes(self.swarm.numwant_max)
            .max(max_scrape_answer_bytes(self.http.max_scrape_torrents));
        if self.http.max_outgoing_bytes_per_connection < largest {
            anyhow::bail!(
                "http.max_outgoing_bytes_per_connection: must hold the largest answer, {largest} \
                 bytes (an announce of swarm.numwant_max peers, or a scrape of \
                 http.max_scrape_torrents torrents)"
            );
        }
        if self.http.max_outgoing_bytes_total == 0 {
            anyhow::bail!(
                "http.max_outgoing_bytes_total: must be at least 1 (a connection with \
                 nothing waiting still gets one answer)"
            );
        }
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
        Ok(())
    }
}

config_section! {
    /// Listening address and socket options.
    pub struct NetworkConfig {
        /// Address and port to listen on (TCP). `"[::]:PORT"` serves IPv6 and (unless
        /// only_ipv6) IPv4 on all interfaces; `"0.0.0.0:PORT"` serves IPv4 only. Port 0
        /// lets the OS choose (the chosen port is logged). The UDP tracker's default port
        /// is the same number: TCP and UDP ports do not collide.
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
            address: SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 6969)),
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
    /// Limits of the HTTP protocol and of connections. Each bounds what one client can
    /// hold: memory, a place in the pipeline, or time.
    pub struct HttpConfig {
        /// Most bytes of one request (request line and headers). Larger requests are
        /// answered 431 and the connection closed.
        pub max_request_bytes: usize,
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
        /// max_connections. Raise it for a tracker that serves large NATs. Connections
        /// from proxy.trusted_proxies are not capped (a reverse proxy speaks for many
        /// clients).
        pub max_connections_per_ip: u32,
        /// Seconds a connection may go without completing a request (idle keep-alive
        /// connections, and clients that send a request byte by byte) before it is
        /// closed.
        pub idle_timeout_secs: u32,
        /// Most requests of one connection waiting for their answers (pipelining);
        /// further requests are not read until answers have gone out.
        pub max_pipelined_requests: usize,
        /// Most bytes of answers waiting for one connection: no further request of it is
        /// parsed while the answers held for it (ready, behind one still awaited) and
        /// those not yet sent reach this, shared full-scrape bodies counted whole. One
        /// answer always goes out when nothing else waits, so a full scrape larger than
        /// this is still answered. Must hold the largest other answer: an announce of
        /// swarm.numwant_max peers, a scrape of max_scrape_torrents torrents.
        pub max_outgoing_bytes_per_connection: usize,
        /// Most bytes of answers waiting to be sent over all connections: once this many
        /// wait, a connection with any answer held or unsent parses no further request
        /// until its bytes are out (one with nothing waiting still gets one answer), so
        /// that clients that do not read hold at most about this plus an answer each.
        pub max_outgoing_bytes_total: usize,
        /// Most info hashes answered in one scrape; further ones are ignored.
        pub max_scrape_torrents: usize,
        /// Most scrapes per socket worker waiting for answers from several request
        /// workers; further scrapes over several request workers are dropped.
        pub max_pending_scrapes: usize,
        /// The announce answer's `min interval`, in seconds: clients should not announce
        /// more often. At most swarm.announce_interval_secs.
        pub min_announce_interval_secs: u32,
        /// A scrape without info_hash (a full scrape) answers the torrents with the most
        /// peers, at most this many. 0 = full scrapes are refused with a failure reason.
        pub full_scrape_max_torrents: usize,
        /// Seconds a full scrape's answer is reused (per socket worker), so that asking
        /// for it often costs one walk over the torrents per period, not one per request.
        pub full_scrape_cache_secs: u32,
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 4096,
            max_connections: 50_000,
            max_connections_per_ip: 256,
            idle_timeout_secs: 120,
            max_pipelined_requests: 16,
            // Sixteen pipelined answers of the largest default size (a scrape of 100
            // torrents, about 10 KiB) fit in it several times over.
            max_outgoing_bytes_per_connection: 256 * 1024,
            // A thousand connections' worth at their bound: a flood of clients that do
            // not read costs at most this (plus one answer per connection).
            max_outgoing_bytes_total: 256 * 1024 * 1024,
            max_scrape_torrents: 100,
            max_pending_scrapes: 65_536,
            min_announce_interval_secs: 900,
            full_scrape_max_torrents: 0,
            full_scrape_cache_secs: 60,
        }
    }
}

impl HttpConfig {
    fn validate(&self) -> anyhow::Result<()> {
        if !(256..=65_536).contains(&self.max_request_bytes) {
            anyhow::bail!("http.max_request_bytes: must be between 256 and 65536");
        }
        if self.max_connections == 0 {
            anyhow::bail!("http.max_connections: must be at least 1");
        }
        if self.idle_timeout_secs == 0 {
            anyhow::bail!("http.idle_timeout_secs: must be at least 1");
        }
        if !(1..=1024).contains(&self.max_pipelined_requests) {
            anyhow::bail!("http.max_pipelined_requests: must be between 1 and 1024");
        }
        if !(1..=u16::MAX as usize).contains(&self.max_scrape_torrents) {
            anyhow::bail!("http.max_scrape_torrents: must be between 1 and 65535");
        }
        if self.max_pending_scrapes == 0 {
            anyhow::bail!("http.max_pending_scrapes: must be at least 1");
        }
        if self.full_scrape_max_torrents > 1_000_000 {
            anyhow::bail!("http.full_scrape_max_torrents: must be at most 1000000");
        }
        if self.full_scrape_cache_secs == 0 {
            anyhow::bail!("http.full_scrape_cache_secs: must be at least 1");
        }
        Ok(())
    }
}

config_section! {
    /// Clients behind a reverse proxy. Off unless trusted_proxies lists addresses.
    pub struct ProxyConfig {
        /// Networks of the reverse proxies whose address header is believed, as CIDRs
        /// ("127.0.0.1/32", "10.0.0.0/8", "::1/128"). Empty = the header is never read and
        /// every client is its TCP peer.
        pub trusted_proxies: Vec<String>,
        /// The header that carries the client's address, with the addresses of the
        /// proxies it passed appended: the client is the right-most address not in
        /// trusted_proxies.
        pub address_header: String,
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            address_header: "X-Forwarded-For".to_string(),
        }
    }
}

impl ProxyConfig {
    /// The trusted networks, parsed.
    ///
    /// # Errors
    /// A message naming the key and the entry that is not a CIDR.
    pub fn trusted(&self) -> anyhow::Result<TrustedProxies> {
        if self.address_header.is_empty() && !self.trusted_proxies.is_empty() {
            anyhow::bail!("proxy.address_header: must not be empty when proxies are trusted");
        }
        TrustedProxies::parse(&self.trusted_proxies).map_err(|entry| {
            anyhow::anyhow!("proxy.trusted_proxies: {entry:?} is not a CIDR such as \"10.0.0.0/8\"")
        })
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
            "regenerate with: cargo run -p tracker_http -- -p > tracker_http/config.example.toml"
        );
    }

    #[test]
    fn validation_names_keys() {
        let mut c = Config::default();
        c.validate().unwrap();
        type Spoil = fn(&mut Config);
        let cases: [(&str, Spoil); 10] = [
            ("http.max_request_bytes", |c| c.http.max_request_bytes = 10),
            ("private.refresh_secs", |c| c.private.refresh_secs = 0),
            ("accounting.url", |c| {
                c.private.enabled = true;
                c.accounting.url = "redis://x".into();
            }),
            ("http.max_connections", |c| c.http.max_connections = 0),
            ("http.max_pipelined_requests", |c| {
                c.http.max_pipelined_requests = 0
            }),
            ("proxy.trusted_proxies", |c| {
                c.proxy.trusted_proxies = vec!["10.0.0.0/33".into()];
            }),
            ("network.backlog", |c| c.network.backlog = 0),
            ("http.max_outgoing_bytes_total", |c| {
                c.http.max_outgoing_bytes_total = 0
            }),
            ("http.max_outgoing_bytes_per_connection", |c| {
                c.http.max_outgoing_bytes_per_connection = 1000
            }),
            ("http.max_outgoing_bytes_per_connection", |c| {
                c.http.max_scrape_torrents = 65_535;
                c.http.max_outgoing_bytes_per_connection = 1024 * 1024;
            }),
        ];
        for (key, spoil) in cases {
            let mut c = Config::default();
            spoil(&mut c);
            let msg = c.validate().unwrap_err().to_string();
            assert!(msg.starts_with(key), "{key}: {msg}");
        }
        let mut c = Config::default();
        c.http.min_announce_interval_secs = c.swarm.announce_interval_secs + 1;
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.starts_with("http.min_announce_interval_secs"), "{msg}");
        // The accounting section is read only in private mode.
        let mut c = Config::default();
        c.accounting.url = "redis://x".into();
        c.validate().unwrap();
    }
}
