//! The local cache of the site's tables: what the `accounting` thread last read of
//! `shoal_passkeys`, `shoal_users` and `shoal_torrents`, so that a tracker started while
//! the database is down serves the users and torrents it served before.
//!
//! A text file, one entry a line (`passkey PASSKEY USER_ID`, `no_leech USER_ID`,
//! `torrent HEX40`), written to a temporary file beside it, synced and renamed over it:
//! a crash leaves the old cache or the new one, never half of one. The file holds
//! passkeys: it is created readable by its owner only.

use std::path::Path;

use anyhow::Context;

use crate::private::passkey::Passkey;
use crate::private::store::{PasskeyUser, SiteTables, UserId};
use crate::types::InfoHash;

const HEADER: &str = "# shoal: the site's tables as last read from the accounting database\n";

/// Writes `site` to `path`, replacing it whole.
///
/// # Errors
/// The file cannot be written or renamed.
pub fn write(path: &Path, site: &SiteTables) -> anyhow::Result<()> {
    let mut text = String::with_capacity(64 * (site.passkeys.len() + site.torrents.len()) + 64);
    text.push_str(HEADER);
    for key in &site.passkeys {
        text.push_str(&format!("passkey {} {}\n", key.passkey.as_str(), key.user));
    }
    for user in &site.no_leech {
        text.push_str(&format!("no_leech {user}\n"));
    }
    for hash in &site.torrents {
        text.push_str("torrent ");
        for byte in hash.0 {
            text.push_str(&format!("{byte:02x}"));
        }
        text.push('\n');
    }
    crate::files::write_atomic(path, text.as_bytes(), 0o600)
}

/// Reads the cache at `path`.
///
/// # Errors
/// The file cannot be read, or a line is not an entry (the message names the line).
pub fn read(path: &Path) -> anyhow::Result<SiteTables> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    parse(&text).map_err(|(line, what)| anyhow::anyhow!("{} line {line}: {what}", path.display()))
}

/// Parses a cache's text.
///
/// # Errors
/// The 1-based number of the first bad line, and what is wrong with it.
pub fn parse(text: &str) -> Result<SiteTables, (usize, &'static str)> {
    let mut site = SiteTables::default();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let mut fields = line.split_whitespace();
        match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (None, ..) => {}
            (Some(comment), ..) if comment.starts_with('#') => {}
            (Some("passkey"), Some(key), Some(user), None) => {
                let passkey = Passkey::parse(key.as_bytes()).ok_or((line_no, "not a passkey"))?;
                let user: UserId = user.parse().map_err(|_| (line_no, "not a user id"))?;
                site.passkeys.push(PasskeyUser { passkey, user });
            }
            (Some("no_leech"), Some(user), None, None) => {
                site.no_leech
                    .push(user.parse().map_err(|_| (line_no, "not a user id"))?);
            }
            (Some("torrent"), Some(hex), None, None) => {
                site.torrents
                    .push(parse_hash(hex).ok_or((line_no, "not a 40-digit hex info hash"))?);
            }
            _ => return Err((line_no, "not a cache entry")),
        }
    }
    Ok(site)
}

fn parse_hash(hex: &str) -> Option<InfoHash> {
    if hex.len() != 40 || !hex.is_ascii() {
        return None;
    }
    let mut hash = [0u8; 20];
    for (byte, pair) in hash.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(InfoHash(hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_reads_back_what_was_written_and_is_private() {
        let dir = crate::testing::temp_dir("site-cache");
        let path = dir.join("site.cache");
        let site = SiteTables {
            passkeys: vec![
                PasskeyUser {
                    passkey: Passkey(*b"alicealicealicealicealicealice01"),
                    user: 42,
                },
                PasskeyUser {
                    passkey: Passkey(*b"bobbobbobbobbobbobbobbobbobbob01"),
                    user: -9,
                },
            ],
            no_leech: vec![42],
            torrents: vec![InfoHash([0xab; 20]), InfoHash([0; 20])],
        };
        write(&path, &site).unwrap();
        assert_eq!(read(&path).unwrap(), site);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
        write(&path, &SiteTables::default()).unwrap();
        assert_eq!(read(&path).unwrap(), SiteTables::default());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_bad_line_is_named() {
        assert_eq!(parse("# x\n\npasskey short 1\n").unwrap_err().0, 3);
        assert_eq!(parse("torrent abc\n").unwrap_err().0, 1);
        assert_eq!(parse("no_leech x\n").unwrap_err().0, 1);
        assert_eq!(parse("other 1\n").unwrap_err().0, 1);
        let hex = "zz".repeat(20);
        assert!(parse(&format!("torrent {hex}\n")).is_err());
    }
}
