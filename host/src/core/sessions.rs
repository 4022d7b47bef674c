//! The session table: one session per (worker, resource type), plus temporary
//! sessions made for a single call. Creation and destruction are serialized per
//! (worker, resource) only, never by a lock held across another worker's calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::backend::Backend;
use super::blocking::run_blocking;
use super::call_pool;
use super::error::{CoreError, CoreResult};
use super::session::{session_id, session_name, Session};
use super::trajectory::{SessionInfo, Trajectories, Writer};
use crate::metrics::{Counters, Metrics, Refusal, ResourceLabel};

type Key = (String, String);
type Slot = Arc<tokio::sync::Mutex<()>>;

/// Session limits and timings.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    pub ttl: Duration,
    pub init_timeout: Duration,
    pub cleanup_timeout: Duration,
    pub max_per_worker: usize,
    pub max_total: usize,
}

/// How a new session starts.
#[derive(Debug, Clone, Copy)]
pub enum Start<'a> {
    /// From the plugin's `initialize`.
    Fresh,
    /// From a snapshot (the plugin's id of it), through the plugin's `restore`.
    FromSnapshot(&'a str),
}

pub struct Sessions {
    policy: SessionPolicy,
    /// Where recorded sessions' trajectories go.
    trajectories: Arc<Trajectories>,
    /// Sessions created, destroyed, expired; refusals at the limits.
    metrics: Option<Arc<Metrics>>,
    /// Serializes create/destroy of one (worker, resource).
    slots: Mutex<HashMap<Key, Slot>>,
    /// Live named sessions.
    active: Mutex<HashMap<Key, Arc<Session>>>,
    /// Live temporary sessions, by id.
    temporary: Mutex<HashMap<String, Arc<Session>>>,
    /// `NNN` in session names: per (worker, resource), never reset.
    counters: Mutex<HashMap<Key, u32>>,
    /// Cleanups running now, for [`Sessions::destroy_all`] to wait for: a
    /// session removed from the table just before shutdown is still being
    /// cleaned up (its processes, its disk) and must finish first.
    ending: tokio::sync::watch::Sender<usize>,
}

/// Counts one running cleanup for as long as it lives.
struct Ending<'a>(&'a tokio::sync::watch::Sender<usize>);

impl<'a> Ending<'a> {
    fn start(count: &'a tokio::sync::watch::Sender<usize>) -> Self {
        count.send_modify(|n| *n += 1);
        Self(count)
    }
}

impl Drop for Ending<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn key(worker: &str, rt: &str) -> Key {
    (worker.to_string(), rt.to_string())
}

/// The plugin's session defaults overlaid (top-level keys) with the client's config.
pub fn merge_config(defaults: &Value, overrides: &Value) -> Value {
    let mut merged = defaults.as_object().cloned().unwrap_or_default();
    if let Some(o) = overrides.as_object() {
        for (k, v) in o {
            merged.insert(k.clone(), v.clone());
        }
    }
    Value::Object(merged)
}

