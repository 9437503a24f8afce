//! Writes that survive a crash: a file is written under a temporary name, flushed to disk,
//! renamed over the old one and the directory flushed too, so a reader finds the old file or
//! the new one, never a part of either (a crash loses at most the write in flight).

use std::io::Write;
use std::path::Path;

/// Flushes `dir`'s entries (a rename inside it) to disk.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.partial"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))
}

#[cfg(test)]
#[path = "durable_tests.rs"]
mod tests;
