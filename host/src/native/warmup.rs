//! `POST /warmup` and `GET /warmup/status`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::envelope::{ok, ApiError, Envelope};
use super::extract::Body;
use crate::core::error::CoreError;
use crate::core::ident::Id;
use crate::core::warmup::{BackendStatus, WarmupResult};
use crate::web::AppState;
use crate::web::RequestId;

/// `POST /warmup`.
#[derive(Deserialize, ToSchema)]
pub struct WarmupBody {
    /// The backends to load and warm; all known ones when left out or empty.
    #[serde(default)]
    backends: Option<Vec<Id>>,
}

/// `data` of `/warmup` (also when some failed).
#[derive(Serialize, ToSchema)]
pub struct WarmupData {
    backends: BTreeMap<String, WarmupResult>,
}

/// `data` of `/warmup/status`.
#[derive(Serialize, ToSchema)]
pub struct WarmupStatusData {
    backends: BTreeMap<String, BackendStatus>,
    /// Server settings that weaken protection (e.g. `server.metrics_public`).
    warnings: Vec<String>,
}

/// Loads (if only discovered) and warms backends.
#[utoipa::path(post, path = "/warmup", operation_id = "warmup", tag = "plugins",
    request_body = WarmupBody,
    responses(
        (status = 200, description = "Every named backend is warm", body = Envelope<WarmupData>),
        (status = "4XX", description = "Refused: the envelope names the problem (codes in docs/api.md)", body = Envelope<Value>),
        (status = 503, description = "Some failed (2003): every outcome in `data`", body = Envelope<WarmupData>),
        (status = "5XX", description = "The server or a plugin failed, timed out, or is unavailable (codes in docs/api.md)", body = Envelope<Value>),
    ))]
pub async fn warmup(
    State(state): State<AppState>,
    id: RequestId,
    Body(body): Body<WarmupBody>,
) -> Response {
    let names = body
        .backends
        .map(|b| b.into_iter().map(Id::into_string).collect());
    let backends = state.core.warmup(names).await;
    let failed: Vec<&str> = backends
        .iter()
        .filter(|(_, r)| !r.warmed_up)
        .map(|(n, _)| n.as_str())
        .collect();
    if failed.is_empty() {
        return ok(&id, WarmupData { backends }, Map::new());
    }
    let error = CoreError::NotWarmedUp(format!("Warmup failed for {}", failed.join(", ")));
    let status = super::codes::status_for(&error);
    let body = ApiError::new(error, &id).body_with(|_| WarmupData { backends });
    (status, Json(body)).into_response()
}

/// Every backend the host knows, with its state.
#[utoipa::path(get, path = "/warmup/status", operation_id = "warmup_status", tag = "plugins",
    responses(
        (status = 200, description = "Success", body = Envelope<WarmupStatusData>),
        (status = "4XX", description = "Refused: the envelope names the problem (codes in docs/api.md)", body = Envelope<Value>),
        (status = "5XX", description = "The server or a plugin failed, timed out, or is unavailable (codes in docs/api.md)", body = Envelope<Value>),
    ))]
pub async fn status(State(state): State<AppState>, id: RequestId) -> Response {
    ok(
        &id,
        WarmupStatusData {
            backends: state.core.warmup_status(),
            warnings: state.core.config.server_warnings(),
        },
        Map::new(),
    )
}
