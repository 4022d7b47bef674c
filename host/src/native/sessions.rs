//! `POST /session/create|destroy|list|refresh`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::envelope::{ok, ApiError, Envelope};
use super::extract::Body;
use super::openapi::{IdempotencyHeader, WorkerHeader};
use super::time::rfc3339;
use crate::core::error::CoreError;
use crate::core::ident::Id;
use crate::core::session::Session;
use crate::web::{AppState, RequestId, Routing};

/// `POST /session/create`.
#[derive(Deserialize, ToSchema)]
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
    /// Overlaid on the plugin's session defaults from `plugins.toml`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    config: Value,
    /// Added to the session's name.
    #[serde(default)]
    custom_name: Option<Id>,
}

/// `POST /session/destroy`.
#[derive(Deserialize, ToSchema)]
pub struct TargetBody {
    #[serde(default)]
    worker_id: Option<Id>,
    resource_type: Id,
}

/// `POST /session/list` and `/session/refresh`.
#[derive(Deserialize, ToSchema)]
pub struct WorkerBody {
    #[serde(default)]
    worker_id: Option<Id>,
    #[serde(default)]
    resource_type: Option<Id>,
}

/// `data` of `/session/create`.
#[derive(Serialize, ToSchema)]
pub struct SessionCreated {
    session_id: String,
    session_name: String,
    /// `active` (or `broken`).
    #[schema(value_type = String)]
    session_status: &'static str,
    resource_type: String,
    /// False when the worker already had this session (it is returned).
    created: bool,
    from_snapshot: Option<Id>,
}

/// `data` of `/session/destroy`.
#[derive(Serialize, ToSchema)]
pub struct SessionDestroyed {
    session_id: String,
    session_name: String,
    resource_type: String,
    destroyed: bool,
}

/// One session as listings show it.
#[derive(Serialize, ToSchema)]
pub struct SessionInfo {
    resource_type: String,
    session_id: String,
    session_name: String,
    #[schema(value_type = String)]
    status: &'static str,
    /// RFC 3339.
    created_at: String,
    last_activity: String,
    expires_at: String,
    /// Made for one call only.
    temporary: bool,
}

/// `data` of `/session/list`.
#[derive(Serialize, ToSchema)]
pub struct SessionList {
    worker_id: Id,
    sessions: Vec<SessionInfo>,
    count: usize,
}

#[derive(Serialize, ToSchema)]
pub struct RefreshedSession {
    resource_type: String,
    session_id: String,
    expires_at: String,
}

/// `data` of `/session/refresh`.
#[derive(Serialize, ToSchema)]
pub struct Refreshed {
    worker_id: Id,
    /// The latest expiry among the refreshed sessions.
    expires_at: Option<String>,
    refreshed: Vec<RefreshedSession>,
    refreshed_count: usize,
}

/// Creates the worker's session of a resource type (or returns the one it has).
#[utoipa::path(post, path = "/session/create", operation_id = "session_create", tag = "sessions",
    request_body = CreateBody,
    params(WorkerHeader, IdempotencyHeader),
    responses(
        (status = 200, description = "Success", body = Envelope<SessionCreated>),
        (status = "4XX", description = "Refused: the envelope names the problem (codes in docs/api.md)", body = Envelope<Value>),
        (status = "5XX", description = "The plugin could not initialize the session (2001) or a limit was reached (2004)", body = Envelope<Value>),
    ))]
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
            SessionCreated {
                session_id: s.id.clone(),
                session_name: s.name.clone(),
                session_status: s.status(),
                resource_type: s.resource_type.clone(),
                created,
                from_snapshot: body.from_snapshot,
            },
            Map::new(),
        ),
        Err(e) => ApiError::new(e, &id).into_response(),
    }
}

/// Destroys the worker's session of a resource type.
#[utoipa::path(post, path = "/session/destroy", operation_id = "session_destroy", tag = "sessions",
    request_body = TargetBody,
    params(WorkerHeader),
    responses(
        (status = 200, description = "Success", body = Envelope<SessionDestroyed>),
        (status = "4XX", description = "No such worker (1004) or session (1003)", body = Envelope<Value>),
        (status = "5XX", description = "The server or a plugin failed, timed out, or is unavailable (codes in docs/api.md)", body = Envelope<Value>),
    ))]
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
            SessionDestroyed {
                session_id: s.id.clone(),
                session_name: s.name.clone(),
                resource_type: s.resource_type.clone(),
                destroyed: true,
            },
            Map::new(),
        ),
        Err(e) => ApiError::new(e, &id).into_response(),
    }
}

/// One session as listings show it.
pub fn session_info(s: &Session, ttl: std::time::Duration) -> SessionInfo {
    SessionInfo {
        resource_type: s.resource_type.clone(),
        session_id: s.id.clone(),
        session_name: s.name.clone(),
        status: s.status(),
        created_at: rfc3339(s.created_at),
        last_activity: rfc3339(s.last_activity()),
        expires_at: rfc3339(s.expires_at(ttl)),
        temporary: s.temporary,
    }
}

/// The worker's sessions (named and temporary).
#[utoipa::path(post, path = "/session/list", operation_id = "session_list", tag = "sessions",
    request_body = WorkerBody,
    params(WorkerHeader),
    responses(
        (status = 200, description = "Success", body = Envelope<SessionList>),
        (status = "4XX", description = "Refused: the envelope names the problem (codes in docs/api.md)", body = Envelope<Value>),
        (status = "5XX", description = "The server or a plugin failed, timed out, or is unavailable (codes in docs/api.md)", body = Envelope<Value>),
    ))]
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
    let sessions: Vec<SessionInfo> = state
        .core
        .sessions
        .list(&worker)
        .iter()
        .map(|s| session_info(s, ttl))
        .collect();
    let count = sessions.len();
    ok(
        &id,
        SessionList {
            worker_id: worker,
            sessions,
            count,
        },
        Map::new(),
    )
}

/// Restarts the TTL of the worker's sessions (of one resource type, if named).
#[utoipa::path(post, path = "/session/refresh", operation_id = "session_refresh", tag = "sessions",
    request_body = WorkerBody,
    params(WorkerHeader),
    responses(
        (status = 200, description = "Success", body = Envelope<Refreshed>),
        (status = "4XX", description = "Refused: the envelope names the problem (codes in docs/api.md)", body = Envelope<Value>),
        (status = "5XX", description = "The server or a plugin failed, timed out, or is unavailable (codes in docs/api.md)", body = Envelope<Value>),
    ))]
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
            let refreshed: Vec<RefreshedSession> = sessions
                .iter()
                .map(|s| RefreshedSession {
                    resource_type: s.resource_type.clone(),
                    session_id: s.id.clone(),
                    expires_at: rfc3339(s.expires_at(ttl)),
                })
                .collect();
            let refreshed_count = refreshed.len();
            ok(
                &id,
                Refreshed {
                    worker_id: worker,
                    expires_at,
                    refreshed,
                    refreshed_count,
                },
                Map::new(),
            )
        }
        Err(e) => ApiError::new(e, &id).into_response(),
    }
}
