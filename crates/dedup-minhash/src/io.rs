//! Atomic file output: write to a temporary file in the same directory, fsync, rename.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{DedupError, Result};

/// The temporary name used while `path` is being written.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes `path` atomically: `write` fills a buffered temporary file next to it, which is then
/// flushed, fsynced and renamed over `path` (and the directory fsynced). On error the temporary
/// file is removed and `path` is left untouched.
///
/// # Errors
/// [`DedupError::Io`] naming `path`.
pub fn atomic_write(path: &Path, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    atomic_write_with(path, |w| write(w).map_err(|e| DedupError::io("writing", path, e)))
}

/// Like [`atomic_write`], for writers that return crate errors.
pub(crate) fn atomic_write_with(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| DedupError::io("creating directory", dir, e))?;
    }
    let tmp = temp_path(path);
    let result = (|| {
        let file = File::create(&tmp).map_err(|e| DedupError::io("creating", &tmp, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| DedupError::io("writing", &tmp, e.into_error()))?;
        file.sync_all().map_err(|e| DedupError::io("syncing", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| DedupError::io("renaming into place", path, e))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Persist the rename; not all platforms can open a directory, so this is best effort.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
