//! The accounting database: what a batch writes, and the backends that write it.
//!
//! A [`Batch`] holds peers' reports; its transaction takes the database's accounting
//! lock, records the batch id in `shoal_batches`, and computes every credit against the
//! committed peer marks ([`crate::private::ledger::apply`]). A batch whose commit failed
//! in any way (its outcome is unknown: the connection may have dropped after the server
//! committed) is retried with the same id; the retry finds the id and applies nothing.
//! Several trackers (UDP and HTTP, or several nodes) may write one database: the lock
//! puts their batches in one order, and each credits only what goes beyond the marks
//! the others committed.
//!
//! Tables (created, and later changed, by numbered migrations; the same names, columns
//! and meaning in every backend; times are Unix seconds, counters signed 64-bit):
//! - `shoal_passkeys(passkey PRIMARY KEY, enabled, user_id NULL)`: the passkeys, when
//!   they come from the database; a NULL `user_id` makes the passkey its own user
//!   ([`derived_user_id`]). Rotating a user's passkey: a new row with the same
//!   `user_id`, the old one disabled or deleted.
//! - `shoal_users(user_id PRIMARY KEY, can_leech)`: users who may not leech have
//!   `can_leech` false (a user without a row may).
//! - `shoal_torrents(info_hash PRIMARY KEY, upload_percent, download_percent)`: the
//!   registered torrents and their factors (100: as reported; freeleech: download 0).
//! - `shoal_settings(name PRIMARY KEY, value)`: `upload_percent` and `download_percent`,
//!   the global factors, multiplied with the torrent's.
//! - `shoal_credits(user_id, info_hash, uploaded, downloaded, uploaded_raw,
//!   downloaded_raw, seed_seconds, leech_seconds, completed_at NULL, first_announce,
//!   last_announce, flagged_announces, seed_until, leech_until, PRIMARY KEY (user_id,
//!   info_hash))`: the credit, added to by each batch (see [`CreditRow`]).
//! - `shoal_peer_marks(user_id, info_hash, peer_id, uploaded, downloaded,
//!   last_announce, state, noted_uploaded NULL, noted_downloaded NULL, PRIMARY KEY
//!   (user_id, info_hash, peer_id))`: each peer's high-water mark ([`PeerMark`];
//!   `state` 0 leeching, 1 seeding, 2 stopped; the noted counters NULL but for a peer
//!   first seen without its `started`).
//! - `shoal_batches(id PRIMARY KEY, committed_at, credits)`: the batches applied.
//! - From migration 1, kept for their history and no longer written:
//!   `shoal_user_torrents` (credit by passkey) and `shoal_peers`.
//!
//! Counters are stored as signed 64-bit integers; adding saturates at `i64::MAX`, so that
//! no client-sent value can make a batch fail for ever.
//!
//! # Backends
//! [`open`] picks one by the URL's scheme: [`SqliteStore`] (`sqlite://PATH`),
//! [`PostgresStore`] (`postgresql://...`) or [`MysqlStore`] (`mysql://...`, for MySQL
//! and MariaDB). They keep the same tables, columns and migration numbers, and none
//! panics on what it reads: a row that does not hold what it must is skipped (and
//! counted in a warning), or, for a peer mark, read as no mark.
//!
//! # The site's tables, written
//! The admin API ([`crate::private::admin`]) writes `shoal_passkeys`, `shoal_users`
//! and `shoal_torrents` a row a call. A put looks the key up and upserts the row in one
//! transaction, whose look-up says whether the row was [`Written::Created`] or
//! [`Written::Replaced`]: exactly on SQLite, whose transaction holds the file's write
//! lock; on PostgreSQL and MySQL two processes creating one key at the same moment may
//! both be told `Created` (the row is right either way). A delete is one statement.

#[cfg(test)]
pub(crate) mod memory;
mod mysql;
mod postgres;
mod sqlite;

pub use self::mysql::MysqlStore;
pub use self::postgres::PostgresStore;
pub use self::sqlite::SqliteStore;

