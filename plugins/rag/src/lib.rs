//! The AgentFlow `rag` plugin: document search over one persistent index
//! shared by every worker.
//!
//! * Lexical retrieval: tantivy BM25 over titles and texts.
//! * Dense retrieval: all-MiniLM-L6-v2 sentence embeddings computed in-process
//!   with candle (mean pooling, L2 normalisation), searched by brute-force
//!   cosine over an in-memory matrix.
//! * Hybrid: reciprocal-rank fusion (k = 60) of the two.
//!
//! Tools: `search`, `batch_search`, `index`, and the hidden `stats`. Documents
//! are committed (with their embeddings) before `index` answers, so they
//! survive a crash of the host.

mod config;
mod context;
mod corpus;
mod corpus_build;
mod dense;
mod document;
mod embedder;
mod engine;
mod error;
mod fusion;
mod lexical;
mod logging;
mod mode;
mod model;
mod model_locate;
mod progress;
pub mod synth;
mod tools;

use std::sync::{Arc, PoisonError, RwLock};

use plugin_api::{export_plugin, Plugin, PluginError, PluginInfo, SessionModel, Tools};

pub use config::RagConfig;
pub use engine::Hit;
pub use mode::Mode;
pub use model_locate::{INSTALL_HINT, MODEL_ENV};

/// The plugin: the engine once warmed up.
pub struct RagPlugin {
    engine: RwLock<Option<Arc<engine::Engine>>>,
}

impl RagPlugin {
    fn engine(&self) -> Result<Arc<engine::Engine>, PluginError> {
        self.engine
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| PluginError::not_warmed_up("plugin 'rag' is not warmed up"))
    }
}

impl Plugin for RagPlugin {
    type Session = ();

    fn info() -> PluginInfo {
        PluginInfo::new(
            "rag",
            env!("CARGO_PKG_VERSION"),
            "Document search over a persistent index: BM25, dense (all-MiniLM-L6-v2) and hybrid",
            SessionModel::Shared,
        )
    }

    fn new() -> Result<Self, PluginError> {
        Ok(Self {
            engine: RwLock::new(None),
        })
    }

    fn tools() -> Tools<Self> {
        tools::tools()
    }

    fn warmup(&self, config: &serde_json::Value) -> Result<(), PluginError> {
        let mut slot = self.engine.write().unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() {
            logging::info("already warmed up; the new config is ignored");
            return Ok(());
        }
        let config = RagConfig::from_json(config)?;
        *slot = Some(Arc::new(engine::Engine::open(config)?));
        Ok(())
    }

    fn shutdown(&self) {
        let engine = self
            .engine
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // Calls still running hold the engine; the last one to finish drops it.
        if let Some(engine) = engine.and_then(|e| Arc::try_unwrap(e).ok()) {
            engine.close();
        }
    }

    fn initialize(
        &self,
        _session_id: &str,
        _config: &serde_json::Value,
    ) -> Result<(), PluginError> {
        Ok(())
    }
}

export_plugin!(RagPlugin);
