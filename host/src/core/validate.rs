//! Params validation against a tool's JSON Schema, with messages that name the
//! parameter and what was expected.

use jsonschema::Validator;
use serde_json::Value;

/// A compiled params schema.
pub struct ParamsSchema {
    validator: Validator,
}

impl ParamsSchema {
    /// Compiles a schema; the error says why it is not a valid JSON Schema.
    pub fn compile(schema: &Value) -> Result<Self, String> {
        let mut schema = schema.clone();
        bound_integer_formats(&mut schema);
        jsonschema::validator_for(&schema)
            .map(|validator| Self { validator })
            .map_err(|e| e.to_string())
    }

    /// Checks params; the error names the first offending parameter.
    pub fn check(&self, params: &Value) -> Result<(), String> {
        let Some(error) = self.validator.iter_errors(params).next() else {
            return Ok(());
        };
        let path = error.instance_path().to_string();
        let name = path.trim_start_matches('/').replace('/', ".");
        Err(if name.is_empty() {
            format!("Invalid params: {error}")
        } else {
            format!("Parameter '{name}': {error}")
        })
    }
}

/// `schemars` states a Rust integer's width as `format` (`int64`, `uint8`,
/// …), which JSON Schema does not check for numbers: a value out of range
/// would pass here and fail in the plugin's own decoding. Each such integer
/// gets the range of its format (where the schema sets none), so it is
/// refused here, naming the parameter, before the plugin runs.
fn bound_integer_formats(schema: &mut Value) {
    match schema {
        Value::Object(m) => {
            let range = m.get("format").and_then(Value::as_str).and_then(|f| {
                Some(match f {
                    "int8" => (i8::MIN as i64).into(),
                    "int16" => (i16::MIN as i64).into(),
                    "int32" => (i32::MIN as i64).into(),
                    "int64" | "int" => i64::MIN.into(),
                    "uint8" | "uint16" | "uint32" | "uint64" | "uint" => 0i64.into(),
                    _ => return None,
                })
                .map(|min: Value| {
                    let max: Value = match f {
                        "int8" => (i8::MAX as i64).into(),
                        "int16" => (i16::MAX as i64).into(),
                        "int32" => (i32::MAX as i64).into(),
                        "uint8" => (u8::MAX as u64).into(),
                        "uint16" => (u16::MAX as u64).into(),
                        "uint32" => (u32::MAX as u64).into(),
                        "uint64" | "uint" => u64::MAX.into(),
                        _ => i64::MAX.into(),
                    };
                    (min, max)
                })
            });
            if let Some((min, max)) = range {
                m.entry("minimum").or_insert(min);
                m.entry("maximum").or_insert(max);
            }
            m.values_mut().for_each(bound_integer_formats);
        }
        Value::Array(a) => a.iter_mut().for_each(bound_integer_formats),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> ParamsSchema {
        ParamsSchema::compile(&json!({
            "type": "object",
            "properties": {"x": {"type": "integer"}, "name": {"type": "string"}},
            "required": ["name"]
        }))
        .unwrap()
    }

    #[test]
    fn messages_name_the_parameter() {
        let e = schema()
            .check(&json!({"name": "a", "x": "five"}))
            .unwrap_err();
        assert!(e.contains("'x'") && e.contains("integer"), "{e}");
        let e = schema().check(&json!({})).unwrap_err();
        assert!(e.contains("name"), "{e}");
        assert!(schema().check(&json!({"name": "a", "x": 3})).is_ok());
    }

    #[test]
    fn integers_are_held_to_their_format_width() {
        let s = ParamsSchema::compile(&json!({
            "type": "object",
            "properties": {
                "n": {"type": "integer", "format": "int64"},
                "b": {"type": "integer", "format": "uint8", "maximum": 100},
            }
        }))
        .unwrap();
        let e = s.check(&json!({"n": 9223372036854775808u64})).unwrap_err();
        assert!(e.contains("'n'"), "{e}");
        assert!(s.check(&json!({"n": -9223372036854775807i64})).is_ok());
        assert!(s.check(&json!({"b": -1})).is_err());
        // The schema's own bound wins.
        assert!(s.check(&json!({"b": 101})).is_err());
        assert!(s.check(&json!({"b": 100})).is_ok());
    }
}
