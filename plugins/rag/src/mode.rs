//! Retrieval modes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a query is matched against the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Reciprocal-rank fusion of BM25 and dense (the default when the model is loaded).
    Hybrid,
    /// Lexical BM25 only (always available).
    Bm25,
    /// Sentence-embedding cosine similarity only.
    Dense,
}

impl Mode {
    /// The name used in params and stats.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Hybrid => "hybrid",
            Mode::Bm25 => "bm25",
            Mode::Dense => "dense",
        }
    }

    /// True when the mode needs the embedding model.
    pub fn needs_model(self) -> bool {
        self != Mode::Bm25
    }
}
