//! Appending to one session's trajectory. Each step is one `write(2)` (or
//! a few, for a result larger than the kernel takes at once) on a file
//! opened with `O_APPEND`, finished before the call is answered: a host
//! killed right after still has it (the page cache belongs to the kernel).
//! Memory stays bounded however long the session runs: nothing of earlier
//! steps is kept, and whether a screenshot is stored already is asked of the
//! file system.

use std::fs::{self, DirBuilder, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::images::{self, Image};
use super::layout::{image_file, IMAGES, LOG, META, VIDEO};
use super::schema::{CapReached, End, Header, ImageRef, Meta, Origin, Step, StepError, SCHEMA};

/// Who the session is, for the first line and `meta.json`.
pub struct SessionInfo<'a> {
    pub session_id: &'a str,
    pub session_name: &'a str,
    pub worker_id: &'a str,
    pub resource_type: &'a str,
    pub temporary: bool,
    pub node: &'a str,
}

/// One finished call, as the executor saw it.
pub struct Call<'a> {
    /// `resource:action`.
    pub action: &'a str,
    pub params: &'a Value,
    pub started_at: SystemTime,
    pub duration_ms: f64,
    pub origin: &'a Origin,
    /// The result, or the error's stable kind and message.
    pub outcome: Result<&'a RawValue, (&'a str, String)>,
}

/// A live trajectory.
pub struct Writer {
    session_id: String,
    dir: PathBuf,
    max_bytes: u64,
    meta: Meta,
    state: Mutex<State>,
}

struct State {
    log: File,
    /// Bytes of the log written whole (a failed write is cut back to this).
    log_len: u64,
    /// Bytes of the log and the images this trajectory stored.
    bytes: u64,
    steps: u64,
    capped: bool,
    unrecorded: u64,
    closed: bool,
}

/// Counts of a live trajectory.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    pub steps: u64,
    pub bytes: u64,
    pub capped: bool,
    pub unrecorded: u64,
}

