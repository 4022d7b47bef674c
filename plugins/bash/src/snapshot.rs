//! Snapshots of bash sessions, and sessions restored from them (forks): set
//! an environment up once, then branch it into many sessions.
//!
//! A snapshot carries:
//! * the session's **files**: its workspace (also `$HOME`) and what was
//!   installed into its writable layers over `/usr` and `/opt` (`pip
//!   install --user`, `make install` into `/usr/local`). They are frozen
//!   once, as a copy of the session's disk, shared read-only by every
//!   session restored from it, each writing to a fresh disk of its own
//!   through overlayfs (`sandbox::snapshot`): restoring copies nothing,
//!   and restored sessions see neither each other's writes nor the source's.
//! * the **shell's state** (`shell_state.rs`): working directory, variables,
//!   functions, aliases, umask, shell options.
//!
//! Not carried: processes (background processes of `bash:start`, jobs,
//! anything else running; the snapshot's report lists them as
//! `left_behind`), the session's `/tmp` and `/var/tmp` (memory), traps.
//!
//! A restored session's workspace is a new directory; paths under the old
//! one are moved to the new one in the shell's state, and the sandbox also
//! shows the workspace at the old path(s), so absolute paths written into
//! files (a virtualenv's scripts) still work. Its config is the snapshot's
//! (see [`SessionConfig::restored_with`]); its `disk_bytes` limits what it
//! writes over the snapshot's files (its own disk), not those files.
//!
//! Snapshots need the sandbox and workspace disks: with `isolation =
//! "none"` or `disk_bytes = 0` a session's files are a plain directory,
//! with no layers, and `snapshot` answers "unsupported".

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use plugin_api::{log, PluginError};
use sandbox::Frozen;
use serde_json::{json, Value};

use crate::background::Summary;
use crate::config::SessionConfig;
use crate::processes::SessionProcesses;
use crate::session::{BashSession, RunError};
use crate::shell_state::{ShellState, Then};
use crate::Settings;

/// How long a snapshot or restore waits for the shell (a command of the
/// session may hold it) and for its own commands.
const SHELL_WAIT: Duration = Duration::from_secs(30);
/// The largest shell state a snapshot carries.
const STATE_LIMIT: usize = 64 * 1024 * 1024;
/// Output of the restore script kept (errors, for the log).
const RESTORE_OUTPUT_LIMIT: usize = 64 * 1024;

/// Where a session came from, as far as snapshots of it need to know.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// Its config (a restored session's: the snapshot's, see
    /// [`SessionConfig::restored_with`]).
    pub config: SessionConfig,
    /// Where its workspace was in the sessions it was restored from, oldest
    /// first (its sandbox shows the workspace there too).
    pub former_dirs: Vec<PathBuf>,
}

/// One snapshot: frozen files, a shell state, the source's config.
#[derive(Debug)]
pub struct Snapshot {
    files: Arc<Frozen>,
    shell: ShellState,
    /// The source's config, and its former directories and its own.
    origin: Origin,
}

/// The plugin's snapshots by id.
#[derive(Debug, Default)]
pub struct Snapshots {
    table: Mutex<HashMap<String, Arc<Snapshot>>>,
}

impl Snapshots {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Snapshot>>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a snapshot of `session` as `id` and returns its report.
    pub fn take(
        &self,
        settings: &Settings,
        session: &BashSession,
        id: &str,
    ) -> Result<Value, PluginError> {
        if self.lock().contains_key(id) {
            return Err(PluginError::invalid_params(format!(
                "bash already has a snapshot '{id}'"
            )));
        }
        let (snapshot, report) = take(settings, session)?;
        match self.lock().entry(id.to_string()) {
            std::collections::hash_map::Entry::Occupied(_) => Err(PluginError::invalid_params(
                format!("bash already has a snapshot '{id}' (taken meanwhile)"),
            )),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(Arc::new(snapshot));
                Ok(report)
            }
        }
    }

    /// Starts session `session_id` from snapshot `id`.
    pub fn restore(
        &self,
        settings: &Settings,
        session_id: &str,
        id: &str,
        config: &Value,
    ) -> Result<BashSession, PluginError> {
        let snapshot = self.lock().get(id).cloned().ok_or_else(|| {
            PluginError::invalid_params(format!(
                "from_snapshot: the bash plugin has no snapshot '{id}' (never taken here, or \
                 deleted)"
            ))
        })?;
        restore(settings, session_id, &snapshot, config)
    }

    /// Forgets snapshot `id`; its files go once no restored session uses them.
    pub fn forget(&self, id: &str) {
        if self.lock().remove(id).is_none() {
            log::debug!("drop_snapshot: no snapshot '{id}' (already dropped)");
        }
    }

    /// Forgets every snapshot.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

