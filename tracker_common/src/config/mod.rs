//! Configuration plumbing shared by every tracker: documented config sections, loading a
//! TOML file with messages that name the key, environment variables that override keys
//! ([`mod@env`]), printing the documented default config, and the sections that every
//! tracker has (log level, workers, swarm, statistics).
//!
//! Defaults live only in each section's `Default` impl; the doc comment of every field is
//! both its rustdoc and the comment printed above it by `-p`, so the two cannot drift.

pub mod env;

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::env::EnvOverrides;
use crate::swarm::access_list::AccessListMode;

/// Gives the doc comment of a config field, so that `-p` can print it above the key.
///
/// Implemented by [`crate::config_section!`] for sections and with no docs for plain values.
pub trait ConfigDoc {
    /// The doc comment of the field at `path` (one element per nesting level), if any.
    fn field_doc(path: &[&str]) -> Option<&'static str> {
        let _ = path;
        None
    }
}

macro_rules! leaf_config_doc {
    ($($ty:ty),* $(,)?) => { $(impl ConfigDoc for $ty {})* };
}

leaf_config_doc!(
    bool,
    u8,
    u16,
    u32,
    u64,
    usize,
    i32,
    i64,
    f64,
    String,
    Vec<String>,
    PathBuf,
    SocketAddr,
    Vec<SocketAddr>,
    LogLevel,
    AccessListMode,
);

/// Declares a config section: a struct with serde `default` and `deny_unknown_fields`,
/// whose field doc comments are also returned by [`ConfigDoc::field_doc`].
///
/// Every field must have a doc comment. Write `impl Default` for the struct by hand,
/// directly below.
#[macro_export]
macro_rules! config_section {
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])+
                pub $field:ident : $ty:ty,
            )*
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Clone, Debug, PartialEq, ::serde::Deserialize, ::serde::Serialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $(
                $(#[doc = $doc])+
                pub $field: $ty,
            )*
        }

        impl $crate::config::ConfigDoc for $name {
            fn field_doc(path: &[&str]) -> Option<&'static str> {
                let (first, rest) = path.split_first()?;
                $(
                    if *first == stringify!($field) {
                        return if rest.is_empty() {
                            Some(concat!($($doc, "\n"),+))
                        } else {
                            <$ty as $crate::config::ConfigDoc>::field_doc(rest)
                        };
                    }
                )*
                None
            }
        }
    };
}

/// How much the tracker logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Nothing.
    Off,
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Also start-up, reloads and periodic statistics.
    #[default]
    Info,
    /// Also every rejected request (noisy under attack).
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The matching `log` filter.
    pub fn to_filter(self) -> log::LevelFilter {
        match self {
            Self::Off => log::LevelFilter::Off,
            Self::Error => log::LevelFilter::Error,
            Self::Warn => log::LevelFilter::Warn,
            Self::Info => log::LevelFilter::Info,
            Self::Debug => log::LevelFilter::Debug,
            Self::Trace => log::LevelFilter::Trace,
        }
    }
}

config_section! {
    /// Worker threads and the channels between them.
    pub struct WorkerConfig {
        /// Socket worker threads: they receive, parse, answer connects, and send. 0 = automatic
        /// (half the available CPUs, at least 1).
        pub socket_workers: usize,
        /// Request worker threads, each owning one shard of the torrents. 0 = automatic
        /// (half the available CPUs, at least 1).
        pub request_workers: usize,
        /// Most requests (or responses) waiting in each channel between workers. Requests
        /// travel in batches; a batch that would not fit is dropped and counted, never
        /// waited for. At least 1024, the largest batch.
        pub channel_capacity_requests: usize,
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            socket_workers: 0,
            request_workers: 0,
            channel_capacity_requests: 65_536,
        }
    }
}

impl WorkerConfig {
    /// Replaces "0 = automatic" with real counts, given the number of available CPUs.
    pub fn resolve(&mut self, available_cpus: usize) {
        let half = (available_cpus / 2).max(1);
        if self.socket_workers == 0 {
            self.socket_workers = half;
        }
        if self.request_workers == 0 {
            self.request_workers = half;
        }
    }

