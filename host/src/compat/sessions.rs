//! `POST /api/v1/session/create|destroy|list|refresh`. The Python server read
//! these bodies as plain dicts, so missing fields are 400/4002, not 422.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::codes::{Code, Mapped};
use super::envelope::{self, Meta};
use super::extract::{check_text, optional, present, Checked, Field, Kind, Model};
use super::time::iso;
use crate::core::error::{CoreError, CoreResult};
use crate::core::ident;
use crate::core::session::Session;
use crate::web::{AppState, RequestId, Routing};

#[derive(Deserialize)]
pub struct CreateBody {
    worker_id: Option<String>,
    resource_type: Option<String>,
    #[serde(default)]
    session_config: Value,
    custom_name: Option<String>,
}

impl Model for CreateBody {
    const FIELDS: &'static [Field] = &[
        optional("worker_id", Kind::Str),
        optional("resource_type", Kind::Str),
        optional("session_config", Kind::Object),
        optional("custom_name", Kind::Str),
    ];
}

/// `{worker_id, resource_type?}`.
#[derive(Deserialize)]
pub struct TargetBody {
    pub worker_id: Option<String>,
    pub resource_type: Option<String>,
}

impl Model for TargetBody {
    const FIELDS: &'static [Field] = &[
        optional("worker_id", Kind::Str),
        optional("resource_type", Kind::Str),
    ];
}

pub const BOTH_REQUIRED: &str = "worker_id and resource_type required";
pub const WORKER_REQUIRED: &str = "worker_id required";

/// 400/4002 for a missing field.
pub fn missing(message: &str, meta: &Meta, trace: &RequestId) -> Response {
    envelope::failure(&Mapped::new(Code::InvalidRequest, message), meta, trace)
}

/// Checks a worker id and resource type the client sent.
pub fn check_target(worker: &str, rt: &str) -> CoreResult<()> {
    check_text("worker_id", worker)?;
    ident::check("resource_type", rt)
}

/// `compatibility_mode` and its message, for sessions with no plugin behind them.
pub fn add_compatibility(data: &mut Value, session: &Session) {
    if session.backend.is_none() {
        data["compatibility_mode"] = json!(true);
        data["compatibility_message"] = json!(format!(
            "No session backend serves '{}' on this server; the session is kept for compatibility and tools do not use it",
            session.resource_type
        ));
    }
}

/// A failed session initialization: 500 with a 4007 code (docs/compat.md).
pub fn init_failed(message: &str, rt: &str, err: &CoreError) -> Mapped {
    Mapped::new(Code::NotInitialized, message)
        .with_status(StatusCode::INTERNAL_SERVER_ERROR)
        .with_data(json!({
            "session_id": null,
            "session_name": null,
            "resource_type": rt,
            "session_status": "error",
            "error": err.to_string(),
        }))
}

fn no_session(rt: &str) -> Mapped {
    Mapped::new(Code::NotInitialized, format!("No session found for {rt}"))
        .with_status(StatusCode::NOT_FOUND)
}

pub async fn create(
    State(state): State<AppState>,
    trace: RequestId,
    routing: Routing,
    Checked(body): Checked<CreateBody>,
) -> Response {
    let started = Instant::now();
    let meta =
        |sid: Option<&str>| Meta::endpoint("session:create", Some("session"), started).session(sid);
    let (Some(worker), Some(rt)) = (present(&body.worker_id), present(&body.resource_type)) else {
        return missing(BOTH_REQUIRED, &meta(None), &trace);
    };
    let custom = body.custom_name.as_deref();
    if let Err(e) = check_target(worker, rt)
        .and_then(|()| routing.worker(Some(worker)).map(drop))
        .and_then(|()| custom.map_or(Ok(()), |c| check_text("custom_name", c)))
    {
        return envelope::core_failure(&e, &meta(None), &trace);
    }
    match state
        .core
        .create_session(worker, rt, &body.session_config, custom, true)
        .await
    {
        Ok((s, created)) => {
            let mut data = if created {
                json!({
                    "session_id": s.id,
                    "session_name": s.name,
                    "resource_type": s.resource_type,
                    "session_status": s.status(),
                    "error": null,
                })
            } else {
                json!({
                    "status": "exists",
                    "session_id": s.id,
                    "session_name": s.name,
                    "resource_type": s.resource_type,
                })
            };
            add_compatibility(&mut data, &s);
            envelope::success(data, &meta(Some(&s.id)), &trace)
        }
        Err(e @ CoreError::ShuttingDown) => envelope::core_failure(&e, &meta(None), &trace),
        Err(e) => envelope::failure(
            &init_failed("Session creation failed", rt, &e),
            &meta(None),
            &trace,
        ),
    }
}

