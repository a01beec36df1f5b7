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
use std::sync::atomic::AtomicUsize;

use anyhow::Context;
use arc_swap::{ArcSwap, Cache};
use hashbrown::HashMap;

pub use tracker_types::{PASSKEY_LEN, Passkey, PasskeyParam};

use crate::types::PeerId;

/// The passkeys in force, each with the count of peers that hold accounting state under
/// it (over all request workers, for `accounting.max_peers_per_passkey`).
#[derive(Clone, Debug, Default)]
pub struct PasskeySet {
    keys: HashMap<Passkey, Arc<AtomicUsize>>,
}

impl PartialEq for PasskeySet {
    fn eq(&self, other: &Self) -> bool {
        self.keys.len() == other.keys.len() && self.keys.keys().all(|k| other.contains(k))
    }
}

impl Eq for PasskeySet {}

impl PasskeySet {
    /// A set of these passkeys.
    pub fn new(keys: impl IntoIterator<Item = Passkey>) -> Self {
        Self {
            keys: keys.into_iter().map(|k| (k, Arc::default())).collect(),
        }
    }

    /// This set, with the peer counts of the passkeys that `previous` holds too: what a
    /// reload swaps in, so that a user's count survives it.
    pub fn carry_over(mut self, previous: &PasskeySet) -> Self {
        for (key, count) in &mut self.keys {
            if let Some(old) = previous.keys.get(key) {
                *count = Arc::clone(old);
            }
        }
        self
    }

    /// The count of peers with accounting state under `key`, if it is in force.
    pub fn peer_count(&self, key: &Passkey) -> Option<&Arc<AtomicUsize>> {
        self.keys.get(key)
    }

    /// Parses a passkey file: one passkey a line, blank lines and `#` comments allowed
    /// (a comment may follow a passkey). A repeated passkey counts once.
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
}

/// The passkeys in force, shared by every worker and swapped whole on reload.
pub type SharedPasskeys = Arc<ArcSwap<PasskeySet>>;

/// Why a private-mode request was refused, each counted apart.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The request carried no passkey.
    MissingPasskey,
    /// The request carried a passkey that is not in force (or not a passkey at all).
    UnknownPasskey,
    /// The client's peer id does not start with an allowed prefix.
    ClientNotAllowed,
}

impl Refusal {
    /// Every cause, in the order of [`Refusal::index`].
    pub const ALL: [Refusal; 3] = [
        Refusal::MissingPasskey,
        Refusal::UnknownPasskey,
        Refusal::ClientNotAllowed,
    ];

