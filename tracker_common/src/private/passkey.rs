//! Passkeys in private mode: which are in force, and the check a socket worker makes
//! before a request goes any further.
//!
//! The passkey itself ([`Passkey`]), where a request carries it
//! ([`tracker_types::split_passkey_path`]) and what a parser found ([`PasskeyParam`]) are
//! pure parsing, defined in `tracker_types` so that the wire crates need not depend on
//! this crate; the two that the trackers name are re-exported here.
//!
//! The set in force comes from a file (one passkey a line, blank lines and `#` comments
//! allowed) or from the accounting database's `shoal_passkeys` table; either way it sits
//! behind an [`ArcSwap`], so that a reload swaps one pointer and a check costs one atomic
//! load and one hash lookup: no database query and no lock on the announce path.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::{ArcSwap, Cache};
use hashbrown::{HashMap, HashSet};

pub use tracker_types::{PASSKEY_LEN, Passkey, PasskeyParam};

use crate::private::accounting::AccountInfo;
use crate::private::store::{PasskeyUser, SiteTables, UserId, derived_user_id};
use crate::types::{AnnounceEvent, InfoHash, PeerId};

/// What the socket workers check an announce against: the passkeys in force and their
/// users, the users who may not leech, and the registered torrents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PasskeySet {
    keys: HashMap<Passkey, UserId>,
    no_leech: HashSet<UserId>,
    /// The registered torrents, once read from the database (or its cache).
    torrents: Option<HashSet<InfoHash>>,
}

impl PasskeySet {
    /// A set of these passkeys and users, without site tables.
    pub fn new(keys: impl IntoIterator<Item = PasskeyUser>) -> Self {
        Self {
            keys: keys.into_iter().map(|k| (k.passkey, k.user)).collect(),
            no_leech: HashSet::new(),
            torrents: None,
        }
    }

    /// The set of the site's tables: its passkeys (unless `file_keys`, the passkey
    /// file's, are given), users who may not leech and registered torrents.
    pub fn of_site(site: &SiteTables, file_keys: Option<&PasskeySet>) -> Self {
        let keys = match file_keys {
            Some(file) => file.keys.clone(),
            None => site.passkeys.iter().map(|k| (k.passkey, k.user)).collect(),
        };
        Self {
            keys,
            no_leech: site.no_leech.iter().copied().collect(),
            torrents: Some(site.torrents.iter().copied().collect()),
        }
    }

    /// This set with the passkeys of `keys` (a reloaded passkey file), the rest kept.
    pub fn with_keys_of(&self, keys: &PasskeySet) -> Self {
        Self {
            keys: keys.keys.clone(),
            no_leech: self.no_leech.clone(),
            torrents: self.torrents.clone(),
        }
    }

    /// Puts `key` in force for `user`; the user it had, if it was in force.
    pub fn insert_key(&mut self, key: Passkey, user: UserId) -> Option<UserId> {
        self.keys.insert(key, user)
    }

    /// Takes `key` out of force; the user it had, if it was in force.
    pub fn remove_key(&mut self, key: &Passkey) -> Option<UserId> {
        self.keys.remove(key)
    }

    /// Lets `user` leech or not.
    pub fn set_may_leech(&mut self, user: UserId, may_leech: bool) {
        if may_leech {
            self.no_leech.remove(&user);
        } else {
            self.no_leech.insert(user);
        }
    }

    /// Registers `info_hash`. Registered torrents not yet read stay unknown: the set
    /// then holds this one alone (until the site's tables are read), which refuses no
    /// more than before.
    pub fn insert_torrent(&mut self, info_hash: InfoHash) {
        self.torrents
            .get_or_insert_with(HashSet::new)
            .insert(info_hash);
    }

    /// Unregisters `info_hash`; whether it was registered.
    pub fn remove_torrent(&mut self, info_hash: &InfoHash) -> bool {
        self.torrents
            .as_mut()
            .is_some_and(|torrents| torrents.remove(info_hash))
    }

