//! The AgentFlow `rag` plugin: document search over one persistent index
//! shared by every worker.
//!
//! * Lexical retrieval: tantivy BM25 over titles and texts.
//! * Dense retrieval: sentence embeddings of a BERT encoder computed
//!   in-process with candle (all-MiniLM-L6-v2 by default; e5, bge and MiniLM
//!   pooling and prefix presets), searched by brute-force cosine over an
//!   in-memory matrix.
//! * Hybrid: reciprocal-rank fusion (k = 60) of the two.
//! * Or data made elsewhere (the AgentFlow Python server's): a Faiss index
//!   file read through the real Faiss library, its JSONL corpus read lazily
//!   through a line-offsets file, any BERT-family encoder, BM25 built once
//!   over the corpus (`faiss_engine.rs`).
//! * Concurrent searches are encoded (and, over Faiss, searched) in dynamic
//!   batches (`batcher.rs`).
//!
//! Tools: `search`, `batch_search`, `index`, and the hidden `stats`. Documents
//! are committed (with their embeddings) before `index` answers, so they
//! survive a crash of the host.

mod backend;
mod batcher;
mod config;
mod context;
mod corpus;
mod corpus_bm25;
mod corpus_build;
mod dense;
mod document;
mod durable;
mod embedder;
mod encoder_spec;
mod engine;
mod error;
mod faiss_engine;
pub mod faiss_index;
mod fusion;
mod lazy_corpus;
mod lexical;
mod logging;
mod mode;
mod model;
mod model_files;
mod model_locate;
mod progress;
pub mod synth;
mod tools;
mod vectors;

use std::mem::ManuallyDrop;

use plugin_api::{export_plugin, Plugin, PluginError, PluginInfo, SessionModel, Tools};

pub use config::RagConfig;
pub use embedder::Embedder;
pub use encoder_spec::{EncoderSpec, Pooling, Preset};
pub use engine::Hit;
pub use error::RagError;
pub use mode::Mode;
pub use model_locate::{INSTALL_HINT, MODEL_ENV};
pub use vectors::{embed_texts, TextKind};

/// The plugin: the engine its warmup opened.
pub struct RagPlugin {
    /// Closed (the index writer's merges awaited) when the plugin is dropped,
    /// after its shutdown and the last call that held it.
    engine: ManuallyDrop<backend::Backend>,
}

impl RagPlugin {
    fn engine(&self) -> &backend::Backend {
        &self.engine
    }
}

impl Drop for RagPlugin {
    fn drop(&mut self) {
        // SAFETY: taken once, here, and never used again.
        let engine = unsafe { ManuallyDrop::take(&mut self.engine) };
        engine.close();
    }
}

impl Plugin for RagPlugin {
    type Session = ();

    fn info() -> PluginInfo {
        PluginInfo::new(
            "rag",
            env!("CARGO_PKG_VERSION"),
            "Document search over a persistent index: BM25, dense (a BERT encoder: MiniLM, e5, bge) and hybrid",
            SessionModel::Shared,
        )
    }

    fn tools() -> Tools<Self> {
        tools::tools()
    }

    fn warmup(config: &serde_json::Value) -> Result<Self, PluginError> {
        let config = RagConfig::from_json(config)?;
        Ok(Self {
            engine: ManuallyDrop::new(backend::Backend::open(config)?),
        })
    }
}

export_plugin!(RagPlugin);