fn now_text(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn line<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// reader never sees half of it.
fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", uuid::Uuid::new_v4().simple()));
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

impl Writer {
    /// Makes the session's directory (it must not exist) and writes the
    /// first line. `config` is the session config the plugin gets.
    pub fn create(
        root: &Path,
        info: &SessionInfo<'_>,
        config: &Value,
        max_bytes: u64,
    ) -> io::Result<Self> {
        DirBuilder::new().recursive(true).mode(0o700).create(root)?;
        let dir = super::layout::session_dir(root, info.session_id);
        DirBuilder::new().mode(0o700).create(&dir)?;
        let made = Self::start(dir.clone(), info, config, max_bytes);
        if made.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        made
    }

    fn start(
        dir: PathBuf,
        info: &SessionInfo<'_>,
        config: &Value,
        max_bytes: u64,
    ) -> io::Result<Self> {
        DirBuilder::new().mode(0o700).create(dir.join(IMAGES))?;
        let started_at = now_text(SystemTime::now());
        let header = line(&Header {
            kind: "session",
            schema: SCHEMA,
            session_id: info.session_id,
            session_name: info.session_name,
            worker_id: info.worker_id,
            resource_type: info.resource_type,
            temporary: info.temporary,
            started_at: started_at.clone(),
            node: info.node,
            config,
        })?;
        let mut log = File::options()
            .create_new(true)
            .append(true)
            .open(dir.join(LOG))?;
        log.write_all(&header)?;
        let meta = Meta {
            schema: SCHEMA,
            session_id: info.session_id.to_string(),
            session_name: info.session_name.to_string(),
            worker_id: info.worker_id.to_string(),
            resource_type: info.resource_type.to_string(),
            started_at,
            ended_at: None,
            steps: None,
            capped: false,
            unrecorded_steps: 0,
        };
        replace_file(
            &dir.join(META),
            &serde_json::to_vec(&meta).map_err(io::Error::other)?,
        )?;
        let len = header.len() as u64;
        Ok(Self {
            session_id: info.session_id.to_string(),
            dir,
            max_bytes,
            meta,
            state: Mutex::new(State {
                log,
                log_len: len,
                bytes: len,
                steps: 0,
                capped: false,
                unrecorded: 0,
                closed: false,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a screen video of the session goes.
    pub fn video_path(&self) -> PathBuf {
        self.dir.join(VIDEO)
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Bytes of the log that hold whole lines (a reader copies this many).
    pub fn committed_len(&self) -> u64 {
        self.state().log_len
    }

    pub fn counts(&self) -> Counts {
        let s = self.state();
        Counts {
            steps: s.steps,
            bytes: s.bytes,
            capped: s.capped,
            unrecorded: s.unrecorded,
        }
    }

    /// Appends one call. Over the size cap, a `cap_reached` line is written
    /// once and later calls are only counted.
    pub fn append(&self, call: &Call<'_>) -> io::Result<()> {
        // The slow part (parsing, decoding, hashing) before the lock.
        let extracted = match &call.outcome {
            Ok(result) => images::extract(result),
            Err(_) => None,
        };
        let (result, refs, images): (Option<&RawValue>, &[ImageRef], &[Image]) =
            match (&extracted, &call.outcome) {
                (Some(x), _) => (Some(&x.result), &x.refs, &x.images),
                (None, Ok(r)) => (Some(*r), &[], &[]),
                (None, Err(_)) => (None, &[], &[]),
            };
        let error = match &call.outcome {
            Err((code, message)) => Some(StepError {
                code,
                message: message.as_str(),
            }),
            Ok(_) => None,
        };
        let mut state = self.state();
        if state.closed {
            tracing::debug!(session = %self.session_id, "a call finished after its session ended; not recorded");
            return Ok(());
        }
        if state.capped {
            state.unrecorded += 1;
            return Ok(());
        }
        let seq = state.steps + 1;
        let text = line(&Step {
            kind: "step",
            seq,
            action: call.action,
            params: call.params,
            started_at: now_text(call.started_at),
            duration_ms: call.duration_ms,
            request_id: call.origin.request_id.as_deref(),
            trace_id: call.origin.trace_id.as_deref(),
            surface: call.origin.surface,
            ok: error.is_none(),
            result,
            error,
            images: refs,
        })?;
        let images_dir = self.dir.join(IMAGES);
        let new: Vec<&Image> = images
            .iter()
            .filter(|i| !images_dir.join(image_file(&i.hash)).exists())
            .collect();
        let needed = text.len() as u64 + new.iter().map(|i| i.png.len() as u64).sum::<u64>();
        if state.bytes + needed > self.max_bytes {
            let marker = line(&CapReached {
                kind: "cap_reached",
                seq,
                at: now_text(SystemTime::now()),
                max_bytes: self.max_bytes,
            })?;
            self.write_line(&mut state, &marker)?;
            state.capped = true;
            state.unrecorded += 1;
            tracing::warn!(session = %self.session_id, max_bytes = self.max_bytes, "trajectory size cap reached; later calls are not recorded");
            return Ok(());
        }
        for image in new {
            state.bytes += store_image(&images_dir, image)?;
        }
        self.write_line(&mut state, &text)?;
        state.steps = seq;
        Ok(())
    }

    /// Appends whole lines, or nothing: a failed write is cut back.
    fn write_line(&self, state: &mut State, bytes: &[u8]) -> io::Result<()> {
        if let Err(e) = state.log.write_all(bytes) {
            let _ = state.log.set_len(state.log_len);
            return Err(e);
        }
        state.log_len += bytes.len() as u64;
        state.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Ends the trajectory: the `end` line, `meta.json` with the counts, and
    /// an `fdatasync` of the log (the one sync: steps are not synced one by
    /// one, see `docs/trajectories.md`).
    pub fn close(&self) -> io::Result<()> {
        let mut state = self.state();
        if state.closed {
            return Ok(());
        }
        state.closed = true;
        let at = now_text(SystemTime::now());
        let video = fs::metadata(self.video_path()).is_ok_and(|m| m.len() > 0);
        let end = line(&End {
            kind: "end",
            at: at.clone(),
            steps: state.steps,
            unrecorded_steps: state.unrecorded,
            video: video.then_some(VIDEO),
        })?;
        self.write_line(&mut state, &end)?;
        state.log.sync_data()?;
        let meta = Meta {
            ended_at: Some(at),
            steps: Some(state.steps),
            capped: state.capped,
            unrecorded_steps: state.unrecorded,
            ..self.meta.clone()
        };
        replace_file(
            &self.dir.join(META),
            &serde_json::to_vec(&meta).map_err(io::Error::other)?,
        )?;
        File::open(&self.dir)?.sync_all()
    }

    /// Removes a trajectory whose session never started.
    pub fn discard(&self) {
        self.state().closed = true;
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Stores one image unless it is there already; returns the bytes added.
/// Written aside and linked into place, so a stored image is always whole.
fn store_image(dir: &Path, image: &Image) -> io::Result<u64> {
    let target = dir.join(image_file(&image.hash));
    let tmp = dir.join(format!(".{}.{}", image.hash, uuid::Uuid::new_v4().simple()));
    fs::write(&tmp, &image.png)?;
    let linked = fs::hard_link(&tmp, &target);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(image.png.len() as u64),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(0),
        Err(e) => Err(e),
    }
}
