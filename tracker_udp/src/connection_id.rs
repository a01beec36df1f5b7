//! Stateless connection ids (BEP 15 connect handshake).
//!
//! A connection id is 8 bytes: `valid_until` (4 bytes, big-endian seconds) followed by
//! the high 4 bytes of a SipHash-2-4 MAC over `valid_until` and the client IP. Ids cannot
//! be forged without the MAC key, and a flood of connects costs no memory. Any socket
//! worker can check any id.
//!
//! # One process, or a cluster
//! - **One process** (the default): the 128-bit key comes from the OS random number
//!   generator at start, and `valid_until` counts seconds since the server started. Ids
//!   die with a restart.
//! - **A cluster** (`cluster.connection_id_secret_path`): the key is derived from a
//!   secret the nodes share, and `valid_until` is Unix time (the wall clock read at the
//!   start, counted on with the monotonic clock, as every time in shoal is), so that a
//!   connect answered by one node is accepted by another: behind anycast or ECMP a
//!   client's connect and its announce may reach different nodes. The file's optional
//!   second secret is accepted too, never used to make ids, so that the secret can be
//!   rotated with no id refused (see the README); SIGUSR1 re-reads the file, and the
//!   socket workers take the new keys at their next packet. The nodes' clocks must
//!   agree within `cluster.max_clock_skew_secs` (NTP): an id is accepted that much
//!   earlier and later than its lifetime says.
//!
//! The MAC input is an unambiguous byte string, so that no two (time, address) pairs
//! hash the same bytes: `valid_until` (4 bytes, big-endian), then a family tag (4 or 6)
//! and the address octets (4 or 16). The algorithm is named, not std's `RandomState`,
//! whose algorithm is unspecified and may change between Rust releases.
//!
//! Only the IP is hashed, not the port: a client behind a NAT that changes its source
//! port between connect and announce keeps a valid id, and the id still proves that the
//! client receives packets at that IP (it read the connect response).
//!
//! # Clock slack
//! Socket workers read the clock independently, so one worker may already be in the
//! next second when another checks an id it made. An id is therefore accepted while
//! `now <= valid_until <= now + valid_secs + 1`: one second more than any worker grants
//! (in a cluster, widened by the skew at both ends).

use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::{ArcSwap, Cache};
use rand::TryRngCore;
use siphasher::sip::SipHasher24;

use tracker_common::time::SecondsSinceServerStart;
use tracker_udp_protocol::ConnectionId;

/// Longest MAC input: 4 bytes of time, a family tag, 16 bytes of IPv6 address.
const MAC_INPUT_MAX: usize = 4 + 1 + 16;

/// What a cluster's secret file holds, and how much of it is read.
const SECRET_HEX_DIGITS: usize = 64;
const SECRET_FILE_MAX_BYTES: u64 = 1024;

/// The config key, for messages.
const SECRET_KEY: &str = "cluster.connection_id_secret_path";

/// Makes and checks connection ids. Clones share the keys.
#[derive(Clone)]
pub(crate) struct ConnectionValidator {
    /// Makes ids and accepts them.
    mac: SipHasher24,
    /// Also accepted (a cluster's second secret, during a rotation).
    also: Option<SipHasher24>,
    valid_secs: u32,
    /// Added to the seconds since the server started to give `valid_until`'s time: 0
    /// for one process, the Unix time of the start in a cluster.
    base: u32,
    /// Seconds an id is accepted before its time (a cluster's clock skew).
    early: u32,
    /// Seconds an id may claim beyond `valid_secs` (the workers' one second, plus a
    /// cluster's clock skew).
    late: u32,
}

impl fmt::Debug for ConnectionValidator {
    /// Leaves the keys out, so that no log line can reveal them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionValidator")
            .field("valid_secs", &self.valid_secs)
            .finish_non_exhaustive()
    }
}

/// The validator in force, shared by the socket workers; a re-read of the cluster's
/// secret (SIGUSR1) replaces it.
pub(crate) type SharedValidator = Arc<ArcSwap<ConnectionValidator>>;

/// A socket worker's view of the [`SharedValidator`]: one atomic load per use while it
/// is unchanged.
pub(crate) struct ValidatorCache(Cache<SharedValidator, Arc<ConnectionValidator>>);

