//! `POST /shutdown`: reply first, then stop.

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::envelope::{ok, Envelope};
use super::extract::Body;
use crate::shutdown::StopRequest;
use crate::web::AppState;
use crate::web::RequestId;

/// `data` of `/shutdown`.
#[derive(Serialize, ToSchema)]
pub struct ShutdownData {
    /// `shutting_down`.
    #[schema(value_type = String)]
    status: &'static str,
    force: bool,
    cleanup_sessions: bool,
    active_sessions: usize,
}

/// Stops the server: drains calls in flight, then ends sessions and plugins.
#[utoipa::path(post, path = "/shutdown", operation_id = "shutdown", tag = "server",
    request_body = StopRequest,
    responses(
        (status = 200, description = "Success", body = Envelope<ShutdownData>),
        (status = "4XX", description = "Refused: the envelope names the problem (codes in docs/api.md)", body = Envelope<Value>),
        (status = "5XX", description = "The server or a plugin failed, timed out, or is unavailable (codes in docs/api.md)", body = Envelope<Value>),
    ))]
pub async fn shutdown(
    State(state): State<AppState>,
    id: RequestId,
    Body(body): Body<StopRequest>,
) -> Response {
    let sessions = state.core.sessions.all().len();
    state.shutdown.request(body);
    ok(
        &id,
        ShutdownData {
            status: "shutting_down",
            force: body.force,
            cleanup_sessions: body.cleanup_sessions,
            active_sessions: sessions,
        },
        Map::new(),
    )
}
