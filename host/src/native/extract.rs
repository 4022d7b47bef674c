//! Request bodies: JSON decoded into typed requests, with errors that name the
//! field (1002), an empty body read as `{}`, and the size limit (413).

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::envelope::ApiError;
use crate::core::error::CoreError;
use crate::web::body::read_bytes;
use crate::web::{AppState, RequestId};

/// A JSON body decoded into `T`.
pub struct Body<T>(pub T);

/// Why a body could not be decoded, as the core's error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CoreError> {
    let text = if bytes.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        bytes
    };
    // Fast path: straight into `T`. Only a body that fails is decoded again
    // through a `Value` with path tracking, to name the field at fault.
    // (Objects only: serde would also read a struct from a JSON array.)
    let is_object = text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if is_object {
        if let Ok(decoded) = serde_json::from_slice(text) {
            return Ok(decoded);
        }
    }
    let value: serde_json::Value = serde_json::from_slice(text)
        .map_err(|e| CoreError::InvalidParams(format!("Malformed JSON body: {e}")))?;
    if !value.is_object() {
        return Err(CoreError::InvalidParams(
            "The request body must be a JSON object".into(),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = plain_types(&e.into_inner().to_string());
        CoreError::InvalidParams(field_message(&path, &inner))
    })
}

/// serde names the Rust type it wanted ("expected f64"); a client knows JSON types.
fn plain_types(message: &str) -> String {
    const NAMES: [(&str, &str); 10] = [
        ("f64", "a number"),
        ("f32", "a number"),
        ("u64", "a non-negative integer"),
        ("u32", "a non-negative integer"),
        ("u16", "a non-negative integer"),
        ("u8", "a non-negative integer"),
        ("usize", "a non-negative integer"),
        ("i64", "an integer"),
        ("i32", "an integer"),
        ("isize", "an integer"),
    ];
    for (rust, json) in NAMES {
        if let Some(head) = message.strip_suffix(&format!("expected {rust}")) {
            return format!("{head}expected {json}");
        }
    }
    message.to_string()
}

/// Turns serde's wording into "Parameter 'x' ..." messages.
fn field_message(path: &str, inner: &str) -> String {
    if let Some(rest) = inner.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        let full = if path == "." {
            field.to_string()
        } else {
            format!("{path}.{field}")
        };
        return format!("Missing required field '{full}'");
    }
    if path == "." {
        format!("Invalid request: {inner}")
    } else {
        format!("Parameter '{path}': {inner}")
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T>
where
    S: AsRef<AppState>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(String::new()));
        let limit = state.as_ref().core.config.server.body_limit;
        let bytes = read_bytes(req, state, limit)
            .await
            .map_err(|e| ApiError::new(e, &request_id))?;
        decode(&bytes)
            .map(Body)
            .map_err(|e| ApiError::new(e, &request_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Req {
        worker_id: String,
        timeout: Option<f64>,
    }

    #[test]
    fn messages_name_the_field() {
        let e = decode::<Req>(br#"{"timeout": 1}"#).unwrap_err().to_string();
        assert_eq!(e, "Missing required field 'worker_id'");
        let e = decode::<Req>(br#"{"worker_id": 5}"#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("Parameter 'worker_id'"), "{e}");
        let e = decode::<Req>(br#"{"worker_id": "w", "timeout": "x"}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "Parameter 'timeout': invalid type: string \"x\", expected a number"
        );
        let e = decode::<Req>(b"{nope").unwrap_err().to_string();
        assert!(e.starts_with("Malformed JSON"), "{e}");
        let e = decode::<Req>(br#"["w", 1]"#).unwrap_err().to_string();
        assert!(e.contains("must be a JSON object"), "{e}");
        let ok = decode::<Req>(br#"{"worker_id": "w", "timeout": 2}"#).unwrap();
        assert_eq!((ok.worker_id.as_str(), ok.timeout), ("w", Some(2.0)));
    }
}
