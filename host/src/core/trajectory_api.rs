//! Trajectories as the executor and clients use them: recording a call of a
//! recorded session, reading, exporting and deleting what was recorded, and
//! the retention sweep. File work runs off the async runtime.

use std::sync::Arc;
use std::time::SystemTime;

use super::error::{CoreError, CoreResult};
use super::executor::{ExecMeta, ExecRequest, Resolved, ToolOutput};
use super::trajectory::catalog::Summary;
use super::trajectory::export::Export;
use super::trajectory::{images, Call, Origin, Source, Trajectories, Writer};
use super::Core;

/// Results up to this size without screenshots are recorded on the
/// runtime's thread.
const INLINE_MAX: usize = 16 * 1024;

/// A finished call, owned, to record on whichever thread.
struct Step {
    action: String,
    params: Option<Arc<serde_json::Value>>,
    origin: Origin,
    started_at: SystemTime,
    duration_ms: f64,
}

impl Step {
    /// Appends the step; the error names the trajectory's directory.
    fn write(&self, writer: &Writer, result: &CoreResult<ToolOutput>) -> Result<(), String> {
        let null = serde_json::Value::Null;
        writer
            .append(&Call {
                action: &self.action,
                params: self.params.as_deref().unwrap_or(&null),
                started_at: self.started_at,
                duration_ms: self.duration_ms,
                origin: &self.origin,
                outcome: match result {
                    Ok(out) => Ok(out.as_ref()),
                    Err(e) => Err((e.kind(), e.to_string())),
                },
            })
            .map_err(|e| format!("{}: {e}", writer.dir().display()))
    }
}

/// Runs file work on a blocking thread.
async fn blocking<T: Send + 'static>(
    t: &Arc<Trajectories>,
    f: impl FnOnce(&Trajectories) -> CoreResult<T> + Send + 'static,
) -> CoreResult<T> {
    let t = t.clone();
    tokio::task::spawn_blocking(move || f(&t))
        .await
        .map_err(|e| CoreError::Internal(format!("trajectory work failed to run: {e}")))?
}

impl Core {
    /// The trajectory a call belongs to: its session's; a call that did not
    /// reach a session (a shared plugin's, or one refused before) belongs to
    /// the worker's recorded session of that resource type, if any.
    fn trajectory_of(
        &self,
        req: &ExecRequest,
        meta: &ExecMeta,
        resolved: &Resolved,
    ) -> Option<Arc<Writer>> {
        match &resolved.session {
            Some(s) => s.trajectory.clone(),
            None => {
                let rt = meta.resource_type.as_deref()?;
                self.sessions.get(&req.worker_id, rt)?.trajectory.clone()
            }
        }
    }

    /// Appends the call to its session's trajectory, when it has one, before
    /// the call is answered. A step that cannot be written turns the answer
    /// into an error saying so: the client must not believe it recorded.
    pub(super) async fn record_call(
        &self,
        req: &ExecRequest,
        meta: &ExecMeta,
        resolved: &Resolved,
        started_at: SystemTime,
        result: CoreResult<ToolOutput>,
    ) -> CoreResult<ToolOutput> {
        let Some(writer) = self.trajectory_of(req, meta, resolved) else {
            return result;
        };
        let step = Step {
            action: meta.full_name.clone().unwrap_or_else(|| req.action.clone()),
            params: resolved.params.clone(),
            origin: req.origin.clone(),
            started_at,
            duration_ms: meta.execution_time_ms,
        };
        // A small result without screenshots is one short write(2): done
        // here, as a hand-off to a blocking thread would cost more. Parsing,
        // hashing and storing screenshots, or copying a large result, is not.
        let light = match &result {
            Ok(out) => out.get().len() <= INLINE_MAX && !images::may_have_images(out),
            Err(_) => true,
        };
        let (result, written) = if light {
            let written = step.write(&writer, &result);
            (result, written)
        } else {
            let job = tokio::task::spawn_blocking(move || {
                let written = step.write(&writer, &result);
                (result, written)
            });
            match job.await {
                Ok(done) => done,
                Err(e) => {
                    return Err(CoreError::Internal(format!(
                        "the call ran, but recording its step failed: {e}"
                    )))
                }
            }
        };
        match written {
            Ok(()) => result,
            Err(e) => {
                tracing::error!(worker = %req.worker_id, error = %e, "a call's step could not be written to its trajectory");
                Err(CoreError::Internal(format!(
                    "the call ran, but its step could not be written to the session's trajectory: {e}"
                )))
            }
        }
    }

    /// Trajectories on this host, of one worker or all.
    pub async fn trajectory_list(&self, worker: Option<String>) -> CoreResult<Vec<Summary>> {
        blocking(&self.trajectories, move |t| t.list(worker.as_deref())).await
    }

    /// A trajectory's log, up to its last whole line.
    pub async fn trajectory_log(&self, id: String) -> CoreResult<Source> {
        blocking(&self.trajectories, move |t| t.log(&id)).await
    }

    /// One stored screenshot of a trajectory.
    pub async fn trajectory_image(&self, id: String, name: String) -> CoreResult<Source> {
        blocking(&self.trajectories, move |t| t.image(&id, &name)).await
    }

    /// A trajectory's screen video.
    pub async fn trajectory_video(&self, id: String) -> CoreResult<Source> {
        blocking(&self.trajectories, move |t| t.video(&id)).await
    }

    /// What an export of a trajectory packs (write it with [`Export::write_to`]).
    pub async fn trajectory_export(&self, id: String) -> CoreResult<Export> {
        blocking(&self.trajectories, move |t| t.export(&id)).await
    }

    /// Deletes an ended trajectory.
    pub async fn trajectory_delete(&self, id: String) -> CoreResult<Summary> {
        blocking(&self.trajectories, move |t| t.delete(&id)).await
    }

    /// Applies retention now and then, for as long as the host runs.
    pub async fn keep_trajectories(self: Arc<Self>) {
        let Some(period) = self.trajectories.sweep_period() else {
            return;
        };
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            if self.is_shutting_down() {
                return;
            }
            let _ = blocking(&self.trajectories, |t| Ok(t.sweep())).await;
        }
    }
}
