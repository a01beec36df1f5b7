//! Files the tracker rewrites while it runs (the access list, the bans, the passkeys),
//! replaced whole so that a crash or a reader never sees half of one.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Writes `contents` to `path` so that `path` always holds the old file or the new one:
/// into a temporary file beside it, synced, renamed over `path`, and the directory
/// synced so that the rename survives a crash. The new file keeps the old one's
/// permissions (a passkey file is a secret), or gets `mode` if there was none. On error
/// the temporary file is removed and `path` is untouched. The temporary file is named
/// after the process: two processes writing one file never share one, and one process
/// makes its writes of a file one at a time.
///
/// # Errors
/// Creating, writing, syncing or renaming failed; the message names the file.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;

    let temporary = sibling(path, &format!("tmp-{}", std::process::id()));
    let mode = std::fs::metadata(path).map_or(mode, |m| m.permissions().mode() & 0o7777);
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        // The mode at creation is masked by the umask: it is set whole here.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        sync_parent(path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.with_context(|| format!("write {}", path.display()))
}

/// `path` with `.suffix` appended to its file name.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

/// Syncs the directory holding `path`, so that a rename into it is durable.
///
/// # Errors
/// The directory cannot be opened or synced.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_whole_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("shoal-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("list.txt");
        std::fs::write(&path, "old\n").unwrap();
        write_atomic(&path, b"new\n", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["list.txt"]);
        let missing = dir.join("no-such-dir").join("x");
        let err = format!("{:#}", write_atomic(&missing, b"x", 0o600).unwrap_err());
        assert!(err.contains("no-such-dir"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_replaced_file_keeps_its_permissions() {
        let dir = std::env::temp_dir().join(format!("shoal-files-keep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("passkeys");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&path, b"new", 0o644).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn new_files_get_the_mode() {
        let dir = std::env::temp_dir().join(format!("shoal-files-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        write_atomic(&path, b"x", 0o600).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
