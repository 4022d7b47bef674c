//! `GET /health` for the SDK and `GET /ready` (bare answers).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::envelope::bare;
use super::time::now;
use crate::web::AppState;

/// The header every SDK request carries.
pub const SDK_HEADER: &str = "x-worker-id";

/// Does this request come from the AgentFlow SDK?
pub fn from_sdk(headers: &HeaderMap) -> bool {
    headers.contains_key(SDK_HEADER)
}

/// The Python server's health body (plus the host version).
pub fn healthy() -> Value {
    json!({"status": "healthy", "timestamp": now(), "version": env!("CARGO_PKG_VERSION")})
}

pub async fn ready(State(state): State<AppState>) -> Response {
    let core = &state.core;
    bare(
        StatusCode::OK,
        json!({
            "status": "ready",
            "tools_count": core.tool_list(false).len(),
            "active_workers": core.sessions.worker_count(),
            "total_sessions": core.sessions.all().len(),
        }),
    )
}