use crate::private::ledger::{Applied, CreditRules, PeerReport};
use crate::private::passkey::Passkey;
use crate::types::{InfoHash, PeerId};

/// A user of the site, as the accounting database knows them: `shoal_passkeys.user_id`
/// (positive, the site's own), or, for a passkey without one, an id derived from the
/// passkey ([`derived_user_id`], negative, so that it never meets a site's id).
pub type UserId = i64;

/// The user id of a passkey that names none: the negative of 1 plus the passkey's 64-bit
/// FNV-1a hash halved. Stable across versions and processes (it is stored).
pub fn derived_user_id(passkey: &Passkey) -> UserId {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in passkey.as_str().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // hash >> 1 fits in i64; -(x + 1) for x in 0..=i64::MAX is in i64::MIN..=-1.
    -i64::try_from(hash >> 1).unwrap_or(i64::MAX) - 1
}

/// A batch's unique id: 16 random bytes, written as 32 lowercase hex digits.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct BatchId(pub [u8; 16]);

impl BatchId {
    /// The id as 32 lowercase hex digits (how it is stored).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One peer of one user on one torrent: the key of `shoal_peer_marks`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey {
    /// The user.
    pub user: UserId,
    /// The torrent.
    pub info_hash: InfoHash,
    /// The peer.
    pub peer_id: PeerId,
}

impl PeerKey {
    /// The (user, torrent) the peer's credit goes to.
    pub fn user_torrent(&self) -> UserTorrentKey {
        UserTorrentKey {
            user: self.user,
            info_hash: self.info_hash,
        }
    }
}

/// One user on one torrent: the key of `shoal_credits`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserTorrentKey {
    /// The user.
    pub user: UserId,
    /// The torrent.
    pub info_hash: InfoHash,
}

/// The state a peer was in after an announce.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerState {
    /// `left` was not 0.
    Leeching,
    /// `left` was 0.
    Seeding,
    /// The announce was `event=stopped`.
    Stopped,
}

impl PeerState {
    /// As stored: 0, 1 or 2.
    pub fn to_column(self) -> i64 {
        match self {
            Self::Leeching => 0,
            Self::Seeding => 1,
            Self::Stopped => 2,
        }
    }

    /// From its column; `None` for another value.
    pub fn from_column(value: i64) -> Option<Self> {
        match value {
            0 => Some(Self::Leeching),
            1 => Some(Self::Seeding),
            2 => Some(Self::Stopped),
            _ => None,
        }
    }
}

/// A peer's high-water mark, as committed in `shoal_peer_marks`: its counters and state
/// at the latest announce any committed batch reported, and that announce's time. A
/// report older than the mark credits nothing.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PeerMark {
    /// `uploaded` of that announce.
    pub uploaded: u64,
    /// `downloaded` of that announce.
    pub downloaded: u64,
    /// When it was, in Unix seconds.
    pub last_announce: u64,
    /// The state after it.
    pub state: PeerState,
    /// `(uploaded, downloaded)` noted but never credited: a peer first seen without its
    /// `started` (its state was lost, or another tracker's report of the start is late)
    /// sets its mark with the counters it had, which count from a start no report
    /// showed yet. The report of that `started`, when it arrives, credits them. `None`
    /// once the start was seen (the usual case).
    pub noted: Option<(u64, u64)>,
}

/// How far a (user, torrent)'s seeding and leeching time has been credited: time up to
/// these Unix seconds is never credited again, whichever peer reports it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeMarks {
    /// Seeding time is credited up to here.
    pub seed_until: u64,
    /// Leeching time is credited up to here.
    pub leech_until: u64,
}

/// Upload and download factors, in percent: freeleech is `download_percent = 0`, double
/// upload `upload_percent = 200`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Factors {
    /// Percent of the bytes uploaded credited.
    pub upload_percent: u32,
    /// Percent of the bytes downloaded credited.
    pub download_percent: u32,
}

