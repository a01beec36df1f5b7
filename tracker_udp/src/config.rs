//! The UDP tracker's configuration: every key, its meaning and its default.
//!
//! Print it with `tracker_udp -p`; the committed `config.example.toml` is that output.

use tracker_common::cluster::ClusterConfig;
use tracker_common::config::{
    LogLevel, StatisticsConfig, SwarmConfig, TrackerConfig, WorkerConfig,
};
use tracker_common::config_section;
use tracker_common::net::bans::BanConfig;
use tracker_common::net::listen::UdpNetworkConfig;
use tracker_common::net::rate_limit::RateLimitConfig;
use tracker_common::private::{AccountingConfig, PrivateConfig};
use tracker_common::runtime::privileges::PrivilegeConfig;
use tracker_common::swarm::access_list::AccessListConfig;
use tracker_udp_protocol::MAX_ANNOUNCE_PEERS_IPV4;

tracker_common::metrics_config_section!(9001);
tracker_common::api_config_section!(9101);

/// The URL data of a passkey URL, "/" + 32 characters + "/announce" (or the same bytes
/// in "/announce/PASSKEY"): anything shorter cuts the passkey off.
const MIN_PRIVATE_URL_DATA_BYTES: usize =
    1 + tracker_common::private::passkey::PASSKEY_LEN + "/announce".len();