    /// Checks values that cannot work.
    ///
    /// # Errors
    /// A message naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.channel_capacity_requests < crate::runtime::channel::MAX_BATCH_LEN {
            anyhow::bail!(
                "workers.channel_capacity_requests: must be at least {} (the largest batch)",
                crate::runtime::channel::MAX_BATCH_LEN
            );
        }
        if self.socket_workers > 1024 || self.request_workers > 1024 {
            anyhow::bail!("workers: at most 1024 socket workers and 1024 request workers");
        }
        Ok(())
    }
}

config_section! {
    /// Swarm rules: intervals, peer lists, expiry and memory bounds.
    pub struct SwarmConfig {
        /// Seconds clients are asked to wait between announces.
        pub announce_interval_secs: u32,
        /// Seconds a peer must wait between two announces; one sooner is answered with the
        /// swarm's counts and no peers, and the peer is not re-stored (its last-seen time,
        /// seeder state and peer id stay as they were). Announces with an event (started,
        /// completed, stopped) always apply. 0 = off. Must be below announce_interval_secs;
        /// a value near it punishes clients that announce a little early (many do, by a few
        /// seconds), so leave a margin: e.g. 1500 for an 1800-second interval.
        pub min_announce_interval_secs: u32,
        /// Peers returned when the client does not say how many it wants (or asks for a
        /// negative number).
        pub numwant_default: usize,
        /// Most peers returned in one announce response, whatever the client asks for.
        pub numwant_max: usize,
        /// Seconds after its last announce that a peer is forgotten. Should exceed
        /// announce_interval_secs, so that punctual peers are never dropped.
        pub max_peer_age_secs: u32,
        /// Seconds between sweeps that remove expired peers and empty torrents.
        pub cleaning_interval_secs: u32,
        /// Most torrents (distinct info hashes) tracked by the whole tracker, over all
        /// request workers and both address families; announces for further new torrents
        /// are answered but not stored. With max_peers, the bound on the swarm's memory
        /// (documents/swarm-memory.md gives the memory the defaults come to).
        pub max_torrents: usize,
        /// Most peers tracked by the whole tracker, over all torrents; further new peers
        /// are answered but not stored.
        pub max_peers: usize,
        /// Most peers in one torrent, seeders and leechers, IPv4 and IPv6 together; further
        /// new peers are answered but not stored.
        pub max_peers_per_torrent: usize,
        /// Most peers one IPv4 address, or one IPv6 /64 prefix (what one subscriber
        /// usually holds), may have in one torrent, seeders and leechers together. A new
        /// peer beyond it is answered (it gets peers and counts) but not stored, so it is
        /// not handed to others. This stops one address from filling a swarm with made-up
        /// peers, while the many users behind one carrier-grade NAT address are rarely in
        /// the same swarm at the same time, and one over the cap still downloads.
        pub max_peers_per_ip: usize,
        /// Most completed counts of emptied torrents kept (whole tracker, split evenly over
        /// the request workers), so that a scrape's `downloaded` survives a torrent's
        /// last peer leaving. Takes 12 bytes per entry, in a table that grows as it
        /// fills, up to this; when full, the smallest counts make way. 0 = keep none.
        pub max_archived_torrents: usize,
        /// Use the IP address a client puts in its announce instead of the packet's source
        /// address. Only for trackers behind a trusted relay: anyone could otherwise add
        /// someone else's address to a swarm.
        pub trust_client_ip: bool,
        /// File that keeps the swarm over a restart: written at a clean shutdown
        /// (SIGTERM, SIGINT) and every snapshot_interval_secs, read at start (peers that
        /// expired meanwhile are dropped; an unreadable file is renamed to
        /// `<path>.corrupt-<unix time>` and the tracker starts empty). The WebSocket
        /// tracker keeps only completed counts: its peers are connections. Its directory
        /// must exist; the routing key is kept in it too, so keep it private. "" = off.
        pub snapshot_path: String,
        /// Seconds between snapshots while running, besides the one at shutdown. 0 =
        /// only at shutdown.
        pub snapshot_interval_secs: u32,
    }
}

