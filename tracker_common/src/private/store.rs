//! The accounting database: what a batch writes, and the backends that write it.
//!
//! A [`Batch`] is written in one transaction together with its id in `shoal_batches`.
//! A batch whose commit failed in any way (its outcome is unknown: the connection may
//! have dropped after the server committed) is retried with the same id; the retry finds
//! the id and applies nothing. So every batch is applied exactly once.
//!
//! Tables (created, and later changed, by numbered migrations):
//! - `shoal_passkeys(passkey, enabled)`: the users, when passkeys come from the database;
//! - `shoal_user_torrents(passkey, info_hash, uploaded, downloaded, seed_seconds,
//!   leech_seconds, completed_at, first_announce, last_announce, flagged_announces)`:
//!   the credit, added to by each batch;
//! - `shoal_peers(passkey, info_hash, peer_id, uploaded, downloaded, last_announce,
//!   seeding)`: each peer's committed baseline, loaded at start;
//! - `shoal_batches(id, committed_at, credits)`: the batches applied.
//!
//! Counters are stored as signed 64-bit integers; adding saturates at `i64::MAX`, so that
//! no client-sent value can make a batch fail for ever.
//!
//! # Backends
//! [`open`] picks one by the URL's scheme: [`SqliteStore`] (`sqlite://PATH`) or
//! [`PostgresStore`] (`postgresql://...`). Both keep the same tables, columns and
//! migration numbers, and neither panics on what it reads: a row that does not hold a
//! passkey, a 20-byte info hash or peer id, or a non-negative counter is skipped (and
//! counted in a warning).

mod postgres;
mod sqlite;

pub use self::postgres::PostgresStore;
pub use self::sqlite::SqliteStore;

use crate::private::passkey::Passkey;
use crate::types::{InfoHash, PeerId};

/// A batch's unique id: 16 random bytes, written as 32 lowercase hex digits.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct BatchId(pub [u8; 16]);

impl BatchId {
    /// The id as 32 lowercase hex digits (how it is stored).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A peer's committed baseline: its counters and state at the last announce that a
/// committed batch covers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PeerBaseline {
    /// The user.
    pub passkey: Passkey,
    /// The torrent.
    pub info_hash: InfoHash,
    /// The peer.
    pub peer_id: PeerId,
    /// `uploaded` of that announce.
    pub uploaded: u64,
    /// `downloaded` of that announce.
    pub downloaded: u64,
    /// When it was, in Unix seconds.
    pub last_announce: u64,
    /// Whether the peer was a seeder after it.
    pub seeding: bool,
}

/// What a batch adds to one (passkey, info hash) row of `shoal_user_torrents`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct UserTorrentCredit {
    /// The user.
    pub passkey: Passkey,
    /// The torrent.
    pub info_hash: InfoHash,
    /// Bytes uploaded to add.
    pub uploaded: u64,
    /// Bytes downloaded to add.
    pub downloaded: u64,
    /// Seconds seeding to add.
    pub seed_seconds: u64,
    /// Seconds leeching to add.
    pub leech_seconds: u64,
    /// The first completion in the batch, in Unix seconds; the row keeps the first ever.
    pub completed_at: Option<u64>,
    /// The batch's first announce of the row, in Unix seconds; the row keeps the earliest.
    pub first_announce: u64,
    /// The batch's last announce of the row, in Unix seconds; the row keeps the latest.
    pub last_announce: u64,
    /// Announces whose implied upload speed exceeded the configured bound, to add.
    pub flagged_announces: u64,
}

/// One transaction's worth of accounting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Written to `shoal_batches` in the same transaction.
    pub id: BatchId,
    /// Added to `shoal_user_torrents`, at most one per (passkey, info hash). Sorted by
    /// those (the table's primary key; [`make_batch`] sorts them), the database walks
    /// its B-tree in order; any order is applied the same, only slower.
    ///
    /// [`make_batch`]: crate::private::writer::make_batch
    pub credits: Vec<UserTorrentCredit>,
    /// Upserted into `shoal_peers`, at most one per (passkey, info hash, peer id), and
    /// sorted by those as `credits` are.
    pub baselines: Vec<PeerBaseline>,
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

