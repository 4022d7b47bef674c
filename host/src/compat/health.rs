//! `GET /health` for the SDK and `GET /ready` (bare answers).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};

use super::envelope::bare;
use super::time::now;
use crate::web::routing::WORKER_HEADER;
use crate::web::AppState;

/// Does this request come from the AgentFlow SDK? (It sends the routing
/// header on every request.)
pub fn from_sdk(headers: &HeaderMap) -> bool {
    headers.contains_key(WORKER_HEADER)
}

/// The Python server's health body (plus the host version).
pub fn healthy() -> Value {
    json!({"status": "healthy", "timestamp": now(), "version": env!("CARGO_PKG_VERSION")})
}

/// 200 while serving; 503 `warming` until the plugins in `server.warmup` are
/// warm (a balancer waits for them), `warmup_failed` while one of them failed,
/// and `draining` from the moment shutdown begins, so a balancer stops sending
/// new work (calls in flight still finish). See [`crate::web::ready`].
pub async fn ready(State(state): State<AppState>) -> Response {
    let (status, body) = crate::web::ready::answer(&state.core);
    bare(status, json!(body))
}