impl Default for SwarmConfig {
    fn default() -> Self {
        Self {
            announce_interval_secs: 1800,
            min_announce_interval_secs: 0,
            numwant_default: 30,
            numwant_max: 50,
            max_peer_age_secs: 2700,
            cleaning_interval_secs: 30,
            max_torrents: 1_500_000,
            max_peers: 6_000_000,
            max_peers_per_torrent: 1_000_000,
            max_peers_per_ip: 32,
            max_archived_torrents: 1_048_576,
            trust_client_ip: false,
            snapshot_path: String::new(),
            snapshot_interval_secs: 0,
        }
    }
}

/// The most entries `swarm.max_archived_torrents` may ask for.
const MAX_ARCHIVED_TORRENTS: usize = 1 << 28;

impl SwarmConfig {
    /// Checks values that cannot work.
    ///
    /// # Errors
    /// A message naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.announce_interval_secs == 0 {
            anyhow::bail!("swarm.announce_interval_secs: must be at least 1");
        }
        if i32::try_from(self.announce_interval_secs).is_err() {
            anyhow::bail!("swarm.announce_interval_secs: must be at most {}", i32::MAX);
        }
        if self.min_announce_interval_secs >= self.announce_interval_secs {
            anyhow::bail!(
                "swarm.min_announce_interval_secs: must be below swarm.announce_interval_secs \
                 ({}), or peers that announce on time would be throttled",
                self.announce_interval_secs
            );
        }
        if self.max_peer_age_secs <= self.announce_interval_secs {
            anyhow::bail!(
                "swarm.max_peer_age_secs: must be greater than swarm.announce_interval_secs \
                 ({}), or peers that announce on time would expire",
                self.announce_interval_secs
            );
        }
        if self.cleaning_interval_secs == 0 {
            anyhow::bail!("swarm.cleaning_interval_secs: must be at least 1");
        }
        if self.numwant_default > self.numwant_max {
            anyhow::bail!(
                "swarm.numwant_default: must not exceed swarm.numwant_max ({})",
                self.numwant_max
            );
        }
        if self.max_torrents == 0 {
            anyhow::bail!("swarm.max_torrents: must be at least 1");
        }
        if self.max_peers == 0 {
            anyhow::bail!("swarm.max_peers: must be at least 1");
        }
        if self.max_peers_per_torrent == 0 {
            anyhow::bail!("swarm.max_peers_per_torrent: must be at least 1");
        }
        // A large store indexes its peers by `u32` position.
        if self.max_peers_per_torrent >= crate::swarm::MAX_STORE_LEN {
            anyhow::bail!(
                "swarm.max_peers_per_torrent: must be below {}",
                crate::swarm::MAX_STORE_LEN
            );
        }
        if self.max_peers_per_ip == 0 {
            anyhow::bail!("swarm.max_peers_per_ip: must be at least 1");
        }
        // The archive's table grows up to this: a typo must not let it ask for
        // terabytes. 2^28 entries take 3 GiB.
        if self.max_archived_torrents > MAX_ARCHIVED_TORRENTS {
            anyhow::bail!(
                "swarm.max_archived_torrents: must be at most {MAX_ARCHIVED_TORRENTS} (its \
                 table grows up to 12 bytes an entry)"
            );
        }
        Ok(())
    }

    /// The whole-tracker memory bounds and the minimum announce interval these settings
    /// give the swarm.
    pub fn limits(&self) -> crate::swarm::SwarmLimits {
        crate::swarm::SwarmLimits {
            max_torrents: self.max_torrents,
            max_peers: self.max_peers,
            max_peers_per_torrent: self.max_peers_per_torrent,
            max_peers_per_ip: self.max_peers_per_ip,
            max_archived_torrents: self.max_archived_torrents,
            min_announce_interval_secs: self.min_announce_interval_secs,
        }
    }
}

