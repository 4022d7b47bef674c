//! `/trajectory/…`: what recorded sessions left (`docs/trajectories.md`).
//! Listing and deleting answer envelopes; the log, images, video and export
//! are streamed as they are read; `view` is the viewer page (`viewer.rs`).

mod stream;
mod viewer;

use std::collections::HashMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map};

use super::envelope::{ok, ApiError};
use crate::core::error::CoreError;
use crate::core::ident::Id;
use crate::core::trajectory::Source;
use crate::web::{AppState, RequestId};
pub use viewer::view;

/// A path parameter, or the error naming it.
fn segment<T>(p: Result<Path<T>, PathRejection>) -> Result<T, CoreError> {
    p.map(|Path(v)| v)
        .map_err(|e| CoreError::InvalidParams(format!("Invalid path: {e}")))
}

/// `GET /trajectory/list?worker_id=`: every trajectory, or one worker's.
pub async fn list(
    State(state): State<AppState>,
    id: RequestId,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let worker = match query.get("worker_id").filter(|w| !w.is_empty()) {
        Some(w) => match Id::parse("worker_id", w) {
            Ok(w) => Some(w.into_string()),
            Err(e) => return ApiError::new(e, &id).into_response(),
        },
        None => None,
    };
    match state.core.trajectory_list(worker.clone()).await {
        Ok(list) => ok(
            &id,
            json!({"worker_id": worker, "trajectories": list, "count": list.len()}),
            Map::new(),
        ),
        Err(e) => ApiError::new(e, &id).into_response(),
    }
}

/// `GET /trajectory/{session_id}`: the JSON Lines log, streamed.
pub async fn log(
    State(state): State<AppState>,
    id: RequestId,
    session: Result<Path<String>, PathRejection>,
) -> Response {
    let result = match segment(session) {
        Ok(s) => state.core.trajectory_log(s).await,
        Err(e) => Err(e),
    };
    file(result, "application/x-ndjson", &id)
}

/// `GET /trajectory/{session_id}/images/{name}`: one stored screenshot.
pub async fn image(
    State(state): State<AppState>,
    id: RequestId,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let result = match segment(path) {
        Ok((s, name)) => state.core.trajectory_image(s, name).await,
        Err(e) => Err(e),
    };
    // Named by content: the same URL never shows another picture.
    let mut res = file(result, "image/png", &id);
    if res.status().is_success() {
        res.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=31536000, immutable"),
        );
    }
    res
}

/// `GET /trajectory/{session_id}/video`: the screen video.
pub async fn video(
    State(state): State<AppState>,
    id: RequestId,
    session: Result<Path<String>, PathRejection>,
) -> Response {
    let result = match segment(session) {
        Ok(s) => state.core.trajectory_video(s).await,
        Err(e) => Err(e),
    };
    file(result, "video/mp4", &id)
}

/// `GET /trajectory/{session_id}/export`: a `.tar.gz` of the log, its
/// images and video, made while it is sent.
pub async fn export(
    State(state): State<AppState>,
    id: RequestId,
    session: Result<Path<String>, PathRejection>,
) -> Response {
    let result = match segment(session) {
        Ok(s) => state.core.trajectory_export(s).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(export) => {
            let name = format!("attachment; filename=\"{}.tar.gz\"", export.session_id);
            let body = stream::blocking_body(move |out| export.write_to(out));
            let mut res = body.into_response();
            let headers = res.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/gzip"),
            );
            if let Ok(v) = HeaderValue::from_str(&name) {
                headers.insert(header::CONTENT_DISPOSITION, v);
            }
            res
        }
        Err(e) => ApiError::new(e, &id).into_response(),
    }
}

/// `DELETE /trajectory/{session_id}`.
pub async fn delete(
    State(state): State<AppState>,
    id: RequestId,
    session: Result<Path<String>, PathRejection>,
) -> Response {
    let result = match segment(session) {
        Ok(s) => state.core.trajectory_delete(s).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(summary) => ok(
            &id,
            json!({"session_id": summary.session_id, "deleted": true, "steps": summary.steps, "bytes": summary.bytes}),
            Map::new(),
        ),
        Err(e) => ApiError::new(e, &id).into_response(),
    }
}

/// A file as the answer, or the error's envelope.
fn file(source: Result<Source, CoreError>, content_type: &'static str, id: &RequestId) -> Response {
    match source {
        Ok(Source { mut file, len }) => {
            let body = stream::blocking_body(move |out| std::io::copy(&mut file, out).map(drop));
            let mut res = body.into_response();
            let headers = res.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            res
        }
        Err(e) => ApiError::new(e, id).into_response(),
    }
}
