//! `POST /session/create|destroy|list|refresh`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::envelope::{ok, ApiError};
use super::extract::Body;
use super::time::rfc3339;
use crate::core::error::CoreError;
use crate::core::ident::Id;
use crate::core::session::Session;
use crate::web::{AppState, RequestId, Routing};

#[derive(Deserialize)]
pub struct CreateBody {
    /// Or the `X-Worker-ID` header (in every body here).
    #[serde(default)]
    worker_id: Option<Id>,
    /// May be left out when `from_snapshot` is given.
    #[serde(default)]
    resource_type: Option<Id>,
    /// Start the session from this snapshot (`/session/snapshot`).
    #[serde(default)]
    from_snapshot: Option<Id>,
    #[serde(default)]
    config: Value,
    #[serde(default)]
    custom_name: Option<Id>,
}

#[derive(Deserialize)]
pub struct TargetBody {
    #[serde(default)]
    worker_id: Option<Id>,
    resource_type: Id,
}

#[derive(Deserialize)]
pub struct WorkerBody {
    #[serde(default)]
    worker_id: Option<Id>,
    #[serde(default)]
    resource_type: Option<Id>,
}

pub async fn create(
    State(state): State<AppState>,
    id: RequestId,
    routing: Routing,
    Body(body): Body<CreateBody>,
) -> Response {
    let worker = match routing.worker_id(body.worker_id) {
        Ok(w) => w,
        Err(e) => return ApiError::new(e, &id).into_response(),
    };
    let result = match (&body.from_snapshot, &body.resource_type) {
        (Some(snapshot), rt) => state
            .core
            .create_from_snapshot(
                &worker,
                rt.as_deref(),
                snapshot,
                &body.config,
                body.custom_name.as_deref(),
            )
            .await
            .map(|s| (s, true)),
        (None, Some(rt)) => {
            state
                .core
                .create_session(
                    &worker,
                    rt,
                    &body.config,
                    body.custom_name.as_deref(),
                    false,
                )
                .await
        }
        (None, None) => Err(CoreError::InvalidParams(
            "Missing required field 'resource_type'".into(),
        )),
    };
    match result {
        Ok((s, created)) => ok(
            &id,
            json!({
                "session_id": s.id,
                "session_name": s.name,
                "session_status": s.status(),
                "resource_type": s.resource_type,
                "created": created,
                "from_snapshot": body.from_snapshot,
            }),
            Map::new(),
        ),
        Err(e) => ApiError::new(e, &id).into_response(),
    }
}

pub async fn destroy(
    State(state): State<AppState>,
    id: RequestId,
    routing: Routing,
    Body(body): Body<TargetBody>,
) -> Response {
    let worker = match routing.worker_id(body.worker_id) {
        Ok(w) => w,
        Err(e) => return ApiError::new(e, &id).into_response(),
    };
    let result = state
        .core
        .destroy_session(&worker, &body.resource_type)
        .await;
    match result {
        Ok(s) => ok(
            &id,
            json!({
                "session_id": s.id,
                "session_name": s.name,
                "resource_type": s.resource_type,
                "destroyed": true,
            }),
            Map::new(),
        ),
        Err(e) => ApiError::new(e, &id).into_response(),
    }
}

/// One session as listings show it.
pub fn session_json(s: &Session, ttl: std::time::Duration) -> Value {
    json!({
        "resource_type": s.resource_type,
        "session_id": s.id,
        "session_name": s.name,
        "status": s.status(),
        "created_at": rfc3339(s.created_at),
        "last_activity": rfc3339(s.last_activity()),
        "expires_at": rfc3339(s.expires_at(ttl)),
        "temporary": s.temporary,
    })
}

pub async fn list(
    State(state): State<AppState>,
    id: RequestId,
    routing: Routing,
    Body(body): Body<WorkerBody>,
) -> Response {
    let worker = match routing.worker_id(body.worker_id) {
        Ok(w) => w,
        Err(e) => return ApiError::new(e, &id).into_response(),
    };
    let ttl = state.core.sessions.ttl();
    let sessions: Vec<Value> = state
        .core
        .sessions
        .list(&worker)
        .iter()
        .map(|s| session_json(s, ttl))
        .collect();
    ok(
        &id,
        json!({"worker_id": worker, "sessions": sessions, "count": sessions.len()}),
        Map::new(),
    )
}

pub async fn refresh(
    State(state): State<AppState>,
    id: RequestId,
    routing: Routing,
    Body(body): Body<WorkerBody>,
) -> Response {
    let worker = match routing.worker_id(body.worker_id) {
        Ok(w) => w,
        Err(e) => return ApiError::new(e, &id).into_response(),
    };
    let result = state
        .core
        .sessions
        .refresh(&worker, body.resource_type.as_deref());
    let ttl = state.core.sessions.ttl();
    match result {
        Ok(sessions) => {
            let expires_at = sessions
                .iter()
                .map(|s| s.expires_at(ttl))
                .max()
                .map(rfc3339);
            let refreshed: Vec<Value> = sessions
                .iter()
                .map(|s| json!({"resource_type": s.resource_type, "session_id": s.id, "expires_at": rfc3339(s.expires_at(ttl))}))
                .collect();
            ok(
                &id,
                json!({"worker_id": worker, "expires_at": expires_at, "refreshed": refreshed, "refreshed_count": refreshed.len()}),
                Map::new(),
            )
        }
        Err(e) => ApiError::new(e, &id).into_response(),
    }
}
