//! `POST /shutdown`: reply first, then stop.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Map};

use super::envelope::ok;
use super::extract::Body;
use super::request_id::RequestId;
use super::AppState;
use crate::shutdown::StopRequest;

#[derive(Deserialize)]
pub struct ShutdownBody {
    #[serde(default)]
    force: bool,
    #[serde(default = "yes")]
    cleanup_sessions: bool,
}

fn yes() -> bool {
    true
}

pub async fn shutdown(
    State(state): State<AppState>,
    id: RequestId,
    Body(body): Body<ShutdownBody>,
) -> Response {
    let sessions = state.core.sessions.all().len();
    state.shutdown.request(StopRequest {
        force: body.force,
        cleanup_sessions: body.cleanup_sessions,
    });
    ok(
        &id,
        json!({
            "status": "shutting_down",
            "force": body.force,
            "cleanup_sessions": body.cleanup_sessions,
            "active_sessions": sessions,
        }),
        Map::new(),
    )
}