    /// The passkeys in force and their users, sorted by passkey.
    pub fn passkey_users(&self) -> Vec<PasskeyUser> {
        let mut passkeys: Vec<PasskeyUser> = self
            .keys
            .iter()
            .map(|(passkey, user)| PasskeyUser {
                passkey: *passkey,
                user: *user,
            })
            .collect();
        passkeys.sort_unstable_by_key(|k| k.passkey);
        passkeys
    }

    /// The user of `key`, if it is in force.
    pub fn user(&self, key: &Passkey) -> Option<UserId> {
        self.keys.get(key).copied()
    }

    /// Whether `user` may leech.
    pub fn may_leech(&self, user: UserId) -> bool {
        !self.no_leech.contains(&user)
    }

    /// Whether `info_hash` is registered (`false` until the torrents were read).
    pub fn registered(&self, info_hash: &InfoHash) -> bool {
        self.torrents
            .as_ref()
            .is_some_and(|t| t.contains(info_hash))
    }

    /// Whether the registered torrents were read.
    pub fn has_torrents(&self) -> bool {
        self.torrents.is_some()
    }

    /// Parses a passkey file: one passkey a line, optionally followed by its user id;
    /// blank lines and `#` comments allowed (a comment may follow). A repeated passkey
    /// counts once.
    ///
    /// # Errors
    /// The 1-based line number and a message for the first bad line.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        Ok(Self::new(parse_lines(text)?))
    }

    /// Reads and parses a passkey file.
    ///
    /// # Errors
    /// The file cannot be read, or a line is not a passkey (the message names file and
    /// line).
    pub fn load_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read passkey file {}", path.display()))?;
        Self::parse(&text).map_err(|(line, message)| {
            anyhow::anyhow!("passkey file {} line {line}: {message}", path.display())
        })
    }

    /// Whether `key` is in force.
    pub fn contains(&self, key: &Passkey) -> bool {
        self.keys.contains_key(key)
    }

    /// Passkeys in force.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no passkey is in force.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Registered torrents known.
    pub fn num_torrents(&self) -> usize {
        self.torrents.as_ref().map_or(0, HashSet::len)
    }

    /// The site tables this set holds (for the local cache).
    pub fn to_site(&self) -> SiteTables {
        let passkeys = self.passkey_users();
        let mut no_leech: Vec<UserId> = self.no_leech.iter().copied().collect();
        no_leech.sort_unstable();
        let mut torrents: Vec<InfoHash> = self
            .torrents
            .iter()
            .flat_map(|t| t.iter().copied())
            .collect();
        torrents.sort_unstable();
        SiteTables {
            passkeys,
            no_leech,
            torrents,
        }
    }
}

/// The passkeys in force, shared by every worker and swapped whole on reload.
pub type SharedPasskeys = Arc<ArcSwap<PasskeySet>>;

/// Held by whoever replaces the set in force with one made from its sources, from the
/// read of the sources to the swap: the `accounting` thread's read of the site's
/// tables, the SIGUSR1 reload of the passkey file and each change of the admin API.
/// Each of them builds the new set from the one in force; without the lock, a read of
/// the sources made before another's change, swapped in after it, would undo it.
/// Never taken on the announce path.
pub type ChangeLock = Arc<std::sync::Mutex<()>>;

/// Takes `lock`, waiting for it. A poisoned lock is taken too: it guards no data, and
/// what it orders (the set in force, the files) is each replaced whole.
pub fn hold(lock: &ChangeLock) -> std::sync::MutexGuard<'_, ()> {
    lock.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why a private-mode request was refused, each counted apart.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The request carried no passkey.
    MissingPasskey,
    /// The request carried a passkey that is not in force (or not a passkey at all).
    UnknownPasskey,
    /// The client's peer id does not start with an allowed prefix.
    ClientNotAllowed,
    /// `private.require_registered_torrents` is on and the torrent is not in
    /// `shoal_torrents`.
    UnregisteredTorrent,
    /// The user may not leech (`shoal_users.can_leech` is false) and announced `left`
    /// above 0.
    LeechingNotAllowed,
}