    /// The message the client gets (a failure reason, a UDP error, a WebSocket failure).
    pub fn message(self) -> &'static str {
        match self {
            Refusal::MissingPasskey => "missing passkey",
            Refusal::UnknownPasskey => "unknown passkey",
            Refusal::ClientNotAllowed => "client not allowed",
        }
    }

    /// The cause as a metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::MissingPasskey => "missing_passkey",
            Refusal::UnknownPasskey => "unknown_passkey",
            Refusal::ClientNotAllowed => "client_not_allowed",
        }
    }

    /// A dense index for counters.
    pub fn index(self) -> usize {
        match self {
            Refusal::MissingPasskey => 0,
            Refusal::UnknownPasskey => 1,
            Refusal::ClientNotAllowed => 2,
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

/// A socket worker's private-mode check: its cached view of the passkeys in force and the
/// client allow list. One per socket worker.
pub struct PasskeyGate {
    passkeys: Cache<SharedPasskeys, Arc<PasskeySet>>,
    clients: Arc<ClientAllowList>,
    /// The set [`Self::passkeys_changed`] saw last (held, so that a new set cannot take
    /// its address and pass for it).
    seen: Arc<PasskeySet>,
}

impl PasskeyGate {
    /// A gate over the shared passkeys and the allow list.
    pub fn new(passkeys: SharedPasskeys, clients: Arc<ClientAllowList>) -> Self {
        let mut passkeys = Cache::new(passkeys);
        let seen = Arc::clone(passkeys.load());
        Self {
            passkeys,
            clients,
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

    /// Checks an announce's passkey and peer id; returns the passkey to credit.
    ///
    /// # Errors
    /// The [`Refusal`] to answer with.
    pub fn check_announce(
        &mut self,
        passkey: PasskeyParam,
        peer_id: &PeerId,
    ) -> Result<Passkey, Refusal> {
        let passkey = self.check_passkey(passkey)?;
        if !self.clients.allows(peer_id) {
            return Err(Refusal::ClientNotAllowed);
        }
        Ok(passkey)
    }

    /// Checks a passkey alone (a scrape, a WebSocket answer).
    ///
    /// # Errors
    /// The [`Refusal`] to answer with.
    pub fn check_passkey(&mut self, passkey: PasskeyParam) -> Result<Passkey, Refusal> {
        let passkey = match passkey {
            PasskeyParam::Missing => return Err(Refusal::MissingPasskey),
            PasskeyParam::Malformed => return Err(Refusal::UnknownPasskey),
            PasskeyParam::Key(key) => key,
        };
        if self.passkeys.load().contains(&passkey) {
            Ok(passkey)
        } else {
            Err(Refusal::UnknownPasskey)
        }
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

    /// Checks an announce's passkey and peer id (see [`PasskeyGate::check_announce`]).
    ///
    /// # Errors
    /// The [`Refusal`] to answer with.
    pub fn check_announce(
        &mut self,
        passkey: PasskeyParam,
        peer_id: &PeerId,
    ) -> Result<Passkey, Refusal> {
        self.gate.check_announce(passkey, peer_id)
    }

    /// Checks a passkey alone (see [`PasskeyGate::check_passkey`]).
    ///
    /// # Errors
    /// The [`Refusal`] to answer with.
    pub fn check_passkey(&mut self, passkey: PasskeyParam) -> Result<Passkey, Refusal> {
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

/// The passkeys of a passkey file's text, in file order, repeats kept: one a line,
/// blank lines and `#` comments allowed (a comment may follow a passkey).
///
/// # Errors
/// The 1-based line number and a message for the first bad line.
pub fn parse_lines(text: &str) -> Result<Vec<Passkey>, (usize, String)> {
    let mut keys = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        let key = Passkey::parse(content.as_bytes()).ok_or_else(|| {
            (
                index + 1,
                format!(
                    "not a passkey (32 characters of 0-9, A-Z, a-z): {:?}",
                    content.chars().take(64).collect::<String>()
                ),
            )
        })?;
        keys.push(key);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz012345";

    #[test]
    fn passkey_file() {
        let other = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
        let text = format!(
            "# users\n\n{}  # alice\n  {other}\n{other}\n",
            std::str::from_utf8(KEY).unwrap()
        );
        let set = PasskeySet::parse(&text).unwrap();
        assert_eq!(set.len(), 2);
        assert!(set.contains(&Passkey(*KEY)));
        let (line, message) = PasskeySet::parse(&format!("{other}\nshort\n")).unwrap_err();
        assert_eq!(line, 2);
        assert!(message.contains("short"), "{message}");
    }

    #[test]
    fn gate_refuses_by_cause() {
        let shared = Arc::new(ArcSwap::from_pointee(PasskeySet::new([Passkey(*KEY)])));
        let clients = Arc::new(ClientAllowList::new(["-qB4", "-TR4"]));
        let mut gate = PasskeyGate::new(shared.clone(), clients);
        let mut qbit = PeerId([b'x'; 20]);
        qbit.0[..4].copy_from_slice(b"-qB4");
        let key = |bytes: &[u8]| PasskeyParam::from_segment(Some(bytes));
        assert_eq!(gate.check_announce(key(KEY), &qbit), Ok(Passkey(*KEY)));
        assert_eq!(
            gate.check_announce(PasskeyParam::Missing, &qbit),
            Err(Refusal::MissingPasskey)
        );
        assert_eq!(
            gate.check_announce(key(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"), &qbit),
            Err(Refusal::UnknownPasskey)
        );
        assert_eq!(key(b"bad"), PasskeyParam::Malformed);
        assert_eq!(
            gate.check_announce(key(b"bad"), &qbit),
            Err(Refusal::UnknownPasskey)
        );
        assert_eq!(
            gate.check_announce(key(KEY), &PeerId([b'x'; 20])),
            Err(Refusal::ClientNotAllowed)
        );
        // A reload takes the key away.
        shared.store(Arc::new(PasskeySet::default()));
        assert_eq!(
            gate.check_announce(key(KEY), &qbit),
            Err(Refusal::UnknownPasskey)
        );
        assert!(ClientAllowList::default().allows(&PeerId([0; 20])));
    }

    #[test]
    fn a_gate_sees_each_reload_once() {
        let shared = Arc::new(ArcSwap::from_pointee(PasskeySet::new([Passkey(*KEY)])));
        let mut gate = PasskeyGate::new(shared.clone(), Arc::default());
        assert!(
            !gate.passkeys_changed(),
            "nothing changed since the gate was made"
        );
        // Even a reload to the same keys is another set: what was admitted is checked
        // again, which costs a look-up per connection and never misses a change.
        shared.store(Arc::new(PasskeySet::new([Passkey(*KEY)])));
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
                passkeys: Arc::new(ArcSwap::from_pointee(PasskeySet::new([Passkey(*KEY)]))),
                clients: Arc::new(ClientAllowList::default()),
                scrape_requires_passkey: required,
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
                check.check_announce(PasskeyParam::Missing, &PeerId([0; 20])),
                Err(Refusal::MissingPasskey)
            );
            assert_eq!(check.check_passkey(key), Ok(Passkey(*KEY)));
        }
    }
}
