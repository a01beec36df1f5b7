//! Banned networks: client addresses the tracker does not serve at all.
//!
//! A banned address's UDP packets are dropped unread and its TCP connections closed at
//! accept. This module holds the list and answers "is this address banned"; the socket
//! workers drop and close, and the admin API makes changes.
//!
//! # The rules
//! - A ban is a [`Network`] (an address with its host bits zero, and a prefix length)
//!   and, optionally, the Unix second at which it ends. A ban that ends at `t` applies
//!   before `t` and not from `t` on; a ban without an end applies for ever.
//! - An address is banned when any ban whose network contains it applies: overlapping
//!   bans (a /16 and a /24 inside it) each apply on their own, so removing or expiring
//!   one leaves the other in force.
//! - IPv4 clients seen as IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, as a dual-stack
//!   socket reports them) are IPv4 clients: IPv4 networks match them, IPv6 networks
//!   never do (so `::/0` bans every IPv6 client and no IPv4 one). A network written in
//!   mapped form (`::ffff:a.b.c.d/n`, `n >= 96`) is the IPv4 network `a.b.c.d/(n - 96)`.
//! - A network given twice (in the file, or to [`BanList::new`]): the last one wins.
//!
//! # The file
//! One ban a line, `NETWORK [EXPIRES]`: `203.0.113.0/24`, `2001:db8::/48`, or a bare
//! address (a /32 or /128), then optionally the Unix second at which the ban ends.
//! Blank lines and `#` comments (whole-line or trailing) are allowed.
//! [`BanList::write_file`] replaces the file atomically.
//!
//! # The list in force
//! A [`BanList`] never changes once made: a change makes a new list (copy on write), and
//! the new one is swapped in whole behind an [`ArcSwap`] ([`SharedBans`]). Each worker
//! reads it through a [`BanCache`]: one atomic load per check, no lock, nothing more
//! when no bans are held, and the wall clock read only when a ban that has an end
//! matches.
//!
//! Lookup costs one hash-map probe per distinct prefix length held in the client's
//! family (at most 33 for IPv4, 129 for IPv6), whatever the number of bans: per family,
//! a map from masked address to the ban's end for each prefix length present. Nothing
//! here panics on any input (the module denies `unwrap`, `expect`, `panic!` and
//! indexing).
//!
//! # Memory
//! A ban is held twice: as a [`Ban`] in the sorted list (40 bytes) and as an entry in
//! its prefix length's hash map (17 bytes for IPv4, 25 for IPv6, times the map's
//! 8/7 to 16/7 slots per entry). So an IPv4 ban takes about 60 to 80 bytes, an IPv6 ban
//! 70 to 100; a million bans take 60 to 100 MB, and twice that for a moment while a
//! change makes the new list beside the old.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::{ArcSwap, Cache};
use hashbrown::HashMap;

use crate::observe::statistics::unix_now_secs;

crate::config_section! {
    /// Banned networks: a client address inside one is not served at all. Its UDP
    /// packets are dropped unread and its TCP connections closed when accepted. An IPv4
    /// client seen as an IPv4-mapped IPv6 address (::ffff:a.b.c.d) counts as IPv4.
    pub struct BanConfig {
        /// File of banned networks, one a line: a network (203.0.113.0/24,
        /// 2001:db8::/48, or a bare address for that address alone), then optionally the
        /// Unix time in seconds at which the ban ends; blank lines and # comments
        /// allowed. The file must exist (it may be empty); the admin API writes its
        /// changes back to it. "" = no bans file (bans off; the admin API refuses to add
        /// any).
        pub path: PathBuf,
        /// Most bans held, from the file and the admin API together: a file holding more
        /// is refused, and so is a ban added beyond it. A ban takes about 60 to 100
        /// bytes, twice that for a moment while a change is made.
        pub max_bans: usize,
    }
}

impl Default for BanConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            max_bans: 1_000_000,
        }
    }
}

impl BanConfig {
    /// Checks the section.
    ///
    /// # Errors
    /// A bad value, naming its key.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_bans == 0 {
            anyhow::bail!("bans.max_bans: must be at least 1");
        }
        Ok(())
    }
}

/// A network: an address with its host bits zero, and a prefix length.
///
/// Never an IPv4-mapped IPv6 address: those are made IPv4 networks. Ordered by family
/// (IPv4 first), then address, then prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Network {
    address: IpAddr,
    prefix_len: u8,
}

impl Network {
    /// Parses `203.0.113.0/24`, `2001:db8::/48`, or a bare address (a /32 or /128). An
    /// IPv4-mapped IPv6 network (`::ffff:203.0.113.0/120`) is made the IPv4 one
    /// (`203.0.113.0/24`).
    ///
    /// # Errors
    /// A sentence naming the text: it is empty, its address is not an IP address, its
    /// prefix length is missing, not a number or too long for the family, characters
    /// follow the prefix length, or host bits are set (naming the network meant).
    pub fn parse(text: &str) -> Result<Network, String> {
        if text.is_empty() {
            return Err("the network is empty: expected an address, or address/prefix".into());
        }
        let (address_text, prefix_text) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address_text.parse().map_err(|_| {
            format!(
                "{} is not a network: {} is not an IP address",
                shown(text),
                shown(address_text)
            )
        })?;
        let max = max_prefix_len(address);
        let prefix_len = match prefix_text {
            None => u32::from(max),
            Some(prefix_text) => {
                let digits_end = prefix_text
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(prefix_text.len());
                let (digits, extra) = prefix_text.split_at(digits_end);
                if digits.is_empty() {
                    return Err(format!(
                        "{} is not a network: no prefix length after the '/'",
                        shown(text)
                    ));
                }
                if !extra.is_empty() {
                    return Err(format!(
                        "{} is not a network: extra characters {} after the prefix length",
                        shown(text),
                        shown(extra)
                    ));
                }
                // Too many digits for a u32 is too long for any family.
                let len = digits.parse::<u32>().unwrap_or(u32::MAX);
                if len > u32::from(max) {
                    let family = if address.is_ipv4() { "IPv4" } else { "IPv6" };
                    return Err(format!(
                        "{} is not a network: the prefix length {digits} is more than the \
                         {max} bits of an {family} address",
                        shown(text),
                    ));
                }
                len
            }
        };
        let prefix_len = u8::try_from(prefix_len).unwrap_or(max);
        // Checked in the family written; a mapped network is then made IPv4.
        let network = Self::masked(address, prefix_len);
        if !Self::host_bits_zero(address, prefix_len) {
            return Err(format!(
                "{text} has host bits set; the network is {network}"
            ));
        }
        Ok(network)
    }

