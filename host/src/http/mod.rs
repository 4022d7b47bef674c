//! The native HTTP API (`docs/api.md`): a thin mapping from routes and JSON bodies
//! to the core, and from core errors to envelopes and statuses.

mod auth;
pub(crate) mod envelope;
mod execute;
mod extract;
mod health;
pub mod request_id;
mod sessions;
mod shutdown;
mod status;
mod time;
mod tools;
mod warmup;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::compat;
use crate::core::error::CoreError;
use crate::core::Core;
use crate::shutdown::ShutdownHandle;
pub use envelope::ApiError;
use request_id::RequestId;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub core: Arc<Core>,
    pub shutdown: ShutdownHandle,
}

impl AsRef<AppState> for AppState {
    fn as_ref(&self) -> &AppState {
        self
    }
}

/// The native routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/execute", post(execute::execute))
        .route("/execute/batch", post(execute::batch))
        .route("/session/create", post(sessions::create))
        .route("/session/destroy", post(sessions::destroy))
        .route("/session/list", post(sessions::list))
        .route("/session/refresh", post(sessions::refresh))
        .route("/tools", get(tools::list))
        .route("/warmup", post(warmup::warmup))
        .route("/warmup/status", get(warmup::status))
        .route("/shutdown", post(shutdown::shutdown))
}

/// The whole application: native routes, `/health`, the extra surfaces passed
/// in, JSON 404/405, body limit, request ids, and refusal while shutting down.
pub fn app(state: AppState, extra: Router<AppState>) -> Router {
    let limit = state.core.config.server.body_limit;
    Router::new()
        .route("/health", get(health::health))
        .merge(routes())
        .merge(extra)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            refuse_while_stopping,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(request_id::assign))
        .with_state(state)
}

async fn not_found(id: RequestId, req: Request) -> Response {
    if compat::owns(req.uri().path(), req.headers()) {
        return compat::not_routed(StatusCode::NOT_FOUND);
    }
    envelope::not_routed(
        StatusCode::NOT_FOUND,
        &id,
        &format!("Not Found: {}", req.uri().path()),
    )
}

async fn method_not_allowed(id: RequestId, req: Request) -> Response {
    if compat::owns(req.uri().path(), req.headers()) {
        return compat::not_routed(StatusCode::METHOD_NOT_ALLOWED);
    }
    envelope::not_routed(
        StatusCode::METHOD_NOT_ALLOWED,
        &id,
        &format!("Method Not Allowed: {} {}", req.method(), req.uri().path()),
    )
}

/// Once shutdown began, new requests get 5002 (health still answers).
async fn refuse_while_stopping(
    State(state): State<AppState>,
    id: RequestId,
    req: Request,
    next: Next,
) -> Response {
    if state.core.is_shutting_down() && !req.uri().path().ends_with("/health") {
        return refusal(&req, CoreError::ShuttingDown, &id);
    }
    next.run(req).await
}

/// An error raised before routing (auth, shutting down), in the shape of the
/// surface the request is for.
fn refusal(req: &Request, err: CoreError, id: &RequestId) -> Response {
    if compat::owns(req.uri().path(), req.headers()) {
        compat::error_response(&err, id)
    } else {
        ApiError::new(err, id).into_response()
    }
}

/// Decodes `bytes` as each native request body (for the fuzz target).
pub(crate) fn fuzz_decode(bytes: &[u8]) {
    let _ = extract::decode::<execute::ExecuteBody>(bytes);
    let _ = extract::decode::<execute::BatchBody>(bytes);
    let _ = extract::decode::<sessions::CreateBody>(bytes);
    let _ = extract::decode::<sessions::TargetBody>(bytes);
    let _ = extract::decode::<sessions::WorkerBody>(bytes);
    let _ = extract::decode::<warmup::WarmupBody>(bytes);
    let _ = extract::decode::<crate::shutdown::StopRequest>(bytes);
}