impl Refusal {
    /// Every cause, in the order of [`Refusal::index`].
    pub const ALL: [Refusal; 5] = [
        Refusal::MissingPasskey,
        Refusal::UnknownPasskey,
        Refusal::ClientNotAllowed,
        Refusal::UnregisteredTorrent,
        Refusal::LeechingNotAllowed,
    ];

    /// The message the client gets (a failure reason, a UDP error, a WebSocket failure).
    pub fn message(self) -> &'static str {
        match self {
            Refusal::MissingPasskey => "missing passkey",
            Refusal::UnknownPasskey => "unknown passkey",
            Refusal::ClientNotAllowed => "client not allowed",
            Refusal::UnregisteredTorrent => "unregistered torrent",
            Refusal::LeechingNotAllowed => "leeching not allowed for this account",
        }
    }

    /// The cause as a metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::MissingPasskey => "missing_passkey",
            Refusal::UnknownPasskey => "unknown_passkey",
            Refusal::ClientNotAllowed => "client_not_allowed",
            Refusal::UnregisteredTorrent => "unregistered_torrent",
            Refusal::LeechingNotAllowed => "leeching_not_allowed",
        }
    }

    /// A dense index for counters.
    pub fn index(self) -> usize {
        match self {
            Refusal::MissingPasskey => 0,
            Refusal::UnknownPasskey => 1,
            Refusal::ClientNotAllowed => 2,
            Refusal::UnregisteredTorrent => 3,
            Refusal::LeechingNotAllowed => 4,
        }
    }
}

/// Client allow list: peer id prefixes (`-qB4`, `-TR4`, `-lt20`). Empty allows every
/// client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientAllowList {
    prefixes: Vec<Vec<u8>>,
}

impl ClientAllowList {
    /// A list of these prefixes (empty ones are ignored).
    pub fn new<P: AsRef<[u8]>>(prefixes: impl IntoIterator<Item = P>) -> Self {
        Self {
            prefixes: prefixes
                .into_iter()
                .map(|p| p.as_ref().to_vec())
                .filter(|p| !p.is_empty())
                .collect(),
        }
    }

    /// Whether the client with this peer id may announce.
    pub fn allows(&self, peer_id: &PeerId) -> bool {
        self.prefixes.is_empty() || self.prefixes.iter().any(|p| peer_id.0.starts_with(p))
    }
}

/// What the gate checks of an announce besides its passkey.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AnnounceFacts {
    /// The peer id (the client allow list).
    pub peer_id: PeerId,
    /// The torrent (registered torrents).
    pub info_hash: InfoHash,
    /// Bytes left (users who may not leech).
    pub left: u64,
    /// The event (a `stopped` is always let through: the peer leaves).
    pub event: AnnounceEvent,
    /// `uploaded`; `None` if missing or negative.
    pub uploaded: Option<u64>,
    /// `downloaded`; `None` if missing or negative.
    pub downloaded: Option<u64>,
}

/// A socket worker's private-mode check: its cached view of the passkeys in force and the
/// client allow list. One per socket worker.
pub struct PasskeyGate {
    passkeys: Cache<SharedPasskeys, Arc<PasskeySet>>,
    clients: Arc<ClientAllowList>,
    require_registered: bool,
    /// The set [`Self::passkeys_changed`] saw last (held, so that a new set cannot take
    /// its address and pass for it).
    seen: Arc<PasskeySet>,
}

impl PasskeyGate {
    /// A gate over the shared passkeys and the allow list; `require_registered` refuses
    /// announces of torrents that are not registered.
    pub fn new(
        passkeys: SharedPasskeys,
        clients: Arc<ClientAllowList>,
        require_registered: bool,
    ) -> Self {
        let mut passkeys = Cache::new(passkeys);
        let seen = Arc::clone(passkeys.load());
        Self {
            passkeys,
            clients,
            require_registered,
            seen,
        }
    }