impl Factors {
    /// 100 % both ways.
    pub const NEUTRAL: Self = Self {
        upload_percent: 100,
        download_percent: 100,
    };
}

impl Default for Factors {
    fn default() -> Self {
        Self::NEUTRAL
    }
}

/// What a batch adds to one `shoal_credits` row: sums are added (saturating at
/// `i64::MAX`), `completed_at` keeps the first ever, `first_announce` the earliest,
/// `last_announce`, `seed_until` and `leech_until` the latest.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CreditRow {
    /// The row.
    pub key: UserTorrentKey,
    /// Bytes uploaded credited, after the factors.
    pub uploaded: u64,
    /// Bytes downloaded credited, after the factors.
    pub downloaded: u64,
    /// Bytes uploaded as the client reported them.
    pub uploaded_raw: u64,
    /// Bytes downloaded as the client reported them.
    pub downloaded_raw: u64,
    /// Seconds seeding.
    pub seed_seconds: u64,
    /// Seconds leeching.
    pub leech_seconds: u64,
    /// The first completion, Unix seconds.
    pub completed_at: Option<u64>,
    /// The earliest announce, Unix seconds.
    pub first_announce: u64,
    /// The latest announce, Unix seconds.
    pub last_announce: u64,
    /// Announces flagged for their upload speed.
    pub flagged_announces: u64,
    /// Seeding time is credited up to here (Unix seconds).
    pub seed_until: u64,
    /// Leeching time is credited up to here (Unix seconds).
    pub leech_until: u64,
}

impl CreditRow {
    /// A row of `key` that adds nothing, for announces from `first_announce` to
    /// `last_announce`.
    pub fn zero(key: UserTorrentKey, first_announce: u64, last_announce: u64) -> Self {
        Self {
            key,
            uploaded: 0,
            downloaded: 0,
            uploaded_raw: 0,
            downloaded_raw: 0,
            seed_seconds: 0,
            leech_seconds: 0,
            completed_at: None,
            first_announce,
            last_announce,
            flagged_announces: 0,
            seed_until: 0,
            leech_until: 0,
        }
    }
}

/// One batch: peers' reports, applied in one transaction against the committed marks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Written to `shoal_batches` in the same transaction.
    pub id: BatchId,
    /// The reports, at most one per peer (the writer merges).
    pub reports: Vec<PeerReport>,
    /// The credit rules of the tracker that made the batch.
    pub rules: CreditRules,
    /// Unix seconds of the commit, for `shoal_batches.committed_at`.
    pub created_at: u64,
}

/// How a commit went.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The batch was applied now.
    Applied,
    /// The batch's id was already in `shoal_batches`: an earlier attempt was applied, and
    /// nothing was applied now.
    AlreadyApplied,
}

/// A passkey in force and whose it is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct PasskeyUser {
    /// The passkey.
    pub passkey: Passkey,
    /// Its user.
    pub user: UserId,
}

/// What a tracker reads of the site's tables at start, every `private.refresh_secs` and
/// on SIGUSR1.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SiteTables {
    /// The enabled rows of `shoal_passkeys` (empty when passkeys come from a file).
    pub passkeys: Vec<PasskeyUser>,
    /// Users of `shoal_users` with `can_leech` false.
    pub no_leech: Vec<UserId>,
    /// The info hashes of `shoal_torrents`.
    pub torrents: Vec<InfoHash>,
}

/// The reads and writes of one batch's transaction, which [`crate::private::ledger::apply`]
/// makes: each backend implements it on its open transaction. Every method may fail;
/// the backend then rolls back and the writer retries the batch.
pub trait Ledger {
    /// The committed marks of `keys`, in their order (`None`: no row, or a row that
    /// does not hold what it must). `keys` are sorted and distinct.
    ///
    /// # Errors
    /// The database failed.
    fn peer_marks(&mut self, keys: &[PeerKey]) -> anyhow::Result<Vec<Option<PeerMark>>>;

