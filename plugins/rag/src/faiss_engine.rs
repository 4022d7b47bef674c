//! Search over data made elsewhere, as the AgentFlow Python server serves it:
//! a Faiss index file (`index_path`), the JSONL corpus its labels point into
//! (`corpus_path`, read lazily) and a sentence encoder. Read-only: `index`
//! is refused. BM25 over the same corpus (built once) gives modes `bm25` and
//! `hybrid`.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use crate::batcher::{BatchWork, Batcher};
use crate::config::RagConfig;
use crate::corpus_bm25::CorpusBm25;
use crate::engine::{fusion_depth, Hit, StopCheck};
use crate::error::{RagError, RagResult};
use crate::faiss_index::FaissIndex;
use crate::fusion::reciprocal_rank_fusion;
use crate::lazy_corpus::{LazyCorpus, OffsetsSource};
use crate::logging;
use crate::mode::Mode;
use crate::model::ModelState;

/// Faiss's nearest labels of one query: (label, score), best first.
type Neighbours = Vec<(i64, f32)>;

/// The opened index, corpus, encoder and optional BM25.
pub struct FaissEngine {
    config: RagConfig,
    index: Arc<FaissIndex>,
    corpus: LazyCorpus,
    bm25: Option<CorpusBm25>,
    model: ModelState,
    batcher: Option<Batcher<Neighbours>>,
    open_seconds: f64,
}

impl FaissEngine {
    /// Opens everything, refusing a model whose vectors do not fit the index.
    pub fn open(config: RagConfig) -> RagResult<Self> {
        if let Some(device) = config.device.as_deref().filter(|d| *d != "cpu") {
            logging::warn(&format!(
                "rag config: device = '{device}' is ignored: this server encodes and searches on the CPU"
            ));
        }
        let started = Instant::now();
        let mut index = FaissIndex::open(&config.index_path)?;
        let open_seconds = started.elapsed().as_secs_f64();
        let Some(corpus_path) = config.corpus_path.clone() else {
            return Err(RagError::IndexUnavailable(format!(
                "rag config: index_path '{}' is a Faiss index file, so corpus_path (the JSONL corpus its labels point into) is required",
                config.index_path.display()
            )));
        };
        for (name, value) in [("ef_search", config.ef_search), ("nprobe", config.nprobe)] {
            let Some(value) = value else { continue };
            let fits = index.search_knob().is_some_and(|(knob, _)| knob == name);
            if !fits || !index.set_search_knob(value) {
                logging::warn(&format!(
                    "rag config: {name} = {value} is ignored: the index is a {}",
                    index.kind()
                ));
            }
        }
        logging::info(&format!(
            "opened Faiss index {}: {}, {} vectors of {} dims, metric {}, {} in {:.2} s",
            config.index_path.display(),
            index.kind(),
            index.len(),
            index.dims(),
            index.metric().name(),
            if index.mapped() {
                "memory-mapped"
            } else {
                "read into memory"
            },
            open_seconds
        ));
        let corpus = LazyCorpus::open(&corpus_path, config.offsets_path.as_deref())?;
        if corpus.len() < index.len() {
            logging::warn(&format!(
                "the Faiss index holds {} vectors but corpus {} only {} passages: hits past the corpus are left out",
                index.len(),
                corpus_path.display(),
                corpus.len()
            ));
        }
        let model = ModelState::load(&config)?;
        if let Some(embedder) = model.embedder() {
            if embedder.dims() != index.dims() {
                return Err(RagError::IndexUnavailable(format!(
                    "the model at {} makes {}-dimensional vectors but the Faiss index {} holds {}-dimensional ones: configure the model the index was built with",
                    embedder.dir().display(),
                    embedder.dims(),
                    config.index_path.display(),
                    index.dims()
                )));
            }
        }
        let bm25 = if config.bm25 {
            Some(CorpusBm25::open_or_build(
                &config.bm25_dir(&corpus_path),
                &corpus,
                config.writer_memory_mb,
            )?)
        } else {
            None
        };
        if model.embedder().is_none() && bm25.is_none() {
            return Err(RagError::ModelUnavailable(format!(
                "no embedding model is loaded and bm25 = false: nothing can search the Faiss index {}",
                config.index_path.display()
            )));
        }
        let index = Arc::new(index);
        let batcher = match (config.batching, model.embedder()) {
            (true, Some(embedder)) => {
                let (embedder, index) = (embedder.clone(), index.clone());
                let work: Arc<BatchWork<Neighbours>> = Arc::new(move |texts: &[&str], k: usize| {
                    let vectors = embedder.embed_queries(texts, texts.len(), &|| Ok(()))?;
                    index.search(&vectors.concat(), k)
                });
                Some(Batcher::start(work, config.batch_settings())?)
            }
            _ => None,
        };
        Ok(Self {
            config,
            index,
            corpus,
            bm25,
            model,
            batcher,
            open_seconds,
        })
    }

    /// The mode used when a call names none: hybrid when both lists exist.
    pub fn default_mode(&self) -> Mode {
        match (self.model.embedder().is_some(), self.bm25.is_some()) {
            (true, true) => Mode::Hybrid,
            (true, false) => Mode::Dense,
            _ => Mode::Bm25,
        }
    }

