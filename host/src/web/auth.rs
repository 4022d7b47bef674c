//! Optional bearer-token authentication for every endpoint but the probes
//! (`/health`, `/ready`), which balancers and Kubernetes call without one,
//! the trajectory viewer page, which holds no data: its script asks for
//! everything with the token (`native/trajectories/viewer.rs`), and
//! `/metrics` when `server.metrics_public = true`.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::request_id::RequestId;
use super::AppState;
use crate::core::error::CoreError;

/// Checks `Authorization: Bearer <token>` in constant time. The token is never logged.
pub async fn require_token(
    State(state): State<AppState>,
    id: RequestId,
    req: Request,
    next: Next,
) -> Response {
    let token = &state.core.config.server.auth_token;
    let path = req.uri().path();
    let public_metrics = state.core.config.server.metrics_public && path == super::metrics::PATH;
    if token.is_empty() || super::drain::is_probe(path) || public_metrics || is_viewer_page(&req) {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let error = match presented {
        None => "Missing bearer token: send 'Authorization: Bearer <token>'",
        Some(p) if bool::from(p.as_bytes().ct_eq(token.as_bytes())) => return next.run(req).await,
        Some(_) => "Invalid bearer token",
    };
    state
        .core
        .note_refusal(crate::metrics::Refusal::Unauthorized);
    super::fallback::refusal(&req, CoreError::Unauthorized(error.into()), &id)
}

/// `GET /trajectory/{session_id}/view`: the same static page for every
/// trajectory (the data behind it needs the token).
fn is_viewer_page(req: &Request) -> bool {
    let get = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    let parts: Vec<&str> = req.uri().path().split('/').collect();
    get && matches!(parts.as_slice(), ["", "trajectory", id, "view"] if !id.is_empty())
}
