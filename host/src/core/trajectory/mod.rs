//! Trajectories: every call of a recorded session, appended to a JSON Lines
//! log in the session's own directory before the call is answered, with
//! screenshots stored once as PNG files beside it. A trajectory outlives its
//! session; retention (by age, by total size) removes old ones. The format
//! is `docs/trajectories.md`; HTTP access is the native surface's.
//!
//! * `layout.rs`: the files of a trajectory and the names that may enter paths
//! * `schema.rs`: the lines of the log and `meta.json`
//! * `writer.rs`: appending steps (size cap, closing)
//! * `images.rs`: screenshots taken out of results, by content hash
//! * `catalog.rs`: reading what is stored (listings, step counts, sizes)
//! * `export.rs`: a trajectory as a `.tar.gz`
//! * `retention.rs`: deleting old trajectories

pub mod catalog;
pub mod export;
pub mod images;
pub mod layout;
pub mod retention;
pub mod schema;
#[cfg(test)]
mod tests;
pub mod writer;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;

use super::error::{CoreError, CoreResult};
use crate::config::ServerConfig;
use catalog::Summary;
use export::Export;
use layout::{check_image_name, check_session_id, session_dir, IMAGES, LOG, VIDEO};
pub use schema::Origin;
pub use writer::{Call, SessionInfo, Writer};

/// Session config keys the host reads: `record` (taken out: plugins never
/// see it), `record_video` (left in for the plugin, and recording with it),
/// `video_path` (set by the host, never by a client). The host chooses where
/// a video goes rather than the plugin reporting where it put one: the file
/// is written once where it is kept (nothing to copy when the session ends,
/// when the plugin removes its session directory), and no client names a
/// path the server's user would write to.
const RECORD: &str = "record";
const RECORD_VIDEO: &str = "record_video";
const VIDEO_PATH: &str = "video_path";

/// Every trajectory of this host: where they go, the live ones, the limits.
pub struct Trajectories {
    root: PathBuf,
    record_all: bool,
    max_bytes: u64,
    max_age: Option<Duration>,
    max_total: Option<u64>,
    node: String,
    /// Trajectories of live sessions, by session id.
    live: Mutex<HashMap<String, Arc<Writer>>>,
}

/// What a session's config asks of recording.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Plan {
    pub record: bool,
    pub video: bool,
}

/// A file to send: its first `len` bytes.
pub struct Source {
    pub file: io::Take<File>,
    pub len: u64,
}

impl Source {
    fn open(path: PathBuf, len: Option<u64>) -> io::Result<Self> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        let len = len.map_or(size, |l| l.min(size));
        Ok(Self {
            file: file.take(len),
            len,
        })
    }
}

fn not_recorded(id: &str) -> CoreError {
    CoreError::SessionNotFound(format!(
        "No trajectory of session '{id}' on this host (it was not recorded, or was deleted)"
    ))
}

fn io_error(what: &str, id: &str, e: io::Error) -> CoreError {
    if e.kind() == io::ErrorKind::NotFound {
        return not_recorded(id);
    }
    CoreError::Internal(format!("cannot {what} the trajectory of '{id}': {e}"))
}

impl Trajectories {
    pub fn new(s: &ServerConfig) -> Self {
        let root = if s.trajectory_dir.as_os_str().is_empty() {
            s.runtime_dir.join("trajectories")
        } else {
            s.trajectory_dir.clone()
        };
        // Absolute: a video path handed to a plugin must not depend on its
        // working directory.
        let root = std::path::absolute(&root).unwrap_or(root);
        Self {
            root,
            record_all: s.record,
            max_bytes: s.trajectory_max_bytes,
            max_age: (s.trajectory_max_age > 0.0).then(|| super::secs(s.trajectory_max_age)),
            max_total: (s.trajectory_max_total_bytes > 0).then_some(s.trajectory_max_total_bytes),
            node: s.node_name.clone(),
            live: Mutex::default(),
        }
    }

