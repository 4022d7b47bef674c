use axum::Json;
use serde_json::{json, Value};

/// `GET /health`: no envelope, no auth.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}
