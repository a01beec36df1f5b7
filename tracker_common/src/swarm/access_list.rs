//! Access list: which info hashes the tracker serves.
//!
//! `mode = "allow"` serves only the listed hashes (a whitelist, for private sites);
//! `mode = "deny"` serves everything but them (takedowns on a public tracker). The list
//! is a text file of 40-hex-digit info hashes, one a line; blank lines and `#` comments
//! are allowed.
//!
//! The list in force is an `Arc<AccessList>` behind an [`ArcSwap`]: a reload swaps the
//! pointer, and each worker reads it through an [`AccessListCache`], which costs one
//! atomic load on the hot path and takes no lock.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use arc_swap::{ArcSwap, Cache};
use hashbrown::HashSet;
use serde::{Deserialize, Serialize};

use crate::types::InfoHash;

/// Whether and how the access list applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AccessListMode {
    /// Every info hash is served; the file is not read.
    #[default]
    Off,
    /// Only the listed info hashes are served.
    Allow,
    /// Every info hash but the listed ones is served.
    Deny,
}

crate::config_section! {
    /// Access list settings.
    pub struct AccessListConfig {
        /// "off" (serve every torrent), "allow" (serve only the listed info hashes) or
        /// "deny" (serve all but the listed ones).
        pub mode: AccessListMode,
        /// File of info hashes, 40 hex digits a line; blank lines and # comments allowed.
        /// Required unless mode is "off". Re-read on SIGUSR1.
        pub path: PathBuf,
    }
}

impl Default for AccessListConfig {
    fn default() -> Self {
        Self {
            mode: AccessListMode::Off,
            path: PathBuf::new(),
        }
    }
}

impl AccessListConfig {
    /// Checks values that cannot work.
    ///
    /// # Errors
    /// A message naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.mode != AccessListMode::Off && self.path.as_os_str().is_empty() {
            anyhow::bail!("access_list.path: must be set when access_list.mode is not \"off\"");
        }
        Ok(())
    }
}

/// A loaded access list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessList {
    mode: AccessListMode,
    hashes: HashSet<InfoHash>,
}

impl AccessList {
    /// A list that allows everything.
    pub fn off() -> Self {
        Self::default()
    }

    /// A list with the given mode and hashes.
    pub fn new(mode: AccessListMode, hashes: impl IntoIterator<Item = InfoHash>) -> Self {
        Self {
            mode,
            hashes: hashes.into_iter().collect(),
        }
    }

    /// Loads the list the config names (an empty "off" list when mode is "off").
    ///
    /// # Errors
    /// The file cannot be read, or a line is not a 40-hex-digit hash (named by file and
    /// line number).
    pub fn from_config(config: &AccessListConfig) -> anyhow::Result<Self> {
        if config.mode == AccessListMode::Off {
            return Ok(Self::off());
        }
        Self::load_file(config.mode, &config.path)
    }

    /// Reads `path` as a list of hashes.
    ///
    /// # Errors
    /// As [`AccessList::from_config`].
    pub fn load_file(mode: AccessListMode, path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read access list file {}", path.display()))?;
        Self::parse(mode, &text).map_err(|(line, msg)| {
            anyhow::anyhow!("access list file {} line {line}: {msg}", path.display())
        })
    }

    /// Parses the text of a list file.
    ///
    /// # Errors
    /// The 1-based number of the first bad line and what is wrong with it.
    pub fn parse(mode: AccessListMode, text: &str) -> Result<Self, (usize, String)> {
        let mut hashes = HashSet::new();
        for (index, line) in text.lines().enumerate() {
            let content = line.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            match InfoHash::from_hex(content) {
                Some(hash) => {
                    hashes.insert(hash);
                }
                None => {
                    let shown: String = content.chars().take(60).collect();
                    return Err((
                        index + 1,
                        format!("expected 40 hexadecimal digits, found {shown:?}"),
                    ));
                }
            }
        }
        Ok(Self { mode, hashes })
    }

    /// Whether requests for this info hash are served.
    pub fn allows(&self, info_hash: &InfoHash) -> bool {
        match self.mode {
            AccessListMode::Off => true,
            AccessListMode::Allow => self.hashes.contains(info_hash),
            AccessListMode::Deny => !self.hashes.contains(info_hash),
        }
    }

    /// The list's mode.
    pub fn mode(&self) -> AccessListMode {
        self.mode
    }

    /// How many hashes the list holds.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether the list holds no hashes.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether `info_hash` is listed (whatever the mode makes of it).
    pub fn contains(&self, info_hash: &InfoHash) -> bool {
        self.hashes.contains(info_hash)
    }

    /// The listed hashes, in no order.
    pub fn hashes(&self) -> impl Iterator<Item = &InfoHash> {
        self.hashes.iter()
    }

    /// A copy with `info_hash` listed too.
    pub fn with(&self, info_hash: InfoHash) -> Self {
        let mut copy = self.clone();
        copy.hashes.insert(info_hash);
        copy
    }

    /// A copy without `info_hash`.
    pub fn without(&self, info_hash: &InfoHash) -> Self {
        let mut copy = self.clone();
        copy.hashes.remove(info_hash);
        copy
    }

