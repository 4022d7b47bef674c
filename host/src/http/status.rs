//! The one place where an API error code becomes an HTTP status (native API).

use axum::http::StatusCode;

use crate::core::error::CoreError;

pub fn status_for(err: &CoreError) -> StatusCode {
    match err {
        CoreError::ToolNotFound(_) | CoreError::AmbiguousTool { .. } => StatusCode::NOT_FOUND,
        CoreError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        CoreError::InvalidParams(_) => StatusCode::BAD_REQUEST,
        CoreError::SessionNotFound(_) => StatusCode::NOT_FOUND,
        CoreError::SessionBroken(_) => StatusCode::CONFLICT,
        CoreError::WorkerNotFound(_) | CoreError::ResourceNotFound(_) => StatusCode::NOT_FOUND,
        CoreError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        CoreError::Backend(_) => StatusCode::BAD_GATEWAY,
        CoreError::Timeout { .. } | CoreError::PluginTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        // Only MCP clients cancel; a native client that went away hears nothing.
        CoreError::Cancelled => StatusCode::GATEWAY_TIMEOUT,
        CoreError::NotWarmedUp(_) | CoreError::Unavailable(_) | CoreError::ShuttingDown => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        CoreError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
