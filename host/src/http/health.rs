use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use super::time::rfc3339;
use crate::compat;

/// `GET /health`: no envelope, no auth. One route serves both surfaces, whose
/// contracts disagree on the body: the AgentFlow SDK (every request of it
/// carries `X-Worker-ID`) gets the Python server's `{"status": "healthy",
/// "timestamp"}`, everyone else the native `{"status": "ok", "version"}`.
/// Each body also carries the other's extra field.
pub async fn health(headers: HeaderMap) -> Json<Value> {
    if compat::health::from_sdk(&headers) {
        return Json(compat::health::healthy());
    }
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "timestamp": rfc3339(std::time::SystemTime::now()),
    }))
}