    /// The network of `address`'s first `prefix_len` bits (at most the family's bits),
    /// the rest cleared, normalised from IPv4-mapped form.
    fn masked(address: IpAddr, prefix_len: u8) -> Network {
        match address {
            IpAddr::V4(v4) => {
                let len = prefix_len.min(32);
                Network {
                    address: IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask_v4(len))),
                    prefix_len: len,
                }
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix_len >= 96 => Self::masked(IpAddr::V4(v4), prefix_len - 96),
                _ => {
                    let len = prefix_len.min(128);
                    Network {
                        address: IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask_v6(len))),
                        prefix_len: len,
                    }
                }
            },
        }
    }

    /// Whether the bits of `address` after its first `prefix_len` are all zero.
    fn host_bits_zero(address: IpAddr, prefix_len: u8) -> bool {
        match address {
            IpAddr::V4(v4) => u32::from(v4) & !mask_v4(prefix_len) == 0,
            IpAddr::V6(v6) => u128::from(v6) & !mask_v6(prefix_len) == 0,
        }
    }

    /// Whether the network contains `ip`. An IPv4-mapped IPv6 address is an IPv4
    /// address here: IPv4 networks contain it, IPv6 networks do not.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, client_address(ip)) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                u32::from(ip) & mask_v4(self.prefix_len) == u32::from(network)
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                u128::from(ip) & mask_v6(self.prefix_len) == u128::from(network)
            }
            _ => false,
        }
    }

    /// The prefix length: 0 to 32 for IPv4, 0 to 128 for IPv6.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The network's address (its host bits zero).
    pub fn address(&self) -> IpAddr {
        self.address
    }
}

impl fmt::Display for Network {
    /// The canonical form, always with the prefix length: `203.0.113.0/24`,
    /// `2001:db8::/48`, `192.0.2.1/32`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

impl FromStr for Network {
    type Err = String;

    /// As [`Network::parse`].
    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
    }
}

/// A banned network, and when the ban ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ban {
    /// The network banned.
    pub network: Network,
    /// Unix seconds from which the ban no longer applies; `None` = for ever.
    pub expires_unix_secs: Option<u64>,
}

impl Ban {
    /// Whether the ban applies at `now_unix_secs`.
    fn applies_at(&self, now_unix_secs: u64) -> bool {
        self.expires_unix_secs.is_none_or(|end| now_unix_secs < end)
    }
}

/// The bans in force: immutable once made; a change makes a new list, swapped in whole.
///
/// Equal when they hold the same bans.
#[derive(Clone, Debug, Default)]
pub struct BanList {
    /// Sorted by network, one ban per network.
    bans: Vec<Ban>,
    v4: Tables<u32>,
    v6: Tables<V6Key>,
}

impl PartialEq for BanList {
    fn eq(&self, other: &Self) -> bool {
        // The tables are made from the bans alone.
        self.bans == other.bans
    }
}

impl Eq for BanList {}

impl BanList {
    /// A list with no bans.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A list of these bans; of two bans of one network, the last given wins.
    pub fn new(bans: impl IntoIterator<Item = Ban>) -> Self {
        let mut given: Vec<Ban> = bans.into_iter().collect();
        // Stable: the bans of one network stay in the order given.
        given.sort_by_key(|ban| ban.network);
        let mut unique: Vec<Ban> = Vec::with_capacity(given.len());
        for ban in given {
            match unique.last_mut() {
                Some(last) if last.network == ban.network => *last = ban,
                _ => unique.push(ban),
            }
        }
        Self::from_sorted(unique)
    }

    /// A list of bans already sorted by network, one per network.
    fn from_sorted(bans: Vec<Ban>) -> Self {
        let mut list = Self::default();
        for ban in &bans {
            list.index(ban);
        }
        list.bans = bans;
        list
    }

