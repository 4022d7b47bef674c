//! The plugin's encoder for use outside a search: precomputing the vectors of
//! a corpus to build a Faiss index with other tools, as the test
//! `tests/faiss_index.rs` does to compare this plugin's searches with Python's.

use plugin_api::PluginError;

use crate::config::RagConfig;
use crate::error::RagError;
use crate::model::ModelState;

/// Which side of a search a text is on (encoders may prefix them differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// A search query.
    Query,
    /// A passage of the corpus.
    Passage,
}

/// Loads the encoder `config` (the plugin's warmup config) names and encodes
/// `texts`; an error when no model is found.
pub fn embed_texts(
    config: &serde_json::Value,
    texts: &[&str],
    kind: TextKind,
) -> Result<Vec<Vec<f32>>, PluginError> {
    let config = RagConfig::from_json(config)?;
    let model = ModelState::load(&config)?;
    let Some(embedder) = model.embedder() else {
        return Err(RagError::ModelUnavailable(format!(
            "no embedding model: {}",
            model.describe()
        ))
        .into());
    };
    let vectors = match kind {
        TextKind::Query => embedder.embed_queries(texts, config.embed_batch_size, &|| Ok(()))?,
        TextKind::Passage => embedder.embed_passages(texts, config.embed_batch_size, &|| Ok(()))?,
    };
    Ok(vectors)
}
