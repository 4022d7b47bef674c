//! Entry points for the cargo-fuzz target (`fuzz/`): request decoding, tool
//! name resolution, params validation and config parsing must never panic,
//! whatever bytes arrive.

use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::core::{ident, names, validate::ParamsSchema};

/// Schemas shaped like the default plugins' (required fields, integers with
/// bounds, enums, arrays, nested objects).
fn schemas() -> &'static Vec<ParamsSchema> {
    static SCHEMAS: OnceLock<Vec<ParamsSchema>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        [
            json!({"type": "object", "required": ["command"], "properties": {
                "command": {"type": "string"}, "timeout": {"type": ["number", "null"], "minimum": 0}}}),
            json!({"type": "object", "required": ["x", "y"], "properties": {
                "x": {"type": "integer", "minimum": 0}, "y": {"type": "integer", "minimum": 0},
                "button": {"enum": ["left", "right", "middle"]}}}),
            json!({"type": "object", "required": ["keys"], "properties": {
                "keys": {"type": "array", "items": {"type": "string"}, "minItems": 1}}}),
            json!({"type": "object", "required": ["documents"], "properties": {
                "documents": {"type": "array", "items": {"type": "object", "properties": {
                    "id": {"type": ["string", "null"]}, "content": {"type": "string"}}}}},
                "$defs": {"Mode": {"enum": ["hybrid", "bm25", "dense"]}}}),
        ]
        .iter()
        .filter_map(|s| ParamsSchema::compile(s).ok())
        .collect()
    })
}

const TOOLS: &[&str] = &[
    "vm:screenshot",
    "vm:key_down",
    "vm:type",
    "bash:run",
    "rag:search",
    "rag:stats",
    "x:stats",
];

/// Runs one fuzz input; the first byte chooses what to exercise.
pub fn one_input(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            crate::native::fuzz_decode(rest);
            crate::compat::fuzz_decode(rest);
        }
        1 => {
            let text = String::from_utf8_lossy(rest);
            let _ = ident::check("action", &text);
            let _ = names::resolve(&text, TOOLS.iter().copied());
        }
        2 => {
            if let Ok(params) = serde_json::from_slice::<Value>(rest) {
                for schema in schemas() {
                    let _ = schema.check(&params);
                }
            }
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            let _ = crate::config::Config::parse(&text, std::path::Path::new("/nonexistent"));
        }
    }
}

#[cfg(test)]
mod tests {
    /// The committed seed corpus runs clean (so the fuzz target stays buildable in spirit).
    #[test]
    fn seeds_do_not_panic() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/requests");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            super::one_input(&std::fs::read(entry.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n >= 10);
    }
}