    /// Parses the text of a bans file (see the module doc). A network given twice: the
    /// last line wins.
    ///
    /// # Errors
    /// The 1-based number of the first bad line, and what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut bans = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let content = line.split('#').next().unwrap_or("");
            let mut words = content.split_whitespace();
            let Some(network) = words.next() else {
                continue;
            };
            let network = Network::parse(network).map_err(|msg| (index + 1, msg))?;
            let expires_unix_secs = match words.next() {
                None => None,
                Some(word) => Some(parse_unix_secs(word).ok_or_else(|| {
                    (
                        index + 1,
                        format!(
                            "the expiry {} is not a whole number of Unix seconds",
                            shown(word)
                        ),
                    )
                })?),
            };
            if let Some(extra) = words.next() {
                return Err((
                    index + 1,
                    format!(
                        "extra text {} after the ban of {network}: expected \
                         NETWORK [EXPIRES_UNIX_SECS]",
                        shown(extra)
                    ),
                ));
            }
            bans.push(Ban {
                network,
                expires_unix_secs,
            });
        }
        Ok(Self::new(bans))
    }

    /// Reads and parses a bans file.
    ///
    /// # Errors
    /// The file cannot be read, or a line is bad (named by file and line number).
    pub fn load_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read bans file {}", path.display()))?;
        Self::parse(&text).map_err(|(line, msg)| {
            anyhow::anyhow!("bans file {} line {line}: {msg}", path.display())
        })
    }

    /// Whether `ip` is banned at `now_unix_secs`: some ban whose network contains it
    /// has not ended.
    pub fn is_banned(&self, ip: IpAddr, now_unix_secs: u64) -> bool {
        self.lookup(ip, &mut || now_unix_secs)
    }

    /// As [`Self::is_banned`], calling `now` (at most once) only when a ban that has an
    /// end matches.
    fn lookup(&self, ip: IpAddr, now: &mut impl FnMut() -> u64) -> bool {
        match client_address(ip) {
            IpAddr::V4(v4) => self.v4.applies(u32::from(v4), now),
            IpAddr::V6(v6) => self.v6.applies(V6Key::from(v6), now),
        }
    }

    /// How many bans the list holds, ended ones included.
    pub fn len(&self) -> usize {
        self.bans.len()
    }

    /// Whether the list holds no bans.
    pub fn is_empty(&self) -> bool {
        self.bans.is_empty()
    }

    /// The bans, sorted by network.
    pub fn bans(&self) -> impl Iterator<Item = &Ban> {
        self.bans.iter()
    }

    /// The ban of exactly this network, if any (not of a network containing it).
    pub fn get(&self, network: &Network) -> Option<Ban> {
        let at = self.position(network).ok()?;
        self.bans.get(at).copied()
    }

    /// A copy with `ban` added, or replacing the ban of its network.
    pub fn with(&self, ban: Ban) -> Self {
        let mut list = self.clone();
        match list.position(&ban.network) {
            Ok(at) => {
                if let Some(slot) = list.bans.get_mut(at) {
                    *slot = ban;
                }
            }
            Err(at) => list.bans.insert(at, ban),
        }
        list.index(&ban);
        list
    }

    /// A copy without the ban of `network`; `None` when it is not banned (exactly: a
    /// network inside or around a banned one is not it).
    pub fn without(&self, network: &Network) -> Option<Self> {
        let at = self.position(network).ok()?;
        let mut list = self.clone();
        list.bans.remove(at);
        list.unindex(network);
        Some(list)
    }

    /// A copy without the bans that have ended at `now_unix_secs`.
    pub fn without_expired(&self, now_unix_secs: u64) -> Self {
        Self::from_sorted(
            self.bans
                .iter()
                .filter(|ban| ban.applies_at(now_unix_secs))
                .copied()
                .collect(),
        )
    }

    /// The list in the file format, after a one-line header comment.
    /// [`BanList::parse`] gives the list back.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut text = String::from("# shoal bans: NETWORK [EXPIRES_UNIX_SECS], one a line\n");
        for ban in &self.bans {
            // Writing to a String cannot fail.
            let _ = match ban.expires_unix_secs {
                Some(end) => writeln!(text, "{} {end}", ban.network),
                None => writeln!(text, "{}", ban.network),
            };
        }
        text
    }

    /// Writes the list to `path`, replacing the file whole (see
    /// [`crate::files::write_atomic`]). Two writes to one path at once from one process
    /// share the temporary file: the caller makes its writes one at a time.
    ///
    /// # Errors
    /// Creating, writing, syncing or renaming failed (naming the file); the old file is
    /// then as it was.
    pub fn write_file(&self, path: &Path) -> anyhow::Result<()> {
        crate::files::write_atomic(path, self.to_text().as_bytes(), 0o644)
    }

    /// Where `network` is in the sorted bans, or where it would go.
    fn position(&self, network: &Network) -> Result<usize, usize> {
        self.bans.binary_search_by(|ban| ban.network.cmp(network))
    }

    /// Enters `ban` in the lookup tables, replacing its network's entry.
    fn index(&mut self, ban: &Ban) {
        let Network {
            address,
            prefix_len,
        } = ban.network;
        match address {
            IpAddr::V4(v4) => self
                .v4
                .set(u32::from(v4), prefix_len, ban.expires_unix_secs),
            IpAddr::V6(v6) => self
                .v6
                .set(V6Key::from(v6), prefix_len, ban.expires_unix_secs),
        }
    }

    /// Takes `network` out of the lookup tables.
    fn unindex(&mut self, network: &Network) {
        match network.address {
            IpAddr::V4(v4) => self.v4.remove(u32::from(v4), network.prefix_len),
            IpAddr::V6(v6) => self.v6.remove(V6Key::from(v6), network.prefix_len),
        }
    }
}

/// The list in force, shared by every worker and swapped whole on a change.
pub type SharedBans = Arc<ArcSwap<BanList>>;

/// Makes the shared list from a loaded one.
pub fn shared(list: BanList) -> SharedBans {
    Arc::new(ArcSwap::from_pointee(list))
}

/// Loads the list the config names: an empty one when `path` is "".
///
/// # Errors
/// As [`BanList::load_file`], or the file holds more than `max_bans` bans (naming
/// `bans.max_bans`).
pub fn load(config: &BanConfig) -> anyhow::Result<BanList> {
    if config.path.as_os_str().is_empty() {
        return Ok(BanList::empty());
    }
    let list = BanList::load_file(&config.path)?;
    if list.len() > config.max_bans {
        anyhow::bail!(
            "bans file {} holds {} bans, more than bans.max_bans ({})",
            config.path.display(),
            list.len(),
            config.max_bans
        );
    }
    Ok(list)
}

/// Re-reads the configured file and swaps it in. On error the old list stays in force.
/// Returns how many bans the new list holds.
///
/// # Errors
/// As [`load`]; the caller logs it.
pub fn reload(shared: &SharedBans, config: &BanConfig) -> anyhow::Result<usize> {
    let list = load(config)?;
    let len = list.len();
    shared.store(Arc::new(list));
    Ok(len)
}

/// A worker's view of the shared list: one atomic load per check, no lock; nothing more
/// when the list is empty.
pub struct BanCache(Cache<SharedBans, Arc<BanList>>);

impl BanCache {
    /// A cache over the shared list.
    pub fn new(shared: SharedBans) -> Self {
        Self(Cache::new(shared))
    }

    /// Whether the list in force bans `ip` now. Reads the wall clock only when a
    /// matching ban has an end.
    pub fn is_banned(&mut self, ip: IpAddr) -> bool {
        let list = self.0.load();
        if list.is_empty() {
            return false;
        }
        let mut now = None;
        list.lookup(ip, &mut || *now.get_or_insert_with(unix_now_secs))
    }
}

/// The address a client is matched as: an IPv4-mapped IPv6 address is its IPv4 one.
fn client_address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The bits of an address of `address`'s family.
fn max_prefix_len(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The first `prefix_len` bits set (all of them beyond 32).
fn mask_v4(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32u32.saturating_sub(u32::from(prefix_len)))
        .unwrap_or(0)
}

/// The first `prefix_len` bits set (all of them beyond 128).
fn mask_v6(prefix_len: u8) -> u128 {
    u128::MAX
        .checked_shl(128u32.saturating_sub(u32::from(prefix_len)))
        .unwrap_or(0)
}

/// Decimal digits only (no sign, no spaces), within a u64.
fn parse_unix_secs(word: &str) -> Option<u64> {
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    word.parse().ok()
}

/// Text from input, quoted, cut to 60 characters so that a long line cannot make a long
/// message.
fn shown(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(60).collect();
    if chars.next().is_some() {
        format!("{head:?}...")
    } else {
        format!("{head:?}")
    }
}

/// The end of a ban as held in a table: [`FOR_EVER`], or the Unix second it ends.
///
/// A ban that ends at 0 never applies, so it is listed but not entered in a table; that
/// frees 0 to mean "for ever", and an entry takes 8 bytes rather than an `Option`'s 16.
const FOR_EVER: u64 = 0;

