//! Draining a host behind a balancer. On shutdown the listener stays open
//! while calls in flight finish, so `/ready` answers 503 (the balancer or
//! Kubernetes stops sending) and new requests hear 503 with `Retry-After`
//! instead of a refused connection. The server waits for [`InFlight::idle`]
//! before it stops listening.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::Notify;

use super::AppState;

/// Requests being served, but for probes.
#[derive(Debug, Default)]
pub struct InFlight {
    count: AtomicUsize,
    changed: Notify,
}

struct Entered(Arc<InFlight>);

impl Drop for Entered {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

impl InFlight {
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until no request is in flight, or `limit` passed; true if idle.
    pub async fn idle(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                if self.count() == 0 {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

/// Is this a probe (never counted, never refused while draining)?
pub fn is_probe(path: &str) -> bool {
    path == "/health" || path == "/ready"
}

/// Does this path answer while draining, uncounted: probes, and `/metrics`,
/// whose scrapes show the drain?
pub fn answers_while_draining(path: &str) -> bool {
    is_probe(path) || path == super::metrics::PATH
}

/// Middleware: counts the request while it is served, and tells a client
/// refused with 503 (draining, plugin busy, not warmed up) when to retry.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let _entered = (!answers_while_draining(req.uri().path())).then(|| {
        state.inflight.count.fetch_add(1, Ordering::SeqCst);
        Entered(state.inflight.clone())
    });
    let mut res = next.run(req).await;
    if res.status() == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut()
            .entry(header::RETRY_AFTER)
            .or_insert(HeaderValue::from_static("1"));
    }
    res
}