    /// The list in its file format, sorted, under a header comment.
    pub fn to_text(&self) -> String {
        let mut hashes: Vec<String> = self.hashes.iter().map(InfoHash::to_hex).collect();
        hashes.sort_unstable();
        let mut text = String::with_capacity(41 * hashes.len() + 128);
        text.push_str(
            "# shoal access list: one info hash a line. Also written by the admin API, which\n\
             # rewrites this file whole (comments are not kept).\n",
        );
        for hash in hashes {
            text.push_str(&hash);
            text.push('\n');
        }
        text
    }

    /// Writes the list to `path`, replacing the file whole (see
    /// [`crate::files::write_atomic`]).
    ///
    /// # Errors
    /// The file cannot be written; the message names it.
    pub fn write_file(&self, path: &Path) -> anyhow::Result<()> {
        crate::files::write_atomic(path, self.to_text().as_bytes(), 0o644)
    }
}

/// The list in force, shared by every worker and swapped whole on reload.
pub type SharedAccessList = Arc<ArcSwap<AccessList>>;

/// Makes the shared list from a loaded one.
pub fn shared(list: AccessList) -> SharedAccessList {
    Arc::new(ArcSwap::from_pointee(list))
}

/// Re-reads the configured file and swaps it in. On error the old list stays in force.
///
/// # Errors
/// As [`AccessList::from_config`]; the caller logs it.
pub fn reload(shared: &SharedAccessList, config: &AccessListConfig) -> anyhow::Result<usize> {
    let list = AccessList::from_config(config)?;
    let len = list.len();
    shared.store(Arc::new(list));
    Ok(len)
}

/// A worker's view of the shared list: one atomic load per check, no lock.
pub struct AccessListCache(Cache<SharedAccessList, Arc<AccessList>>);

impl AccessListCache {
    /// A cache over the shared list.
    pub fn new(shared: SharedAccessList) -> Self {
        Self(Cache::new(shared))
    }

    /// Whether the list in force serves this info hash.
    pub fn allows(&mut self, info_hash: &InfoHash) -> bool {
        self.0.load().allows(info_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef01234567";
    const B: &str = "ffffffffffffffffffffffffffffffffffffffff";

    fn hash(hex: &str) -> InfoHash {
        InfoHash::from_hex(hex).unwrap()
    }

    #[test]
    fn parses_comments_and_blank_lines() {
        let text = format!("# takedowns\n\n{A}  # first\n  {}\n", B.to_uppercase());
        let list = AccessList::parse(AccessListMode::Allow, &text).unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.allows(&hash(A)));
        assert!(list.allows(&hash(B)));
        assert!(!list.allows(&InfoHash([1; 20])));
    }

    #[test]
    fn bad_line_is_named() {
        let text = format!("{A}\n\nnot-a-hash\n");
        let (line, msg) = AccessList::parse(AccessListMode::Deny, &text).unwrap_err();
        assert_eq!(line, 3);
        assert!(msg.contains("not-a-hash"), "{msg}");
        let (line, _) = AccessList::parse(AccessListMode::Deny, &A[..39]).unwrap_err();
        assert_eq!(line, 1);
    }

    #[test]
    fn modes() {
        let deny = AccessList::new(AccessListMode::Deny, [hash(A)]);
        assert!(!deny.allows(&hash(A)));
        assert!(deny.allows(&hash(B)));
        assert!(AccessList::off().allows(&hash(A)));
    }

    #[test]
    fn file_errors_name_file_and_line() {
        let dir = std::env::temp_dir().join(format!("shoal-al-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("list.txt");
        std::fs::write(&path, format!("{A}\nzz\n")).unwrap();
        let err = AccessList::load_file(AccessListMode::Allow, &path).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("list.txt line 2"), "{msg}");
        let missing = AccessList::load_file(AccessListMode::Allow, &dir.join("nope"));
        assert!(format!("{:#}", missing.unwrap_err()).contains("nope"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn edits_round_trip_through_the_file() {
        let dir = std::env::temp_dir().join(format!("shoal-al-edit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("list.txt");
        let list = AccessList::new(AccessListMode::Allow, [hash(A)]);
        let added = list.with(hash(B));
        assert!(added.contains(&hash(B)) && added.allows(&hash(B)));
        assert!(!list.contains(&hash(B)), "the original is unchanged");
        added.write_file(&path).unwrap();
        assert_eq!(
            AccessList::load_file(AccessListMode::Allow, &path).unwrap(),
            added
        );
        let removed = added.without(&hash(A));
        removed.write_file(&path).unwrap();
        let read = AccessList::load_file(AccessListMode::Allow, &path).unwrap();
        assert_eq!(read.hashes().collect::<Vec<_>>(), [&hash(B)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reload_keeps_old_list_on_error() {
        let dir = std::env::temp_dir().join(format!("shoal-al-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("list.txt");
        std::fs::write(&path, format!("{A}\n")).unwrap();
        let config = AccessListConfig {
            mode: AccessListMode::Allow,
            path: path.clone(),
        };
        let shared = shared(AccessList::from_config(&config).unwrap());
        let mut cache = AccessListCache::new(shared.clone());
        assert!(cache.allows(&hash(A)));
        assert!(!cache.allows(&hash(B)));

        std::fs::write(&path, format!("{B}\n")).unwrap();
        assert_eq!(reload(&shared, &config).unwrap(), 1);
        assert!(!cache.allows(&hash(A)));
        assert!(cache.allows(&hash(B)));

        std::fs::write(&path, "garbage\n").unwrap();
        assert!(reload(&shared, &config).is_err());
        assert!(cache.allows(&hash(B)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