pub async fn destroy(
    State(state): State<AppState>,
    trace: RequestId,
    routing: Routing,
    Checked(body): Checked<TargetBody>,
) -> Response {
    let started = Instant::now();
    let meta = |sid: Option<&str>| {
        Meta::endpoint("session:destroy", Some("session"), started).session(sid)
    };
    let (Some(worker), Some(rt)) = (present(&body.worker_id), present(&body.resource_type)) else {
        return missing(BOTH_REQUIRED, &meta(None), &trace);
    };
    if let Err(e) = check_target(worker, rt).and_then(|()| routing.worker(Some(worker)).map(drop)) {
        return envelope::core_failure(&e, &meta(None), &trace);
    }
    match state.core.destroy_session(worker, rt).await {
        Ok(s) => envelope::success(
            json!({
                "message": format!("Session destroyed for {rt}"),
                "session_id": s.id,
                "session_name": s.name,
                "resource_type": s.resource_type,
            }),
            &meta(Some(&s.id)),
            &trace,
        ),
        Err(CoreError::WorkerNotFound(_) | CoreError::SessionNotFound(_)) => {
            envelope::failure(&no_session(rt), &meta(None), &trace)
        }
        Err(e) => envelope::core_failure(&e, &meta(None), &trace),
    }
}

pub async fn list(
    State(state): State<AppState>,
    trace: RequestId,
    routing: Routing,
    Checked(body): Checked<TargetBody>,
) -> Response {
    let started = Instant::now();
    let meta = Meta::endpoint("session:list", Some("session"), started);
    let Some(worker) = present(&body.worker_id) else {
        return missing(WORKER_REQUIRED, &meta, &trace);
    };
    if let Err(e) =
        check_text("worker_id", worker).and_then(|()| routing.worker(Some(worker)).map(drop))
    {
        return envelope::core_failure(&e, &meta, &trace);
    }
    let ttl = state.core.sessions.ttl();
    let sessions: Vec<Value> = state
        .core
        .sessions
        .list(worker)
        .iter()
        .map(|s| {
            json!({
                "resource_type": s.resource_type,
                "session_id": s.id,
                "session_name": s.name,
                "status": s.status(),
                // Temporary sessions are the ones the server made by itself for a call.
                "auto_created": s.temporary,
                "created_at": iso(s.created_at),
                "last_activity": iso(s.last_activity()),
                "expires_at": iso(s.expires_at(ttl)),
            })
        })
        .collect();
    envelope::success(
        json!({"worker_id": worker, "count": sessions.len(), "sessions": sessions}),
        &meta,
        &trace,
    )
}

pub async fn refresh(
    State(state): State<AppState>,
    trace: RequestId,
    routing: Routing,
    Checked(body): Checked<TargetBody>,
) -> Response {
    let started = Instant::now();
    let meta = |sid: Option<&str>| {
        Meta::endpoint("session:refresh", Some("session"), started).session(sid)
    };
    let Some(worker) = present(&body.worker_id) else {
        return missing(WORKER_REQUIRED, &meta(None), &trace);
    };
    let rt = present(&body.resource_type);
    let checked = match rt {
        Some(rt) => check_target(worker, rt),
        None => check_text("worker_id", worker),
    };
    if let Err(e) = checked.and_then(|()| routing.worker(Some(worker)).map(drop)) {
        return envelope::core_failure(&e, &meta(None), &trace);
    }
    let ttl = state.core.sessions.ttl();
    match (state.core.sessions.refresh(worker, rt), rt) {
        (Ok(sessions), Some(rt)) => match sessions.first() {
            Some(s) => envelope::success(
                json!({
                    "message": format!("Session refreshed for {rt}"),
                    "resource_type": rt,
                    "session_id": s.id,
                    "expires_at": iso(s.expires_at(ttl)),
                }),
                &meta(Some(&s.id)),
                &trace,
            ),
            None => envelope::failure(&no_session(rt), &meta(None), &trace),
        },
        (Err(CoreError::WorkerNotFound(_) | CoreError::SessionNotFound(_)), Some(rt)) => {
            envelope::failure(&no_session(rt), &meta(None), &trace)
        }
        (Ok(sessions), None) => refreshed_all(worker, &sessions, ttl, &meta(None), &trace),
        // A worker with no sessions has nothing to refresh.
        (Err(CoreError::WorkerNotFound(_)), None) => {
            refreshed_all(worker, &[], ttl, &meta(None), &trace)
        }
        (Err(e), _) => envelope::core_failure(&e, &meta(None), &trace),
    }
}

fn refreshed_all(
    worker: &str,
    sessions: &[std::sync::Arc<Session>],
    ttl: std::time::Duration,
    meta: &Meta,
    trace: &RequestId,
) -> Response {
    let details: Map<String, Value> = sessions
        .iter()
        .map(|s| {
            (
                s.resource_type.clone(),
                json!({"status": "refreshed", "expires_at": iso(s.expires_at(ttl))}),
            )
        })
        .collect();
    envelope::success(
        json!({
            "message": format!("Refreshed {} sessions", sessions.len()),
            "worker_id": worker,
            "refreshed_count": sessions.len(),
            "details": details,
        }),
        meta,
        trace,
    )
}