    /// Whether the passkeys in force are another set than at the last call (or than at
    /// the start): a reload happened, and what was admitted under the old set may have
    /// lost its passkey.
    pub fn passkeys_changed(&mut self) -> bool {
        let now = self.passkeys.load();
        if Arc::ptr_eq(now, &self.seen) {
            return false;
        }
        self.seen = Arc::clone(now);
        true
    }

    /// Checks an announce: its passkey, its client, its torrent and whether its user may
    /// leech; returns what its request worker accounts.
    ///
    /// # Errors
    /// The [`Refusal`] to answer with.
    pub fn check_announce(
        &mut self,
        passkey: PasskeyParam,
        facts: &AnnounceFacts,
    ) -> Result<AccountInfo, Refusal> {
        let passkey = key_of(passkey)?;
        // One look at the set in force for every check of the announce.
        let set = self.passkeys.load();
        let user = set.user(&passkey).ok_or(Refusal::UnknownPasskey)?;
        if !self.clients.allows(&facts.peer_id) {
            return Err(Refusal::ClientNotAllowed);
        }
        if self.require_registered && !set.registered(&facts.info_hash) {
            return Err(Refusal::UnregisteredTorrent);
        }
        if facts.left > 0 && facts.event != AnnounceEvent::Stopped && !set.may_leech(user) {
            return Err(Refusal::LeechingNotAllowed);
        }
        Ok(AccountInfo {
            user,
            uploaded: facts.uploaded,
            downloaded: facts.downloaded,
        })
    }

    /// Checks a passkey alone (a scrape, a WebSocket answer); returns its user.
    ///
    /// # Errors
    /// The [`Refusal`] to answer with.
    pub fn check_passkey(&mut self, passkey: PasskeyParam) -> Result<UserId, Refusal> {
        let passkey = key_of(passkey)?;
        self.passkeys
            .load()
            .user(&passkey)
            .ok_or(Refusal::UnknownPasskey)
    }
}

/// The passkey a request carried, or the refusal for none (or a malformed one).
fn key_of(passkey: PasskeyParam) -> Result<Passkey, Refusal> {
    match passkey {
        PasskeyParam::Missing => Err(Refusal::MissingPasskey),
        PasskeyParam::Malformed => Err(Refusal::UnknownPasskey),
        PasskeyParam::Key(key) => Ok(key),
    }
}

/// A socket worker's whole private-mode check, the same for UDP, HTTP and WebSocket: its
/// [`PasskeyGate`] and whether scrapes need a passkey too. One per socket worker.
pub struct PrivateCheck {
    gate: PasskeyGate,
    scrape_requires_passkey: bool,
}

impl PrivateCheck {
    /// A socket worker's check over the tracker's private access.
    pub fn new(access: &super::PrivateAccess) -> Self {
        Self {
            gate: access.gate(),
            scrape_requires_passkey: access.scrape_requires_passkey,
        }
    }

    /// Checks an announce (see [`PasskeyGate::check_announce`]).
    ///
    /// # Errors
    /// The [`Refusal`] to answer with.
    pub fn check_announce(
        &mut self,
        passkey: PasskeyParam,
        facts: &AnnounceFacts,
    ) -> Result<AccountInfo, Refusal> {
        self.gate.check_announce(passkey, facts)
    }

    /// Checks a passkey alone (see [`PasskeyGate::check_passkey`]).
    ///
    /// # Errors
    /// The [`Refusal`] to answer with.
    pub fn check_passkey(&mut self, passkey: PasskeyParam) -> Result<UserId, Refusal> {
        self.gate.check_passkey(passkey)
    }

