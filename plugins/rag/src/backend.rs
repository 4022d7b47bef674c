//! Which engine a warmup opened: this plugin's own index directory
//! (`engine.rs`, writable) or a Faiss index file with its corpus
//! (`faiss_engine.rs`, read-only). The tools call this, not the engines.

use serde_json::Value;

use crate::config::RagConfig;
use crate::document::Document;
use crate::engine::{Engine, Hit, IndexOutcome, StopCheck};
use crate::error::{RagError, RagResult};
use crate::faiss_engine::FaissEngine;
use crate::mode::Mode;

/// The opened engine.
pub enum Backend {
    /// An index directory this plugin builds and writes.
    Managed(Box<Engine>),
    /// A Faiss index file and its corpus, served read-only.
    Faiss(Box<FaissEngine>),
}

impl Backend {
    /// Opens what `index_path` names: a Faiss file or an index directory.
    pub fn open(config: RagConfig) -> RagResult<Self> {
        if config.is_faiss_index() {
            Ok(Backend::Faiss(Box::new(FaissEngine::open(config)?)))
        } else if !config.index_path.exists() && looks_like_faiss_file(&config.index_path) {
            // A typo in a Faiss file's path must not silently become a new, empty index.
            Err(RagError::IndexUnavailable(format!(
                "index_path '{}' does not exist (its name says Faiss index file; an index directory is created only under a name without .index/.faiss)",
                config.index_path.display()
            )))
        } else {
            Ok(Backend::Managed(Box::new(Engine::open(config)?)))
        }
    }

    /// The mode used when a call names none.
    pub fn default_mode(&self) -> Mode {
        match self {
            Backend::Managed(e) => e.default_mode(),
            Backend::Faiss(e) => e.default_mode(),
        }
    }

    /// The configured default `top_k`.
    pub fn default_top_k(&self) -> usize {
        match self {
            Backend::Managed(e) => e.default_top_k(),
            Backend::Faiss(e) => e.default_top_k(),
        }
    }

    /// The top `k` hits of each query, in query order.
    pub fn search(
        &self,
        queries: &[String],
        k: usize,
        mode: Mode,
        check: StopCheck<'_>,
    ) -> RagResult<Vec<Vec<Hit>>> {
        match self {
            Backend::Managed(e) => e.search(queries, k, mode, check),
            Backend::Faiss(e) => e.search(queries, k, mode, check),
        }
    }

    /// Adds documents (managed index only).
    pub fn index(&self, documents: Vec<Document>, check: StopCheck<'_>) -> RagResult<IndexOutcome> {
        match self {
            Backend::Managed(e) => e.index(documents, check),
            Backend::Faiss(_) => Err(RagError::ReadOnly(
                "index: this rag serves a Faiss index file read-only (its vectors were made elsewhere); \
                 adding documents needs an index directory as index_path"
                    .into(),
            )),
        }
    }

    /// What `rag:stats` shows.
    pub fn stats(&self) -> Value {
        match self {
            Backend::Managed(e) => e.stats(),
            Backend::Faiss(e) => e.stats(),
        }
    }

    /// Releases what needs releasing (the managed index's writer).
    pub fn close(self) {
        if let Backend::Managed(e) = self {
            e.close();
        }
    }
}

/// Names Faiss index files usually have.
fn looks_like_faiss_file(path: &std::path::Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("index" | "faiss" | "ivf" | "hnsw")
    )
}
