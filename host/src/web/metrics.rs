//! `GET /metrics` (Prometheus text, `crate::metrics`) and the middleware that
//! counts every request by route and status. Same token as the rest unless
//! `server.metrics_public = true`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::metrics::{Refusal, CONTENT_TYPE};

pub const PATH: &str = "/metrics";

/// Middleware: counts the request under its route and status, with its
/// latency (to the response head: a stream's body is not waited for).
pub async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(metrics) = state.core.metrics.clone() else {
        return next.run(req).await;
    };
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let res = next.run(req).await;
    let status = res.status();
    // Only the body limit answers 413, on every surface (each reads bodies
    // its own way, so it is counted here, once).
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        metrics.refused(Refusal::BodyLimit);
    }
    metrics.requests.record(
        route.as_ref().map(MatchedPath::as_str),
        status.as_u16(),
        started.elapsed(),
    );
    res
}

/// `GET /metrics`.
pub async fn serve(State(state): State<AppState>) -> Response {
    match state.core.render_metrics() {
        Some(text) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            text,
        )
            .into_response(),
        // Not routed when metrics are off; kept total anyway.
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
