//! Request bodies checked the way the Python server's FastAPI models checked
//! them: a body that fails gets 422 `{"detail": [...]}` listing every bad
//! field (pydantic's `type`, `loc`, `msg`, `input`), with pydantic's lax
//! coercions (`5.0` and `"5"` are the integer 5; `"true"`, `1` are booleans).
//! An empty body reads as `{}`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use super::envelope::{self, Meta};
use crate::core::error::{CoreError, CoreResult};
use crate::web::AppState;
use crate::web::RequestId;

/// The JSON type a field must have.
pub enum Kind {
    Str,
    Int,
    Bool,
    Object,
    StrList,
    /// A list of objects with these fields (batch actions).
    Records(&'static [Field]),
}

/// One field of a request model.
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

/// A field that must be present.
pub const fn required(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: true,
    }
}

/// A field that may be absent or null.
pub const fn optional(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: false,
    }
}

/// A request model: its fields, checked before serde decodes it.
pub trait Model: DeserializeOwned {
    const FIELDS: &'static [Field];
}

/// A body decoded into `T` after the checks.
pub struct Checked<T>(pub T);

/// One pydantic-style error entry.
fn entry(kind: &str, loc: &[Value], msg: &str, input: &Value) -> Value {
    let mut full = vec![json!("body")];
    full.extend_from_slice(loc);
    json!({"type": kind, "loc": full, "msg": msg, "input": input})
}

/// 422 `{"detail": [...]}`.
pub fn unprocessable(detail: Vec<Value>) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({ "detail": detail })),
    )
        .into_response()
}

fn coerce_int(v: &Value) -> Result<Value, (&'static str, &'static str)> {
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(v.clone()),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9e15 => Ok(json!(f as i64)),
            _ => Err((
                "int_from_float",
                "Input should be a valid integer, got a number with a fractional part",
            )),
        },
        Value::String(s) => s.trim().parse::<i64>().map(|i| json!(i)).map_err(|_| {
            (
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
            )
        }),
        _ => Err(("int_type", "Input should be a valid integer")),
    }
}

/// pydantic's lax booleans.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

fn coerce_bool(v: &Value) -> Result<Value, (&'static str, &'static str)> {
    match v {
        Value::Bool(_) => Ok(v.clone()),
        Value::Number(n) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => {
            Ok(json!(n.as_i64() == Some(1)))
        }
        Value::String(s) => parse_bool(s).map(Value::Bool).ok_or((
            "bool_parsing",
            "Input should be a valid boolean, unable to interpret input",
        )),
        _ => Err(("bool_type", "Input should be a valid boolean")),
    }
}

/// Checks and coerces the fields of one object; errors are appended.
fn check_object(
    obj: &mut Map<String, Value>,
    fields: &[Field],
    loc: &[Value],
    errors: &mut Vec<Value>,
) {
    let whole = Value::Object(obj.clone());
    for f in fields {
        let mut here = loc.to_vec();
        here.push(json!(f.name));
        let value = match obj.get(f.name) {
            None | Some(Value::Null) if !f.required => {
                obj.remove(f.name);
                continue;
            }
            None => {
                errors.push(entry("missing", &here, "Field required", &whole));
                continue;
            }
            Some(v) => v.clone(),
        };
        let fail = |kind: &str, msg: &str, errors: &mut Vec<Value>| {
            errors.push(entry(kind, &here, msg, &value));
        };
        match &f.kind {
            Kind::Str if !value.is_string() => {
                fail("string_type", "Input should be a valid string", errors)
            }
            Kind::Object if !value.is_object() => {
                fail("dict_type", "Input should be a valid dictionary", errors)
            }
            Kind::Int => match coerce_int(&value) {
                Ok(v) => {
                    obj.insert(f.name.to_string(), v);
                }
                Err((kind, msg)) => fail(kind, msg, errors),
            },
            Kind::Bool => match coerce_bool(&value) {
                Ok(v) => {
                    obj.insert(f.name.to_string(), v);
                }
                Err((kind, msg)) => fail(kind, msg, errors),
            },
            Kind::StrList | Kind::Records(_) if !value.is_array() => {
                fail("list_type", "Input should be a valid list", errors)
            }
            Kind::StrList => {
                for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                    if !item.is_string() {
                        let mut at = here.clone();
                        at.push(json!(i));
                        errors.push(entry(
                            "string_type",
                            &at,
                            "Input should be a valid string",
                            item,
                        ));
                    }
                }
            }
            Kind::Records(inner) => {
                let mut items = value.as_array().cloned().unwrap_or_default();
                for (i, item) in items.iter_mut().enumerate() {
                    let mut at = here.clone();
                    at.push(json!(i));
                    match item.as_object_mut() {
                        Some(o) => check_object(o, inner, &at, errors),
                        None => errors.push(entry(
                            "model_type",
                            &at,
                            "Input should be a valid dictionary or object to extract fields from",
                            item,
                        )),
                    }
                }
                obj.insert(f.name.to_string(), Value::Array(items));
            }
            _ => {}
        }
    }
}

