//! Helpers shared by the integration tests: drive the plugin in-process as
//! the host would.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use agentflow_rag::RagPlugin;
use plugin_api::testkit::Kit;
use plugin_api::{ErrorKind, PluginError};
use serde_json::{json, Value};

/// Runs tool `name` with `params` on the shared plugin (no session), through
/// plugin-api's test kit (params checked against the schema as the host
/// does), 10-minute deadline.
pub fn call(plugin: &Kit<RagPlugin>, name: &str, params: Value) -> Result<Value, PluginError> {
    plugin.call_with(None, name, params, Duration::from_secs(600), None)
}

/// Like [`call`] but the call must succeed.
pub fn ok(plugin: &Kit<RagPlugin>, name: &str, params: Value) -> Value {
    call(plugin, name, params.clone())
        .unwrap_or_else(|e| panic!("{name} {params} failed: {:?} {}", e.kind, e.message))
}

/// Like [`call`] but the call must fail with `kind`; returns the message.
pub fn err(plugin: &Kit<RagPlugin>, name: &str, params: Value, kind: ErrorKind) -> String {
    match call(plugin, name, params.clone()) {
        Ok(v) => panic!("{name} {params} should fail with {kind:?}, returned {v}"),
        Err(e) => {
            assert_eq!(e.kind, kind, "{name} {params}: {}", e.message);
            e.message
        }
    }
}

/// A new plugin warmed up with `config`.
pub fn warm(config: Value) -> Result<Kit<RagPlugin>, PluginError> {
    Kit::warm(config)
}

/// A plugin with the embedding model over the index at `index_path`; fails
/// the test with install instructions when the model is not installed.
pub fn warm_with_model(index_path: &Path, extra: Value) -> Kit<RagPlugin> {
    let mut config = json!({"index_path": index_path});
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let plugin =
        warm(config).unwrap_or_else(|e| panic!("warmup failed: {:?} {}", e.kind, e.message));
    let stats = ok(&plugin, "stats", json!({}));
    assert_eq!(
        stats["model"]["status"],
        "loaded",
        "these tests need the all-MiniLM-L6-v2 model: {}. stats: {stats}",
        agentflow_rag::INSTALL_HINT
    );
    plugin
}

/// Ids of the hits of a `search` result, in rank order.
pub fn hit_ids(result: &Value) -> Vec<String> {
    result["results"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .map(|h| h["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// `plugins/rag/corpus/<name>`.
pub fn corpus_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name)
}

/// A handful of passages on distinct topics, with paraphrased questions
/// whose answer is each passage (id, title, text, question).
pub const PASSAGES: &[(&str, &str, &str, &str)] = &[
    (
        "cats",
        "Domestic cat",
        "The domestic cat is a small carnivorous mammal kept as a house pet. Cats purr, hunt mice and sleep most of the day.",
        "Which furry animal that people keep at home purrs and chases mice?",
    ),
    (
        "volcano",
        "Mount Etna",
        "Mount Etna is an active stratovolcano on the east coast of Sicily, one of the tallest active volcanoes in Europe.",
        "Where is the big active volcano in Italy located?",
    ),
    (
        "bread",
        "Sourdough",
        "Sourdough bread is made by fermenting dough with wild yeast and lactic acid bacteria, which gives it a tangy taste.",
        "How is tangy leavened loaf baked with natural fermentation?",
    ),
    (
        "moon",
        "Apollo 11",
        "Apollo 11 was the 1969 spaceflight in which Neil Armstrong and Buzz Aldrin became the first people to walk on the Moon.",
        "Who were the first astronauts to set foot on the lunar surface?",
    ),
    (
        "piano",
        "Piano",
        "The piano is a keyboard instrument whose hammers strike strings; it was invented in Italy by Bartolomeo Cristofori around 1700.",
        "Which musical instrument with keys and hammers hitting strings was created around 1700?",
    ),
    (
        "rust",
        "Rust (programming language)",
        "Rust is a systems programming language focused on memory safety without garbage collection, using ownership and borrowing.",
        "What programming language guarantees memory safety through ownership instead of a garbage collector?",
    ),
];

/// The `documents` param for [`PASSAGES`].
pub fn passages_as_documents() -> Value {
    Value::Array(
        PASSAGES
            .iter()
            .map(|(id, title, text, _)| json!({"id": id, "title": title, "content": text}))
            .collect(),
    )
}