config_section! {
    /// The whole configuration of the UDP tracker.
    pub struct Config {
        /// Log level: "off", "error", "warn", "info", "debug" or "trace". Rejected client
        /// requests are logged at "debug" only.
        pub log_level: LogLevel,
        /// Where to listen and how the sockets are set up.
        pub network: UdpNetworkConfig,
        /// Limits of the UDP protocol (BEP 15).
        pub protocol: ProtocolConfig,
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
        /// Private mode: passkeys and per-user accounting. The passkey travels in the
        /// announce's BEP 41 URL data ("/PASSKEY/announce" or "/announce/PASSKEY");
        /// UDP scrapes cannot carry one, so with scrape_requires_passkey on they are
        /// refused.
        pub private: PrivateConfig,
        /// Where private mode's accounting is written.
        pub accounting: AccountingConfig,
        /// Several nodes serving as one tracker.
        pub cluster: ClusterConfig,
        /// Rate limits per client address, off by default.
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
            network: UdpNetworkConfig::default(),
            protocol: ProtocolConfig::default(),
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
    const ENV_PREFIX: Option<&'static str> = Some("SHOAL_UDP");

    fn log_level(&self) -> LogLevel {
        self.log_level
    }

    /// Checks the whole config and resolves "0 = automatic" worker counts. Called by
    /// the CLI and again by `start`, before any thread exists.
    fn validate(&mut self) -> anyhow::Result<()> {
        self.network.validate()?;
        self.protocol.validate()?;
        self.swarm.validate()?;
        if self.swarm.numwant_max > MAX_ANNOUNCE_PEERS_IPV4 {
            anyhow::bail!(
                "swarm.numwant_max: must be at most {MAX_ANNOUNCE_PEERS_IPV4}: a UDP announce \
                 answer with more peers does not fit in one datagram on a 1500-byte MTU \
                 without IP fragmentation"
            );
        }
        self.workers.validate()?;
        self.access_list.validate()?;
        self.privileges.validate()?;
        self.metrics.validate()?;
        self.private.validate_with(&self.accounting)?;
        self.cluster.validate(true, self.swarm.max_peer_age_secs)?;
        self.rate_limits.validate()?;
        self.bans.validate()?;
        self.api.validate()?;
        if self.private.enabled && self.protocol.max_url_data_bytes < MIN_PRIVATE_URL_DATA_BYTES {
            anyhow::bail!(
                "protocol.max_url_data_bytes: must be at least {MIN_PRIVATE_URL_DATA_BYTES} in \
                 private mode, or no passkey URL (\"/PASSKEY/announce\") fits"
            );
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.workers.resolve(cpus);
        Ok(())
    }
}

config_section! {
    /// Limits of the UDP protocol.
    pub struct ProtocolConfig {
        /// Most info hashes answered in one scrape; further hashes in the request are
        /// ignored. BEP 15 allows about 74 in one packet.
        pub max_scrape_torrents: u8,
        /// Seconds a connection id stays valid after a connect (BEP 15 suggests 120).
        pub connection_id_valid_secs: u32,
        /// Most scrapes per socket worker waiting for answers from several request
        /// workers; further multi-shard scrapes are dropped.
        pub max_pending_scrapes: usize,
        /// Most bytes of BEP 41 URL data (the announce URL's path and query) kept from an
        /// announce; longer data is cut when the packet is parsed, so nothing a client
        /// sizes is queued at full size. The default holds a private-mode passkey URL
        /// ("/PASSKEY/announce" or "/announce/PASSKEY", 42 bytes) with room for a short
        /// query, and still keeps every queued announce small. At least 42 in private
        /// mode; at most 1024.
        pub max_url_data_bytes: usize,
    }
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        Self {
            max_scrape_torrents: 74,
            connection_id_valid_secs: 120,
            max_pending_scrapes: 65_536,
            max_url_data_bytes: 128,
        }
    }
}

impl ProtocolConfig {
    fn validate(&self) -> anyhow::Result<()> {
        if self.max_scrape_torrents == 0 {
            anyhow::bail!("protocol.max_scrape_torrents: must be at least 1");
        }
        if !(10..=3600).contains(&self.connection_id_valid_secs) {
            anyhow::bail!("protocol.connection_id_valid_secs: must be between 10 and 3600");
        }
        if self.max_pending_scrapes == 0 {
            anyhow::bail!("protocol.max_pending_scrapes: must be at least 1");
        }
        if self.max_url_data_bytes > 1024 {
            anyhow::bail!(
                "protocol.max_url_data_bytes: must be at most 1024 (URL data is cut to it \
                 before announces are queued; no passkey URL is that long)"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracker_common::config::{TrackerConfig, documented_default_toml, parse_config};

    #[test]
    fn printed_default_parses_back_to_default() {
        let text = documented_default_toml::<Config>().unwrap();
        let parsed: Config = parse_config(&text).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn every_printed_key_is_documented() {
        let text = documented_default_toml::<Config>().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            assert!(
                i > 0 && lines[i - 1].starts_with("# "),
                "{line:?} has no comment above it"
            );
        }
    }

    #[test]
    fn example_file_is_the_printed_default() {
        let text = tracker_common::config::documented_config_toml::<Config>().unwrap();
        let example = include_str!("../config.example.toml");
        assert_eq!(
            example, text,
            "regenerate with: cargo run -p tracker_udp -- -p > tracker_udp/config.example.toml"
        );
    }

    #[test]
    fn validation_names_keys() {
        let mut c = Config::default();
        c.validate().unwrap();
        assert!(c.workers.socket_workers >= 1 && c.workers.request_workers >= 1);

        let mut c = Config::default();
        c.protocol.max_scrape_torrents = 0;
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.starts_with("protocol.max_scrape_torrents"), "{msg}");

        for secs in [0, 3601] {
            let mut c = Config::default();
            c.metrics.history_interval_secs = secs;
            let msg = c.validate().unwrap_err().to_string();
            assert!(msg.starts_with("metrics.history_interval_secs"), "{msg}");
        }

        let mut c = Config::default();
        c.swarm.numwant_max = MAX_ANNOUNCE_PEERS_IPV4;
        c.validate().unwrap();
        c.swarm.numwant_max = MAX_ANNOUNCE_PEERS_IPV4 + 1;
        let msg = c.validate().unwrap_err().to_string();
        assert!(
            msg.starts_with("swarm.numwant_max: must be at most 242") && msg.contains("MTU"),
            "{msg}"
        );

        let mut c = Config::default();
        c.protocol.max_url_data_bytes = 1025;
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.starts_with("protocol.max_url_data_bytes"), "{msg}");
        let mut c = Config::default();
        c.protocol.max_url_data_bytes = 1024;
        c.validate().unwrap();
        assert_eq!(MIN_PRIVATE_URL_DATA_BYTES, "/announce/".len() + 32);
        assert!(
            Config::default().protocol.max_url_data_bytes >= MIN_PRIVATE_URL_DATA_BYTES,
            "the default holds a passkey URL"
        );
        let mut c = Config::default();
        c.private.enabled = true;
        c.validate().unwrap();
        c.protocol.max_url_data_bytes = MIN_PRIVATE_URL_DATA_BYTES;
        c.validate().unwrap();
        c.protocol.max_url_data_bytes = MIN_PRIVATE_URL_DATA_BYTES - 1;
        let msg = c.validate().unwrap_err().to_string();
        assert!(
            msg.starts_with("protocol.max_url_data_bytes: must be at least 42 in private"),
            "{msg}"
        );
        // Public mode ignores passkeys: any limit will do.
        c.private.enabled = false;
        c.validate().unwrap();

        // The accounting section is checked only in private mode.
        let mut c = Config::default();
        c.accounting.url = "redis://x".to_string();
        c.validate().unwrap();
        c.private.enabled = true;
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.starts_with("accounting.url"), "{msg}");
        let mut c = Config::default();
        c.private.refresh_secs = 0;
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.starts_with("private.refresh_secs"), "{msg}");

        let mut c = Config::default();
        c.access_list.mode = tracker_common::swarm::access_list::AccessListMode::Allow;
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.starts_with("access_list.path"), "{msg}");
    }

    #[test]
    fn wrong_types_and_unknown_keys_are_named() {
        let err = parse_config::<Config>("[swarm]\nnumwant_max = \"many\"\n").unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("numwant_max") && msg.contains("line 2"),
            "{msg}"
        );
        let err = parse_config::<Config>("[network]\nadress = \"[::]:1\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("adress"));
        let err = parse_config::<Config>("[network]\naddress = \"nowhere\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("address"));
    }
}