/// Freezes `session`: its shell state, then (with the shell still held, so
/// that no command runs meanwhile) its files.
fn take(settings: &Settings, session: &BashSession) -> Result<(Snapshot, Value), PluginError> {
    let started = Instant::now();
    let freezer = match (&settings.sandbox, &settings.freezer) {
        (None, _) => {
            return Err(PluginError::unsupported(
                "snapshots need the sandbox: this server runs bash with sandbox.isolation = \
                 \"none\", where a session's files are a plain directory with no writable \
                 layers to freeze",
            ))
        }
        (Some(_), None) => return Err(no_disk()),
        (Some(_), Some(freezer)) => freezer,
    };
    let dir = session.dir().path().to_path_buf();
    let (captured, (left_behind, frozen)) = session
        .run_internal(
            &ShellState::capture_command(),
            STATE_LIMIT,
            Instant::now() + SHELL_WAIT,
            |shell| {
                let left = left_behind(shell.processes(), &session.background().list());
                (left, session.dir().freeze(freezer))
            },
        )
        .map_err(|e| shell_error("capture the shell's state", e))?;
    let files = frozen
        .map_err(|e| PluginError::unavailable(e.to_string()))?
        .ok_or_else(no_disk)?;
    if captured.output.stdout.is_truncated() {
        return Err(PluginError::unavailable(format!(
            "the shell's state (variables, functions, aliases) is larger than {} MiB",
            STATE_LIMIT >> 20
        )));
    }
    let shell = ShellState::new(&captured.output.stdout.to_text(), captured.cwd, &dir)
        .map_err(|e| PluginError::internal(format!("cannot capture the shell's state: {e}")))?;
    // The workspace, then the directories under a writable layer.
    let mut carried = vec![dir.to_string_lossy().into_owned()];
    carried.extend(session.layered());
    let report = json!({
        "left_behind": left_behind,
        "bytes": files.bytes(),
        "took_ms": started.elapsed().as_millis() as u64,
        "files": carried,
        "shell_state_bytes": shell.len(),
    });
    let mut former_dirs = session.origin().former_dirs.clone();
    former_dirs.push(dir);
    let snapshot = Snapshot {
        files,
        shell,
        origin: Origin {
            config: session.origin().config.clone(),
            former_dirs,
        },
    };
    Ok((snapshot, report))
}

/// Starts session `session_id` from `snapshot`: its files under a fresh
/// disk, a new shell, then the shell state. Nothing is left of a failure.
fn restore(
    settings: &Settings,
    session_id: &str,
    snapshot: &Snapshot,
    config: &Value,
) -> Result<BashSession, PluginError> {
    let given = SessionConfig::parse(config).map_err(PluginError::invalid_params)?;
    let (config, changes) = snapshot
        .origin
        .config
        .restored_with(&given)
        .map_err(PluginError::invalid_params)?;
    let origin = Origin {
        config,
        former_dirs: snapshot.origin.former_dirs.clone(),
    };
    let session = settings.start_session(session_id, origin, Some(&snapshot.files))?;
    // Closes the half-made session (shell, sandbox, disk) on any failure below.
    let fail = |e: PluginError| {
        let _ = session.close();
        e
    };
    let cwd = changes
        .cwd
        .as_deref()
        .map(|cwd| session.dir().create_dir(cwd))
        .transpose()
        .map_err(|e| {
            fail(PluginError::invalid_params(format!(
                "session config cwd: {e}"
            )))
        })?;
    let then = Then {
        env: changes
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
        cwd: cwd.as_deref(),
    };
    let script = snapshot.shell.restore_command(session.dir().path(), &then);
    let (restored, ()) = session
        .run_internal(
            &script,
            RESTORE_OUTPUT_LIMIT,
            Instant::now() + SHELL_WAIT,
            |_| (),
        )
        .map_err(|e| fail(shell_error("restore the shell's state", e)))?;
    let complaints = restored.output.stderr.to_text();
    if !complaints.trim().is_empty() {
        // What the shell refused (a working directory in the session's /tmp, say).
        log::warn!(
            "session {session_id}: restoring the shell state said: {}",
            complaints.trim()
        );
    }
    Ok(session)
}

fn no_disk() -> PluginError {
    PluginError::unsupported(
        "snapshots need workspace disks: this server keeps workspaces on the host's disk \
         (sandbox.limits.disk_bytes = 0), with no disk to freeze",
    )
}

fn shell_error(what: &str, e: RunError) -> PluginError {
    match e {
        RunError::Busy => PluginError::unavailable(format!(
            "cannot {what}: another command held the session's shell for {} s",
            SHELL_WAIT.as_secs()
        )),
        RunError::Stopped { .. } => PluginError::timeout(format!(
            "cannot {what}: the shell did not answer within {} s",
            SHELL_WAIT.as_secs()
        )),
        e => PluginError::session_broken(format!("cannot {what}: {e}")),
    }
}

/// The session's processes, which a snapshot does not carry: pid (as the
/// session sees it), command line, and the id of a background process.
fn left_behind(processes: &SessionProcesses, background: &[Summary]) -> Vec<Value> {
    let mut left: Vec<Value> = processes
        .list()
        .into_iter()
        .map(|p| {
            let mut entry = json!({"pid": p.pid, "command": processes.command_line(p.pid)});
            if let Some(b) = background.iter().find(|b| b.pid == p.pid) {
                entry["id"] = json!(b.id);
            }
            entry
        })
        .collect();
    left.sort_by_key(|p| p["pid"].as_i64());
    left
}
