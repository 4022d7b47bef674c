//! `POST /session/snapshot`, `/session/fork`, `/snapshot/list`,
//! `/snapshot/delete` (sessions started from a snapshot: `/session/create`
//! with `from_snapshot`, in `sessions.rs`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::codes;
use super::envelope::{ok, ApiError, Envelope};
use super::extract::Body;
use super::openapi::{IdempotencyHeader, WorkerHeader};
use super::time::rfc3339;
use crate::core::ident::Id;
use crate::core::snapshots::Snapshot;
use crate::web::{AppState, RequestId, Routing};

/// `POST /session/snapshot`.
#[derive(Deserialize, ToSchema)]
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

/// `POST /session/fork`.
#[derive(Deserialize, ToSchema)]
pub struct ForkBody {
    #[serde(default)]
    worker_id: Option<Id>,
    resource_type: Id,
    target_worker_ids: Vec<Id>,
}

/// `POST /snapshot/delete`.
#[derive(Deserialize, ToSchema)]
pub struct NameBody {
    name: Id,
}

/// One snapshot as listings show it.
#[derive(Serialize, ToSchema)]
pub struct SnapshotInfo {
    name: String,
    resource_type: String,
    source_worker_id: String,
    source_session_id: String,
    created_at: String,
    /// `null` when pinned.
    expires_at: Option<String>,
    pinned: bool,
    /// The plugin's report (bash: the processes a snapshot does not carry).
    report: Value,
}

/// One target worker of a fork: its new session, or why it has none.
#[derive(Serialize, ToSchema)]
pub struct ForkOutcome {
    worker_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    session_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    error: Option<ForkError>,
}

#[derive(Serialize, ToSchema)]
pub struct ForkError {
    code: u32,
    message: String,
}

/// `data` of `/session/fork` (also when some forks failed).
#[derive(Serialize, ToSchema)]
pub struct ForkData {
    snapshot: SnapshotInfo,
    sessions: Vec<ForkOutcome>,
    created: usize,
    failed: usize,
}

/// `data` of `/snapshot/list`.
#[derive(Serialize, ToSchema)]
pub struct SnapshotList {
    snapshots: Vec<SnapshotInfo>,
    count: usize,
}

/// `data` of `/snapshot/delete`.
#[derive(Serialize, ToSchema)]
pub struct SnapshotDeleted {
    name: String,
    deleted: bool,
}

fn snapshot_info(s: &Snapshot) -> SnapshotInfo {
    SnapshotInfo {
        name: s.name.clone(),
        resource_type: s.resource_type.clone(),
        source_worker_id: s.source_worker.clone(),
        source_session_id: s.source_session.clone(),
        created_at: rfc3339(s.created_at),
        expires_at: s.expires_at.map(rfc3339),
        pinned: s.expires_at.is_none(),
        report: s.report.clone(),
    }
}

/// Freezes the worker's session under a name.
#[utoipa::path(post, path = "/session/snapshot", operation_id = "session_snapshot", tag = "snapshots",
    request_body = SnapshotBody,
    params(WorkerHeader),
    responses(
        (status = 200, description = "Success", body = Envelope<SnapshotInfo>),
        (status = "4XX", description = "Refused: the envelope names the problem (codes in docs/api.md)", body = Envelope<Value>),
        (status = "5XX", description = "The plugin failed (2001), has no snapshots (501), or the snapshot limit was reached (2004)", body = Envelope<Value>),
    ))]
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
        Ok(s) => ok(&id, snapshot_info(&s), Map::new()),
        Err(e) => ApiError::new(e, &id).into_response(),
    }
}

/// Snapshot + create for many workers in one call.
#[utoipa::path(post, path = "/session/fork", operation_id = "session_fork", tag = "snapshots",
    request_body = ForkBody,
    params(WorkerHeader, IdempotencyHeader),
    responses(
        (status = 200, description = "Success", body = Envelope<ForkData>),
        (status = "4XX", description = "Refused, or the first failed fork's code with every outcome in `data`", body = Envelope<Value>),
        (status = "5XX", description = "The server or a plugin failed, timed out, or is unavailable (codes in docs/api.md)", body = Envelope<Value>),
    ))]
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
    let sessions: Vec<ForkOutcome> = forks
        .into_iter()
        .map(|(worker, r)| match r {
            Ok(s) => ForkOutcome {
                worker_id: worker,
                session_id: Some(s.id.clone()),
                session_name: Some(s.name.clone()),
                error: None,
            },
            Err(e) => {
                let entry = ForkOutcome {
                    worker_id: worker,
                    session_id: None,
                    session_name: None,
                    error: Some(ForkError {
                        code: codes::code(&e).as_u32(),
                        message: e.to_string(),
                    }),
                };
                first_error.get_or_insert(e);
                entry
            }
        })
        .collect();
    let failed = sessions.iter().filter(|s| s.error.is_some()).count();
    let data = ForkData {
        snapshot: snapshot_info(&snapshot),
        sessions,
        created: total - failed,
        failed,
    };
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

/// Every snapshot on this host.
#[utoipa::path(get, path = "/snapshot/list", operation_id = "snapshot_list", tag = "snapshots",
    responses(
        (status = 200, description = "Success", body = Envelope<SnapshotList>),
        (status = "4XX", description = "Refused: the envelope names the problem (codes in docs/api.md)", body = Envelope<Value>),
        (status = "5XX", description = "The server or a plugin failed, timed out, or is unavailable (codes in docs/api.md)", body = Envelope<Value>),
    ))]
pub async fn list(State(state): State<AppState>, id: RequestId) -> Response {
    let snapshots: Vec<SnapshotInfo> = state
        .core
        .snapshots
        .all()
        .iter()
        .map(|s| snapshot_info(s))
        .collect();
    let count = snapshots.len();
    ok(&id, SnapshotList { snapshots, count }, Map::new())
}

/// Deletes a snapshot (sessions started from it go on).
#[utoipa::path(post, path = "/snapshot/delete", operation_id = "snapshot_delete", tag = "snapshots",
    request_body = NameBody,
    responses(
        (status = 200, description = "Success", body = Envelope<SnapshotDeleted>),
        (status = "4XX", description = "Refused: the envelope names the problem (codes in docs/api.md)", body = Envelope<Value>),
        (status = "5XX", description = "The server or a plugin failed, timed out, or is unavailable (codes in docs/api.md)", body = Envelope<Value>),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    id: RequestId,
    Body(body): Body<NameBody>,
) -> Response {
    match state.core.delete_snapshot(&body.name).await {
        Ok(s) => ok(
            &id,
            SnapshotDeleted {
                name: s.name.clone(),
                deleted: true,
            },
            Map::new(),
        ),
        Err(e) => ApiError::new(e, &id).into_response(),
    }
}
