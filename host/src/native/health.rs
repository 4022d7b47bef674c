use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::time::rfc3339;

/// The native `/health` body (no envelope).
#[derive(Serialize, ToSchema)]
pub struct HealthBody {
    /// Always `ok`: the process answers (liveness only).
    #[schema(value_type = String)]
    status: &'static str,
    #[schema(value_type = String)]
    version: &'static str,
    timestamp: String,
}

pub fn body() -> Value {
    serde_json::to_value(HealthBody {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        timestamp: rfc3339(std::time::SystemTime::now()),
    })
    .unwrap_or(Value::Null)
}
