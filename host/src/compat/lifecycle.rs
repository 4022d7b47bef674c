//! `POST /api/v1/lifecycle/heartbeat`, `/lifecycle/status` and
//! `/worker/disconnect`. None of them extends a session's TTL.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::codes::{self, Code, Mapped};
use super::envelope::{self, Meta};
use super::extract::{check_text, present, Checked};
use super::sessions::{TargetBody, WORKER_REQUIRED};
use super::time::{iso, now};
use crate::core::session::Session;
use crate::web::AppState;
use crate::web::RequestId;

/// The worker's named sessions (temporary ones live for one call only).
fn named_sessions(state: &AppState, worker: &str) -> Vec<Arc<Session>> {
    state
        .core
        .sessions
        .list(worker)
        .into_iter()
        .filter(|s| !s.temporary)
        .collect()
}

/// The worker id of a body: present, and free of control characters.
fn worker(body: &TargetBody) -> Result<&str, Mapped> {
    let Some(worker) = present(&body.worker_id) else {
        return Err(Mapped::new(Code::InvalidRequest, WORKER_REQUIRED));
    };
    check_text("worker_id", worker).map_err(|e| codes::map(&e))?;
    Ok(worker)
}

pub async fn heartbeat(
    State(state): State<AppState>,
    trace: RequestId,
    Checked(body): Checked<TargetBody>,
) -> Response {
    let meta = Meta::endpoint("session:heartbeat", Some("session"), Instant::now());
    let worker = match worker(&body) {
        Ok(w) => w,
        Err(e) => return envelope::failure(&e, &meta, &trace),
    };
    let active: Vec<String> = named_sessions(&state, worker)
        .iter()
        .map(|s| s.resource_type.clone())
        .collect();
    envelope::success(
        json!({"worker_id": worker, "active_sessions": active, "timestamp": now()}),
        &meta,
        &trace,
    )
}

pub async fn status(
    State(state): State<AppState>,
    trace: RequestId,
    Checked(body): Checked<TargetBody>,
) -> Response {
    let meta = Meta::endpoint("session:status", Some("session"), Instant::now());
    let worker = match worker(&body) {
        Ok(w) => w,
        Err(e) => return envelope::failure(&e, &meta, &trace),
    };
    let ttl = state.core.sessions.ttl();
    let named = named_sessions(&state, worker);
    let sessions: Map<String, Value> = named
        .iter()
        .map(|s| {
            (
                s.resource_type.clone(),
                json!({
                    "session_id": s.id,
                    "session_name": s.name,
                    "status": s.status(),
                    "created_at": iso(s.created_at),
                    "last_activity": iso(s.last_activity()),
                    "expires_at": iso(s.expires_at(ttl)),
                }),
            )
        })
        .collect();
    let active: Vec<&str> = named.iter().map(|s| s.resource_type.as_str()).collect();
    envelope::success(
        json!({
            "worker_id": worker,
            "active_resources": active,
            "sessions": sessions,
            "tools_available": state.core.tool_list(false).len(),
        }),
        &meta,
        &trace,
    )
}

pub async fn disconnect(
    State(state): State<AppState>,
    trace: RequestId,
    Checked(body): Checked<TargetBody>,
) -> Response {
    let started = Instant::now();
    let meta = Meta::endpoint("session:disconnect", Some("session"), started);
    let worker = match worker(&body) {
        Ok(w) => w,
        Err(e) => return envelope::failure(&e, &meta, &trace),
    };
    let cleaned = state.core.destroy_worker_sessions(worker).await;
    envelope::success(
        json!({"worker_id": worker, "sessions_cleaned": cleaned}),
        &Meta::endpoint("session:disconnect", Some("session"), started),
        &trace,
    )
}
