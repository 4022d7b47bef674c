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
        jsonschema::validator_for(schema)
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
}