config_section! {
    /// Periodic statistics in the log.
    pub struct StatisticsConfig {
        /// Seconds between statistics lines in the log (requests/s by kind, responses/s,
        /// torrents, seeders, leechers, drops, bad requests). 0 = off.
        pub interval_secs: u32,
    }
}

impl Default for StatisticsConfig {
    fn default() -> Self {
        Self { interval_secs: 60 }
    }
}

/// What every tracker's top-level config offers to the shared CLI.
pub trait TrackerConfig: ConfigDoc + Serialize + DeserializeOwned + Default {
    /// The prefix of the environment variables that set this config's keys
    /// (`SHOAL_UDP` reads `SHOAL_UDP__NETWORK__ADDRESS`), or `None` for a program whose
    /// config the environment does not touch.
    const ENV_PREFIX: Option<&'static str> = None;

    /// The configured log level.
    fn log_level(&self) -> LogLevel;

    /// Checks the config and resolves automatic values; idempotent.
    ///
    /// # Errors
    /// A message naming the first bad key and the problem.
    fn validate(&mut self) -> anyhow::Result<()>;
}

/// A config as loaded from its file (or the defaults) and the environment.
#[derive(Debug)]
pub struct LoadedConfig<C> {
    /// The config, not yet validated.
    pub config: C,
    /// The environment variables that set keys, sorted.
    pub env_variables: Vec<String>,
    /// Variables that look like a misspelt override (`SHOAL_UDP_LOG_LEVEL`, one `_`),
    /// which were not read.
    pub env_near_misses: Vec<String>,
}

/// Loads a tracker's config: the file (or the defaults when there is none), then every
/// variable of `vars` under [`TrackerConfig::ENV_PREFIX`] written over its key. Validation
/// is left to the caller.
///
/// # Errors
/// A file that cannot be read or parsed (naming the file and the key), a variable
/// under the prefix that names no key, or a value that does not fit its key (naming the
/// variable).
pub fn load_config<C, K, V>(
    file: Option<&Path>,
    vars: impl IntoIterator<Item = (K, V)>,
) -> anyhow::Result<LoadedConfig<C>>
where
    C: TrackerConfig,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let text = match file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("read config file {}", path.display()))?,
        ),
        None => None,
    };
    let file_context = || match file {
        Some(path) => format!("config file {}", path.display()),
        None => "built-in default config".to_string(),
    };
    let overrides = match C::ENV_PREFIX {
        Some(prefix) => EnvOverrides::from_vars::<C, K, V>(prefix, vars)?,
        None => EnvOverrides::default(),
    };
    // The file alone first: its errors keep their line numbers, and a broken file is
    // reported as such even where a variable would replace the broken value.
    let from_file = match &text {
        Some(text) => parse_config::<C>(text).with_context(file_context)?,
        None => C::default(),
    };
    let env_near_misses = overrides.near_misses().to_vec();
    if overrides.is_empty() {
        return Ok(LoadedConfig {
            config: from_file,
            env_variables: Vec::new(),
            env_near_misses,
        });
    }
    let mut table = match &text {
        Some(text) => text
            .parse::<toml::Table>()
            .map_err(|err| anyhow::anyhow!("{}", err.to_string().trim_end()))
            .with_context(file_context)?,
        None => toml::Table::new(),
    };
    overrides.apply(&mut table)?;
    let config = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|err| {
        let path = err.path().to_string();
        // The message alone: toml would add the key, which is named here already.
        let inner = err.into_inner();
        let inner = inner.message().trim_end();
        match overrides.variable_for(&path) {
            Some(variable) => anyhow::anyhow!("environment variable {variable}: {inner}"),
            None => anyhow::anyhow!("{}: key `{path}`: {inner}", file_context()),
        }
    })?;
    Ok(LoadedConfig {
        config,
        env_variables: overrides.variables().map(str::to_string).collect(),
        env_near_misses,
    })
}

