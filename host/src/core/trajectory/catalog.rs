//! Reading the trajectory directory: what is there (for listings and
//! retention), each read with bounded memory.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use super::layout::{IMAGES, LOG, META, VIDEO};
use super::schema::{Meta, STEP_PREFIX};
use super::writer::Writer;

/// One trajectory as listings show it.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub session_id: String,
    pub session_name: String,
    pub worker_id: String,
    pub resource_type: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// The session is alive and still recording.
    pub live: bool,
    pub steps: u64,
    /// Bytes on disk: log, images, video.
    pub bytes: u64,
    /// The size cap was reached.
    pub capped: bool,
    pub unrecorded_steps: u64,
    pub video: bool,
    #[serde(skip)]
    pub modified: SystemTime,
}

/// Reads `meta.json` of a trajectory directory.
pub fn read_meta(dir: &Path) -> io::Result<Meta> {
    let bytes = fs::read(dir.join(META))?;
    serde_json::from_slice(&bytes).map_err(io::Error::other)
}

/// The summary of one trajectory directory (`live`: its writer, if the
/// session is alive).
pub fn summarize(dir: &Path, live: Option<&Writer>) -> io::Result<Summary> {
    let meta = read_meta(dir)?;
    let (bytes, modified) = disk_usage(dir)?;
    let (steps, capped, unrecorded) = match (live, meta.steps) {
        (Some(w), _) => {
            let c = w.counts();
            (c.steps, c.capped, c.unrecorded)
        }
        (None, Some(steps)) => (steps, meta.capped, meta.unrecorded_steps),
        // Never closed (the host died): count what the log holds.
        (None, None) => {
            let (steps, capped) = count_steps(&dir.join(LOG))?;
            (steps, capped, 0)
        }
    };
    Ok(Summary {
        video: dir.join(VIDEO).exists(),
        session_id: meta.session_id,
        session_name: meta.session_name,
        worker_id: meta.worker_id,
        resource_type: meta.resource_type,
        started_at: meta.started_at,
        ended_at: meta.ended_at,
        live: live.is_some(),
        steps,
        bytes,
        capped,
        unrecorded_steps: unrecorded,
        modified,
    })
}

/// Bytes of the files of a trajectory, and when it was last written.
pub fn disk_usage(dir: &Path) -> io::Result<(u64, SystemTime)> {
    let mut total = 0;
    let mut newest = SystemTime::UNIX_EPOCH;
    for sub in [dir.to_path_buf(), dir.join(IMAGES)] {
        let Ok(entries) = fs::read_dir(&sub) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_file() {
                total += m.len();
                if let Ok(t) = m.modified() {
                    newest = newest.max(t);
                }
            }
        }
    }
    Ok((total, newest))
}

/// Steps in a log, and whether it has a `cap_reached` line, reading it in
/// pieces (a line can be megabytes).
pub fn count_steps(log: &Path) -> io::Result<(u64, bool)> {
    const CAP_PREFIX: &[u8] = br#"{"type":"cap_reached","#;
    let mut reader = BufReader::with_capacity(64 * 1024, File::open(log)?);
    let (mut steps, mut capped) = (0, false);
    // The start of the current line, up to the longest prefix looked for.
    let mut head: Vec<u8> = Vec::with_capacity(32);
    let mut at_line_start = true;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len();
        for &b in chunk {
            if b == b'\n' {
                at_line_start = true;
                head.clear();
                continue;
            }
            if at_line_start {
                head.push(b);
                if head == STEP_PREFIX {
                    steps += 1;
                } else if head == CAP_PREFIX {
                    capped = true;
                }
                if head.len() >= CAP_PREFIX.len().max(STEP_PREFIX.len()) {
                    at_line_start = false;
                }
            }
        }
        reader.consume(n);
    }
    Ok((steps, capped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_counted_across_reads() {
        let dir = std::env::temp_dir().join(format!("traj-count-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join(LOG);
        let big = "x".repeat(200_000);
        let text = format!(
            "{{\"type\":\"session\"}}\n{{\"type\":\"step\",\"seq\":1,\"r\":\"{big}\"}}\n{{\"type\":\"step\",\"seq\":2}}\n{{\"type\":\"cap_reached\",\"seq\":3}}\n"
        );
        fs::write(&log, text).unwrap();
        assert_eq!(count_steps(&log).unwrap(), (2, true));
        fs::remove_dir_all(&dir).unwrap();
    }
}