impl ValidatorCache {
    /// A cache over the shared validator.
    pub(crate) fn new(shared: SharedValidator) -> Self {
        Self(Cache::new(shared))
    }

    /// The validator in force.
    pub(crate) fn get(&mut self) -> &ConnectionValidator {
        self.0.load()
    }
}

impl ConnectionValidator {
    /// A validator with a new random key from the OS; ids last `valid_secs`.
    ///
    /// # Errors
    /// The OS random number generator failed.
    pub(crate) fn new(valid_secs: u32) -> anyhow::Result<Self> {
        let mut key = [0u8; 16];
        rand::rngs::OsRng
            .try_fill_bytes(&mut key)
            .context("read a connection id key from the os random number generator")?;
        Ok(Self::with_key(&key, valid_secs))
    }

    /// A cluster node's validator from the secret file at `path` (see the module doc);
    /// ids last `valid_secs`, times count from `start_unix_secs`.
    ///
    /// # Errors
    /// The file cannot be read, is readable by other users or is malformed (the message
    /// names the key).
    pub(crate) fn from_secret_file(
        path: &Path,
        valid_secs: u32,
        max_clock_skew_secs: u32,
        start_unix_secs: u64,
    ) -> anyhow::Result<Self> {
        let secrets = read_secret_file(path)?;
        let Some((first, rest)) = secrets.split_first() else {
            anyhow::bail!("{SECRET_KEY}: {} holds no secret", path.display());
        };
        let base = u32::try_from(start_unix_secs).with_context(|| {
            format!("{SECRET_KEY}: the wall clock ({start_unix_secs}) is past 2106")
        })?;
        Ok(Self::cluster(
            first,
            rest.first(),
            valid_secs,
            max_clock_skew_secs,
            base,
        ))
    }

    /// How many cluster secrets a validator made by [`Self::from_secret_file`] accepts.
    pub(crate) fn accepted_secrets(&self) -> usize {
        1 + usize::from(self.also.is_some())
    }

    /// A validator with the given key: for tests that pin the algorithm.
    fn with_key(key: &[u8; 16], valid_secs: u32) -> Self {
        Self {
            mac: SipHasher24::new_with_key(key),
            also: None,
            valid_secs,
            base: 0,
            early: 0,
            late: 1,
        }
    }

    /// A cluster node's validator: the first secret makes and accepts ids, a second one
    /// is accepted too; times are Unix seconds from `base` (the start).
    fn cluster(
        first: &[u8; 32],
        also: Option<&[u8; 32]>,
        valid_secs: u32,
        skew: u32,
        base: u32,
    ) -> Self {
        let mac = |secret: &[u8; 32]| SipHasher24::new_with_key(&derive_key(secret));
        Self {
            mac: mac(first),
            also: also.map(mac),
            valid_secs,
            base,
            early: skew,
            late: skew.saturating_add(1),
        }
    }

    fn tag(mac: &SipHasher24, valid_until: u32, ip: IpAddr) -> u32 {
        let mut input = [0u8; MAC_INPUT_MAX];
        let (time, rest) = input.split_at_mut(4);
        time.copy_from_slice(&valid_until.to_be_bytes());
        let len = match (ip, rest.split_first_mut()) {
            (IpAddr::V4(v4), Some((family, addr))) => {
                *family = 4;
                addr.iter_mut().zip(v4.octets()).for_each(|(d, s)| *d = s);
                4 + 1 + 4
            }
            (IpAddr::V6(v6), Some((family, addr))) => {
                *family = 6;
                addr.iter_mut().zip(v6.octets()).for_each(|(d, s)| *d = s);
                MAC_INPUT_MAX
            }
            (_, None) => 4,
        };
        let bytes = input.get(..len).unwrap_or(&input);
        // High half of the 64-bit MAC.
        (mac.hash(bytes) >> 32) as u32
    }

    /// `now` in the ids' time: seconds since the start, or Unix seconds in a cluster.
    fn time(&self, now: SecondsSinceServerStart) -> u64 {
        u64::from(self.base) + u64::from(now.0)
    }

    /// A new id for a client at `ip`.
    pub(crate) fn create(&self, ip: IpAddr, now: SecondsSinceServerStart) -> ConnectionId {
        let valid_until = self.time(now).saturating_add(u64::from(self.valid_secs));
        let valid_until = u32::try_from(valid_until).unwrap_or(u32::MAX);
        let raw = (u64::from(valid_until) << 32) | u64::from(Self::tag(&self.mac, valid_until, ip));
        ConnectionId(raw as i64)
    }