/// Parses config TOML text.
///
/// # Errors
/// A message naming the key (as a dotted path), the line and the problem.
pub fn parse_config<C: DeserializeOwned>(text: &str) -> anyhow::Result<C> {
    let deserializer = toml::Deserializer::parse(text)
        .map_err(|err| anyhow::anyhow!("{}", err.to_string().trim_end()))?;
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner().to_string();
        if path == "." || path.is_empty() {
            anyhow::anyhow!("{}", inner.trim_end())
        } else {
            anyhow::anyhow!("key `{path}`: {}", inner.trim_end())
        }
    })
}

/// The default config as TOML, every key preceded by its doc comment.
///
/// # Errors
/// Only if the config cannot be represented as TOML (a programming error).
pub fn documented_default_toml<C: ConfigDoc + Serialize + Default>() -> anyhow::Result<String> {
    let table = toml::Table::try_from(C::default()).context("serialize default config")?;
    let mut out = String::new();
    write_table::<C>(&mut out, &table, &mut Vec::new());
    Ok(out)
}

/// What `-p` prints for a tracker: a header on the environment variables (for a config
/// with [`TrackerConfig::ENV_PREFIX`]), then [`documented_default_toml`].
///
/// # Errors
/// As [`documented_default_toml`].
pub fn documented_config_toml<C: TrackerConfig>() -> anyhow::Result<String> {
    let mut out = String::new();
    if let Some(prefix) = C::ENV_PREFIX {
        let examples: Vec<String> = [
            (&["log_level"][..], "debug"),
            (&["network", "address"][..], "[::]:6969"),
        ]
        .iter()
        .filter(|(path, _)| C::field_doc(path).is_some())
        .map(|(path, value)| {
            let name: Vec<String> = path.iter().map(|s| s.to_ascii_uppercase()).collect();
            format!("#   {prefix}__{}={value}\n", name.join("__"))
        })
        .collect();
        let _ = write!(
            out,
            "# Every key can also be set by an environment variable, over this file (or the\n\
             # defaults): {prefix}__ and the key's path in upper case, sections joined by __:\n\
             {}\
             # A value is read as TOML where it is TOML (numbers, booleans, arrays such as\n\
             # [\"10.0.0.0/8\"]) and as text otherwise; a key whose value is text takes the\n\
             # variable as it is. A variable {prefix}__... that names no key, or a value that\n\
             # does not fit its key, stops the start with a message naming the variable.\n\n",
            examples.concat()
        );
    }
    out.push_str(&documented_default_toml::<C>()?);
    Ok(out)
}

fn write_doc(out: &mut String, doc: Option<&str>) {
    for line in doc.unwrap_or("").lines() {
        let line = line.trim();
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            let _ = writeln!(out, "# {line}");
        }
    }
}

fn write_table<C: ConfigDoc>(out: &mut String, table: &toml::Table, path: &mut Vec<String>) {
    // TOML wants a table's plain keys before its sub-tables.
    for (key, value) in table {
        if value.is_table() {
            continue;
        }
        path.push(key.clone());
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        write_doc(out, C::field_doc(&refs));
        let _ = writeln!(out, "{key} = {value}");
        path.pop();
    }
    for (key, value) in table {
        let Some(sub) = value.as_table() else {
            continue;
        };
        path.push(key.clone());
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        out.push('\n');
        write_doc(out, C::field_doc(&refs));
        let _ = writeln!(out, "[{}]", path.join("."));
        write_table::<C>(out, sub, path);
        path.pop();
    }
}

#[cfg(test)]
#[expect(
    unreachable_pub,
    reason = "config_section! always declares pub structs"
)]
mod tests {
    use super::*;

    config_section! {
        /// Inner section.
        pub struct Inner {
            /// A number.
            /// Second line.
            pub number: u32,
        }
    }

    impl Default for Inner {
        fn default() -> Self {
            Self { number: 7 }
        }
    }

    config_section! {
        /// Outer section.
        pub struct Outer {
            /// The level.
            pub log_level: LogLevel,
            /// The inner part.
            pub inner: Inner,
        }
    }

    impl Default for Outer {
        fn default() -> Self {
            Self {
                log_level: LogLevel::Warn,
                inner: Inner::default(),
            }
        }
    }