    /// The time marks of `keys` (sorted, distinct), in their order.
    ///
    /// # Errors
    /// The database failed.
    fn time_marks(&mut self, keys: &[UserTorrentKey]) -> anyhow::Result<Vec<Option<TimeMarks>>>;

    /// The global factors (`shoal_settings` rows `upload_percent`, `download_percent`;
    /// 100 where missing) and those of `hashes` (sorted, distinct) in `shoal_torrents`,
    /// in their order.
    ///
    /// # Errors
    /// The database failed.
    fn factors(&mut self, hashes: &[InfoHash]) -> anyhow::Result<(Factors, Vec<Option<Factors>>)>;

    /// Writes these marks (sorted by key, distinct), replacing the rows.
    ///
    /// # Errors
    /// The database failed.
    fn put_peer_marks(&mut self, rows: &[(PeerKey, PeerMark)]) -> anyhow::Result<()>;

    /// Adds these credits (sorted by key, distinct) as [`CreditRow`] says.
    ///
    /// # Errors
    /// The database failed.
    fn add_credits(&mut self, rows: &[CreditRow]) -> anyhow::Result<()>;
}

/// An accounting database.
///
/// Every method may fail when the database is unreachable; the next call then tries to
/// connect again, so a backend never needs to be re-opened.
pub trait AccountingStore: Send {
    /// The site's passkeys, users who may not leech, and registered torrents.
    ///
    /// # Errors
    /// The database cannot be read.
    fn load_site(&mut self) -> anyhow::Result<SiteTables>;

    /// Applies `batch` in one transaction, unless its id is already recorded: takes
    /// the database's accounting lock (so that writers apply one batch at a time, each
    /// against what the others committed), records the id, and runs
    /// [`crate::private::ledger::apply`] on the transaction.
    ///
    /// # Errors
    /// The outcome is unknown: the caller retries the same batch.
    fn commit(&mut self, batch: &Batch) -> anyhow::Result<CommitOutcome> {
        Ok(self.commit_counted(batch)?.0)
    }

    /// As [`AccountingStore::commit`], with what the ledger counted of the batch's
    /// reports (all zero when it was already applied).
    ///
    /// # Errors
    /// The outcome is unknown: the caller retries the same batch.
    fn commit_counted(&mut self, batch: &Batch) -> anyhow::Result<(CommitOutcome, Applied)>;

    /// Deletes the peer marks whose `last_announce` is before `before` (Unix seconds),
    /// and the `shoal_batches` rows committed before it; returns the marks deleted.
    ///
    /// # Errors
    /// The database cannot be written.
    fn forget_before(&mut self, before: u64) -> anyhow::Result<u64>;

    /// Writes `passkey`'s row of `shoal_passkeys`, enabled, with `user` as its
    /// `user_id` (`None`: NULL, the passkey is its own user), in one transaction:
    /// [`Written::Replaced`] if the passkey had a row (enabled or not).
    ///
    /// # Errors
    /// The database cannot be written; the row is as it was.
    fn put_passkey(&mut self, passkey: &Passkey, user: Option<UserId>) -> anyhow::Result<Written>;

    /// Deletes `passkey`'s row of `shoal_passkeys` (enabled or not); whether it had one.
    ///
    /// # Errors
    /// The database cannot be written.
    fn delete_passkey(&mut self, passkey: &Passkey) -> anyhow::Result<bool>;

    /// Writes `user`'s row of `shoal_users` with `can_leech`, in one transaction.
    ///
    /// # Errors
    /// The database cannot be written; the row is as it was.
    fn put_user(&mut self, user: UserId, can_leech: bool) -> anyhow::Result<Written>;

    /// Deletes `user`'s row of `shoal_users` (the user may then leech); whether it had
    /// one. Their passkeys are left as they are.
    ///
    /// # Errors
    /// The database cannot be written.
    fn delete_user(&mut self, user: UserId) -> anyhow::Result<bool>;