    /// Whether `id` was made with one of this validator's keys for `ip` and has not
    /// expired (see the module doc for the slack).
    pub(crate) fn is_valid(
        &self,
        id: ConnectionId,
        ip: IpAddr,
        now: SecondsSinceServerStart,
    ) -> bool {
        let raw = id.0 as u64;
        let valid_until = (raw >> 32) as u32;
        let tag = raw as u32;
        let now = self.time(now);
        let until = u64::from(valid_until);
        // An id that claims to live longer than we ever grant was not made by us.
        let in_time = until + u64::from(self.early) >= now
            && until <= now + u64::from(self.valid_secs) + u64::from(self.late);
        in_time
            && (tag == Self::tag(&self.mac, valid_until, ip)
                || self
                    .also
                    .as_ref()
                    .is_some_and(|also| tag == Self::tag(also, valid_until, ip)))
    }
}

/// The SipHash key of a cluster secret: SipHash-2-4-128 keyed by the secret's first 16
/// bytes, over a label and its last 16, so that all 32 bytes count and a key made for
/// another use of the same secret differs.
fn derive_key(secret: &[u8; 32]) -> [u8; 16] {
    let (first, last) = secret.split_at(16);
    let mut key = [0u8; 16];
    key.copy_from_slice(first);
    let mut input = b"shoal udp connection id key v1\0".to_vec();
    input.extend_from_slice(last);
    let hash = siphasher::sip128::SipHasher24::new_with_key(&key).hash(&input);
    u128::from(hash).to_be_bytes()
}

/// Reads a cluster's secret file: one or two lines of 64 hex digits (blank lines and
/// surrounding spaces ignored), in a file no other user may read.
fn read_secret_file(path: &Path) -> anyhow::Result<Vec<[u8; 32]>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("{SECRET_KEY}: cannot open {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file
            .metadata()
            .with_context(|| format!("{SECRET_KEY}: cannot read {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "{SECRET_KEY}: {} can be read or written by other users (mode {:04o}); \
                 it holds a secret: chmod 600 it",
                path.display(),
                mode & 0o7777
            );
        }
    }
    let mut text = String::new();
    file.take(SECRET_FILE_MAX_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("{SECRET_KEY}: cannot read {} as text", path.display()))?;
    if text.len() as u64 > SECRET_FILE_MAX_BYTES {
        anyhow::bail!(
            "{SECRET_KEY}: {} is longer than {SECRET_FILE_MAX_BYTES} bytes; it holds one or \
             two lines of {SECRET_HEX_DIGITS} hex digits",
            path.display()
        );
    }
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() || lines.len() > 2 {
        anyhow::bail!(
            "{SECRET_KEY}: {} must hold one or two lines of {SECRET_HEX_DIGITS} hex digits \
             (the secret, then optionally the one also accepted during a rotation); it has {}",
            path.display(),
            lines.len()
        );
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            parse_secret(line)
                .with_context(|| format!("{SECRET_KEY}: {} line {}", path.display(), i + 1))
        })
        .collect()
}

