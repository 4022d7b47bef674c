//! The native HTTP API (`docs/api.md`): a thin mapping from routes and JSON
//! bodies to the core, and from core errors to envelopes, codes and statuses
//! (`codes.rs`). It owns every request no other surface claims.

mod codes;
pub(crate) mod envelope;
mod execute;
mod extract;
mod health;
pub(crate) mod openapi;
mod sessions;
mod shutdown;
mod snapshots;
mod stream;
mod time;
mod tools;
mod trajectories;
mod warmup;

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::core::error::CoreError;
use crate::web::{AppState, RequestId, Surface};
pub use envelope::ApiError;

/// The native surface; list it last: it answers for whatever no other owns.
pub fn surface() -> Surface {
    Surface {
        name: "native",
        routes: routes(),
        owns: |_: &str, _: &HeaderMap| true,
        health: Some(health::body),
        not_routed,
        refusal,
    }
}

fn routes() -> Router<AppState> {
    Router::new()
        .route("/execute", post(execute::execute))
        .route("/execute/batch", post(execute::batch))
        .route("/execute/stream", post(stream::stream))
        .route("/session/create", post(sessions::create))
        .route("/session/destroy", post(sessions::destroy))
        .route("/session/list", post(sessions::list))
        .route("/session/refresh", post(sessions::refresh))
        .route("/session/snapshot", post(snapshots::snapshot))
        .route("/session/fork", post(snapshots::fork))
        .route("/snapshot/list", post(snapshots::list).get(snapshots::list))
        .route("/snapshot/delete", post(snapshots::delete))
        .route("/tools", get(tools::list))
        .route("/warmup", post(warmup::warmup))
        .route("/warmup/status", get(warmup::status))
        .route("/shutdown", post(shutdown::shutdown))
        .route("/trajectory/list", get(trajectories::list))
        .route(
            "/trajectory/{session_id}",
            get(trajectories::log).delete(trajectories::delete),
        )
        .route("/trajectory/{session_id}/export", get(trajectories::export))
        .route("/trajectory/{session_id}/view", get(trajectories::view))
        .route("/trajectory/{session_id}/video", get(trajectories::video))
        .route(
            "/trajectory/{session_id}/images/{image}",
            get(trajectories::image),
        )
        .route(openapi::PATH, get(openapi::serve))
}

fn not_routed(status: StatusCode, req: &Request, id: &RequestId) -> Response {
    let message = if status == StatusCode::METHOD_NOT_ALLOWED {
        format!("Method Not Allowed: {} {}", req.method(), req.uri().path())
    } else {
        format!("Not Found: {}", req.uri().path())
    };
    envelope::not_routed(status, id, &message)
}

fn refusal(err: CoreError, id: &RequestId) -> Response {
    ApiError::new(err, id).into_response()
}

/// Decodes `bytes` as each native request body (for the fuzz target).
pub(crate) fn fuzz_decode(bytes: &[u8]) {
    let _ = extract::decode::<execute::ExecuteBody>(bytes);
    let _ = extract::decode::<execute::BatchBody>(bytes);
    let _ = extract::decode::<sessions::CreateBody>(bytes);
    let _ = extract::decode::<sessions::TargetBody>(bytes);
    let _ = extract::decode::<sessions::WorkerBody>(bytes);
    let _ = extract::decode::<warmup::WarmupBody>(bytes);
    let _ = extract::decode::<snapshots::SnapshotBody>(bytes);
    let _ = extract::decode::<snapshots::ForkBody>(bytes);
    let _ = extract::decode::<crate::shutdown::StopRequest>(bytes);
}