    /// Writes `info_hash`'s row of `shoal_torrents` with `factors`, in one transaction:
    /// the torrent is registered, and its factors apply to every batch committed after.
    ///
    /// # Errors
    /// A factor is above [`MAX_PERCENT`], or the database cannot be written; the row is
    /// as it was.
    fn put_torrent(&mut self, info_hash: &InfoHash, factors: Factors) -> anyhow::Result<Written>;

    /// Deletes `info_hash`'s row of `shoal_torrents`; whether it had one. Its credits
    /// stay.
    ///
    /// # Errors
    /// The database cannot be written.
    fn delete_torrent(&mut self, info_hash: &InfoHash) -> anyhow::Result<bool>;
}

/// What a write of one row of the site's tables did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Written {
    /// There was no row for the key: one was made.
    Created,
    /// There was a row for the key: it was replaced.
    Replaced,
}

impl Written {
    /// [`Written::Replaced`] if a row `existed`, else [`Written::Created`].
    pub fn existed(existed: bool) -> Self {
        if existed {
            Self::Replaced
        } else {
            Self::Created
        }
    }
}

/// The largest factor, in percent, that a `shoal_torrents` or `shoal_settings` row may
/// hold: a larger one is read as 100, so none is written.
pub const MAX_PERCENT: u32 = 100_000;

/// `factors` as the two percent columns of `shoal_torrents`.
///
/// # Errors
/// A factor is above [`MAX_PERCENT`].
fn percent_columns(factors: Factors) -> anyhow::Result<(i32, i32)> {
    let column = |name: &str, value: u32| {
        i32::try_from(value)
            .ok()
            .filter(|_| value <= MAX_PERCENT)
            .ok_or_else(|| anyhow::anyhow!("{name} {value}: at most {MAX_PERCENT}"))
    };
    Ok((
        column("upload_percent", factors.upload_percent)?,
        column("download_percent", factors.download_percent)?,
    ))
}

/// Opens the accounting database that `url` names: `sqlite://PATH` (PATH as given:
/// `sqlite:///var/lib/shoal/accounting.db` is absolute, `sqlite://accounting.db` relative
/// to the working directory) or `postgresql://...` / `postgres://...` (any URL that
/// PostgreSQL's libpq takes). Creates the schema, or brings it up to date, before it
/// returns.
///
/// # Errors
/// The URL names no backend, or the database cannot be reached or migrated now. Later
/// outages do not need a new `open`: every method reconnects.
pub fn open(url: &str) -> anyhow::Result<Box<dyn AccountingStore>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            anyhow::bail!("accounting database: sqlite:// needs a file path");
        }
        return Ok(Box::new(SqliteStore::open(std::path::Path::new(path))?));
    }
    if url.starts_with("postgresql://") || url.starts_with("postgres://") {
        return Ok(Box::new(PostgresStore::open(url)?));
    }
    if url.starts_with("mysql://") {
        return Ok(Box::new(MysqlStore::open(url)?));
    }
    anyhow::bail!(
        "accounting database {}: must start with sqlite://, postgresql:// or mysql://",
        crate::private::redact(url)
    )
}

/// The largest value a counter column holds.
const COUNTER_MAX: i64 = i64::MAX;

/// `value` as a column value, saturating at [`COUNTER_MAX`].
fn to_column(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(COUNTER_MAX)
}

/// Now, in Unix seconds (0 if the clock is before 1970).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| to_column(elapsed.as_secs()))
}

/// A `shoal_peer_marks` row's columns as read, if they hold what they must
/// (non-negative counters and time, a known state).
pub(crate) fn checked_mark(
    uploaded: i64,
    downloaded: i64,
    last_announce: i64,
    state: i64,
    noted: (Option<i64>, Option<i64>),
) -> Option<PeerMark> {
    let noted = match noted {
        (Some(up), Some(down)) => Some((u64::try_from(up).ok()?, u64::try_from(down).ok()?)),
        (None, None) => None,
        _ => return None,
    };
    Some(PeerMark {
        uploaded: u64::try_from(uploaded).ok()?,
        downloaded: u64::try_from(downloaded).ok()?,
        last_announce: u64::try_from(last_announce).ok()?,
        state: PeerState::from_column(state)?,
        noted,
    })
}