/// An accounting database.
///
/// Every method may fail when the database is unreachable; the next call then tries to
/// connect again, so a backend never needs to be re-opened.
pub trait AccountingStore: Send {
    /// Hands every committed baseline whose `last_announce` is at or after `since` (Unix
    /// seconds) to `sink`.
    ///
    /// # Errors
    /// The database cannot be read.
    fn load_baselines(
        &mut self,
        since: u64,
        sink: &mut dyn FnMut(PeerBaseline),
    ) -> anyhow::Result<()>;

    /// The enabled passkeys of `shoal_passkeys` (rows that are not passkeys are skipped).
    ///
    /// # Errors
    /// The database cannot be read.
    fn load_passkeys(&mut self) -> anyhow::Result<Vec<Passkey>>;

    /// Applies `batch` in one transaction, unless its id is already recorded.
    ///
    /// # Errors
    /// The outcome is unknown: the caller retries the same batch.
    fn commit(&mut self, batch: &Batch) -> anyhow::Result<CommitOutcome>;

    /// Deletes the baselines whose `last_announce` is before `before` (Unix seconds),
    /// and the `shoal_batches` rows committed before it; returns the baselines deleted.
    ///
    /// # Errors
    /// The database cannot be written.
    fn forget_before(&mut self, before: u64) -> anyhow::Result<u64>;
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
            anyhow::bail!("accounting database {url:?}: sqlite:// needs a file path");
        }
        return Ok(Box::new(SqliteStore::open(std::path::Path::new(path))?));
    }
    if url.starts_with("postgresql://") || url.starts_with("postgres://") {
        return Ok(Box::new(PostgresStore::open(url)?));
    }
    anyhow::bail!("accounting database {url:?}: must start with sqlite:// or postgresql://")
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

/// A `shoal_peers` row as read, before it is checked.
struct RawBaseline<'a> {
    passkey: &'a [u8],
    info_hash: &'a [u8],
    peer_id: &'a [u8],
    uploaded: i64,
    downloaded: i64,
    last_announce: i64,
    seeding: bool,
}

impl RawBaseline<'_> {
    /// The baseline, if every field holds what it must (a passkey, 20-byte ids,
    /// non-negative counters and time).
    fn check(&self) -> Option<PeerBaseline> {
        Some(PeerBaseline {
            passkey: Passkey::parse(self.passkey)?,
            info_hash: InfoHash(self.info_hash.try_into().ok()?),
            peer_id: PeerId(self.peer_id.try_into().ok()?),
            uploaded: u64::try_from(self.uploaded).ok()?,
            downloaded: u64::try_from(self.downloaded).ok()?,
            last_announce: u64::try_from(self.last_announce).ok()?,
            seeding: self.seeding,
        })
    }
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
    fn a_baseline_row_is_checked_field_by_field() {
        let good = RawBaseline {
            passkey: b"0123456789abcdefABCDEF0123456789",
            info_hash: &[1; 20],
            peer_id: &[2; 20],
            uploaded: 3,
            downloaded: 4,
            last_announce: 5,
            seeding: true,
        };
        assert!(good.check().is_some());
        let bad = [
            RawBaseline {
                passkey: b"0123456789abcdefABCDEF012345678",
                ..good
            },
            RawBaseline {
                passkey: b"0123456789abcdefABCDEF012345678-",
                ..good
            },
            RawBaseline {
                info_hash: &[1; 19],
                ..good
            },
            RawBaseline {
                peer_id: &[2; 21],
                ..good
            },
            RawBaseline {
                uploaded: -1,
                ..good
            },
            RawBaseline {
                downloaded: -1,
                ..good
            },
            RawBaseline {
                last_announce: -1,
                ..good
            },
        ];
        for row in bad {
            assert!(row.check().is_none());
        }
    }

    #[test]
    fn open_refuses_unknown_schemes() {
        for url in ["", "sqlite://", "mysql://x", "sqlite:x.db"] {
            assert!(open(url).is_err(), "{url}");
        }
    }
}
