//! `POST /shutdown`: reply first, then stop.

use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Map};

use super::envelope::ok;
use super::extract::Body;
use crate::shutdown::StopRequest;
use crate::web::AppState;
use crate::web::RequestId;

pub async fn shutdown(
    State(state): State<AppState>,
    id: RequestId,
    Body(body): Body<StopRequest>,
) -> Response {
    let sessions = state.core.sessions.all().len();
    state.shutdown.request(body);
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
