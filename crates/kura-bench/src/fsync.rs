//! The disk's single-writer fsync rate: the most durable commits a second one writer can make
//! when each commit waits for its own fsync. Group commit is measured against it.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Appends 4 KiB and `fdatasync`s, over and over for `time`, in a scratch file in `dir` (where
/// kura's data directories go, so on the same file system). Returns fsyncs per second.
pub fn rate(dir: &Path, time: Duration) -> Result<f64, String> {
    let file = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| format!("cannot create a file in {}: {e}", dir.display()))?;
    let mut f = file.as_file();
    let block = [0x5au8; 4096];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < time {
        f.write_all(&block)
            .and_then(|()| f.sync_data())
            .map_err(|e| format!("cannot write and sync {}: {e}", file.path().display()))?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}
