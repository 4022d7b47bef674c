//! Running a tool call: resolve the name, validate params, warm the backend,
//! find or make a session, and call the plugin off the runtime under a deadline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use plugin_api::ErrorKind;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::backend::Backend;
use super::error::{CoreError, CoreResult};
use super::handle::CallControl;
use super::inline::Verdict;
use super::session::Session;
use super::trajectory::Origin;
use super::{secs, Core};

/// One tool call as a client asked for it.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub worker_id: String,
    pub action: String,
    pub params: Value,
    /// Seconds; the configured default when `None`.
    pub timeout: Option<f64>,
    /// Cancelled by the client (MCP `notifications/cancelled`): the plugin's
    /// cancel flag is set and the call answers [`CoreError::Cancelled`].
    pub cancel: Option<CancellationToken>,
    /// The session the client expects the call to run in. When this host
    /// holds no such session of the worker's, the call is refused with
    /// [`CoreError::SessionNotHere`] instead of running in a fresh temporary
    /// one: behind a balancer, that is how a worker learns its state is gone.
    pub session: Option<String>,
    /// For a streaming call: where the chunks of output the tool emits go,
    /// as it emits them.
    pub chunks: Option<ChunkSender>,
    /// The request that carried the call, for a recorded session's steps.
    pub origin: Origin,
}

/// What the executor learned about a call on its way, for its step in a
/// recorded session's trajectory.
#[derive(Default)]
pub(super) struct Resolved {
    /// The plugin version the call resolved to (its tool metrics).
    pub backend: Option<Arc<Backend>>,
    pub session: Option<Arc<Session>>,
    pub params: Option<Arc<Value>>,
}

/// A piece of a tool's output, sent while it runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Chunk {
    /// `stdout`, `stderr`, `progress`, … as the plugin names it.
    pub stream: String,
    pub text: String,
}

/// Unbounded: a tool's chunks are bounded by its own output limit, and a
/// plugin thread must never block on a slow client.
pub type ChunkSender = tokio::sync::mpsc::UnboundedSender<Chunk>;

/// The emitter handed to a plugin for `chunks`.
fn emitter(chunks: &ChunkSender) -> impl Fn(&str, &str) + '_ {
    move |stream: &str, text: &str| {
        let _ = chunks.send(Chunk {
            stream: stream.to_string(),
            text: text.to_string(),
        });
    }
}

/// How long a call may run and who may stop it early.
struct CallLimits {
    timeout: Duration,
    cancel: Option<CancellationToken>,
    chunks: Option<ChunkSender>,
}

/// Sets a plugin's cancel flag when the call is abandoned: the caller's future
/// was dropped (a client that went away) before the plugin answered.
struct CancelOnDrop(Option<Arc<AtomicBool>>);

