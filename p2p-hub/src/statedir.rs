//! The hub's state directory on disk: private to the hub's user.
//!
//! Everything the hub persists (host key, `users`, `accounts`, `clusters`) names who may do
//! what on the board, so the directory is kept at mode 0700 and every file in it at 0600:
//! created that way, and tightened on start if an older hub or an admin left them looser.
//! Whole-file rewrites go through a temporary file and a rename, so a crash (or `kill -9`)
//! mid-write leaves the old or the new file, never half of one.

use std::io::Write;
use std::path::Path;

/// Mode of the state directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file in it.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and its parents) if missing, and makes it 0700.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        // Created private, so that a new hub does not warn about its own directory.
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
        builder.create(dir)?;
    }
    tighten(dir, DIR_MODE)
}

/// Makes an existing `path` exactly `mode` if it allows more; logs when it had to.
/// A missing file is not an error (it will be created private).
pub fn tighten(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let current = meta.permissions().mode() & 0o7777;
        if current & !mode != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            tracing::warn!(
                path = %path.display(),
                was = format_args!("{current:o}"),
                now = format_args!("{mode:o}"),
                "tightened the permissions of a hub state file"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

fn private_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    options
}

/// Appends `text` to `path` (created 0600 if missing) and syncs it.
pub fn append_private(path: &Path, text: &[u8]) -> std::io::Result<()> {
    let mut f = private_options().create(true).append(true).open(path)?;
    tighten(path, FILE_MODE)?;
    f.write_all(text)?;
    f.sync_all()
}

/// Writes `text` as a new file at `path`; fails if it exists.
pub fn create_private(path: &Path, text: &[u8]) -> std::io::Result<()> {
    let mut f = private_options().write(true).create_new(true).open(path)?;
    f.write_all(text)?;
    f.sync_all()
}

/// Replaces `path` with `text` atomically: a 0600 temporary file beside it, synced, then
/// renamed over it.
pub fn replace_private(path: &Path, text: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = private_options().write(true).create_new(true).open(&tmp)?;
    f.write_all(text)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        // Makes the rename itself durable; not every platform can sync a directory.
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn files_and_dir_end_up_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);

        let loose = dir.join("users");
        std::fs::write(&loose, "x").unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
        append_private(&loose, b"y").unwrap();
        assert_eq!(mode(&loose), 0o600);
        assert_eq!(std::fs::read_to_string(&loose).unwrap(), "xy");

        let fresh = dir.join("accounts");
        append_private(&fresh, b"a").unwrap();
        assert_eq!(mode(&fresh), 0o600);

        let replaced = dir.join("clusters");
        replace_private(&replaced, b"one").unwrap();
        replace_private(&replaced, b"two").unwrap();
        assert_eq!(mode(&replaced), 0o600);
        assert_eq!(std::fs::read_to_string(&replaced).unwrap(), "two");
        assert!(create_private(&replaced, b"three").is_err());
    }
}