impl Sessions {
    pub fn new(
        policy: SessionPolicy,
        trajectories: Arc<Trajectories>,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        Self {
            policy,
            trajectories,
            metrics,
            slots: Mutex::default(),
            active: Mutex::default(),
            temporary: Mutex::default(),
            counters: Mutex::default(),
            ending: tokio::sync::watch::Sender::new(0),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.policy.ttl
    }

    fn slot(&self, k: &Key) -> Slot {
        lock(&self.slots).entry(k.clone()).or_default().clone()
    }

    fn next_name(&self, worker: &str, rt: &str, custom: Option<&str>) -> String {
        let mut counters = lock(&self.counters);
        let n = counters.entry(key(worker, rt)).or_insert(0);
        *n += 1;
        session_name(rt, worker, *n, custom)
    }

    /// The worker's session for a resource type, if any.
    pub fn get(&self, worker: &str, rt: &str) -> Option<Arc<Session>> {
        let k = key(worker, rt); // allocated before the lock, to hold it briefly
        lock(&self.active).get(&k).cloned()
    }

    /// Does the worker have any session at all?
    pub fn has_worker(&self, worker: &str) -> bool {
        lock(&self.active).keys().any(|(w, _)| w == worker)
    }

    /// Counts a session event of resource type `rt`.
    fn count(&self, rt: &str, family: impl FnOnce(&Metrics) -> &Counters<ResourceLabel>) {
        if let Some(m) = &self.metrics {
            let label = ResourceLabel {
                resource_type: rt.into(),
            };
            family(m).get_or_create(&label).inc();
        }
    }

    fn refused(&self) {
        if let Some(m) = &self.metrics {
            m.refused(Refusal::SessionLimit);
        }
    }

    fn check_limits(&self, worker: &str) -> CoreResult<()> {
        let active = lock(&self.active);
        let temporary = lock(&self.temporary);
        let total = active.len() + temporary.len();
        if total >= self.policy.max_total {
            self.refused();
            return Err(CoreError::Unavailable(format!(
                "Session limit reached: the server holds its maximum of {} sessions (server.max_sessions)",
                self.policy.max_total
            )));
        }
        let mine = active.keys().filter(|(w, _)| w == worker).count()
            + temporary.values().filter(|s| s.worker_id == worker).count();
        if mine >= self.policy.max_per_worker {
            self.refused();
            return Err(CoreError::Unavailable(format!(
                "Session limit reached: worker '{worker}' holds its maximum of {} sessions (server.max_sessions_per_worker)",
                self.policy.max_per_worker
            )));
        }
        Ok(())
    }

    /// Creates the worker's session for `rt`, or returns the existing one
    /// (`false`). `backend` is `None` for a compatibility session. On failure
    /// nothing is left behind.
    pub async fn create(
        &self,
        worker: &str,
        rt: &str,
        backend: Option<Arc<Backend>>,
        config: &Value,
        custom_name: Option<&str>,
        start: Start<'_>,
    ) -> CoreResult<(Arc<Session>, bool)> {
        let k = key(worker, rt);
        let slot = self.slot(&k);
        let _serial = slot.lock().await;
        if let Some(existing) = self.get(worker, rt) {
            if let Start::FromSnapshot(_) = start {
                // Returning it would look as if it came from the snapshot.
                return Err(CoreError::InvalidParams(format!(
                    "Worker '{worker}' already has a {rt} session ({}); destroy it before starting one from a snapshot",
                    existing.id
                )));
            }
            return Ok((existing, false));
        }
        self.check_limits(worker)?;
        let mut config = match &backend {
            Some(b) => merge_config(&b.settings.session, config),
            None => config.clone(),
        };
        let name = self.next_name(worker, rt, custom_name);
        let id = session_id(&name);
        let trajectory = self.start_trajectory(&id, &name, worker, rt, false, &mut config)?;
        let session = Arc::new(Session::new(
            id, name, worker, rt, false, backend, trajectory,
        ));
        self.initialize(&session, &config, start).await?;
        lock(&self.active).insert(k, session.clone());
        self.count(rt, |m| &m.sessions.created);
        tracing::info!(worker = %worker, session = %session.id, "session created");
        Ok((session, true))
    }

    /// Creates a session used by one call only.
    pub async fn create_temporary(
        &self,
        worker: &str,
        backend: Arc<Backend>,
    ) -> CoreResult<Arc<Session>> {
        self.check_limits(worker)?;
        let rt = backend.name.clone();
        let name = self.next_name(worker, &rt, None);
        let mut config = backend.settings.session.clone();
        let id = session_id(&name);
        let trajectory = self.start_trajectory(&id, &name, worker, &rt, true, &mut config)?;
        let session = Arc::new(Session::new(
            id,
            name,
            worker,
            &rt,
            true,
            Some(backend),
            trajectory,
        ));
        lock(&self.temporary).insert(session.id.clone(), session.clone());
        if let Err(e) = self.initialize(&session, &config, Start::Fresh).await {
            lock(&self.temporary).remove(&session.id);
            return Err(e);
        }
        Ok(session)
    }

    /// Starts a new session's trajectory when its config (or the server)
    /// asks for one; takes the host's keys out of `config`.
    fn start_trajectory(
        &self,
        id: &str,
        name: &str,
        worker: &str,
        rt: &str,
        temporary: bool,
        config: &mut Value,
    ) -> CoreResult<Option<Arc<Writer>>> {
        let plan = self.trajectories.plan(config)?;
        if !plan.record {
            return Ok(None);
        }
        let info = SessionInfo {
            session_id: id,
            session_name: name,
            worker_id: worker,
            resource_type: rt,
            temporary,
            node: "",
        };
        self.trajectories.open(&info, plan, config).map(Some)
    }

    /// Ends a session's trajectory, if it has one (off the runtime: the log
    /// is synced).
    async fn end_trajectory(&self, session: &Session) {
        if let Some(w) = session.trajectory.clone() {
            let t = self.trajectories.clone();
            let _ = tokio::task::spawn_blocking(move || t.close(&w)).await;
        }
    }

    /// Initializes the session in its plugin with `config` (the plugin's
    /// defaults overlaid with the client's); a session that does not start
    /// leaves no trajectory behind.
    async fn initialize(
        &self,
        session: &Arc<Session>,
        config: &Value,
        start: Start<'_>,
    ) -> CoreResult<()> {
        let r = self.initialize_plugin(session, config, start).await;
        if let (Err(_), Some(w)) = (&r, &session.trajectory) {
            self.trajectories.discard(w);
        }
        r
    }

    async fn initialize_plugin(
        &self,
        session: &Arc<Session>,
        config: &Value,
        start: Start<'_>,
    ) -> CoreResult<()> {
        let Some(backend) = session.backend.clone() else {
            return Ok(());
        };
        let merged = config.clone();
        backend.session_opened();
        let (b, id) = (backend.clone(), session.id.clone());
        let snapshot = match start {
            Start::Fresh => None,
            Start::FromSnapshot(s) => Some(s.to_string()),
        };
        let mut job = Box::pin(call_pool::spawn(move || match snapshot {
            None => b.plugin.initialize(&id, &merged),
            Some(snap) => b.plugin.restore(&id, &snap, &merged),
        }));
        let outcome = tokio::select! {
            r = &mut job => r.map_err(|e| e.to_string()),
            _ = tokio::time::sleep(self.policy.init_timeout) => {
                // The plugin may still finish creating it: clean it up then.
                let (b, id) = (backend.clone(), session.id.clone());
                tokio::spawn(async move {
                    if let Ok(Ok(())) = job.await {
                        let _ = call_pool::spawn(move || b.plugin.cleanup(&id)).await;
                    }
                });
                backend.session_closed();
                return Err(CoreError::Backend(format!(
                    "Session initialization of '{}' timed out after {:.0}s",
                    backend.name,
                    self.policy.init_timeout.as_secs_f64()
                )));
            }
        };
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                backend.session_closed();
                let mut err = CoreError::from_plugin(&backend.name, e);
                if let CoreError::InvalidParams(m) = &err {
                    err = CoreError::InvalidParams(format!("Invalid session config: {m}"));
                } else if !matches!(err, CoreError::Unavailable(_) | CoreError::Unsupported(_)) {
                    err = CoreError::Backend(format!("Session initialization failed: {err}"));
                }
                Err(err)
            }
            Err(join) => {
                backend.session_closed();
                Err(CoreError::Backend(format!(
                    "Session initialization failed: {join}"
                )))
            }
        }
    }

    /// Destroys the worker's session for `rt`; returns it once cleaned up.
    pub async fn destroy(&self, worker: &str, rt: &str) -> CoreResult<(Arc<Session>, bool)> {
        if !self.has_worker(worker) {
            return Err(CoreError::WorkerNotFound(worker.to_string()));
        }
        let k = key(worker, rt);
        let slot = self.slot(&k);
        let _serial = slot.lock().await;
        let session = lock(&self.active)
            .remove(&k)
            .ok_or_else(|| CoreError::SessionNotFound(format!("No session found for {rt}")))?;
        let drained = self.end(&session).await;
        self.count(rt, |m| &m.sessions.destroyed);
        Ok((session, drained))
    }

    /// Removes a session if it is still the one registered (used by the
    /// reaper: counted as expired).
    pub async fn destroy_if_current(&self, session: &Arc<Session>) -> Option<bool> {
        let k = key(&session.worker_id, &session.resource_type);
        let slot = self.slot(&k);
        let _serial = slot.lock().await;
        {
            let mut active = lock(&self.active);
            match active.get(&k) {
                Some(s) if Arc::ptr_eq(s, session) => {
                    active.remove(&k);
                }
                _ => return None,
            }
        }
        self.count(&session.resource_type, |m| &m.sessions.expired);
        Some(self.end(session).await)
    }

    /// Ends a temporary session.
    pub async fn end_temporary(&self, session: &Arc<Session>) -> bool {
        lock(&self.temporary).remove(&session.id);
        self.end(session).await
    }

    /// Runs the plugin's cleanup (errors are logged: the session is gone
    /// anyway). True when this was the last session of a retired version.
    async fn end(&self, session: &Arc<Session>) -> bool {
        let _counted = Ending::start(&self.ending);
        let drained = self.end_plugin_session(session).await;
        // After the plugin's cleanup, which finishes a screen video.
        self.end_trajectory(session).await;
        drained
    }

    async fn end_plugin_session(&self, session: &Arc<Session>) -> bool {
        let Some(backend) = session.backend.clone() else {
            return false;
        };
        let (b, id) = (backend.clone(), session.id.clone());
        match run_blocking(self.policy.cleanup_timeout, move || b.plugin.cleanup(&id)).await {
            // One per call for temporary sessions: not worth an info line each.
            Ok(Ok(())) if session.temporary => {
                tracing::debug!(worker = %session.worker_id, session = %session.id, "temporary session destroyed")
            }
            Ok(Ok(())) => {
                tracing::info!(worker = %session.worker_id, session = %session.id, "session destroyed")
            }
            Ok(Err(e)) => {
                tracing::warn!(worker = %session.worker_id, session = %session.id, error = %e.message, "session cleanup failed; session removed anyway")
            }
            Err(e) => {
                tracing::warn!(worker = %session.worker_id, session = %session.id, error = %e.describe("cleanup"), "session cleanup did not finish; session removed anyway")
            }
        }
        backend.session_closed()
    }

    /// The worker's sessions (named and temporary).
    pub fn list(&self, worker: &str) -> Vec<Arc<Session>> {
        let mut out: Vec<_> = lock(&self.active)
            .iter()
            .filter(|((w, _), _)| w == worker)
            .map(|(_, s)| s.clone())
            .collect();
        out.extend(
            lock(&self.temporary)
                .values()
                .filter(|s| s.worker_id == worker)
                .cloned(),
        );
        out.sort_by(|a, b| {
            a.resource_type
                .cmp(&b.resource_type)
                .then(a.created_at.cmp(&b.created_at))
        });
        out
    }

    /// Resets the TTL of one session, or of all the worker's sessions.
    pub fn refresh(&self, worker: &str, rt: Option<&str>) -> CoreResult<Vec<Arc<Session>>> {
        if !self.has_worker(worker) {
            return Err(CoreError::WorkerNotFound(worker.to_string()));
        }
        let active = lock(&self.active);
        let sessions: Vec<_> = match rt {
            Some(rt) => vec![active
                .get(&key(worker, rt))
                .cloned()
                .ok_or_else(|| CoreError::SessionNotFound(format!("No session found for {rt}")))?],
            None => active
                .iter()
                .filter(|((w, _), _)| w == worker)
                .map(|(_, s)| s.clone())
                .collect(),
        };
        for s in &sessions {
            s.touch();
        }
        Ok(sessions)
    }

    /// Named sessions idle past their TTL.
    pub fn expired(&self, now: SystemTime) -> Vec<Arc<Session>> {
        lock(&self.active)
            .values()
            .filter(|s| s.is_expired(self.policy.ttl, now))
            .cloned()
            .collect()
    }

    /// Every live session.
    pub fn all(&self) -> Vec<Arc<Session>> {
        let mut out: Vec<_> = lock(&self.active).values().cloned().collect();
        out.extend(lock(&self.temporary).values().cloned());
        out
    }

    /// Removes and cleans up every session (at shutdown); returns how many.
    pub async fn destroy_all(&self) -> usize {
        let named: Vec<_> = lock(&self.active).drain().map(|(_, s)| s).collect();
        let temps: Vec<_> = lock(&self.temporary).drain().map(|(_, s)| s).collect();
        let all: Vec<_> = named.into_iter().chain(temps).collect();
        let n = all.len();
        let mut jobs = tokio::task::JoinSet::new();
        for s in all {
            let policy = self.policy.clone();
            let trajectories = self.trajectories.clone();
            jobs.spawn(async move {
                if let Some(b) = s.backend.clone() {
                    let id = s.id.clone();
                    let _ =
                        run_blocking(policy.cleanup_timeout, move || b.plugin.cleanup(&id)).await;
                    if let Some(b) = &s.backend {
                        b.session_closed();
                    }
                }
                if let Some(w) = s.trajectory.clone() {
                    let _ = tokio::task::spawn_blocking(move || trajectories.close(&w)).await;
                }
            });
        }
        while jobs.join_next().await.is_some() {}
        // Then the cleanups that other requests started (the caller bounds
        // the wait).
        let mut ending = self.ending.subscribe();
        let _ = ending.wait_for(|n| *n == 0).await;
        n
    }

    /// Number of distinct workers with a named session.
    pub fn worker_count(&self) -> usize {
        let active = lock(&self.active);
        let mut workers: Vec<&String> = active.keys().map(|(w, _)| w).collect();
        workers.sort();
        workers.dedup();
        workers.len()
    }
}
