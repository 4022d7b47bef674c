//! `POST /api/v1/server/shutdown`: answer, then stop as `/shutdown` does.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::envelope::bare;
use super::extract::{optional, Checked, Field, Kind, Model};
use crate::shutdown::StopRequest;
use crate::web::AppState;

impl Model for StopRequest {
    const FIELDS: &'static [Field] = &[
        optional("force", Kind::Bool),
        optional("cleanup_sessions", Kind::Bool),
    ];
}

pub async fn shutdown(
    State(state): State<AppState>,
    Checked(body): Checked<StopRequest>,
) -> Response {
    // The answer goes out before cleanup starts: report what will be cleaned.
    let sessions_cleaned = if body.cleanup_sessions {
        state.core.sessions.all().len()
    } else {
        0
    };
    state.shutdown.request(body);
    bare(
        StatusCode::OK,
        json!({
            "status": "success",
            "message": "Server shutdown initiated",
            "sessions_cleaned": sessions_cleaned,
        }),
    )
}