/// What a table holds for a ban ending at `expires`; `None`: it never applies.
fn table_end(expires: Option<u64>) -> Option<u64> {
    match expires {
        None => Some(FOR_EVER),
        Some(0) => None,
        Some(end) => Some(end),
    }
}

/// An address as a table key.
trait Key: Copy + Eq + Hash {
    /// The first `prefix_len` bits set.
    fn mask(prefix_len: u8) -> Self;
    /// The bits set in both.
    fn and(self, mask: Self) -> Self;
}

impl Key for u32 {
    fn mask(prefix_len: u8) -> Self {
        mask_v4(prefix_len)
    }

    fn and(self, mask: Self) -> Self {
        self & mask
    }
}

/// An IPv6 address as two halves: a `u128` key would be aligned to 16 bytes, making an
/// entry 32 bytes rather than 24.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct V6Key(u64, u64);

impl From<Ipv6Addr> for V6Key {
    fn from(address: Ipv6Addr) -> Self {
        let bits = u128::from(address);
        // Truncation meant: the two halves.
        V6Key((bits >> 64) as u64, bits as u64)
    }
}

impl Key for V6Key {
    fn mask(prefix_len: u8) -> Self {
        V6Key::from(Ipv6Addr::from(mask_v6(prefix_len)))
    }

    fn and(self, mask: Self) -> Self {
        V6Key(self.0 & mask.0, self.1 & mask.1)
    }
}

/// One family's bans that can apply: for each prefix length present, longest first, a
/// map from network address to the ban's end.
#[derive(Clone, Debug)]
struct Tables<K> {
    by_len: Vec<Table<K>>,
}

impl<K> Default for Tables<K> {
    fn default() -> Self {
        Self { by_len: Vec::new() }
    }
}

/// The bans of one prefix length.
#[derive(Clone, Debug)]
struct Table<K> {
    prefix_len: u8,
    /// [`Key::mask`] of `prefix_len`.
    mask: K,
    /// Network address to [`table_end`]; never empty.
    ends: HashMap<K, u64>,
}

impl<K: Key> Tables<K> {
    /// Where the table of `prefix_len` is (longest first), or would go.
    fn position(&self, prefix_len: u8) -> Result<usize, usize> {
        self.by_len
            .binary_search_by(|table| prefix_len.cmp(&table.prefix_len))
    }

    /// Enters the ban of network `key`/`prefix_len` ending at `expires`, replacing
    /// that network's entry.
    fn set(&mut self, key: K, prefix_len: u8, expires: Option<u64>) {
        let Some(end) = table_end(expires) else {
            self.remove(key, prefix_len);
            return;
        };
        match self.position(prefix_len) {
            Ok(at) => {
                if let Some(table) = self.by_len.get_mut(at) {
                    table.ends.insert(key, end);
                }
            }
            Err(at) => {
                let mut ends = HashMap::new();
                ends.insert(key, end);
                self.by_len.insert(
                    at,
                    Table {
                        prefix_len,
                        mask: K::mask(prefix_len),
                        ends,
                    },
                );
            }
        }
    }

    /// Takes out the network `key`/`prefix_len`, and its table if it was the last.
    fn remove(&mut self, key: K, prefix_len: u8) {
        let Ok(at) = self.position(prefix_len) else {
            return;
        };
        let now_empty = self.by_len.get_mut(at).is_some_and(|table| {
            table.ends.remove(&key);
            table.ends.is_empty()
        });
        if now_empty {
            self.by_len.remove(at);
        }
    }