    /// Whether the passkeys in force changed (see [`PasskeyGate::passkeys_changed`]).
    pub fn passkeys_changed(&mut self) -> bool {
        self.gate.passkeys_changed()
    }

    /// Checks a scrape: its passkey when `private.scrape_requires_passkey` is on,
    /// nothing otherwise.
    ///
    /// # Errors
    /// The [`Refusal`] to answer with.
    pub fn check_scrape(&mut self, passkey: PasskeyParam) -> Result<(), Refusal> {
        if self.scrape_requires_passkey {
            self.gate.check_passkey(passkey)?;
        }
        Ok(())
    }
}

/// The passkeys of a configuration list, in order; the error names `key` and the
/// first entry that is not a passkey.
///
/// # Errors
/// An entry is not a passkey.
pub fn parse_list(key: &str, list: &[String]) -> anyhow::Result<Vec<Passkey>> {
    list.iter()
        .map(|entry| {
            Passkey::parse(entry.as_bytes()).ok_or_else(|| {
                anyhow::anyhow!(
                    "{key}: {:?} is not a passkey (32 characters of 0-9, A-Z, a-z)",
                    entry.chars().take(64).collect::<String>()
                )
            })
        })
        .collect()
}

/// The passkeys of a passkey file's text and their users, in file order, repeats kept:
/// one passkey a line, optionally followed by its user id (a 64-bit integer; without
/// one the passkey is its own user, see [`derived_user_id`]); blank lines and `#`
/// comments allowed (a comment may follow).
///
/// # Errors
/// The 1-based line number and a message for the first bad line.
pub fn parse_lines(text: &str) -> Result<Vec<PasskeyUser>, (usize, String)> {
    let mut keys = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let content = line_content(line);
        if content.is_empty() {
            continue;
        }
        let mut fields = content.split_whitespace();
        let (Some(key), user, None) = (fields.next(), fields.next(), fields.next()) else {
            return Err((
                index + 1,
                "expected a passkey, optionally followed by a user id".to_string(),
            ));
        };
        let passkey = Passkey::parse(key.as_bytes()).ok_or_else(|| {
            (
                index + 1,
                format!(
                    "not a passkey (32 characters of 0-9, A-Z, a-z): {:?}",
                    key.chars().take(64).collect::<String>()
                ),
            )
        })?;
        let user = match user {
            None => derived_user_id(&passkey),
            Some(text) => text.parse::<UserId>().map_err(|_| {
                (
                    index + 1,
                    format!(
                        "not a user id (a 64-bit integer): {:?}",
                        text.chars().take(64).collect::<String>()
                    ),
                )
            })?,
        };
        keys.push(PasskeyUser { passkey, user });
    }
    Ok(keys)
}

