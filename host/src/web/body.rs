//! Reading a request body within the configured limit; each surface decodes
//! and reports errors its own way.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;

use crate::core::error::CoreError;

/// Reads the raw body: [`CoreError::BodyTooLarge`] past `limit`.
pub async fn read_bytes<S: Send + Sync>(
    req: Request,
    state: &S,
    limit: usize,
) -> Result<Bytes, CoreError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            CoreError::BodyTooLarge { limit }
        } else {
            CoreError::InvalidParams(format!("Cannot read the request body: {rejection}"))
        }
    })
}
