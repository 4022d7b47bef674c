//! `POST /session/snapshot`, `/session/fork`, `/snapshot/list`,
//! `/snapshot/delete` (sessions started from a snapshot: `/session/create`
//! with `from_snapshot`, in `sessions.rs`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::codes;
use super::envelope::{ok, ApiError};
use super::extract::Body;
use super::time::rfc3339;
use crate::core::ident::Id;
use crate::core::snapshots::Snapshot;
use crate::web::{AppState, RequestId, Routing};

#[derive(Deserialize)]
pub struct SnapshotBody {
    /// Or the `X-Worker-ID` header.
    #[serde(default)]
    worker_id: Option<Id>,
    resource_type: Id,
    name: Id,
    /// A pinned snapshot lives until deleted; others expire after
    /// `server.snapshot_ttl`.
    #[serde(default)]
    pinned: bool,
}

#[derive(Deserialize)]
pub struct ForkBody {
    #[serde(default)]
    worker_id: Option<Id>,
    resource_type: Id,
    target_worker_ids: Vec<Id>,
}

#[derive(Deserialize)]
pub struct NameBody {
    name: Id,
}

/// One snapshot as listings show it.
fn snapshot_json(s: &Snapshot) -> Value {
    json!({
        "name": s.name,
        "resource_type": s.resource_type,
        "source_worker_id": s.source_worker,
        "source_session_id": s.source_session,
        "created_at": rfc3339(s.created_at),
        "expires_at": s.expires_at.map(rfc3339),
        "pinned": s.expires_at.is_none(),
        "report": s.report,
    })
}

pub async fn snapshot(
    State(state): State<AppState>,
    id: RequestId,
    routing: Routing,
    Body(body): Body<SnapshotBody>,
) -> Response {
    let worker = match routing.worker_id(body.worker_id) {
        Ok(w) => w,
        Err(e) => return ApiError::new(e, &id).into_response(),
    };
    match state
        .core
        .snapshot_session(&worker, &body.resource_type, &body.name, body.pinned)
        .await
    {
        Ok(s) => ok(&id, snapshot_json(&s), Map::new()),
        Err(e) => ApiError::new(e, &id).into_response(),
    }
}

pub async fn fork(
    State(state): State<AppState>,
    id: RequestId,
    routing: Routing,
    Body(body): Body<ForkBody>,
) -> Response {
    let worker = match routing.worker_id(body.worker_id) {
        Ok(w) => w,
        Err(e) => return ApiError::new(e, &id).into_response(),
    };
    let targets: Vec<String> = body
        .target_worker_ids
        .into_iter()
        .map(Id::into_string)
        .collect();
    let (snapshot, forks) = match state
        .core
        .fork_session(&worker, &body.resource_type, &targets)
        .await
    {
        Ok(r) => r,
        Err(e) => return ApiError::new(e, &id).into_response(),
    };
    let total = forks.len();
    let mut first_error = None;
    let sessions: Vec<Value> = forks
        .into_iter()
        .map(|(worker, r)| match r {
            Ok(s) => json!({"worker_id": worker, "session_id": s.id, "session_name": s.name}),
            Err(e) => {
                let entry = json!({
                    "worker_id": worker,
                    "error": {"code": codes::code(&e).as_u32(), "message": e.to_string()},
                });
                first_error.get_or_insert(e);
                entry
            }
        })
        .collect();
    let failed = sessions.iter().filter(|s| s.get("error").is_some()).count();
    let data = json!({
        "snapshot": snapshot_json(&snapshot),
        "sessions": sessions,
        "created": total - failed,
        "failed": failed,
    });
    match first_error {
        None => ok(&id, data, Map::new()),
        // As a batch: the first failure's code and status, every outcome in `data`.
        Some(e) => {
            let status = codes::status_for(&e);
            let mut body = ApiError::new(e, &id).body_with(|_| data);
            body.message = format!("{failed} of {total} forks failed");
            (status, axum::Json(body)).into_response()
        }
    }
}

pub async fn list(State(state): State<AppState>, id: RequestId) -> Response {
    let all: Vec<Value> = state
        .core
        .snapshots
        .all()
        .iter()
        .map(|s| snapshot_json(s))
        .collect();
    ok(
        &id,
        json!({"snapshots": all, "count": all.len()}),
        Map::new(),
    )
}

pub async fn delete(
    State(state): State<AppState>,
    id: RequestId,
    Body(body): Body<NameBody>,
) -> Response {
    match state.core.delete_snapshot(&body.name).await {
        Ok(s) => ok(&id, json!({"name": s.name, "deleted": true}), Map::new()),
        Err(e) => ApiError::new(e, &id).into_response(),
    }
}