/// What a passkey file's line says: the text before any `#`, trimmed (empty for a
/// blank or comment line).
pub(crate) fn line_content(line: &str) -> &str {
    line.split('#').next().unwrap_or_default().trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz012345";

    fn user_of(key: &[u8; 32], user: UserId) -> PasskeyUser {
        PasskeyUser {
            passkey: Passkey(*key),
            user,
        }
    }

    fn facts(peer_id: PeerId, left: u64, event: AnnounceEvent) -> AnnounceFacts {
        AnnounceFacts {
            peer_id,
            info_hash: InfoHash([1; 20]),
            left,
            event,
            uploaded: Some(1),
            downloaded: None,
        }
    }

    #[test]
    fn passkey_file() {
        let other = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
        let text = format!(
            "# users\n\n{}  # alice\n  {other} 42\n{other} 42\n",
            std::str::from_utf8(KEY).unwrap()
        );
        let set = PasskeySet::parse(&text).unwrap();
        assert_eq!(set.len(), 2);
        assert!(set.contains(&Passkey(*KEY)));
        assert_eq!(
            set.user(&Passkey(*KEY)),
            Some(derived_user_id(&Passkey(*KEY)))
        );
        assert_eq!(
            set.user(&Passkey(*other.as_bytes().first_chunk().unwrap())),
            Some(42)
        );
        let (line, message) = PasskeySet::parse(&format!("{other}\nshort\n")).unwrap_err();
        assert_eq!(line, 2);
        assert!(message.contains("short"), "{message}");
        let (line, message) = PasskeySet::parse(&format!("{other} x1\n")).unwrap_err();
        assert_eq!(line, 1);
        assert!(message.contains("user id"), "{message}");
        assert_eq!(
            PasskeySet::parse(&format!("{other} 1 2\n")).unwrap_err().0,
            1
        );
    }

    #[test]
    fn gate_refuses_by_cause() {
        let shared = Arc::new(ArcSwap::from_pointee(PasskeySet::new([user_of(KEY, 5)])));
        let clients = Arc::new(ClientAllowList::new(["-qB4", "-TR4"]));
        let mut gate = PasskeyGate::new(shared.clone(), clients, false);
        let mut qbit = PeerId([b'x'; 20]);
        qbit.0[..4].copy_from_slice(b"-qB4");
        let key = |bytes: &[u8]| PasskeyParam::from_segment(Some(bytes));
        let seeding = facts(qbit, 0, AnnounceEvent::None);
        assert_eq!(
            gate.check_announce(key(KEY), &seeding),
            Ok(AccountInfo {
                user: 5,
                uploaded: Some(1),
                downloaded: None
            })
        );
        assert_eq!(
            gate.check_announce(PasskeyParam::Missing, &seeding),
            Err(Refusal::MissingPasskey)
        );
        assert_eq!(
            gate.check_announce(key(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"), &seeding),
            Err(Refusal::UnknownPasskey)
        );
        assert_eq!(key(b"bad"), PasskeyParam::Malformed);
        assert_eq!(
            gate.check_announce(key(b"bad"), &seeding),
            Err(Refusal::UnknownPasskey)
        );
        assert_eq!(
            gate.check_announce(key(KEY), &facts(PeerId([b'x'; 20]), 0, AnnounceEvent::None)),
            Err(Refusal::ClientNotAllowed)
        );
        // A reload takes the key away.
        shared.store(Arc::new(PasskeySet::default()));
        assert_eq!(
            gate.check_announce(key(KEY), &seeding),
            Err(Refusal::UnknownPasskey)
        );
        assert!(ClientAllowList::default().allows(&PeerId([0; 20])));
    }

    #[test]
    fn registered_torrents_and_users_who_may_not_leech() {
        let site = SiteTables {
            passkeys: vec![user_of(KEY, 5)],
            no_leech: vec![5],
            torrents: vec![InfoHash([1; 20])],
        };
        let shared = Arc::new(ArcSwap::from_pointee(PasskeySet::of_site(&site, None)));
        let key = PasskeyParam::Key(Passkey(*KEY));
        let mut gate = PasskeyGate::new(shared.clone(), Arc::default(), true);
        let peer = PeerId([0; 20]);
        assert!(
            gate.check_announce(key, &facts(peer, 0, AnnounceEvent::None))
                .is_ok()
        );
        assert_eq!(
            gate.check_announce(key, &facts(peer, 10, AnnounceEvent::Started)),
            Err(Refusal::LeechingNotAllowed)
        );
        // A leecher may still leave.
        assert!(
            gate.check_announce(key, &facts(peer, 10, AnnounceEvent::Stopped))
                .is_ok()
        );
        let mut other = facts(peer, 0, AnnounceEvent::None);
        other.info_hash = InfoHash([2; 20]);
        assert_eq!(
            gate.check_announce(key, &other),
            Err(Refusal::UnregisteredTorrent)
        );
        // Without the requirement, any torrent.
        let mut open = PasskeyGate::new(shared.clone(), Arc::default(), false);
        assert!(open.check_announce(key, &other).is_ok());
        // Passkeys from a file keep the site's other tables.
        let file = PasskeySet::new([user_of(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", 6)]);
        let mixed = PasskeySet::of_site(&site, Some(&file));
        assert_eq!(mixed.user(&Passkey(*KEY)), None);
        assert!(mixed.registered(&InfoHash([1; 20])));
        assert!(!mixed.may_leech(5));
        let reloaded = mixed.with_keys_of(&PasskeySet::new([user_of(KEY, 5)]));
        assert_eq!(reloaded.user(&Passkey(*KEY)), Some(5));
        assert!(reloaded.registered(&InfoHash([1; 20])));
        // Before any read of the site, no torrent is registered.
        assert!(!PasskeySet::default().registered(&InfoHash([1; 20])));
    }

    #[test]
    fn a_rotated_passkey_keeps_its_user() {
        let old = user_of(KEY, 77);
        let new = user_of(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", 77);
        let shared = Arc::new(ArcSwap::from_pointee(PasskeySet::new([old, new])));
        let mut gate = PasskeyGate::new(shared.clone(), Arc::default(), false);
        let seeding = facts(PeerId([0; 20]), 0, AnnounceEvent::None);
        assert_eq!(
            gate.check_announce(PasskeyParam::Key(old.passkey), &seeding)
                .map(|a| a.user),
            Ok(77)
        );
        assert_eq!(
            gate.check_announce(PasskeyParam::Key(new.passkey), &seeding)
                .map(|a| a.user),
            Ok(77)
        );
        // The site disables the old one: refused after the reload.
        shared.store(Arc::new(PasskeySet::new([new])));
        assert_eq!(
            gate.check_announce(PasskeyParam::Key(old.passkey), &seeding),
            Err(Refusal::UnknownPasskey)
        );
    }

    #[test]
    fn a_gate_sees_each_reload_once() {
        let shared = Arc::new(ArcSwap::from_pointee(PasskeySet::new([user_of(KEY, 1)])));
        let mut gate = PasskeyGate::new(shared.clone(), Arc::default(), false);
        assert!(
            !gate.passkeys_changed(),
            "nothing changed since the gate was made"
        );
        // Even a reload to the same keys is another set: what was admitted is checked
        // again, which costs a look-up per connection and never misses a change.
        shared.store(Arc::new(PasskeySet::new([user_of(KEY, 1)])));
        assert!(gate.passkeys_changed());
        assert!(!gate.passkeys_changed());
        shared.store(Arc::new(PasskeySet::default()));
        shared.store(Arc::new(PasskeySet::default()));
        assert!(
            gate.passkeys_changed(),
            "two reloads between calls are seen once"
        );
        assert!(!gate.passkeys_changed());
    }

    #[test]
    fn scrapes_need_a_passkey_only_when_configured() {
        let key = PasskeyParam::Key(Passkey(*KEY));
        for required in [false, true] {
            let access = crate::private::PrivateAccess {
                passkeys: Arc::new(ArcSwap::from_pointee(PasskeySet::new([user_of(KEY, 3)]))),
                clients: Arc::new(ClientAllowList::default()),
                scrape_requires_passkey: required,
                require_registered_torrents: false,
            };
            let mut check = PrivateCheck::new(&access);
            assert_eq!(check.check_scrape(key), Ok(()));
            let refused = |cause| if required { Err(cause) } else { Ok(()) };
            assert_eq!(
                check.check_scrape(PasskeyParam::Missing),
                refused(Refusal::MissingPasskey)
            );
            assert_eq!(
                check.check_scrape(PasskeyParam::Malformed),
                refused(Refusal::UnknownPasskey)
            );
            // Announces need one either way.
            assert_eq!(
                check.check_announce(
                    PasskeyParam::Missing,
                    &facts(PeerId([0; 20]), 0, AnnounceEvent::None)
                ),
                Err(Refusal::MissingPasskey)
            );
            assert_eq!(check.check_passkey(key), Ok(3));
        }
    }
}
