//! Answers made before or instead of routing, in the owning surface's shape.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::{AppState, RequestId, Surface};
use crate::core::error::CoreError;

type Surfaces = Extension<Arc<Vec<Surface>>>;

/// `GET /health`: no envelope, no auth; the body is the owning surface's.
pub async fn health(Extension(all): Surfaces, req: Request) -> Response {
    let body = Surface::for_request(&all, &req)
        .and_then(|s| s.health)
        .map(|f| f())
        .unwrap_or_else(|| json!({"status": "ok"}));
    Json(body).into_response()
}

pub async fn not_found(Extension(all): Surfaces, id: RequestId, req: Request) -> Response {
    not_routed(&all, StatusCode::NOT_FOUND, &req, &id)
}

pub async fn method_not_allowed(Extension(all): Surfaces, id: RequestId, req: Request) -> Response {
    not_routed(&all, StatusCode::METHOD_NOT_ALLOWED, &req, &id)
}

fn not_routed(all: &[Surface], status: StatusCode, req: &Request, id: &RequestId) -> Response {
    match Surface::for_request(all, req) {
        Some(s) => (s.not_routed)(status, req, id),
        None => status.into_response(),
    }
}

/// Once shutdown began, new requests are refused (probes still answer:
/// `/ready` says the host is draining).
pub async fn refuse_while_stopping(
    State(state): State<AppState>,
    id: RequestId,
    req: Request,
    next: Next,
) -> Response {
    if state.core.is_shutting_down() && !super::drain::answers_while_draining(req.uri().path()) {
        state
            .core
            .note_refusal(crate::metrics::Refusal::ShuttingDown);
        return refusal(&req, CoreError::ShuttingDown, &id);
    }
    next.run(req).await
}

/// An error raised before routing, in the shape of the request's surface.
pub fn refusal(req: &Request, err: CoreError, id: &RequestId) -> Response {
    let all = req.extensions().get::<Arc<Vec<Surface>>>();
    match all.and_then(|all| Surface::for_request(all, req)) {
        Some(s) => (s.refusal)(err, id),
        None => (StatusCode::SERVICE_UNAVAILABLE, err.to_string()).into_response(),
    }
}
