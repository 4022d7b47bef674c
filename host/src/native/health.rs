use serde_json::{json, Value};

use super::time::rfc3339;

/// The native `/health` body.
pub fn body() -> Value {
    json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "timestamp": rfc3339(std::time::SystemTime::now()),
    })
}
