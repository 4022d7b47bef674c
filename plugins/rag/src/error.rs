//! The plugin's internal error type, mapped onto [`PluginError`] at the tool boundary.

use plugin_api::PluginError;

/// Everything that can go wrong inside the rag engine.
#[derive(Debug, thiserror::Error)]
pub enum RagError {
    /// The caller's input cannot be used (a bad parameter, a document without text).
    #[error("{0}")]
    InvalidInput(String),
    /// Dense retrieval was asked for but no embedding model is loaded.
    #[error("{0}")]
    ModelUnavailable(String),
    /// The index directory cannot be opened, created or locked.
    #[error("{0}")]
    IndexUnavailable(String),
    /// The embedding model failed while encoding text.
    #[error("embedding failed: {0}")]
    Embedding(String),
    /// The search index failed.
    #[error("index error: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    /// A Faiss search failed.
    #[error("search failed: {0}")]
    Search(String),
    /// The corpus file or its line offsets cannot be used.
    #[error("{0}")]
    Corpus(String),
    /// The call would write to an index served read-only.
    #[error("{0}")]
    ReadOnly(String),
    /// A file operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The call was cancelled or ran past its deadline.
    #[error("{0}")]
    Stopped(PluginError),
}

impl From<candle_core::Error> for RagError {
    fn from(e: candle_core::Error) -> Self {
        RagError::Embedding(e.to_string())
    }
}

impl From<RagError> for PluginError {
    fn from(e: RagError) -> Self {
        match e {
            RagError::InvalidInput(m) => PluginError::invalid_params(m),
            RagError::ModelUnavailable(m) | RagError::IndexUnavailable(m) => {
                PluginError::unavailable(m)
            }
            RagError::ReadOnly(m) => PluginError::unsupported(m),
            RagError::Corpus(m) => PluginError::unavailable(m),
            RagError::Stopped(p) => p,
            other => PluginError::internal(other.to_string()),
        }
    }
}

/// Result alias for the engine.
pub type RagResult<T> = Result<T, RagError>;
