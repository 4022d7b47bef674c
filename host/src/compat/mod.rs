//! The `/api/v1/` compatibility surface (`docs/compat.md`): what the AgentFlow
//! Python SDK and the pipelines built on it speak. It is a mapping over the
//! same core as the native API (one registry, one session table); only paths,
//! field names, codes, shapes and messages differ.

mod codes;
mod envelope;
mod execute;
mod extract;
mod health;
mod init;
mod lifecycle;
mod sessions;
mod shutdown;
mod time;
mod tools;
mod warmup;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use crate::core::error::CoreError;
use crate::web::{AppState, RequestId, Surface};

/// The compat surface. `GET /health` is shared with the native API: a request
/// from the SDK (see [`owns`]) gets this surface's body.
pub fn surface() -> Surface {
    Surface {
        name: "compat",
        routes: routes(),
        owns,
        health: Some(health::healthy),
        not_routed: |status: StatusCode, _: &axum::extract::Request, _: &RequestId| {
            not_routed(status)
        },
        refusal: |err: CoreError, id: &RequestId| error_response(&err, id),
    }
}

fn routes() -> Router<AppState> {
    Router::new()
        .route("/ready", get(health::ready))
        .route("/api/v1/execute", post(execute::execute))
        .route("/api/v1/execute/batch", post(execute::batch))
        .route("/api/v1/session/create", post(sessions::create))
        .route("/api/v1/session/destroy", post(sessions::destroy))
        .route("/api/v1/session/list", post(sessions::list))
        .route("/api/v1/session/refresh", post(sessions::refresh))
        .route("/api/v1/lifecycle/heartbeat", post(lifecycle::heartbeat))
        .route("/api/v1/lifecycle/status", post(lifecycle::status))
        .route("/api/v1/worker/disconnect", post(lifecycle::disconnect))
        .route("/api/v1/init/resource", post(init::resource))
        .route("/api/v1/init/batch", post(init::batch))
        .route("/api/v1/init/from-config", post(init::from_config))
        .route("/api/v1/tools", get(tools::list))
        .route("/api/v1/tools/{name}/schema", get(tools::schema))
        .route("/api/v1/warmup", post(warmup::warmup))
        .route("/api/v1/warmup/status", get(warmup::status))
        .route("/api/v1/server/shutdown", post(shutdown::shutdown))
}

/// Does this request belong to the compat surface (so that answers made
/// before or instead of routing, such as 404, 405, 401 and refusals while
/// shutting down, take its shape)?
fn owns(path: &str, headers: &HeaderMap) -> bool {
    path == "/api/v1"
        || path.starts_with("/api/v1/")
        || path == "/ready"
        || (path == "/health" && health::from_sdk(headers))
}

/// 404 `{"detail": "Not Found"}` / 405 `{"detail": "Method Not Allowed"}`, as FastAPI answers.
fn not_routed(status: StatusCode) -> Response {
    let detail = if status == StatusCode::METHOD_NOT_ALLOWED {
        "Method Not Allowed"
    } else {
        "Not Found"
    };
    envelope::bare(status, json!({ "detail": detail }))
}

/// A core error raised outside any compat handler, as an envelope.
fn error_response(err: &CoreError, trace: &RequestId) -> Response {
    envelope::core_failure(err, &envelope::Meta::default(), trace)
}

/// Decodes `bytes` as each compat request body (for the fuzz target).
pub(crate) fn fuzz_decode(bytes: &[u8]) {
    let _ = extract::decode::<execute::ExecuteBody>(bytes);
    let _ = extract::decode::<execute::BatchBody>(bytes);
    let _ = extract::decode::<init::ResourceBody>(bytes);
    let _ = extract::decode::<init::BatchBody>(bytes);
    let _ = extract::decode::<init::FromConfigBody>(bytes);
    let _ = extract::decode::<sessions::CreateBody>(bytes);
    let _ = extract::decode::<sessions::TargetBody>(bytes);
    let _ = extract::decode::<crate::shutdown::StopRequest>(bytes);
    let _ = extract::decode::<warmup::WarmupBody>(bytes);
}
