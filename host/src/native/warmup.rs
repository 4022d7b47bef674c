//! `POST /warmup` and `GET /warmup/status`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map};

use super::envelope::ok;
use super::extract::Body;
use crate::core::ident::Id;
use crate::web::AppState;
use crate::web::RequestId;

#[derive(Deserialize)]
pub struct WarmupBody {
    #[serde(default)]
    backends: Option<Vec<Id>>,
}

pub async fn warmup(
    State(state): State<AppState>,
    id: RequestId,
    Body(body): Body<WarmupBody>,
) -> Response {
    let names = body
        .backends
        .map(|b| b.into_iter().map(Id::into_string).collect());
    let results = state.core.warmup(names).await;
    let failed: Vec<&String> = results
        .iter()
        .filter(|(_, r)| !r.warmed_up)
        .map(|(n, _)| n)
        .collect();
    let data = json!({"backends": results});
    if failed.is_empty() {
        return ok(&id, data, Map::new());
    }
    let message = format!(
        "Warmup failed for {}",
        failed
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({
            "code": 2003,
            "message": message,
            "data": data,
            "meta": {"request_id": id.0, "error_type": "WarmupError"},
        })),
    )
        .into_response()
}

pub async fn status(State(state): State<AppState>, id: RequestId) -> Response {
    ok(
        &id,
        json!({"backends": state.core.warmup_status()}),
        Map::new(),
    )
}