    fn live(&self) -> MutexGuard<'_, HashMap<String, Arc<Writer>>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn live_writer(&self, id: &str) -> Option<Arc<Writer>> {
        self.live().get(id).cloned()
    }

    /// Reads and takes out the host's keys of a session config (plugin
    /// defaults overlaid by the client's). `record_video` records too.
    pub fn plan(&self, config: &mut Value) -> CoreResult<Plan> {
        let Some(map) = config.as_object_mut() else {
            return Ok(Plan {
                record: self.record_all,
                video: false,
            });
        };
        let flag = |key: &str, v: Option<&Value>| match v {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(CoreError::InvalidParams(format!(
                "Parameter 'config.{key}' must be true or false, got {other}"
            ))),
        };
        let record = flag(RECORD, map.remove(RECORD).as_ref())?;
        let video = flag(RECORD_VIDEO, map.get(RECORD_VIDEO))?;
        if map.contains_key(VIDEO_PATH) {
            return Err(CoreError::InvalidParams(format!(
                "Parameter 'config.{VIDEO_PATH}' is chosen by the server (in the session's \
                 trajectory); leave it out and set \"{RECORD_VIDEO}\": true"
            )));
        }
        Ok(Plan {
            record: record || video || self.record_all,
            video,
        })
    }

    /// Starts the trajectory of a new session; with a video, tells the
    /// plugin where to write it (`video_path` in `config`).
    pub fn open(
        &self,
        info: &SessionInfo<'_>,
        plan: Plan,
        config: &mut Value,
    ) -> CoreResult<Arc<Writer>> {
        let info = SessionInfo {
            node: &self.node,
            ..*info
        };
        let writer = Writer::create(&self.root, &info, config, self.max_bytes).map_err(|e| {
            CoreError::Internal(format!(
                "cannot start the trajectory of session '{}' in {}: {e}",
                info.session_id,
                self.root.display()
            ))
        })?;
        if plan.video {
            if let Some(map) = config.as_object_mut() {
                map.insert(
                    VIDEO_PATH.into(),
                    Value::String(writer.video_path().display().to_string()),
                );
            }
        }
        let writer = Arc::new(writer);
        self.live()
            .insert(info.session_id.to_string(), writer.clone());
        Ok(writer)
    }

    /// Ends a live trajectory (blocking: it syncs the log).
    pub fn close(&self, writer: &Writer) {
        self.live().remove(writer.session_id());
        if let Err(e) = writer.close() {
            tracing::warn!(session = %writer.session_id(), error = %e, "could not close the trajectory");
        }
    }

    /// Removes the trajectory of a session that never started.
    pub fn discard(&self, writer: &Writer) {
        self.live().remove(writer.session_id());
        writer.discard();
    }

    /// Ends every live trajectory (the host is stopping).
    pub fn close_all(&self) {
        let all: Vec<_> = self.live().drain().map(|(_, w)| w).collect();
        for w in all {
            if let Err(e) = w.close() {
                tracing::warn!(session = %w.session_id(), error = %e, "could not close the trajectory");
            }
        }
    }

    /// Trajectories, of one worker or all, newest first.
    pub fn list(&self, worker: Option<&str>) -> CoreResult<Vec<Summary>> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(CoreError::Internal(format!(
                    "cannot read the trajectory directory {}: {e}",
                    self.root.display()
                )))
            }
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(id) = name.to_str().filter(|n| check_session_id(n).is_ok()) else {
                continue;
            };
            let live = self.live_writer(id);
            match catalog::summarize(&e.path(), live.as_deref()) {
                Ok(s) if worker.is_none_or(|w| w == s.worker_id) => out.push(s),
                Ok(_) => {}
                Err(err) => {
                    tracing::debug!(dir = %e.path().display(), error = %err, "not a readable trajectory; skipped")
                }
            }
        }
        out.sort_by(|a, b| b.started_at.cmp(&a.started_at));
        Ok(out)
    }

    fn existing_dir(&self, id: &str) -> CoreResult<PathBuf> {
        check_session_id(id)?;
        let dir = session_dir(&self.root, id);
        if dir.join(LOG).is_file() {
            Ok(dir)
        } else {
            Err(not_recorded(id))
        }
    }

    /// The summary of one trajectory.
    pub fn summary(&self, id: &str) -> CoreResult<Summary> {
        let dir = self.existing_dir(id)?;
        let live = self.live_writer(id);
        catalog::summarize(&dir, live.as_deref()).map_err(|e| io_error("read", id, e))
    }

    /// The log, up to its last whole line.
    pub fn log(&self, id: &str) -> CoreResult<Source> {
        let dir = self.existing_dir(id)?;
        let len = self.live_writer(id).map(|w| w.committed_len());
        Source::open(dir.join(LOG), len).map_err(|e| io_error("read", id, e))
    }

    /// One stored screenshot.
    pub fn image(&self, id: &str, name: &str) -> CoreResult<Source> {
        let dir = self.existing_dir(id)?;
        check_image_name(name)?;
        Source::open(dir.join(IMAGES).join(name), None).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => CoreError::InvalidParams(format!(
                "Parameter 'image': no image '{name}' in the trajectory of '{id}'"
            )),
            _ => io_error("read", id, e),
        })
    }

    /// The screen video.
    pub fn video(&self, id: &str) -> CoreResult<Source> {
        let dir = self.existing_dir(id)?;
        Source::open(dir.join(VIDEO), None).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => CoreError::InvalidParams(format!(
                "The trajectory of '{id}' has no video (its session did not set \"record_video\": true)"
            )),
            _ => io_error("read", id, e),
        })
    }

    /// What an export of the trajectory packs.
    pub fn export(&self, id: &str) -> CoreResult<Export> {
        let dir = self.existing_dir(id)?;
        let log_len = match self.live_writer(id) {
            Some(w) => w.committed_len(),
            None => fs::metadata(dir.join(LOG))
                .map_err(|e| io_error("read", id, e))?
                .len(),
        };
        Ok(Export {
            session_id: id.to_string(),
            dir,
            log_len,
        })
    }

    /// Deletes an ended trajectory (a live one is refused: its session
    /// would go on writing into nothing).
    pub fn delete(&self, id: &str) -> CoreResult<Summary> {
        let summary = self.summary(id)?;
        if self.live_writer(id).is_some() {
            return Err(CoreError::InvalidParams(format!(
                "Session '{id}' is alive and recording; destroy the session before deleting its trajectory"
            )));
        }
        fs::remove_dir_all(session_dir(&self.root, id)).map_err(|e| io_error("delete", id, e))?;
        tracing::info!(session = %id, "trajectory deleted");
        Ok(summary)
    }
}
