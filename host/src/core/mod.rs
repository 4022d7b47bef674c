//! The host's core: plugin registry, sessions and the executor. It knows
//! nothing of HTTP; the native and `/api/v1/` surfaces are thin mappings over it.

pub mod backend;
pub mod blocking;
pub mod call_pool;
pub mod catalog;
pub mod discovery;
pub mod error;
pub mod executor;
pub mod gauges;
pub mod handle;
pub mod ident;
pub mod inline;
pub mod library;
pub mod loading;
pub mod names;
pub mod readiness;
pub mod reaper;
pub mod registry;
pub mod session;
pub mod session_api;
pub mod sessions;
pub mod snapshot_api;
pub mod snapshots;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
pub mod trajectory;
pub mod trajectory_api;
pub mod validate;
pub mod warmup;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::metrics::{Metrics, Refusal};
use error::{CoreError, CoreResult};
use registry::Registry;
use sessions::{SessionPolicy, Sessions};

/// Everything the host serves, shared by both HTTP surfaces.
pub struct Core {
    pub config: Config,
    pub registry: Registry,
    pub sessions: Sessions,
    pub snapshots: snapshots::Snapshots,
    /// Recorded sessions' trajectories.
    pub trajectories: Arc<trajectory::Trajectories>,
    /// Where content-addressed copies of plugin libraries are loaded from.
    pub copies_dir: PathBuf,
    shutting_down: AtomicBool,
    /// True until the plugins in `server.warmup` were warmed (or failed to):
    /// a balancer should not send workers to a host still building indexes.
    warming: AtomicBool,
    /// Cancelled when shutdown begins, for surfaces holding streams open.
    stopping: tokio_util::sync::CancellationToken,
    /// What `/metrics` shows; `None` with `server.metrics = false`.
    pub metrics: Option<Arc<Metrics>>,
}

/// Seconds from config as a `Duration` (config validation keeps them finite).
pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.0, 1e9))
}

impl Core {
    pub fn new(config: Config) -> Arc<Self> {
        let s = &config.server;
        let policy = SessionPolicy {
            ttl: secs(s.session_ttl),
            init_timeout: secs(s.warmup_timeout.min(120.0)),
            cleanup_timeout: secs(30.0),
            max_per_worker: s.max_sessions_per_worker,
            max_total: s.max_sessions,
        };
        let copies_dir = s.runtime_dir.join("libs");
        let trajectories = Arc::new(trajectory::Trajectories::new(s));
        let metrics = s.metrics.then(|| Arc::new(Metrics::new()));
        Arc::new(Self {
            sessions: Sessions::new(policy, trajectories.clone(), metrics.clone()),
            trajectories,
            metrics,
            snapshots: snapshots::Snapshots::new(s.max_snapshots),
            registry: Registry::default(),
            copies_dir,
            shutting_down: AtomicBool::new(false),
            warming: AtomicBool::new(!s.warmup.is_empty()),
            stopping: tokio_util::sync::CancellationToken::new(),
            config,
        })
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Is the startup warmup still running?
    pub fn is_warming(&self) -> bool {
        self.warming.load(Ordering::SeqCst)
    }

    /// The startup warmup is over (whether each plugin warmed or failed).
    pub fn startup_warmup_done(&self) {
        self.warming.store(false, Ordering::SeqCst);
    }

    /// Refuses new work from now on.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.stopping.cancel();
    }

    /// Cancelled when shutdown begins.
    pub fn stopping_token(&self) -> tokio_util::sync::CancellationToken {
        self.stopping.clone()
    }

    /// Counts a request refused before anything ran.
    pub fn note_refusal(&self, why: Refusal) {
        if let Some(m) = &self.metrics {
            m.refused(why);
        }
    }

    pub fn ensure_running(&self) -> CoreResult<()> {
        if self.is_shutting_down() {
            self.note_refusal(Refusal::ShuttingDown);
            Err(CoreError::ShuttingDown)
        } else {
            Ok(())
        }
    }

    fn warmup_timeout(&self) -> Duration {
        secs(self.config.server.warmup_timeout)
    }

    fn grace(&self) -> Duration {
        secs(self.config.server.shutdown_grace)
    }

    /// Destroys every session and shuts every plugin down, each bounded by the
    /// grace period. Returns the number of sessions cleaned.
    pub async fn stop(&self, cleanup_sessions: bool) -> usize {
        self.begin_shutdown();
        let grace = self.grace().max(Duration::from_secs(1));
        let cleaned = if cleanup_sessions {
            tokio::time::timeout(grace, self.sessions.destroy_all())
                .await
                .unwrap_or(0)
        } else {
            0
        };
        let mut jobs = tokio::task::JoinSet::new();
        for b in self
            .registry
            .backends()
            .into_iter()
            .chain(self.registry.retired())
        {
            jobs.spawn(async move { b.shutdown(grace).await });
        }
        let _ =
            tokio::time::timeout(grace, async { while jobs.join_next().await.is_some() {} }).await;
        // Sessions left alive (no cleanup asked for) still end their trajectories.
        let trajectories = self.trajectories.clone();
        let _ = tokio::task::spawn_blocking(move || trajectories.close_all()).await;
        cleaned
    }

    /// Shuts down a retired plugin version after its last session ended.
    pub async fn retire_drained(&self, backend: &Arc<backend::Backend>) {
        tracing::info!(plugin = %backend.name, version = %backend.info.version, "old version drained; shutting it down");
        backend.shutdown(self.grace()).await;
        self.registry.drop_retired(backend);
    }

    /// Ends a session's life after it was removed from the table.
    pub async fn after_session_end(&self, session: &session::Session, drained: bool) {
        if drained {
            if let Some(b) = &session.backend {
                self.retire_drained(b).await;
            }
        }
    }
}
