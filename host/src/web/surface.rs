//! A surface as the web layer sees it.

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Router;
use serde_json::Value;

use super::{AppState, RequestId};
use crate::core::error::CoreError;

/// One API surface: its routes and its wire format for answers the web layer
/// makes on its behalf.
#[derive(Clone)]
pub struct Surface {
    /// For logs.
    pub name: &'static str,
    pub routes: Router<AppState>,
    /// Does this request belong to the surface?
    pub owns: fn(&str, &HeaderMap) -> bool,
    /// The `/health` body, for surfaces that claim `/health` requests.
    pub health: Option<fn() -> Value>,
    /// 404 or 405.
    pub not_routed: fn(StatusCode, &Request, &RequestId) -> Response,
    /// An error raised before routing (auth, shutting down).
    pub refusal: fn(CoreError, &RequestId) -> Response,
}

impl Surface {
    /// The surface a request belongs to: the first that owns it, else the last.
    pub fn for_request<'a>(all: &'a [Surface], req: &Request) -> Option<&'a Surface> {
        let (path, headers) = (req.uri().path(), req.headers());
        all.iter().find(|s| (s.owns)(path, headers)).or(all.last())
    }
}