    /// The configured default `top_k`.
    pub fn default_top_k(&self) -> usize {
        self.config.top_k
    }

    /// The top `k` hits of each query, in query order.
    pub fn search(
        &self,
        queries: &[String],
        k: usize,
        mode: Mode,
        check: StopCheck<'_>,
    ) -> RagResult<Vec<Vec<Hit>>> {
        let depth = if mode == Mode::Hybrid {
            fusion_depth(k)
        } else {
            k
        };
        let dense = if mode.needs_model() {
            self.dense(queries, depth, mode, check)?
        } else {
            vec![Vec::new(); queries.len()]
        };
        let bm25 = match (mode, &self.bm25) {
            (Mode::Dense, _) => None,
            (_, Some(bm25)) => Some(bm25),
            (_, None) => {
                return Err(RagError::ModelUnavailable(format!(
                    "mode '{}' needs BM25 over the corpus, which is turned off (bm25 = false); mode 'dense' works",
                    mode.name()
                )))
            }
        };
        queries
            .iter()
            .zip(dense)
            .map(|(query, dense)| {
                check()?;
                let ranked: Vec<(u64, f32)> = match (mode, bm25) {
                    (Mode::Dense, _) | (_, None) => dense,
                    (Mode::Bm25, Some(bm25)) => bm25.search(query, k)?,
                    (Mode::Hybrid, Some(bm25)) => {
                        let lexical: Vec<u64> = bm25
                            .search(query, depth)?
                            .into_iter()
                            .map(|(p, _)| p)
                            .collect();
                        let semantic: Vec<u64> = dense.into_iter().map(|(p, _)| p).collect();
                        reciprocal_rank_fusion(&[lexical, semantic], k)
                    }
                };
                ranked
                    .into_iter()
                    .take(k)
                    .map(|(number, score)| {
                        let passage = self.corpus.get(number)?;
                        Ok(Hit {
                            id: passage.id,
                            title: passage.title,
                            content: passage.text,
                            score,
                        })
                    })
                    .collect()
            })
            .collect()
    }

    /// Faiss's `depth` nearest passages of each query (labels past the corpus left out).
    fn dense(
        &self,
        queries: &[String],
        depth: usize,
        mode: Mode,
        check: StopCheck<'_>,
    ) -> RagResult<Vec<Vec<(u64, f32)>>> {
        let Some(embedder) = self.model.embedder() else {
            return Err(self.model.unavailable(mode));
        };
        let refs: Vec<&str> = queries.iter().map(String::as_str).collect();
        let neighbours = match &self.batcher {
            Some(batcher) => batcher.run(&refs, depth, check)?,
            None => {
                let vectors = embedder.embed_queries(&refs, self.config.embed_batch_size, check)?;
                self.index.search(&vectors.concat(), depth)?
            }
        };
        let passages = self.corpus.len();
        Ok(neighbours
            .into_iter()
            .map(|list| {
                list.into_iter()
                    .take(depth)
                    .filter_map(|(label, score)| {
                        u64::try_from(label)
                            .ok()
                            .filter(|l| *l < passages)
                            .map(|l| (l, score))
                    })
                    .collect()
            })
            .collect())
    }

    /// What `rag:stats` shows.
    pub fn stats(&self) -> Value {
        let modes: Vec<&str> = match (self.model.embedder().is_some(), self.bm25.is_some()) {
            (true, true) => vec!["hybrid", "bm25", "dense"],
            (true, false) => vec!["dense"],
            _ => vec!["bm25"],
        };
        let index_bytes = std::fs::metadata(self.index.path())
            .map(|m| m.len())
            .unwrap_or(0);
        json!({
            "documents": self.corpus.len(),
            "index_path": self.index.path().display().to_string(),
            "index_size_bytes": index_bytes,
            "index": {
                "kind": "faiss",
                "type": self.index.kind(),
                "vectors": self.index.len(),
                "dims": self.index.dims(),
                "metric": self.index.metric().name(),
                "memory_mapped": self.index.mapped(),
                "search_knob": self.index.search_knob().map(|(name, value)| json!({name: value})),
                "open_seconds": self.open_seconds,
                "read_only": true,
            },
            "corpus": {
                "path": self.corpus.path().display().to_string(),
                "passages": self.corpus.len(),
                "bytes": self.corpus.bytes(),
                "offsets_path": self.corpus.offsets_path().display().to_string(),
                "offsets": match self.corpus.offsets_source() {
                    OffsetsSource::Found => "found",
                    OffsetsSource::Written => "written",
                },
                "malformed_lines": self.corpus.malformed_lines(),
                "loaded": "lazily",
            },
            "corpus_path": self.corpus.path().display().to_string(),
            "bm25": self.bm25.as_ref().map(|b| json!({
                "path": b.dir().display().to_string(),
                "passages": b.len(),
            })),
            "model": self.model.describe(),
            "modes": modes,
            "default_mode": self.default_mode().name(),
            "default_top_k": self.config.top_k,
            "batching": match &self.batcher {
                Some(b) => b.stats(),
                None => json!({"enabled": false}),
            },
        })
    }
}