    #[test]
    fn documented_toml_parses_back_and_has_comments() {
        let text = documented_default_toml::<Outer>().unwrap();
        assert_eq!(
            text,
            "# The level.\nlog_level = \"warn\"\n\n# The inner part.\n[inner]\n\
             # A number.\n# Second line.\nnumber = 7\n"
        );
        let parsed: Outer = parse_config(&text).unwrap();
        assert_eq!(parsed, Outer::default());
    }

    #[test]
    fn errors_name_the_key() {
        let err = parse_config::<Outer>("[inner]\nnumber = \"x\"\n").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("number"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        let err = parse_config::<Outer>("[inner]\nnumbr = 1\n").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("unknown field `numbr`"), "{msg}");
        let err = parse_config::<Outer>("log_level = \"loud\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("loud"));
    }

    impl TrackerConfig for Outer {
        const ENV_PREFIX: Option<&'static str> = Some("SHOAL_TEST");

        fn log_level(&self) -> LogLevel {
            self.log_level
        }

        fn validate(&mut self) -> anyhow::Result<()> {
            Ok(())
        }
    }

    fn temp_file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("shoal-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn environment_variables_set_keys_over_the_file_or_the_defaults() {
        let vars = [
            ("SHOAL_TEST__INNER__NUMBER", "9"),
            ("SHOAL_TEST__LOG_LEVEL", "debug"),
            ("SHOAL_OTHER__LOG_LEVEL", "loud"),
        ];
        let loaded = load_config::<Outer, _, _>(None, vars).unwrap();
        assert_eq!(loaded.config.inner.number, 9);
        assert_eq!(loaded.config.log_level, LogLevel::Debug);
        assert_eq!(
            loaded.env_variables,
            ["SHOAL_TEST__INNER__NUMBER", "SHOAL_TEST__LOG_LEVEL"]
        );

        // Over a file: the variable wins, the file's other keys stay.
        let path = temp_file(
            "env-over-file",
            "log_level = \"error\"\n[inner]\nnumber = 1\n",
        );
        let loaded =
            load_config::<Outer, _, _>(Some(&path), [("SHOAL_TEST__INNER__NUMBER", "2")]).unwrap();
        assert_eq!(loaded.config.inner.number, 2);
        assert_eq!(loaded.config.log_level, LogLevel::Error);
        // Without variables, the file alone.
        let loaded = load_config::<Outer, &str, &str>(Some(&path), []).unwrap();
        assert_eq!(loaded.config.inner.number, 1);
        assert!(loaded.env_variables.is_empty());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn bad_variables_are_named_and_file_errors_keep_their_lines() {
        let err =
            load_config::<Outer, _, _>(None, [("SHOAL_TEST__INNER__NUMBER", "many")]).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.starts_with("environment variable SHOAL_TEST__INNER__NUMBER: invalid type"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
        let err =
            load_config::<Outer, _, _>(None, [("SHOAL_TEST__LOG_LEVEL", "loud")]).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.starts_with("environment variable SHOAL_TEST__LOG_LEVEL: unknown variant `loud`"),
            "{msg}"
        );
        let err =
            load_config::<Outer, _, _>(None, [("SHOAL_TEST__INNER__NUMBR", "1")]).unwrap_err();
        assert!(format!("{err:#}").contains("SHOAL_TEST__INNER__NUMBR"));

        let path = temp_file("env-file-error", "[inner]\nnumber = \"x\"\n");
        let err = load_config::<Outer, _, _>(Some(&path), [("SHOAL_TEST__INNER__NUMBER", "2")])
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("config.toml") && msg.contains("inner.number") && msg.contains("line 2"),
            "{msg}"
        );
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn the_printed_config_says_how_keys_map_to_variables() {
        let text = documented_config_toml::<Outer>().unwrap();
        assert!(text.starts_with("# Every key can also be set"), "{text}");
        assert!(text.contains("#   SHOAL_TEST__LOG_LEVEL=debug\n"), "{text}");
        // Outer has no network.address: no example for it.
        assert!(!text.contains("NETWORK"), "{text}");
        assert!(text.ends_with(&documented_default_toml::<Outer>().unwrap()));
        assert_eq!(parse_config::<Outer>(&text).unwrap(), Outer::default());
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(parse_config::<Outer>("").unwrap(), Outer::default());
    }

    #[test]
    fn swarm_validation_names_keys() {
        let mut c = SwarmConfig::default();
        assert!(c.validate().is_ok());
        c.max_peer_age_secs = c.announce_interval_secs;
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.starts_with("swarm.max_peer_age_secs"), "{msg}");
        let mut c = SwarmConfig {
            numwant_default: 60,
            ..SwarmConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("swarm.numwant_default")
        );
        c.numwant_default = 1;
        c.cleaning_interval_secs = 0;
        assert!(c.validate().is_err());
        let c = SwarmConfig {
            max_archived_torrents: usize::MAX,
            ..SwarmConfig::default()
        };
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.starts_with("swarm.max_archived_torrents"), "{msg}");
        for (key, set) in [
            (
                "swarm.max_peers:",
                (|c| c.max_peers = 0) as fn(&mut SwarmConfig),
            ),
            ("swarm.max_peers_per_ip:", |c| c.max_peers_per_ip = 0),
            // A store indexes its peers by `u32` position.
            ("swarm.max_peers_per_torrent:", |c| {
                c.max_peers_per_torrent = u32::MAX as usize
            }),
        ] {
            let mut c = SwarmConfig::default();
            set(&mut c);
            let msg = c.validate().unwrap_err().to_string();
            assert!(msg.starts_with(key), "{msg}");
        }
        // The archive may be off.
        let c = SwarmConfig {
            max_archived_torrents: 0,
            ..SwarmConfig::default()
        };
        assert!(c.validate().is_ok());
        assert_eq!(c.limits().max_archived_torrents, 0);
    }