fn parse_secret(line: &str) -> anyhow::Result<[u8; 32]> {
    if line.len() != SECRET_HEX_DIGITS || !line.bytes().all(|b| b.is_ascii_hexdigit()) {
        anyhow::bail!(
            "must be {SECRET_HEX_DIGITS} hex digits (0-9, a-f), and is {} characters",
            line.chars().count()
        );
    }
    let mut secret = [0u8; 32];
    for (byte, pair) in secret.iter_mut().zip(line.as_bytes().chunks(2)) {
        let digits = std::str::from_utf8(pair).context("not hex digits")?;
        *byte = u8::from_str_radix(digits, 16).context("not hex digits")?;
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u32) -> SecondsSinceServerStart {
        SecondsSinceServerStart(s)
    }

    fn validator() -> ConnectionValidator {
        ConnectionValidator::new(120).unwrap()
    }

    #[test]
    fn valid_for_the_lifetime_then_expires() {
        let v = validator();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let id = v.create(ip, t(1000));
        assert!(v.is_valid(id, ip, t(1000)));
        assert!(v.is_valid(id, ip, t(1120)));
        assert!(!v.is_valid(id, ip, t(1121)));
        assert!(!v.is_valid(id, ip, t(u32::MAX)));
    }

    /// A worker already in the next second mints an id; a worker still in the previous
    /// second must accept it.
    #[test]
    fn an_id_from_the_next_second_is_accepted() {
        let v = validator();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let id = v.create(ip, t(1001));
        assert!(v.is_valid(id, ip, t(1000)), "one second of slack");
        // Two seconds ahead is more than any worker's clock can be.
        let id = v.create(ip, t(1002));
        assert!(!v.is_valid(id, ip, t(1000)));
    }

    #[test]
    fn bound_to_ip_and_key() {
        let v = validator();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let id = v.create(ip, t(5));
        for other in ["192.0.2.8", "2001:db8::7", "::ffff:192.0.2.7", "::c000:207"] {
            let other: IpAddr = other.parse().unwrap();
            assert!(!v.is_valid(id, other, t(5)), "{other}");
        }
        assert!(v.clone().is_valid(id, ip, t(5)));
        assert!(!validator().is_valid(id, ip, t(5)));
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        assert!(v.is_valid(v.create(v6, t(5)), v6, t(5)));
    }

    #[test]
    fn forged_ids_are_rejected() {
        let v = validator();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let id = v.create(ip, t(5));
        for bit in 0..64 {
            assert!(
                !v.is_valid(ConnectionId(id.0 ^ (1 << bit)), ip, t(5)),
                "bit {bit}"
            );
        }
        assert!(!v.is_valid(ConnectionId(0), ip, t(5)));
        assert!(!v.is_valid(ConnectionId(-1), ip, t(5)));
        // Far-future expiry with a random tag.
        let forged = ConnectionId(((u64::from(u32::MAX) << 32) | 1234) as i64);
        assert!(!v.is_valid(forged, ip, t(5)));
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let v = ConnectionValidator::with_key(&[0xab; 16], 120);
        let text = format!("{v:?}");
        assert_eq!(text, "ConnectionValidator { valid_secs: 120, .. }");
    }

    const UNIX: u32 = 1_800_000_000;

    fn secret(n: u8) -> [u8; 32] {
        std::array::from_fn(|i| n.wrapping_add(i as u8))
    }

    /// A node of a cluster started at Unix time `started`.
    fn node(secrets: &[[u8; 32]], started: u32) -> ConnectionValidator {
        ConnectionValidator::cluster(&secrets[0], secrets.get(1), 120, 5, started)
    }

    #[test]
    fn a_connect_on_one_node_is_accepted_by_another_started_later() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let a = node(&[secret(1)], UNIX);
        let b = node(&[secret(1)], UNIX + 100);
        // Unix second UNIX + 150: 150 s after A's start, 50 s after B's.
        let id = a.create(ip, t(150));
        assert!(b.is_valid(id, ip, t(50)));
        assert!(b.is_valid(id, ip, t(50 + 120)), "for its whole lifetime");
        assert!(
            !b.is_valid(id, ip, t(50 + 120 + 6)),
            "expired, past the skew"
        );
        let id = b.create(ip, t(50));
        assert!(a.is_valid(id, ip, t(150)));
        // Bound to the address, as in one process.
        assert!(!b.is_valid(a.create(ip, t(150)), "192.0.2.8".parse().unwrap(), t(50)));
    }

    #[test]
    fn clocks_apart_by_the_skew_agree_and_further_apart_do_not() {
        let ip: IpAddr = "2001:db8::7".parse().unwrap();
        let a = node(&[secret(1)], UNIX);
        let id = a.create(ip, t(0));
        // B's clock 5 s behind A's (the skew): accepted; 7 s behind: the id claims a
        // longer life than B ever grants.
        assert!(node(&[secret(1)], UNIX - 5).is_valid(id, ip, t(0)));
        assert!(!node(&[secret(1)], UNIX - 7).is_valid(id, ip, t(0)));
        // B's clock ahead: the id ends up to the skew later there, no more.
        let ahead = node(&[secret(1)], UNIX + 5);
        assert!(ahead.is_valid(id, ip, t(120)));
        assert!(!ahead.is_valid(id, ip, t(121)));
    }

    #[test]
    fn the_second_secret_is_accepted_and_never_used() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let old = node(&[secret(1)], UNIX);
        let new = node(&[secret(2)], UNIX);
        let rotating = node(&[secret(2), secret(1)], UNIX);
        assert!(rotating.is_valid(old.create(ip, t(0)), ip, t(0)));
        assert!(rotating.is_valid(new.create(ip, t(0)), ip, t(0)));
        // It makes ids with the first secret alone.
        let id = rotating.create(ip, t(0));
        assert!(new.is_valid(id, ip, t(0)));
        assert!(!old.is_valid(id, ip, t(0)));
        // Another cluster's secret, or a process key, is refused.
        assert!(!node(&[secret(3)], UNIX).is_valid(id, ip, t(0)));
        assert!(!validator().is_valid(id, ip, t(0)));
    }

    #[test]
    fn every_byte_of_the_secret_counts() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let base = secret(1);
        let id = node(&[base], UNIX).create(ip, t(0));
        for i in 0..32 {
            let mut other = base;
            other[i] ^= 1;
            assert!(!node(&[other], UNIX).is_valid(id, ip, t(0)), "byte {i}");
        }
    }

    fn secret_file(dir: &Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn secret_files_are_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("shoal-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hex = |n: u8| -> String { secret(n).iter().map(|b| format!("{b:02x}")).collect() };
        let one = secret_file(&dir, "one", &format!("{}\n", hex(1)), 0o600);
        assert_eq!(read_secret_file(&one).unwrap(), vec![secret(1)]);
        let two = secret_file(
            &dir,
            "two",
            &format!("  {}\n\n{}  \n", hex(2).to_uppercase(), hex(1)),
            0o400,
        );
        assert_eq!(read_secret_file(&two).unwrap(), vec![secret(2), secret(1)]);

        let refused = |name: &str, text: &str, mode: u32| -> String {
            let path = secret_file(&dir, name, text, mode);
            let err = read_secret_file(&path).unwrap_err();
            let message = format!("{err:#}");
            assert!(message.starts_with(SECRET_KEY), "{message}");
            message
        };
        let open = refused("open", &hex(1), 0o644);
        assert!(
            open.contains("mode 0644") && open.contains("chmod 600"),
            "{open}"
        );
        assert!(refused("empty", "\n \n", 0o600).contains("it has 0"));
        let three = format!("{}\n{}\n{}\n", hex(1), hex(2), hex(3));
        assert!(refused("three", &three, 0o600).contains("it has 3"));
        let short = refused("short", &hex(1)[..62], 0o600);
        assert!(
            short.contains("line 1") && short.contains("is 62 characters"),
            "{short}"
        );
        // u8::from_str_radix would take "+f": every character must be a hex digit.
        let plus = format!("+f{}", &hex(1)[2..]);
        assert!(refused("plus", &plus, 0o600).contains("line 1"));
        let second = format!("{}\n{}g\n", hex(1), &hex(2)[..63]);
        assert!(refused("second", &second, 0o600).contains("line 2"));
        assert!(refused("long", &"0".repeat(2000), 0o600).contains("longer than 1024"));
        let missing = read_secret_file(&dir.join("missing")).unwrap_err();
        assert!(format!("{missing:#}").starts_with(SECRET_KEY));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Pins the algorithm: SipHash-2-4, key bytes 00..0f, input `valid_until` (BE u32),
    /// family tag, address octets. The expected values were computed with an
    /// independent SipHash-2-4 written from the paper (checked against its test vector
    /// 0xa129ca6149be45e5 for the input 00..0e), not with this code.
    #[test]
    fn fixed_key_test_vector() {
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let paper_input: Vec<u8> = (0..15).collect();
        assert_eq!(
            SipHasher24::new_with_key(&key).hash(&paper_input),
            0xa129_ca61_49be_45e5,
            "SipHash-2-4 paper vector"
        );
        let v = ConnectionValidator::with_key(&key, 120);
        // valid_until = 1000 + 120 = 1120 = 0x460; MAC input 00000460 04 c0000207.
        let id = v.create("192.0.2.7".parse().unwrap(), t(1000));
        assert_eq!(id.0 as u64, 0x0000_0460_700d_5ecf);
        // MAC input 00000460 06 20010db8000000000000000000000007.
        let id = v.create("2001:db8::7".parse().unwrap(), t(1000));
        assert_eq!(id.0 as u64, 0x0000_0460_9f52_9af7);
    }
}
