//! Stopping the server: `/shutdown`, SIGTERM and SIGINT all end here.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// How to stop.
#[derive(Debug, Clone, Copy)]
pub struct StopRequest {
    /// Do not wait for in-flight calls.
    pub force: bool,
    pub cleanup_sessions: bool,
}

/// Shared trigger: the first request wins.
#[derive(Clone, Default)]
pub struct ShutdownHandle {
    inner: Arc<(Mutex<Option<StopRequest>>, Notify)>,
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
    pub async fn wait(&self) -> StopRequest {
        let signal = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term_fut = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                _ = term_fut => tracing::info!("SIGTERM received"),
            }
        };
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
            _ = signal => StopRequest { force: false, cleanup_sessions: true },
        }
    }
}
