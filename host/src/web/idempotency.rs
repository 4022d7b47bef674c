//! `Idempotency-Key`: a client that lost its connection can retry a create
//! or a call without running it twice. The first request with a key runs;
//! a retry with the same key and the same request gets the first answer
//! (waiting for it if it is still running), marked `Idempotent-Replayed:
//! true`; the same key with another request is refused (1002). Answers are
//! kept for `server.idempotency_window` seconds, and at most
//! [`MAX_ENTRIES`] of them (the oldest go first).
//!
//! An answer that says nothing ran (503: draining, a plugin at its cap) is
//! not kept, so a retry runs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::{AppState, RequestId};
use crate::core::error::CoreError;

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";
/// Most answers kept at once.
pub const MAX_ENTRIES: usize = 10_000;
/// The paths a key applies to (requests that create or run something).
const PATHS: [&str; 4] = [
    "/execute",
    "/execute/batch",
    "/session/create",
    "/session/fork",
];

/// An answer as first sent.
#[derive(Debug)]
struct Stored {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Debug)]
enum Entry {
    Running {
        fingerprint: [u8; 32],
        done: watch::Receiver<Option<Arc<Stored>>>,
    },
    Done {
        fingerprint: [u8; 32],
        stored: Arc<Stored>,
        at: Instant,
    },
}

/// The keys seen within the window.
#[derive(Debug, Default)]
pub struct Keys {
    inner: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<String, Entry>,
    /// Keys in the order they were first seen, for expiry and eviction.
    order: VecDeque<(Instant, String)>,
}

/// What to do with a request that carries a key.
enum Step {
    Run(watch::Sender<Option<Arc<Stored>>>),
    Wait(watch::Receiver<Option<Arc<Stored>>>),
    Replay(Arc<Stored>),
    Mismatch,
}

impl Keys {
    fn step(&self, key: &str, fingerprint: [u8; 32], window: Duration) -> Step {
        let mut t = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        t.expire(window);
        match t.entries.get(key) {
            Some(Entry::Running { fingerprint: f, .. } | Entry::Done { fingerprint: f, .. })
                if *f != fingerprint =>
            {
                Step::Mismatch
            }
            Some(Entry::Running { done, .. }) => Step::Wait(done.clone()),
            Some(Entry::Done { stored, .. }) => Step::Replay(stored.clone()),
            None => {
                let (tx, rx) = watch::channel(None);
                t.entries.insert(
                    key.to_string(),
                    Entry::Running {
                        fingerprint,
                        done: rx,
                    },
                );
                t.order.push_back((Instant::now(), key.to_string()));
                t.evict();
                Step::Run(tx)
            }
        }
    }

    /// Keeps the first answer (or forgets the key, if nothing was kept).
    fn finish(&self, key: &str, fingerprint: [u8; 32], stored: Option<Arc<Stored>>) {
        let mut t = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match stored {
            Some(stored) => {
                t.entries.insert(
                    key.to_string(),
                    Entry::Done {
                        fingerprint,
                        stored,
                        at: Instant::now(),
                    },
                );
            }
            None => {
                t.entries.remove(key);
            }
        }
    }
}

impl Table {
    fn expire(&mut self, window: Duration) {
        while let Some((at, key)) = self.order.front() {
            if at.elapsed() < window {
                break;
            }
            if matches!(self.entries.get(key), Some(Entry::Done { at, .. }) if at.elapsed() >= window)
            {
                self.entries.remove(key);
            }
            self.order.pop_front();
        }
    }

    fn evict(&mut self) {
        while self.order.len() > MAX_ENTRIES {
            if let Some((_, key)) = self.order.pop_front() {
                if matches!(self.entries.get(&key), Some(Entry::Done { .. })) {
                    self.entries.remove(&key);
                }
            }
        }
    }
}

/// Middleware: runs a keyed request once and replays its answer.
pub async fn once(
    State(state): State<AppState>,
    id: RequestId,
    req: Request,
    next: Next,
) -> Response {
    let Some(key) = req.headers().get(HEADER).cloned() else {
        return next.run(req).await;
    };
    if req.method() != axum::http::Method::POST || !PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let key = match key.to_str() {
        // Visible ASCII only: a header value may also hold spaces and tabs.
        Ok(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => {
            k.to_string()
        }
        _ => {
            let e = CoreError::InvalidParams(
                "Header 'Idempotency-Key' must be 1–255 visible ASCII characters".into(),
            );
            return super::fallback::refusal(&req, e, &id);
        }
    };
    let (parts, body) = req.into_parts();
    let limit = state.core.config.server.body_limit;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            let req = Request::from_parts(parts, Body::empty());
            return super::fallback::refusal(&req, CoreError::BodyTooLarge { limit }, &id);
        }
    };
    let mut hash = Sha256::new();
    hash.update(parts.uri.path().as_bytes());
    hash.update([0]);
    hash.update(&bytes);
    let fingerprint: [u8; 32] = hash.finalize().into();
    let window = crate::core::secs(state.core.config.server.idempotency_window);
    let req = Request::from_parts(parts, Body::from(bytes));
    match state.idempotency.step(&key, fingerprint, window) {
        Step::Replay(stored) => replay(&stored),
        Step::Wait(mut done) => {
            let stored = done
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|s| s.clone());
            match stored {
                Some(s) => replay(&s),
                // The first request's answer was not kept (503): run this one.
                None => next.run(req).await,
            }
        }
        Step::Mismatch => {
            let e = CoreError::InvalidParams(format!(
                "Header 'Idempotency-Key' (\"{key}\") was first used with a different request; \
                 use a new key for a new request"
            ));
            super::fallback::refusal(&req, e, &id)
        }
        Step::Run(tx) => {
            let res = next.run(req).await;
            let (parts, body) = res.into_parts();
            let body = match body.collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    state.idempotency.finish(&key, fingerprint, None);
                    let _ = tx.send(None);
                    tracing::warn!(error = %e, "an answer could not be read to keep it");
                    return Response::from_parts(parts, Body::empty());
                }
            };
            let keep = parts.status != StatusCode::SERVICE_UNAVAILABLE;
            let stored = keep.then(|| {
                Arc::new(Stored {
                    status: parts.status,
                    headers: parts.headers.clone(),
                    body: body.clone(),
                })
            });
            state.idempotency.finish(&key, fingerprint, stored.clone());
            let _ = tx.send(stored);
            Response::from_parts(parts, Body::from(body))
        }
    }
}

fn replay(stored: &Stored) -> Response {
    let mut res = Response::new(Body::from(stored.body.clone()));
    *res.status_mut() = stored.status;
    *res.headers_mut() = stored.headers.clone();
    res.headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    res
}
