//! Files only their owner may read: the data folder, backups, the anchor key, export files.
//! One place sets the modes (0700 folders, 0600 files); elsewhere than Unix it is a no-op.

use std::path::Path;

/// Restricts `path` to its owner with `mode` (0o700 for a folder, 0o600 for a file).
pub fn owner_only(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// Creates `dir` (and its parents) if needed and restricts it to its owner (0700).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    owner_only(dir, 0o700)
}

/// Creates a new file only its owner may read or write (0600 from the start); refuses one that
/// exists.
pub fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}