impl PeerMark {
    /// `noted_uploaded` and `noted_downloaded` as stored (NULL when `None`).
    pub fn noted_columns(&self) -> (Option<i64>, Option<i64>) {
        match self.noted {
            Some((up, down)) => (Some(to_column(up)), Some(to_column(down))),
            None => (None, None),
        }
    }
}

/// A percent column as read: 0 up to 100,000 %; another value counts as 100.
pub(crate) fn checked_percent(value: Option<i64>) -> u32 {
    value
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v <= MAX_PERCENT)
        .unwrap_or(100)
}

/// A user id column as read for `passkey`: the id, or the derived one when NULL.
pub(crate) fn user_of(passkey: &Passkey, user_id: Option<i64>) -> UserId {
    user_id.unwrap_or_else(|| derived_user_id(passkey))
}

/// Logs the rows of `table` that were skipped for not holding what they must.
fn warn_skipped(table: &str, skipped: u64) {
    if skipped > 0 {
        log::warn!("accounting database: skipped {skipped} malformed rows of {table}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_saturate_at_i64_max() {
        assert_eq!(to_column(0), 0);
        assert_eq!(to_column(i64::MAX as u64), i64::MAX);
        assert_eq!(to_column(i64::MAX as u64 + 1), i64::MAX);
        assert_eq!(to_column(u64::MAX), i64::MAX);
    }

    #[test]
    fn a_mark_row_is_checked_field_by_field() {
        let good = PeerMark {
            uploaded: 3,
            downloaded: 4,
            last_announce: 5,
            state: PeerState::Seeding,
            noted: None,
        };
        assert_eq!(checked_mark(3, 4, 5, 1, (None, None)), Some(good));
        assert_eq!(
            checked_mark(3, 4, 5, 1, (Some(1), Some(2))),
            Some(PeerMark {
                noted: Some((1, 2)),
                ..good
            })
        );
        for bad in [
            (-1, 4, 5, 1),
            (3, -1, 5, 1),
            (3, 4, -1, 1),
            (3, 4, 5, 3),
            (3, 4, 5, -1),
        ] {
            assert_eq!(
                checked_mark(bad.0, bad.1, bad.2, bad.3, (None, None)),
                None,
                "{bad:?}"
            );
        }
        assert_eq!(checked_mark(3, 4, 5, 1, (Some(1), None)), None);
        assert_eq!(checked_mark(3, 4, 5, 1, (Some(-1), Some(0))), None);
    }

    #[test]
    fn percents_out_of_range_count_as_100() {
        assert_eq!(checked_percent(Some(0)), 0);
        assert_eq!(checked_percent(Some(200)), 200);
        assert_eq!(checked_percent(None), 100);
        assert_eq!(checked_percent(Some(-5)), 100);
        assert_eq!(checked_percent(Some(100_001)), 100);
    }

    #[test]
    fn derived_user_ids_are_negative_stable_and_differ() {
        let a = Passkey(*b"alicealicealicealicealicealice01");
        let b = Passkey(*b"bobbobbobbobbobbobbobbobbobbob01");
        assert!(derived_user_id(&a) < 0 && derived_user_id(&b) < 0);
        assert_ne!(derived_user_id(&a), derived_user_id(&b));
        assert_eq!(derived_user_id(&a), derived_user_id(&a));
        assert_eq!(user_of(&a, Some(7)), 7);
        assert_eq!(user_of(&a, None), derived_user_id(&a));
    }

    #[test]
    fn open_refuses_unknown_schemes() {
        for url in ["", "sqlite://", "mysql://", "sqlite:x.db", "redis://x"] {
            assert!(open(url).is_err(), "{url}");
        }
    }
}
