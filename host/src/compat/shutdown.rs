//! `POST /api/v1/server/shutdown`: answer, then stop as `/shutdown` does.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::envelope::bare;
use super::extract::{optional, Checked, Field, Kind, Model};
use crate::http::AppState;
use crate::shutdown::StopRequest;

#[derive(Deserialize)]
pub struct ShutdownBody {
    #[serde(default)]
    force: bool,
    #[serde(default = "yes")]
    cleanup_sessions: bool,
}

impl Model for ShutdownBody {
    const FIELDS: &'static [Field] = &[
        optional("force", Kind::Bool),
        optional("cleanup_sessions", Kind::Bool),
    ];
}

fn yes() -> bool {
    true
}

pub async fn shutdown(
    State(state): State<AppState>,
    Checked(body): Checked<ShutdownBody>,
) -> Response {
    // The answer goes out before cleanup starts: report what will be cleaned.
    let sessions_cleaned = if body.cleanup_sessions {
        state.core.sessions.all().len()
    } else {
        0
    };
    state.shutdown.request(StopRequest {
        force: body.force,
        cleanup_sessions: body.cleanup_sessions,
    });
    bare(
        StatusCode::OK,
        json!({
            "status": "success",
            "message": "Server shutdown initiated",
            "sessions_cleaned": sessions_cleaned,
        }),
    )
}
