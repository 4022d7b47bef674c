//! Stopping the server: `/shutdown`, SIGTERM and SIGINT all end here.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::Notify;

/// How to stop; also the body of both surfaces' shutdown requests.
#[derive(Debug, Clone, Copy, serde::Deserialize, utoipa::ToSchema)]
pub struct StopRequest {
    /// Do not wait for in-flight calls.
    #[serde(default)]
    pub force: bool,
    /// Destroy every session (their cleanup runs) before exiting.
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub cleanup_sessions: bool,
}

fn yes() -> bool {
    true
}

/// Shared trigger: the first request wins.
#[derive(Clone, Default)]
pub struct ShutdownHandle {
    inner: Arc<(Mutex<Option<StopRequest>>, Notify)>,
}

/// SIGTERM and SIGINT listeners, installed before the server announces that
/// it listens, so that a signal sent right after start is never lost.
pub struct Signals {
    term: Option<Signal>,
    int: Option<Signal>,
}

impl Signals {
    pub fn install() -> Self {
        Self {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    async fn recv(&mut self) {
        async fn next(s: &mut Option<Signal>) {
            match s.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.int) => tracing::info!("SIGINT received"),
            _ = next(&mut self.term) => tracing::info!("SIGTERM received"),
        }
    }
}

impl ShutdownHandle {
    pub fn request(&self, req: StopRequest) {
        let mut slot = self.inner.0.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(req);
        }
        self.inner.1.notify_waiters();
        self.inner.1.notify_one();
    }

    fn requested(&self) -> Option<StopRequest> {
        *self.inner.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for `/shutdown` or a signal.
    pub async fn wait(&self, signals: &mut Signals) -> StopRequest {
        let requested = async {
            loop {
                if let Some(r) = self.requested() {
                    return r;
                }
                self.inner.1.notified().await;
            }
        };
        tokio::select! {
            r = requested => r,
            _ = signals.recv() => StopRequest { force: false, cleanup_sessions: true },
        }
    }
}
