//! Snapshot operations as clients ask for them: freeze a worker's session
//! under a name, start sessions from it (one, or one per target worker in a
//! fork), list, delete, and expire them.

use std::sync::Arc;
use std::time::SystemTime;

use plugin_api::PluginInfo;
use serde_json::{json, Value};

use super::call_pool;
use super::error::{CoreError, CoreResult};
use super::session::Session;
use super::sessions::Start;
use super::snapshots::{expiry, Snapshot};
use super::{secs, Core};

/// One target of a fork and what became of it.
pub type Forked = (String, CoreResult<Arc<Session>>);

impl Core {
    /// Freezes the worker's session for `rt` as snapshot `name`.
    pub async fn snapshot_session(
        self: &Arc<Self>,
        worker: &str,
        rt: &str,
        name: &str,
        pinned: bool,
    ) -> CoreResult<Arc<Snapshot>> {
        self.ensure_running()?;
        // A plugin without snapshots says so whether or not the worker has a
        // session of it (a shared plugin like rag has none).
        if let Some(b) = self.registry.backend(rt) {
            if !b.per_session() || !b.info.has(PluginInfo::SNAPSHOTS) {
                return Err(CoreError::Unsupported(format!(
                    "snapshots are not supported by the plugin '{rt}'"
                )));
            }
        }
        let session = self.sessions.get(worker, rt).ok_or_else(|| {
            CoreError::SessionNotFound(format!(
                "Worker '{worker}' has no {rt} session on this host to snapshot"
            ))
        })?;
        let backend = match &session.backend {
            Some(b) if b.info.has(PluginInfo::SNAPSHOTS) => b.clone(),
            _ => {
                return Err(CoreError::Unsupported(format!(
                    "snapshots are not supported by the plugin '{rt}'"
                )))
            }
        };
        self.snapshots.check_room(name).inspect_err(|e| {
            if matches!(e, CoreError::Unavailable(_)) {
                self.note_refusal(crate::metrics::Refusal::SnapshotLimit);
            }
        })?;
        let id = format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        // A session busy in a snapshot is not reaped meanwhile.
        let _busy = session.begin_call();
        let (b, sid, snap) = (backend.clone(), session.id.clone(), id.clone());
        let report = call_pool::spawn(move || b.plugin.snapshot(&sid, &snap))
            .await
            .map_err(|e| CoreError::Backend(format!("{rt}: snapshot failed: {e}")))?
            .map_err(|e| CoreError::from_plugin(rt, e))?;
        let report: Value = serde_json::from_str(&report).unwrap_or_else(|_| json!({}));
        let snapshot = Arc::new(Snapshot {
            name: name.to_string(),
            id,
            resource_type: rt.to_string(),
            backend,
            source_worker: worker.to_string(),
            source_session: session.id.clone(),
            created_at: SystemTime::now(),
            expires_at: expiry(pinned, secs(self.config.server.snapshot_ttl)),
            report,
        });
        if !self.snapshots.insert(snapshot.clone()) {
            self.drop_plugin_snapshot(&snapshot).await;
            return Err(CoreError::InvalidParams(format!(
                "Parameter 'name': a snapshot named '{name}' was made meanwhile; choose another name"
            )));
        }
        tracing::info!(worker = %worker, session = %session.id, snapshot = %name, "snapshot made");
        Ok(snapshot)
    }

    /// Starts the worker's session from snapshot `name`. `rt`, when given,
    /// must be the snapshot's resource type.
    pub async fn create_from_snapshot(
        self: &Arc<Self>,
        worker: &str,
        rt: Option<&str>,
        name: &str,
        config: &Value,
        custom_name: Option<&str>,
    ) -> CoreResult<Arc<Session>> {
        self.ensure_running()?;
        let snapshot = self.snapshots.get(name)?;
        if let Some(rt) = rt.filter(|rt| *rt != snapshot.resource_type) {
            return Err(CoreError::InvalidParams(format!(
                "Parameter 'from_snapshot': snapshot '{name}' is of a {} session, not {rt}",
                snapshot.resource_type
            )));
        }
        let backend = snapshot.backend.clone();
        backend
            .ensure_warm(secs(self.config.server.warmup_timeout))
            .await?;
        let (session, _) = self
            .sessions
            .create(
                worker,
                &snapshot.resource_type,
                Some(backend),
                config,
                custom_name,
                Start::FromSnapshot(&snapshot.id),
            )
            .await?;
        tracing::info!(worker = %worker, session = %session.id, snapshot = %name, "session started from a snapshot");
        Ok(session)
    }

    /// Snapshots the worker's session for `rt` and starts one session from it
    /// for each target worker, at once. The snapshot stays listed (and
    /// expires) like any other.
    pub async fn fork_session(
        self: &Arc<Self>,
        worker: &str,
        rt: &str,
        targets: &[String],
    ) -> CoreResult<(Arc<Snapshot>, Vec<Forked>)> {
        if targets.is_empty() {
            return Err(CoreError::InvalidParams(
                "Parameter 'target_worker_ids' must name at least one worker".into(),
            ));
        }
        let name = format!("fork-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let snapshot = self.snapshot_session(worker, rt, &name, false).await?;
        let mut jobs = tokio::task::JoinSet::new();
        for (i, target) in targets.iter().enumerate() {
            let (core, target, name) = (self.clone(), target.clone(), name.clone());
            jobs.spawn(async move {
                let r = core
                    .create_from_snapshot(&target, None, &name, &Value::Null, None)
                    .await;
                (i, target, r)
            });
        }
        let mut done = Vec::with_capacity(targets.len());
        while let Some(j) = jobs.join_next().await {
            match j {
                Ok(r) => done.push(r),
                Err(e) => return Err(CoreError::Internal(format!("a fork failed to run: {e}"))),
            }
        }
        done.sort_by_key(|(i, _, _)| *i);
        Ok((snapshot, done.into_iter().map(|(_, t, r)| (t, r)).collect()))
    }

    /// Deletes snapshot `name`; sessions started from it go on.
    pub async fn delete_snapshot(self: &Arc<Self>, name: &str) -> CoreResult<Arc<Snapshot>> {
        let snapshot = self.snapshots.remove(name).ok_or_else(|| {
            CoreError::InvalidParams(format!(
                "Parameter 'name': no snapshot named '{name}' on this host"
            ))
        })?;
        self.drop_plugin_snapshot(&snapshot).await;
        Ok(snapshot)
    }

    /// Deletes the snapshots past their TTL.
    pub async fn expire_snapshots(self: &Arc<Self>) {
        for s in self.snapshots.take_expired(SystemTime::now()) {
            tracing::info!(snapshot = %s.name, "snapshot expired (TTL)");
            self.drop_plugin_snapshot(&s).await;
        }
    }

    async fn drop_plugin_snapshot(&self, s: &Snapshot) {
        let (b, id) = (s.backend.clone(), s.id.clone());
        match call_pool::spawn(move || b.plugin.drop_snapshot(&id)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(snapshot = %s.name, error = %e, "the plugin could not drop a snapshot")
            }
            Err(e) => tracing::warn!(snapshot = %s.name, error = %e, "dropping a snapshot failed"),
        }
    }
}
