//! Session operations as clients ask for them: create (with warmup and
//! config defaults) and destroy (with draining of replaced plugin versions).

use std::sync::Arc;

use serde_json::Value;

use super::error::{CoreError, CoreResult};
use super::executor::json_type;
use super::session::Session;
use super::sessions::Start;
use super::Core;

impl Core {
    /// Creates (or returns) the worker's session for `rt`. A resource type
    /// with no plugin is an error unless `compatibility` allows a session
    /// without a backend; shared plugins get such a session too (they keep no
    /// per-worker state).
    pub async fn create_session(
        self: &Arc<Self>,
        worker: &str,
        rt: &str,
        config: &Value,
        custom_name: Option<&str>,
        compatibility: bool,
    ) -> CoreResult<(Arc<Session>, bool)> {
        self.ensure_running()?;
        let config = match config {
            Value::Null => Value::Object(Default::default()),
            c @ Value::Object(_) => c.clone(),
            other => {
                return Err(CoreError::InvalidParams(format!(
                    "Parameter 'config' must be an object, got {}",
                    json_type(other)
                )))
            }
        };
        let backend = match self.registry.backend(rt) {
            Some(b) => Some(b),
            None if compatibility => None,
            None => return Err(CoreError::ResourceNotFound(rt.to_string())),
        };
        let backend = match backend {
            Some(b) if b.per_session() => {
                b.ensure_warm(self.warmup_timeout()).await?;
                Some(b)
            }
            _ => None,
        };
        self.sessions
            .create(worker, rt, backend, &config, custom_name, Start::Fresh)
            .await
    }

    /// Destroys the worker's session for `rt`.
    pub async fn destroy_session(
        self: &Arc<Self>,
        worker: &str,
        rt: &str,
    ) -> CoreResult<Arc<Session>> {
        let (session, drained) = self.sessions.destroy(worker, rt).await?;
        self.after_session_end(&session, drained).await;
        Ok(session)
    }

    /// Destroys every named session of a worker (a worker that disconnects);
    /// returns how many were destroyed. Calls running in temporary sessions
    /// end those themselves.
    pub async fn destroy_worker_sessions(self: &Arc<Self>, worker: &str) -> usize {
        let mut jobs = tokio::task::JoinSet::new();
        for s in self
            .sessions
            .list(worker)
            .into_iter()
            .filter(|s| !s.temporary)
        {
            let (core, worker) = (self.clone(), worker.to_string());
            jobs.spawn(async move {
                core.destroy_session(&worker, &s.resource_type)
                    .await
                    .is_ok()
            });
        }
        let mut destroyed = 0;
        while let Some(done) = jobs.join_next().await {
            destroyed += usize::from(matches!(done, Ok(true)));
        }
        destroyed
    }
}
