//! A trajectory as one `.tar.gz`: `<session_id>/trajectory.jsonl`, its
//! `images/` and `screen.mp4`, written as it is read (bounded memory).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::layout::{IMAGES, LOG, META, VIDEO};

/// What to pack, fixed when the export was asked for: a live session's log
/// is cut at its last whole line then, later lines are not in it.
pub struct Export {
    pub session_id: String,
    pub dir: PathBuf,
    pub log_len: u64,
}

impl Export {
    /// Writes the archive to `out`.
    pub fn write_to(self, out: impl Write) -> io::Result<()> {
        // Fast compression: PNG and MP4 do not shrink, the log does.
        let mut tar = tar::Builder::new(GzEncoder::new(out, Compression::fast()));
        let root = Path::new(&self.session_id);
        append(
            &mut tar,
            &self.dir.join(LOG),
            &root.join(LOG),
            Some(self.log_len),
        )?;
        append(&mut tar, &self.dir.join(META), &root.join(META), None)?;
        let mut images: Vec<_> = fs::read_dir(self.dir.join(IMAGES))?
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n.to_str().is_some_and(|n| !n.starts_with('.')))
            .collect();
        images.sort();
        for name in images {
            let rel = Path::new(IMAGES).join(&name);
            append(&mut tar, &self.dir.join(&rel), &root.join(&rel), None)?;
        }
        if self.dir.join(VIDEO).exists() {
            append(&mut tar, &self.dir.join(VIDEO), &root.join(VIDEO), None)?;
        }
        tar.into_inner()?.finish()?.flush()
    }
}

/// Appends a file (its first `len` bytes when given; a growing file, such
/// as a video being recorded, is cut at its length now).
fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    name: &Path,
    len: Option<u64>,
) -> io::Result<()> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    let len = len.unwrap_or(meta.len()).min(meta.len());
    let mut header = tar::Header::new_gnu();
    header.set_size(len);
    header.set_mode(0o644);
    header.set_mtime(
        meta.modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs()),
    );
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, file.take(len))
}