/// Decodes and checks a body against `T`'s model; the error is the 422 detail.
pub fn decode<T: Model>(bytes: &[u8]) -> Result<T, Vec<Value>> {
    let text = if bytes.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        bytes
    };
    let mut value: Value = serde_json::from_slice(text).map_err(|e| {
        let offset = byte_offset(text, e.line(), e.column());
        vec![json!({
            "type": "json_invalid",
            "loc": ["body", offset],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": e.to_string()},
        })]
    })?;
    let Some(obj) = value.as_object_mut() else {
        return Err(vec![entry(
            "model_attributes_type",
            &[],
            "Input should be a valid dictionary or object to extract fields from",
            &value,
        )]);
    };
    let mut errors = Vec::new();
    check_object(obj, T::FIELDS, &[], &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    serde_json::from_value(value.clone())
        .map_err(|e| vec![entry("value_error", &[], &e.to_string(), &value)])
}

/// serde reports line and column; pydantic reports a position in the text.
fn byte_offset(text: &[u8], line: usize, column: usize) -> usize {
    let before: usize = text
        .split(|b| *b == b'\n')
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    before + column.saturating_sub(1)
}

impl<T: Model, S: Send + Sync + AsRef<AppState>> FromRequest<S> for Checked<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let trace = req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(String::new()));
        let limit = state.as_ref().core.config.server.body_limit;
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let err = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                CoreError::BodyTooLarge { limit }
            } else {
                CoreError::InvalidParams(format!("Cannot read the request body: {rejection}"))
            };
            envelope::core_failure(&err, &Meta::default(), &trace)
        })?;
        decode(&bytes).map(Checked).map_err(unprocessable)
    }
}

/// Worker ids and custom names are free text in the Python protocol (session
/// names sanitize them); only control characters and absurd lengths are
/// refused, so nothing can forge log lines.
pub fn check_text(field: &str, value: &str) -> CoreResult<()> {
    if value.chars().count() > 256 || value.chars().any(char::is_control) {
        return Err(CoreError::InvalidParams(format!(
            "Parameter '{field}' must be at most 256 characters with no control characters"
        )));
    }
    Ok(())
}

/// A field that must be present and non-empty (the Python server's `if not x`).
pub fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct Exec {
        worker_id: String,
        #[serde(default)]
        params: Value,
        timeout: Option<i64>,
        #[serde(default)]
        parallel: bool,
    }

    impl Model for Exec {
        const FIELDS: &'static [Field] = &[
            required("worker_id", Kind::Str),
            optional("params", Kind::Object),
            optional("timeout", Kind::Int),
            optional("parallel", Kind::Bool),
        ];
    }

    fn detail(body: &[u8]) -> Vec<Value> {
        match decode::<Exec>(body) {
            Ok(v) => panic!("accepted: {v:?}"),
            Err(d) => d,
        }
    }

    #[test]
    fn lax_coercions_are_accepted() {
        let e: Exec = decode(br#"{"worker_id": "w", "timeout": 5.0, "parallel": "True"}"#).unwrap();
        assert_eq!((e.timeout, e.parallel), (Some(5), true));
        let e: Exec = decode(br#"{"worker_id": "w", "timeout": "7", "params": null}"#).unwrap();
        assert_eq!(e.timeout, Some(7));
        assert_eq!(e.params, Value::Null);
        assert_eq!(e.worker_id, "w");
    }

    #[test]
    fn every_bad_field_is_listed() {
        let d = detail(br#"{"params": [1], "timeout": 1.5}"#);
        let locs: Vec<&Value> = d.iter().map(|e| &e["loc"]).collect();
        assert_eq!(
            locs,
            vec![
                &json!(["body", "worker_id"]),
                &json!(["body", "params"]),
                &json!(["body", "timeout"])
            ]
        );
        assert_eq!(d[0]["type"], "missing");
        assert_eq!(d[1]["type"], "dict_type");
        assert_eq!(d[2]["type"], "int_from_float");
    }

    #[test]
    fn malformed_json_is_422() {
        assert_eq!(detail(b"{nope")[0]["type"], "json_invalid");
        assert_eq!(detail(b"[1]")[0]["type"], "model_attributes_type");
    }
}