    /// The minimum announce interval: off by default, below the announce interval, and
    /// handed to the shards in the limits.
    #[test]
    fn min_announce_interval_is_below_the_interval_and_reaches_the_limits() {
        let c = SwarmConfig::default();
        assert_eq!(c.min_announce_interval_secs, 0);
        assert_eq!(c.limits().min_announce_interval_secs, 0);
        for min in [
            c.announce_interval_secs,
            c.announce_interval_secs + 1,
            u32::MAX,
        ] {
            let c = SwarmConfig {
                min_announce_interval_secs: min,
                ..SwarmConfig::default()
            };
            let msg = c.validate().unwrap_err().to_string();
            assert!(
                msg.starts_with("swarm.min_announce_interval_secs:"),
                "{msg}"
            );
        }
        let c = SwarmConfig {
            min_announce_interval_secs: 1500,
            ..SwarmConfig::default()
        };
        assert!(c.validate().is_ok());
        assert_eq!(c.limits().min_announce_interval_secs, 1500);
        // Just below the interval is allowed, however unwise.
        let c = SwarmConfig {
            announce_interval_secs: 60,
            max_peer_age_secs: 90,
            min_announce_interval_secs: 59,
            ..SwarmConfig::default()
        };
        assert!(c.validate().is_ok());
        // Read from a file like any key.
        let c: SwarmConfig = parse_config("min_announce_interval_secs = 1200\n").unwrap();
        assert_eq!(c.min_announce_interval_secs, 1200);
    }

    #[test]
    fn worker_counts_resolve() {
        let mut w = WorkerConfig::default();
        w.resolve(1);
        assert_eq!((w.socket_workers, w.request_workers), (1, 1));
        let mut w = WorkerConfig::default();
        w.resolve(8);
        assert_eq!((w.socket_workers, w.request_workers), (4, 4));
        let mut w = WorkerConfig {
            socket_workers: 3,
            ..WorkerConfig::default()
        };
        w.resolve(8);
        assert_eq!((w.socket_workers, w.request_workers), (3, 4));
        let w = WorkerConfig {
            channel_capacity_requests: 1023,
            ..WorkerConfig::default()
        };
        let msg = w.validate().unwrap_err().to_string();
        assert!(
            msg.starts_with("workers.channel_capacity_requests"),
            "{msg}"
        );
    }
}
