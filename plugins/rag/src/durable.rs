//! Small files written so that a crash leaves either the old state or the
//! new one: the data is fsynced before anything points at it.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` and fsyncs the file.
pub fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