    /// Whether a ban of a network containing `address` applies; `now` is called only
    /// for a ban that has an end.
    fn applies(&self, address: K, now: &mut impl FnMut() -> u64) -> bool {
        self.by_len.iter().any(|table| {
            table
                .ends
                .get(&address.and(table.mask))
                .is_some_and(|&end| end == FOR_EVER || now() < end)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap as StdHashMap;

    use proptest::prelude::*;

    use super::*;

    fn net(text: &str) -> Network {
        Network::parse(text).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn ban(text: &str, expires_unix_secs: Option<u64>) -> Ban {
        Ban {
            network: net(text),
            expires_unix_secs,
        }
    }

    fn mapped(v4: &str) -> IpAddr {
        IpAddr::V6(v4.parse::<Ipv4Addr>().unwrap().to_ipv6_mapped())
    }

    #[test]
    fn parse_accepts_networks_and_bare_addresses() {
        for (text, address, prefix_len) in [
            ("203.0.113.0/24", "203.0.113.0", 24),
            ("2001:db8::/48", "2001:db8::", 48),
            ("2001:DB8::/32", "2001:db8::", 32),
            ("192.0.2.7", "192.0.2.7", 32),
            ("2001:db8::1", "2001:db8::1", 128),
            ("0.0.0.0/0", "0.0.0.0", 0),
            ("::/0", "::", 0),
            ("192.0.2.7/32", "192.0.2.7", 32),
            // IPv4-mapped forms are IPv4 networks.
            ("::ffff:203.0.113.0/120", "203.0.113.0", 24),
            ("::ffff:192.0.2.7", "192.0.2.7", 32),
            ("::ffff:0:0/96", "0.0.0.0", 0),
        ] {
            let network = net(text);
            assert_eq!(network.address(), ip(address), "{text}");
            assert_eq!(network.prefix_len(), prefix_len, "{text}");
        }
        assert!(net("::ffff:192.0.2.7").address().is_ipv4());
    }

    #[test]
    fn parse_rejects_with_a_sentence_naming_the_text() {
        for (text, expected) in [
            ("", "empty"),
            ("203.0.113/24", "\"203.0.113\" is not an IP address"),
            ("example.org", "\"example.org\" is not an IP address"),
            ("[2001:db8::]/32", "is not an IP address"),
            (" 192.0.2.1", "is not an IP address"),
            ("fe80::1%eth0", "is not an IP address"),
            ("/24", "\"\" is not an IP address"),
            ("203.0.113.0/", "no prefix length"),
            ("203.0.113.0/x", "no prefix length"),
            ("203.0.113.0/+24", "no prefix length"),
            ("203.0.113.0/-1", "no prefix length"),
            (
                "203.0.113.0/33",
                "the prefix length 33 is more than the 32 bits",
            ),
            ("203.0.113.0/999999999999", "more than the 32 bits"),
            (
                "2001:db8::/129",
                "the prefix length 129 is more than the 128 bits",
            ),
            ("::ffff:192.0.2.0/129", "more than the 128 bits"),
            ("203.0.113.0/24x", "extra characters \"x\""),
            ("203.0.113.0/24/8", "extra characters \"/8\""),
            ("203.0.113.0/24 ", "extra characters \" \""),
            (
                "203.0.113.5/24",
                "203.0.113.5/24 has host bits set; the network is 203.0.113.0/24",
            ),
            (
                "2001:db8::1/64",
                "2001:db8::1/64 has host bits set; the network is 2001:db8::/64",
            ),
            (
                "::ffff:192.0.2.5/120",
                "has host bits set; the network is 192.0.2.0/24",
            ),
            ("0.0.0.1/0", "the network is 0.0.0.0/0"),
        ] {
            let err = Network::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
            if !text.is_empty() {
                assert!(err.contains(text.trim()), "{text:?}: {err}");
            }
            assert_eq!(text.parse::<Network>().unwrap_err(), err);
        }
        // A long text is cut in the message.
        let long = format!("{}/8", "1".repeat(500));
        assert!(Network::parse(&long).unwrap_err().len() < 200);
    }

    #[test]
    fn display_is_canonical_and_parses_back() {
        for (text, shown) in [
            ("203.0.113.0/24", "203.0.113.0/24"),
            ("192.0.2.7", "192.0.2.7/32"),
            ("2001:DB8:0:0::/48", "2001:db8::/48"),
            ("2001:db8::1", "2001:db8::1/128"),
            ("::ffff:203.0.113.0/120", "203.0.113.0/24"),
            ("::/0", "::/0"),
            ("0.0.0.0/0", "0.0.0.0/0"),
        ] {
            let network = net(text);
            assert_eq!(network.to_string(), shown);
            assert_eq!(shown.parse::<Network>().unwrap(), network);
        }
    }

    #[test]
    fn contains_and_ipv4_mapped_clients() {
        let v4 = net("203.0.113.0/24");
        assert!(v4.contains(ip("203.0.113.0")));
        assert!(v4.contains(ip("203.0.113.255")));
        assert!(!v4.contains(ip("203.0.114.0")));
        assert!(v4.contains(mapped("203.0.113.9")));
        assert!(!v4.contains(ip("::cb00:7109")));
        let v6 = net("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::")));
        assert!(!v6.contains(ip("32.1.13.184")));

        let list = BanList::new([ban("203.0.113.0/24", None)]);
        assert!(list.is_banned(mapped("203.0.113.9"), 0));
        assert!(list.is_banned(ip("203.0.113.9"), 0));
        assert!(!list.is_banned(mapped("203.0.114.9"), 0));
        // A ban written in mapped form is the IPv4 ban.
        let list = BanList::new([ban("::ffff:198.51.100.0/120", None)]);
        assert!(list.is_banned(ip("198.51.100.1"), 0));
        assert!(list.is_banned(mapped("198.51.100.1"), 0));
        assert!(list.get(&net("198.51.100.0/24")).is_some());
    }

    #[test]
    fn overlapping_bans_each_apply() {
        let wide = ban("10.1.0.0/16", None);
        let narrow = ban("10.1.2.0/24", Some(100));
        let list = BanList::new([wide, narrow]);
        assert!(list.is_banned(ip("10.1.2.3"), 0));
        assert!(list.is_banned(ip("10.1.9.9"), 0));
        assert!(!list.is_banned(ip("10.2.0.0"), 0));
        // The /24 ended: the /16 still bans the address.
        assert!(list.is_banned(ip("10.1.2.3"), 100));
        // Without the /16, only the /24 applies.
        let narrow_only = list.without(&wide.network).unwrap();
        assert!(narrow_only.is_banned(ip("10.1.2.3"), 0));
        assert!(!narrow_only.is_banned(ip("10.1.9.9"), 0));
        assert!(!narrow_only.is_banned(ip("10.1.2.3"), 100));
        // The /16 ended and the /24 not.
        let list = BanList::new([ban("10.1.0.0/16", Some(50)), ban("10.1.2.0/24", None)]);
        assert!(list.is_banned(ip("10.1.2.3"), 60));
        assert!(!list.is_banned(ip("10.1.9.9"), 60));
        // Same in IPv6, a /32 and a /127 and a /128.
        let list = BanList::new([
            ban("2001:db8::/32", Some(10)),
            ban("2001:db8::2/127", None),
            ban("2001:db8::9", None),
        ]);
        assert!(list.is_banned(ip("2001:db8::3"), 10));
        assert!(list.is_banned(ip("2001:db8::9"), 10));
        assert!(!list.is_banned(ip("2001:db8::4"), 10));
        assert!(list.is_banned(ip("2001:db8::4"), 9));
    }

    #[test]
    fn a_zero_prefix_bans_its_family_only() {
        let v4_all = BanList::new([ban("0.0.0.0/0", None)]);
        for address in ["0.0.0.0", "255.255.255.255", "192.0.2.1"] {
            assert!(v4_all.is_banned(ip(address), 0));
            assert!(v4_all.is_banned(mapped(address), 0));
        }
        assert!(!v4_all.is_banned(ip("2001:db8::1"), 0));
        assert!(!v4_all.is_banned(ip("::"), 0));
        let v6_all = BanList::new([ban("::/0", None)]);
        assert!(v6_all.is_banned(ip("2001:db8::1"), 0));
        assert!(v6_all.is_banned(ip("::"), 0));
        assert!(v6_all.is_banned(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 0));
        assert!(!v6_all.is_banned(ip("192.0.2.1"), 0));
        assert!(!v6_all.is_banned(mapped("192.0.2.1"), 0));
    }

    #[test]
    fn a_ban_ending_at_t_applies_before_t_only() {
        let t = 1_700_000_000;
        let list = BanList::new([ban("192.0.2.1", Some(t)), ban("2001:db8::/64", Some(t))]);
        for address in ["192.0.2.1", "2001:db8::5"] {
            assert!(list.is_banned(ip(address), 0));
            assert!(list.is_banned(ip(address), t - 1));
            assert!(!list.is_banned(ip(address), t));
            assert!(!list.is_banned(ip(address), u64::MAX));
        }
        let for_ever = BanList::new([ban("192.0.2.1", None)]);
        assert!(for_ever.is_banned(ip("192.0.2.1"), u64::MAX));
        // Ending at 0: never applies, yet is listed.
        let never = BanList::new([ban("192.0.2.1", Some(0))]);
        assert!(!never.is_banned(ip("192.0.2.1"), 0));
        assert_eq!(never.len(), 1);
        let at_max = BanList::new([ban("192.0.2.1", Some(u64::MAX))]);
        assert!(at_max.is_banned(ip("192.0.2.1"), u64::MAX - 1));
        assert!(!at_max.is_banned(ip("192.0.2.1"), u64::MAX));
    }

    #[test]
    fn new_keeps_the_last_ban_of_a_network_and_sorts() {
        let list = BanList::new([
            ban("2001:db8::/32", None),
            ban("10.0.0.0/8", Some(5)),
            ban("10.0.0.0/16", None),
            ban("9.0.0.0/8", None),
            ban("10.0.0.0/8", Some(7)),
        ]);
        assert_eq!(list.len(), 4);
        assert_eq!(
            list.get(&net("10.0.0.0/8")),
            Some(ban("10.0.0.0/8", Some(7)))
        );
        let order: Vec<String> = list.bans().map(|b| b.network.to_string()).collect();
        assert_eq!(
            order,
            ["9.0.0.0/8", "10.0.0.0/8", "10.0.0.0/16", "2001:db8::/32"]
        );
        assert!(list.is_banned(ip("10.9.9.9"), 6));
        assert!(!list.is_banned(ip("10.9.9.9"), 7));
        assert!(BanList::empty().is_empty());
        assert!(!BanList::empty().is_banned(ip("10.0.0.1"), 0));
        assert_eq!(list.get(&net("10.0.0.0/24")), None);
    }

    #[test]
    fn with_without_and_without_expired() {
        let a = ban("192.0.2.0/24", None);
        let b = ban("2001:db8::/48", Some(100));
        let list = BanList::empty().with(a).with(b);
        assert_eq!(list, BanList::new([a, b]));
        assert!(list.is_banned(ip("192.0.2.1"), 0));
        assert!(list.is_banned(ip("2001:db8::1"), 0));

        // Replacing: the new end applies, the old list is unchanged.
        let a_ends = Ban {
            expires_unix_secs: Some(10),
            ..a
        };
        let replaced = list.with(a_ends);
        assert_eq!(replaced.len(), 2);
        assert_eq!(replaced.get(&a.network), Some(a_ends));
        assert!(!replaced.is_banned(ip("192.0.2.1"), 10));
        assert!(list.is_banned(ip("192.0.2.1"), 10));
        // Replacing with an end of 0 and back.
        let never = list.with(Ban {
            expires_unix_secs: Some(0),
            ..a
        });
        assert!(!never.is_banned(ip("192.0.2.1"), 0));
        assert!(never.with(a).is_banned(ip("192.0.2.1"), 0));

        let without_a = list.without(&a.network).unwrap();
        assert_eq!(without_a, BanList::new([b]));
        assert!(!without_a.is_banned(ip("192.0.2.1"), 0));
        assert!(without_a.is_banned(ip("2001:db8::1"), 0));
        assert!(list.is_banned(ip("192.0.2.1"), 0));
        // Only the exact network is removed.
        assert!(list.without(&net("192.0.2.0/25")).is_none());
        assert!(list.without(&net("192.0.0.0/16")).is_none());
        assert!(without_a.without(&a.network).is_none());
        let none_left = without_a.without(&b.network).unwrap();
        assert!(none_left.is_empty());
        assert!(!none_left.is_banned(ip("2001:db8::1"), 0));

        assert_eq!(list.without_expired(99), list);
        let pruned = list.without_expired(100);
        assert_eq!(pruned, BanList::new([a]));
        assert!(pruned.is_banned(ip("192.0.2.1"), 100));
        assert_eq!(
            BanList::new([ban("10.0.0.0/8", Some(0))]).without_expired(0),
            BanList::empty()
        );
    }

    #[test]
    fn file_format_parses_comments_blank_lines_and_expiries() {
        let text = "# bans\n\n  203.0.113.0/24   # abuse\n2001:db8::/48 1700000000\n\
                    \t192.0.2.1\t1700000000 # until November\n#198.51.100.0/24\n";
        let list = BanList::parse(text).unwrap();
        assert_eq!(
            list,
            BanList::new([
                ban("203.0.113.0/24", None),
                ban("2001:db8::/48", Some(1_700_000_000)),
                ban("192.0.2.1", Some(1_700_000_000)),
            ])
        );
        assert_eq!(BanList::parse("").unwrap(), BanList::empty());
        // The last line of a network wins.
        let list = BanList::parse("192.0.2.1 5\n192.0.2.1/32\n").unwrap();
        assert_eq!(list.get(&net("192.0.2.1")), Some(ban("192.0.2.1", None)));
    }

    #[test]
    fn file_format_errors_name_the_line() {
        for (text, line, expected) in [
            ("192.0.2.1\n\n192.0.2.5/24\n", 3, "has host bits set"),
            ("192.0.2.0/24 soon\n", 1, "the expiry \"soon\" is not"),
            ("192.0.2.0/24 -5\n", 1, "the expiry \"-5\""),
            ("192.0.2.0/24 +5\n", 1, "the expiry \"+5\""),
            ("192.0.2.0/24 1.5\n", 1, "the expiry \"1.5\""),
            ("192.0.2.0/24 99999999999999999999\n", 1, "the expiry"),
            ("# x\n192.0.2.0/24 5 6\n", 2, "extra text \"6\""),
            ("192.0.2.0 /24\n", 1, "the expiry \"/24\""),
            ("nonsense\n", 1, "\"nonsense\" is not an IP address"),
        ] {
            let (at, msg) = BanList::parse(text).unwrap_err();
            assert_eq!(at, line, "{text:?}: {msg}");
            assert!(msg.contains(expected), "{text:?}: {msg}");
        }
    }

    #[test]
    fn text_round_trip() {
        let list = BanList::new([
            ban("203.0.113.0/24", None),
            ban("2001:db8::/48", Some(1_700_000_000)),
            ban("0.0.0.0/0", Some(0)),
            ban("::/0", Some(u64::MAX)),
            ban("192.0.2.1", None),
        ]);
        let text = list.to_text();
        let mut lines = text.lines();
        assert!(lines.next().unwrap().starts_with("# "));
        assert_eq!(lines.next(), Some("0.0.0.0/0 0"));
        assert_eq!(BanList::parse(&text).unwrap(), list);
        assert_eq!(
            BanList::parse(&BanList::empty().to_text()).unwrap(),
            BanList::empty()
        );
    }

    #[test]
    fn write_file_is_atomic_and_leaves_no_temporary_file() {
        let dir = crate::testing::temp_dir("bans-write");
        let path = dir.join("bans.txt");
        let first = BanList::new([ban("192.0.2.0/24", None)]);
        first.write_file(&path).unwrap();
        assert_eq!(BanList::load_file(&path).unwrap(), first);
        let second = first.with(ban("2001:db8::/32", Some(9)));
        second.write_file(&path).unwrap();
        assert_eq!(BanList::load_file(&path).unwrap(), second);
        let names = |dir: &Path| -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(&dir), ["bans.txt"]);

        // A failed rename (over a directory) leaves what was there and no temporary file.
        let blocked = dir.join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        let err = first.write_file(&blocked).unwrap_err();
        assert!(format!("{err:#}").contains("blocked"), "{err:#}");
        assert!(blocked.is_dir());
        assert_eq!(names(&dir), ["bans.txt", "blocked"]);
        // A missing directory: an error naming the file.
        let err = first.write_file(&dir.join("missing/bans.txt")).unwrap_err();
        assert!(format!("{err:#}").contains("missing"), "{err:#}");
        assert_eq!(names(&dir), ["bans.txt", "blocked"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_file_errors_name_file_and_line() {
        let dir = crate::testing::temp_dir("bans-load");
        let path = dir.join("bans.txt");
        std::fs::write(&path, "192.0.2.0/24\n\n10.0.0.1/8\n").unwrap();
        let msg = format!("{:#}", BanList::load_file(&path).unwrap_err());
        assert!(msg.contains("bans.txt line 3"), "{msg}");
        assert!(msg.contains("10.0.0.1/8 has host bits set"), "{msg}");
        let msg = format!("{:#}", BanList::load_file(&dir.join("nope")).unwrap_err());
        assert!(msg.contains("nope"), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_follows_the_config_and_refuses_more_than_max_bans() {
        assert_eq!(load(&BanConfig::default()).unwrap(), BanList::empty());
        let dir = crate::testing::temp_dir("bans-max");
        let path = dir.join("bans.txt");
        std::fs::write(&path, "192.0.2.1\n192.0.2.2\n192.0.2.3\n192.0.2.3 5\n").unwrap();
        let config = BanConfig {
            path: path.clone(),
            max_bans: 3,
        };
        assert_eq!(load(&config).unwrap().len(), 3);
        let config = BanConfig {
            max_bans: 2,
            ..config
        };
        let msg = format!("{:#}", load(&config).unwrap_err());
        assert!(msg.contains("bans.max_bans"), "{msg}");
        assert!(msg.contains("bans.txt"), "{msg}");
        let missing = BanConfig {
            path: dir.join("absent"),
            max_bans: 10,
        };
        assert!(format!("{:#}", load(&missing).unwrap_err()).contains("absent"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reload_swaps_and_keeps_the_old_list_on_error() {
        let dir = crate::testing::temp_dir("bans-reload");
        let path = dir.join("bans.txt");
        std::fs::write(&path, "192.0.2.0/24\n").unwrap();
        let config = BanConfig {
            path: path.clone(),
            max_bans: 2,
        };
        let shared = shared(load(&config).unwrap());
        let mut cache = BanCache::new(shared.clone());
        assert!(cache.is_banned(ip("192.0.2.1")));
        assert!(!cache.is_banned(ip("198.51.100.1")));

        std::fs::write(&path, "198.51.100.0/24\n2001:db8::/32\n").unwrap();
        assert_eq!(reload(&shared, &config).unwrap(), 2);
        assert!(!cache.is_banned(ip("192.0.2.1")));
        assert!(cache.is_banned(ip("198.51.100.1")));
        assert!(cache.is_banned(ip("2001:db8::1")));

        for bad in ["garbage\n", "192.0.2.1\n192.0.2.2\n192.0.2.3\n"] {
            std::fs::write(&path, bad).unwrap();
            assert!(reload(&shared, &config).is_err());
            assert!(cache.is_banned(ip("198.51.100.1")));
            assert_eq!(shared.load().len(), 2);
        }
        std::fs::remove_file(&path).unwrap();
        assert!(reload(&shared, &config).is_err());
        assert!(cache.is_banned(ip("198.51.100.1")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cache_sees_a_swap_and_reads_the_clock_for_expiries() {
        let shared = shared(BanList::empty());
        let mut cache = BanCache::new(shared.clone());
        assert!(!cache.is_banned(ip("192.0.2.1")));
        let now = unix_now_secs();
        shared.store(Arc::new(BanList::new([
            ban("192.0.2.0/24", None),
            ban("198.51.100.0/24", Some(now + 3600)),
            ban("203.0.113.0/24", Some(now.saturating_sub(1))),
        ])));
        assert!(cache.is_banned(ip("192.0.2.1")));
        assert!(cache.is_banned(mapped("198.51.100.1")));
        assert!(!cache.is_banned(ip("203.0.113.1")));
        shared.store(Arc::new(BanList::empty()));
        assert!(!cache.is_banned(ip("192.0.2.1")));
    }

    #[test]
    fn config_checks_and_round_trips() {
        let config = BanConfig::default();
        config.validate().unwrap();
        assert!(config.path.as_os_str().is_empty());
        let text = toml::to_string(&config).unwrap();
        assert_eq!(toml::from_str::<BanConfig>(&text).unwrap(), config);
        let err = BanConfig {
            max_bans: 0,
            ..config
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("bans.max_bans"), "{err}");
        assert!(toml::from_str::<BanConfig>("max_ban = 3").is_err());
        use crate::config::ConfigDoc as _;
        assert!(BanConfig::field_doc(&["max_bans"]).is_some());
    }

    /// The sizes the module doc's memory figures come from.
    #[test]
    fn sizes_behind_the_memory_figures() {
        assert_eq!(size_of::<Ban>(), 40);
        assert_eq!(size_of::<(u32, u64)>(), 16);
        assert_eq!(size_of::<(V6Key, u64)>(), 24);
    }

    /// A ban as generated: the family, the address bits, the prefix length as written,
    /// and whether it is written in IPv4-mapped IPv6 form.
    #[derive(Clone, Debug)]
    struct GenBan {
        v6: bool,
        bits: u128,
        prefix_len: u8,
        mapped_form: bool,
        expires: Option<u64>,
    }

    /// Addresses drawn near each other so that networks and clients often overlap.
    fn v4_bits() -> impl Strategy<Value = u128> {
        prop_oneof![
            (0u32..0x400).prop_map(|low| u128::from(0x0a00_0000 | low)),
            any::<u32>().prop_map(u128::from),
        ]
    }

    fn v6_bits() -> impl Strategy<Value = u128> {
        prop_oneof![
            (0u128..16, 0u128..16, 0u128..16)
                .prop_map(|(a, b, c)| { (0x2001_0db8u128 << 96) | (a << 68) | (b << 32) | c }),
            any::<u128>(),
        ]
    }

    fn gen_ban() -> impl Strategy<Value = GenBan> {
        let expires = prop_oneof![Just(None), (0u64..6).prop_map(Some)];
        prop_oneof![
            (v4_bits(), 0u8..=32, any::<bool>(), expires.clone()).prop_map(
                |(bits, prefix_len, mapped_form, expires)| GenBan {
                    v6: false,
                    bits,
                    prefix_len,
                    mapped_form,
                    expires,
                }
            ),
            (v6_bits(), 0u8..=128, expires).prop_map(|(bits, prefix_len, expires)| GenBan {
                v6: true,
                bits,
                prefix_len,
                mapped_form: false,
                expires,
            }),
        ]
    }

    /// Clears every bit after the first `len` of a `width`-bit address, one at a time.
    fn clear_host_bits(bits: u128, len: u8, width: u8) -> u128 {
        let mut bits = bits;
        for i in len..width {
            bits &= !(1u128 << (width - 1 - i));
        }
        bits
    }

    /// The `i`th bit from the top of a `width`-bit address.
    fn bit(bits: u128, i: u8, width: u8) -> bool {
        bits >> (width - 1 - i) & 1 == 1
    }

    impl GenBan {
        /// The network as text, host bits cleared.
        fn text(&self) -> String {
            if self.v6 {
                let bits = clear_host_bits(self.bits, self.prefix_len, 128);
                format!("{}/{}", Ipv6Addr::from(bits), self.prefix_len)
            } else {
                let v4 = Ipv4Addr::from(clear_host_bits(self.bits, self.prefix_len, 32) as u32);
                if self.mapped_form {
                    format!("::ffff:{v4}/{}", u16::from(self.prefix_len) + 96)
                } else {
                    format!("{v4}/{}", self.prefix_len)
                }
            }
        }

        /// The model's key for the network: (IPv6, the first bits, their count).
        fn key(&self) -> (bool, Vec<bool>) {
            let width = if self.v6 { 128 } else { 32 };
            (
                self.v6,
                (0..self.prefix_len)
                    .map(|i| bit(self.bits, i, width))
                    .collect(),
            )
        }
    }

    /// A client: an IPv4 address (maybe seen IPv4-mapped) or an IPv6 one.
    fn gen_client() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            v4_bits().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b as u32))),
            v4_bits().prop_map(|b| IpAddr::V6(Ipv4Addr::from(b as u32).to_ipv6_mapped())),
            v6_bits().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        ]
    }

    /// The rule, stated on bits: a client is banned when some ban's network (the last
    /// given of that network) has the client's family, its first `prefix_len` bits equal
    /// the client's, and the ban has no end or an end after `now`. A client seen as
    /// ::ffff:a.b.c.d is the IPv4 client a.b.c.d.
    fn model(bans: &StdHashMap<(bool, Vec<bool>), Option<u64>>, client: IpAddr, now: u64) -> bool {
        let (v6, bits, width) = match client {
            IpAddr::V4(v4) => (false, u128::from(u32::from(v4)), 32),
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                if bits >> 32 == 0xffff {
                    (false, bits & 0xffff_ffff, 32)
                } else {
                    (true, bits, 128)
                }
            }
        };
        bans.iter().any(|((ban_v6, prefix), expires)| {
            *ban_v6 == v6
                && prefix
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| bit(bits, i as u8, width) == b)
                && expires.is_none_or(|end| now < end)
        })
    }

    proptest! {
        /// Lookups, however the list was made (at once, ban by ban, after removals,
        /// through the file format), answer as the rule does.
        #[test]
        fn lookups_follow_the_rule(
            bans in prop::collection::vec(gen_ban(), 0..40),
            removed in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
            clients in prop::collection::vec(gen_client(), 1..40),
            now in 0u64..7,
        ) {
            let made: Vec<Ban> = bans
                .iter()
                .map(|b| Ban { network: net(&b.text()), expires_unix_secs: b.expires })
                .collect();
            let mut rule: StdHashMap<(bool, Vec<bool>), Option<u64>> = StdHashMap::new();
            for b in &bans {
                rule.insert(b.key(), b.expires);
            }
            let list = BanList::new(made.clone());
            prop_assert_eq!(list.len(), rule.len());
            let folded = made.iter().fold(BanList::empty(), |list, ban| list.with(*ban));
            prop_assert_eq!(&folded, &list);
            let reparsed = BanList::parse(&list.to_text()).unwrap();
            prop_assert_eq!(&reparsed, &list);

            let mut pruned = list.clone();
            let mut rule_pruned = rule.clone();
            if !bans.is_empty() {
                for index in &removed {
                    let b = index.get(&bans);
                    let had = rule_pruned.remove(&b.key()).is_some();
                    match pruned.without(&net(&b.text())) {
                        Some(smaller) => {
                            prop_assert!(had);
                            pruned = smaller;
                        }
                        None => prop_assert!(!had),
                    }
                }
            }
            let rule_current: StdHashMap<_, _> = rule
                .iter()
                .filter(|(_, end)| end.is_none_or(|end| now < end))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            let current = list.without_expired(now);
            prop_assert_eq!(current.len(), rule_current.len());

            for client in clients {
                let expected = model(&rule, client, now);
                prop_assert_eq!(list.is_banned(client, now), expected, "{}", client);
                prop_assert_eq!(folded.is_banned(client, now), expected, "{}", client);
                prop_assert_eq!(reparsed.is_banned(client, now), expected, "{}", client);
                prop_assert_eq!(current.is_banned(client, now), expected, "{}", client);
                prop_assert_eq!(
                    pruned.is_banned(client, now),
                    model(&rule_pruned, client, now),
                    "{}", client
                );
                let by_contains = list
                    .bans()
                    .any(|b| {
                        b.network.contains(client) && b.expires_unix_secs.is_none_or(|e| now < e)
                    });
                prop_assert_eq!(by_contains, expected, "{}", client);
            }
        }
    }
}