impl CancelOnDrop {
    /// The call finished (or timed out, which sets the flag itself).
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(flag) = self.0.take() {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

/// What is known about a call, success or not.
#[derive(Debug, Clone, Default)]
pub struct ExecMeta {
    /// The action part of the tool name (`screenshot`).
    pub tool: Option<String>,
    /// `resource:action`.
    pub full_name: Option<String>,
    pub resource_type: Option<String>,
    pub session_id: Option<String>,
    pub temporary_session: bool,
    pub execution_time_ms: f64,
}

/// A tool's result: the plugin's JSON text, checked to be valid JSON but not
/// parsed into a tree (it can be megabytes of base64), so each surface copies
/// it into its answer as is.
pub type ToolOutput = Box<RawValue>;

/// The outcome of one call.
#[derive(Debug, Clone)]
pub struct ExecReport {
    pub result: CoreResult<ToolOutput>,
    pub meta: ExecMeta,
}

/// A batch request.
#[derive(Debug, Clone)]
pub struct BatchRequest {
    pub worker_id: String,
    pub actions: Vec<ExecRequest>,
    pub parallel: bool,
    pub stop_on_error: bool,
}

impl Core {
    fn call_timeout(&self, requested: Option<f64>) -> CoreResult<Duration> {
        let max = self.config.server.max_timeout;
        match requested {
            None => Ok(secs(self.config.server.default_timeout)),
            Some(t) if t.is_finite() && t > 0.0 && t <= max => Ok(secs(t)),
            Some(t) => Err(CoreError::InvalidParams(format!(
                "Parameter 'timeout' must be a number of seconds greater than 0 and at most {max}, got {t}"
            ))),
        }
    }

    /// The checks a call must pass before anything runs (its timeout, the
    /// type of its params, its tool, the tool's schema), for a surface that
    /// must refuse a call before it starts answering (a stream's status goes
    /// out first). [`Core::execute`] makes them again.
    pub fn precheck(&self, req: &ExecRequest) -> CoreResult<()> {
        self.call_timeout(req.timeout)?;
        check_params_type(&req.params)?;
        let (backend, tool) = self.registry.resolve(&req.action)?;
        match &req.params {
            Value::Null => backend.check_params(&tool, &Value::Object(Default::default())),
            params => backend.check_params(&tool, params),
        }
    }

    /// Executes one tool call.
    pub async fn execute(self: &Arc<Self>, mut req: ExecRequest) -> ExecReport {
        let started = Instant::now();
        let started_at = SystemTime::now();
        let mut meta = ExecMeta::default();
        let mut resolved = Resolved::default();
        // No span of its own: the fmt layer formats a span's fields when it is
        // created, which cost more than the rest of a trivial call's bookkeeping.
        // Events here and in `sessions` name the worker and session themselves
        // (the enclosing request span carries the request id).
        let result = self.execute_inner(&mut req, &mut meta, &mut resolved).await;
        let took = started.elapsed();
        meta.execution_time_ms = (took.as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
        // Calls whose tool was found count under it; the others show in the
        // requests' statuses.
        if let (Some(backend), Some(tool)) = (&resolved.backend, &meta.tool) {
            if let Some(m) = backend.tool_metrics(tool) {
                m.record(result.as_ref().map(|_| ()).map_err(CoreError::kind), took);
            }
        }
        // Recorded before the answer leaves: an acknowledged call is in the log.
        let result = self
            .record_call(&req, &meta, &resolved, started_at, result)
            .await;
        if let (Some(s), true) = (&resolved.session, meta.temporary_session) {
            let drained = self.sessions.end_temporary(s).await;
            self.after_session_end(s, drained).await;
        }
        if let Err(e) = &result {
            tracing::info!(
                worker = %req.worker_id,
                action = %req.action,
                session = meta.session_id.as_deref().unwrap_or("-"),
                error_kind = e.kind(),
                error = %e,
                "call failed"
            );
        }
        ExecReport { result, meta }
    }

    async fn execute_inner(
        self: &Arc<Self>,
        req: &mut ExecRequest,
        meta: &mut ExecMeta,
        resolved: &mut Resolved,
    ) -> CoreResult<ToolOutput> {
        self.ensure_running()?;
        let timeout = self.call_timeout(req.timeout)?;
        check_params_type(&req.params)?;
        let params = match std::mem::take(&mut req.params) {
            Value::Null => Value::Object(Default::default()),
            p => p,
        };
        // Shared with the call's thread and the trajectory, never copied.
        let params = Arc::new(params);
        resolved.params = Some(params.clone());
        let (backend, tool) = self.registry.resolve(&req.action)?;
        meta.tool = Some(tool.clone());
        meta.full_name = Some(format!("{}:{tool}", backend.name));
        meta.resource_type = Some(backend.name.clone());
        resolved.backend = Some(backend.clone());
        backend.check_params(&tool, &params)?;
        backend.ensure_warm(self.warmup_timeout()).await?;

        let (session, temporary) = if backend.per_session() {
            let current = self.sessions.get(&req.worker_id, &backend.name);
            if let Some(expected) = &req.session {
                if current.as_ref().is_none_or(|s| s.id != *expected) {
                    return Err(not_here(expected, &req.worker_id));
                }
            }
            match current {
                Some(s) => (Some(s), false),
                None => (
                    Some(
                        self.sessions
                            .create_temporary(&req.worker_id, backend.clone())
                            .await?,
                    ),
                    true,
                ),
            }
        } else {
            // A shared plugin has no session of its own; a named session must
            // still be one of the worker's here (a header sent on every call).
            if let Some(expected) = &req.session {
                let held = self.sessions.list(&req.worker_id);
                if !held.iter().any(|s| s.id == *expected) {
                    return Err(not_here(expected, &req.worker_id));
                }
            }
            (None, false)
        };
        meta.session_id = session.as_ref().map(|s| s.id.clone());
        meta.temporary_session = temporary;
        resolved.session = session.clone();

        // A session created on an older version keeps calling that version.
        let target = session
            .as_ref()
            .and_then(|s| s.backend.clone())
            .unwrap_or(backend);
        let outcome = self
            .call_plugin(
                target,
                &req.worker_id,
                session.as_ref(),
                &tool,
                params,
                CallLimits {
                    timeout,
                    cancel: req.cancel.clone(),
                    chunks: req.chunks.take(),
                },
            )
            .await;
        // A temporary session ends in `execute`, once the step is recorded.
        outcome
    }

    async fn call_plugin(
        self: &Arc<Self>,
        backend: Arc<Backend>,
        worker: &str,
        session: Option<&Arc<Session>>,
        tool: &str,
        params: Arc<Value>,
        limits: CallLimits,
    ) -> CoreResult<ToolOutput> {
        let timeout = limits.timeout;
        let permit = backend.try_call_slot()?;
        let _busy = session.map(|s| s.begin_call());
        let cancel = Arc::new(AtomicBool::new(false));
        let deadline = SystemTime::now() + timeout;
        let outcome = if backend.inline.runs_inline(tool) {
            let started = Instant::now();
            let sid = session.map(|s| s.id.as_str());
            let emit = limits.chunks.as_ref().map(emitter);
            let control = CallControl {
                cancel: &cancel,
                deadline,
                emitter: emit.as_ref().map(|f| f as &dyn Fn(&str, &str)),
            };
            let r = backend.plugin.call(sid, worker, tool, &params, &control);
            drop(permit);
            note_inline_call(&backend, tool, started.elapsed());
            r
        } else {
            let job = {
                let (b, cancel) = (backend.clone(), cancel.clone());
                let (worker, tool) = (worker.to_string(), tool.to_string());
                let sid = session.map(|s| s.id.clone());
                let chunks = limits.chunks.clone();
                super::call_pool::spawn(move || {
                    let _permit = permit;
                    // Made here, on the call thread: plugin log lines name
                    // the worker and session of the call they come from.
                    let span = tracing::info_span!(
                        "call",
                        worker = %worker,
                        session = sid.as_deref().unwrap_or("-")
                    );
                    let _in_call = span.enter();
                    let emit = chunks.as_ref().map(emitter);
                    let control = CallControl {
                        cancel: &cancel,
                        deadline,
                        emitter: emit.as_ref().map(|f| f as &dyn Fn(&str, &str)),
                    };
                    b.plugin
                        .call(sid.as_deref(), &worker, &tool, &params, &control)
                })
            };
            let abandoned = CancelOnDrop(Some(cancel.clone()));
            let by_client = async {
                match &limits.cancel {
                    Some(token) => token.cancelled().await,
                    None => std::future::pending().await,
                }
            };
            let finished = tokio::select! {
                r = tokio::time::timeout(timeout, job) => r,
                () = by_client => {
                    // Dropping the guard sets the flag: the plugin is told to stop.
                    drop(abandoned);
                    return Err(CoreError::Cancelled);
                }
            };
            abandoned.disarm();
            match finished {
                Ok(Ok(r)) => r,
                Ok(Err(failed)) => {
                    return Err(CoreError::Backend(format!(
                        "{}: call failed: {failed}",
                        backend.name
                    )))
                }
                Err(_) => {
                    // The client hears now; the plugin is told to stop and keeps its slot until it does.
                    cancel.store(true, Ordering::SeqCst);
                    return Err(CoreError::Timeout {
                        seconds: (timeout.as_secs_f64() * 1000.0).round() / 1000.0,
                    });
                }
            }
        };
        let text = outcome.map_err(|e| {
            // A plugin that stops itself at the call's own deadline races the
            // host's timer: report it the same way as the host's timeout.
            let at_deadline = SystemTime::now() + Duration::from_millis(100) >= deadline;
            if matches!(e.kind, ErrorKind::Timeout | ErrorKind::Cancelled) && at_deadline {
                return CoreError::Timeout {
                    seconds: (timeout.as_secs_f64() * 1000.0).round() / 1000.0,
                };
            }
            let err = CoreError::from_plugin(&backend.name, e);
            if let (CoreError::SessionBroken(_), Some(s)) = (&err, session) {
                s.mark_broken();
            }
            err
        })?;
        let limit = self.config.server.max_result_bytes;
        if text.len() > limit {
            return Err(CoreError::Backend(format!(
                "{}: the result is {} bytes, larger than the limit of {limit} bytes (server.max_result_bytes)",
                backend.name,
                text.len()
            )));
        }
        RawValue::from_string(text).map_err(|e| {
            CoreError::Backend(format!(
                "{}: the plugin returned invalid JSON: {e}",
                backend.name
            ))
        })
    }

    /// Executes a batch, serially (stopping at the first failure when asked) or in parallel.
    pub async fn execute_batch(
        self: &Arc<Self>,
        batch: BatchRequest,
    ) -> CoreResult<Vec<ExecReport>> {
        self.ensure_running()?;
        let max = self.config.server.max_batch_actions;
        if batch.actions.len() > max {
            return Err(CoreError::InvalidParams(format!(
                "Parameter 'actions' has {} actions; at most {max} are allowed per batch (server.max_batch_actions)",
                batch.actions.len()
            )));
        }
        let mut reports = Vec::with_capacity(batch.actions.len());
        if batch.parallel {
            let mut jobs = tokio::task::JoinSet::new();
            for (i, mut req) in batch.actions.into_iter().enumerate() {
                req.worker_id = batch.worker_id.clone();
                let core = self.clone();
                jobs.spawn(async move { (i, core.execute(req).await) });
            }
            let mut indexed = Vec::new();
            while let Some(done) = jobs.join_next().await {
                match done {
                    Ok(pair) => indexed.push(pair),
                    Err(e) => {
                        return Err(CoreError::Internal(format!(
                            "batch action failed to run: {e}"
                        )))
                    }
                }
            }
            indexed.sort_by_key(|(i, _)| *i);
            reports.extend(indexed.into_iter().map(|(_, r)| r));
        } else {
            for mut req in batch.actions {
                req.worker_id = batch.worker_id.clone();
                let report = self.execute(req).await;
                let failed = report.result.is_err();
                reports.push(report);
                if failed && batch.stop_on_error {
                    break;
                }
            }
        }
        Ok(reports)
    }
}

/// A call's params are an object (or left out).
fn check_params_type(params: &Value) -> CoreResult<()> {
    match params {
        Value::Null | Value::Object(_) => Ok(()),
        other => Err(CoreError::InvalidParams(format!(
            "Parameter 'params' must be an object, got {}",
            json_type(other)
        ))),
    }
}

fn not_here(session: &str, worker: &str) -> CoreError {
    CoreError::SessionNotHere {
        session: session.to_string(),
        worker: worker.to_string(),
    }
}

/// Keeps a tool declared non-blocking to its word (see [`super::inline`]).
fn note_inline_call(backend: &Backend, tool: &str, took: Duration) {
    let ms = took.as_secs_f64() * 1000.0;
    match backend.inline.record(tool, took) {
        Verdict::Fine => {}
        Verdict::Overran => tracing::warn!(
            plugin = %backend.name, tool, ms,
            "a tool declared non-blocking took longer than {} ms",
            super::inline::LIMIT.as_millis()
        ),
        Verdict::Demoted => tracing::warn!(
            plugin = %backend.name, tool, ms,
            "a tool declared non-blocking overran {} times within {} s; it now runs on call threads",
            super::inline::STRIKES,
            super::inline::WINDOW.as_secs()
        ),
    }
}

/// JSON type names for messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
