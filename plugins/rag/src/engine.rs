//! The search engine behind the tools: one tantivy index plus the dense
//! matrix, published together as an immutable [`Snapshot`].
//!
//! Writers (the `index` tool) serialize on one lock, commit to tantivy, then
//! swap in a new snapshot; searches clone the current snapshot's `Arc` and
//! never wait for a writer, and never see part of a commit.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use serde_json::{json, Value};
use tantivy::{DocAddress, IndexWriter, Searcher};

use crate::batcher::{BatchWork, Batcher};
use crate::config::{RagConfig, MAX_TOP_K};
use crate::corpus_build::build_index;
use crate::dense::{DenseBuilder, DenseMatrix, DenseWriter};
use crate::document::Document;
use crate::durable::write_synced;
use crate::error::{RagError, RagResult};
use crate::fusion::reciprocal_rank_fusion;
use crate::lexical::{LexicalIndex, StoredDoc};
use crate::logging;
use crate::mode::Mode;
use crate::model::ModelState;
use crate::progress::Progress;

/// How deep each list goes before hybrid fusion (at least `top_k`).
const HYBRID_DEPTH: usize = 100;

/// Checks whether the current call should stop (cancelled or past its deadline).
pub type StopCheck<'a> = &'a dyn Fn() -> RagResult<()>;

/// One search hit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hit {
    /// The document's id.
    pub id: String,
    /// Its title (empty when untitled).
    pub title: String,
    /// Its text.
    pub content: String,
    /// BM25 score, cosine similarity (dense) or fused reciprocal-rank score (hybrid).
    pub score: f32,
}

/// What `index` reports.
#[derive(Debug, Clone)]
pub struct IndexOutcome {
    /// Documents written by this call.
    pub indexed: usize,
    /// Documents in the index afterwards.
    pub total: u64,
    /// Ids of the written documents, in input order (generated ones included).
    pub ids: Vec<String>,
}

/// A consistent view: a tantivy searcher and the matching dense matrix.
struct Snapshot {
    searcher: Searcher,
    dense: Option<DenseMatrix>,
}

/// What only the writer touches.
struct WriterState {
    writer: IndexWriter,
    dense: Option<DenseWriter>,
}

/// The opened index, model and matrix.
pub struct Engine {
    config: RagConfig,
    lexical: LexicalIndex,
    model: ModelState,
    /// Encodes concurrent searches' queries together (`None`: each search
    /// encodes its own, or there is no model).
    batcher: Option<Batcher<Vec<f32>>>,
    snapshot: RwLock<Arc<Snapshot>>,
    writer: Mutex<WriterState>,
}

impl Engine {
    /// Loads the model, opens (or builds) the index and loads its embeddings.
    pub fn open(config: RagConfig) -> RagResult<Self> {
        let path = config.index_path.clone();
        check_index_path(&path)?;
        let model = ModelState::load(&config)?;
        if !LexicalIndex::exists(&path) {
            build_index(&config, model.embedder().map(|e| e.as_ref()))?;
        }
        let lexical = LexicalIndex::open(&path)?;
        let mut writer = lexical.writer(config.writer_memory_mb)?;
        let searcher = lexical.reload()?;
        logging::info(&format!(
            "opened the index at {} ({} documents)",
            path.display(),
            searcher.num_docs()
        ));
        let dense = match model.embedder() {
            Some(embedder) => Some(load_dense(
                &config,
                &lexical,
                &searcher,
                &mut writer,
                embedder,
            )?),
            None => None,
        };
        let searcher = lexical.reload()?;
        let snapshot = Snapshot {
            searcher,
            dense: dense.as_ref().map(|d| d.matrix().clone()),
        };
        let batcher = match (config.batching, model.embedder()) {
            (true, Some(embedder)) => {
                let embedder = embedder.clone();
                let work: Arc<BatchWork<Vec<f32>>> = Arc::new(move |texts: &[&str], _k: usize| {
                    embedder.embed_queries(texts, texts.len(), &|| Ok(()))
                });
                Some(Batcher::start(work, config.batch_settings())?)
            }
            _ => None,
        };
        Ok(Self {
            config,
            lexical,
            model,
            batcher,
            snapshot: RwLock::new(Arc::new(snapshot)),
            writer: Mutex::new(WriterState { writer, dense }),
        })
    }

    /// The mode used when a call names none.
    pub fn default_mode(&self) -> Mode {
        if self.model.embedder().is_some() {
            Mode::Hybrid
        } else {
            Mode::Bm25
        }
    }

    /// The configured default `top_k`.
    pub fn default_top_k(&self) -> usize {
        self.config.top_k
    }

    fn current(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The top `k` hits of each query, in query order.
    pub fn search(
        &self,
        queries: &[String],
        k: usize,
        mode: Mode,
        check: StopCheck<'_>,
    ) -> RagResult<Vec<Vec<Hit>>> {
        let snapshot = self.current();
        let dense_hits = if mode.needs_model() {
            let (Some(embedder), Some(matrix)) = (self.model.embedder(), &snapshot.dense) else {
                return Err(self.model.unavailable(mode));
            };
            let refs: Vec<&str> = queries.iter().map(String::as_str).collect();
            let vectors = match &self.batcher {
                Some(batcher) => batcher.run(&refs, k, check)?,
                None => embedder.embed_queries(&refs, self.config.embed_batch_size, check)?,
            };
            let depth = if mode == Mode::Hybrid {
                fusion_depth(k)
            } else {
                k
            };
            matrix.search(&vectors, depth)?
        } else {
            vec![Vec::new(); queries.len()]
        };
        queries
            .iter()
            .zip(dense_hits)
            .map(|(query, dense)| {
                check()?;
                self.search_one(&snapshot.searcher, query, dense, k, mode)
            })
            .collect()
    }

    fn search_one(
        &self,
        searcher: &Searcher,
        query: &str,
        dense: Vec<(String, f32)>,
        k: usize,
        mode: Mode,
    ) -> RagResult<Vec<Hit>> {
        let ranked: Vec<(DocAddress, f32)> = match mode {
            Mode::Bm25 => self.lexical.bm25(searcher, query, k)?,
            Mode::Dense => self.addresses(searcher, dense)?,
            Mode::Hybrid => {
                let depth = fusion_depth(k);
                let lexical: Vec<DocAddress> = self
                    .lexical
                    .bm25(searcher, query, depth)?
                    .into_iter()
                    .map(|(a, _)| a)
                    .collect();
                let semantic: Vec<DocAddress> = self
                    .addresses(searcher, dense)?
                    .into_iter()
                    .map(|(a, _)| a)
                    .collect();
                reciprocal_rank_fusion(&[lexical, semantic], k)
            }
        };
        ranked
            .into_iter()
            .take(k)
            .map(|(address, score)| {
                let doc = self.lexical.stored(searcher, address)?;
                Ok(Hit {
                    id: doc.id,
                    title: doc.title,
                    content: doc.text,
                    score,
                })
            })
            .collect()
    }

    /// Where each dense hit lives in this snapshot.
    fn addresses(
        &self,
        searcher: &Searcher,
        hits: Vec<(String, f32)>,
    ) -> RagResult<Vec<(DocAddress, f32)>> {
        let mut out = Vec::with_capacity(hits.len());
        for (id, score) in hits {
            if let Some(address) = self.lexical.address_of(searcher, &id)? {
                out.push((address, score));
            }
        }
        Ok(out)
    }

    /// Adds or replaces `documents` durably: when this returns `Ok`, they are
    /// committed (with their embeddings) and visible to every new search.
    pub fn index(&self, documents: Vec<Document>, check: StopCheck<'_>) -> RagResult<IndexOutcome> {
        let ids: Vec<String> = documents.iter().map(|d| d.id.clone()).collect();
        let documents = last_of_each_id(documents);
        let vectors = match self.model.embedder() {
            Some(embedder) => {
                let texts: Vec<String> = documents.iter().map(Document::embedding_text).collect();
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                Some(embedder.embed_passages(&refs, self.config.embed_batch_size, check)?)
            }
            None => None,
        };
        // Past this point the call runs to the end: a half-applied write is worse than a late answer.
        check()?;
        let mut state = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let staged = match (&state.dense, &vectors) {
            (Some(dense), Some(vectors)) => Some(
                dense.stage(
                    documents
                        .iter()
                        .map(|d| d.id.clone())
                        .zip(vectors.iter().cloned())
                        .collect(),
                )?,
            ),
            _ => None,
        };
        let written = self.write_and_commit(&mut state.writer, &documents, vectors.as_deref());
        if let Err(e) = written {
            // Drop whatever was added but not committed, so a later commit cannot publish it.
            if let Err(rollback) = state.writer.rollback() {
                logging::warn(&format!(
                    "rollback after a failed commit failed too: {rollback}"
                ));
            }
            return Err(e);
        }
        let searcher = self.lexical.reload()?;
        if let (Some(dense), Some(staged)) = (state.dense.as_mut(), staged) {
            dense.apply(staged);
        }
        let total = searcher.num_docs();
        let snapshot = Snapshot {
            searcher,
            dense: state.dense.as_ref().map(|d| d.matrix().clone()),
        };
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
        drop(state);
        Ok(IndexOutcome {
            indexed: documents.len(),
            total,
            ids,
        })
    }

    fn write_and_commit(
        &self,
        writer: &mut IndexWriter,
        documents: &[Document],
        vectors: Option<&[Vec<f32>]>,
    ) -> RagResult<()> {
        for (i, doc) in documents.iter().enumerate() {
            writer.delete_term(self.lexical.id_term(&doc.id));
            let vector = vectors.map(|v| v[i].as_slice());
            writer.add_document(self.lexical.to_tantivy(doc, vector))?;
        }
        writer.commit()?;
        Ok(())
    }

    /// Corpus size, index size, model and modes, for the hidden `stats` tool.
    pub fn stats(&self) -> Value {
        let snapshot = self.current();
        let documents = snapshot.searcher.num_docs();
        let modes: Vec<&str> = match self.model.embedder() {
            Some(_) => vec!["hybrid", "bm25", "dense"],
            None => vec!["bm25"],
        };
        let dense = snapshot.dense.as_ref().map(|m| {
            json!({
                "documents": m.len(),
                "documents_without_embedding": documents.saturating_sub(m.len() as u64),
                "matrix_bytes": m.vector_bytes(),
            })
        });
        json!({
            "documents": documents,
            "segments": snapshot.searcher.segment_readers().len(),
            "index_path": self.lexical.path().display().to_string(),
            "corpus_path": self.config.corpus_path.as_ref().map(|p| p.display().to_string()),
            "index_size_bytes": dir_size(self.lexical.path()),
            "index": {
                "kind": "managed",
                "type": "tantivy BM25 + exact cosine over an in-memory matrix",
                "vectors": snapshot.dense.as_ref().map(|m| m.len()),
                "dims": self.model.embedder().map(|e| e.dims()),
                "read_only": false,
            },
            "dense": dense,
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

    /// Waits for background merges and releases the index lock.
    pub fn close(self) {
        let state = self
            .writer
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = state.writer.wait_merging_threads() {
            logging::warn(&format!("closing the index writer: {e}"));
        }
    }
}

/// How deep each list is read for hybrid fusion: at least `top_k`, at least
/// [`HYBRID_DEPTH`], at most [`MAX_TOP_K`] (both bounds are constants, min < max).
pub(crate) fn fusion_depth(k: usize) -> usize {
    k.clamp(HYBRID_DEPTH, MAX_TOP_K)
}

/// Fails early, with the path in the message, when `path` cannot hold an index.
fn check_index_path(path: &Path) -> RagResult<()> {
    if path.exists() && !path.is_dir() {
        return Err(RagError::IndexUnavailable(format!(
            "index_path '{}' is a file, not a directory",
            path.display()
        )));
    }
    match std::fs::read_dir(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RagError::IndexUnavailable(
            format!("index_path '{}' cannot be read: {e}", path.display()),
        )),
        _ => Ok(()),
    }
}

/// Keeps the last document of each id (later input replaces earlier), in input order.
fn last_of_each_id(documents: Vec<Document>) -> Vec<Document> {
    let mut last: HashMap<String, usize> = HashMap::new();
    for (i, doc) in documents.iter().enumerate() {
        last.insert(doc.id.clone(), i);
    }
    documents
        .into_iter()
        .enumerate()
        .filter(|(i, doc)| last.get(&doc.id) == Some(i))
        .map(|(_, doc)| doc)
        .collect()
}

/// Reads every stored embedding into a matrix; documents stored without one
/// (indexed while no model was installed) are embedded now and rewritten.
fn load_dense(
    config: &RagConfig,
    lexical: &LexicalIndex,
    searcher: &Searcher,
    writer: &mut IndexWriter,
    embedder: &crate::embedder::Embedder,
) -> RagResult<DenseWriter> {
    let started = Instant::now();
    let dims = embedder.dims();
    let stamp_path = lexical.path().join(ENCODER_STAMP);
    let current = encoder_stamp(embedder);
    let recorded: Option<Value> = std::fs::read_to_string(&stamp_path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    // Vectors of another encoder (or other pooling or prefix) are not comparable with
    // this one's queries: every document is embedded again.
    let reembed_all = recorded.as_ref().is_some_and(|r| *r != current);
    if reembed_all {
        logging::warn(&format!(
            "the encoder changed since these vectors were stored (was {}, now {current}): embedding every document again",
            recorded.as_ref().map(Value::to_string).unwrap_or_default()
        ));
    }
    let mut builder = DenseBuilder::new(dims);
    let mut pending: Vec<Document> = Vec::new();
    // The total is an upper bound: only documents without a vector are counted as done.
    let mut backfilled = Progress::new(
        "embedding documents stored without a vector",
        searcher.num_docs() as usize,
    );
    let mut flush = |pending: &mut Vec<Document>, builder: &mut DenseBuilder| -> RagResult<()> {
        let texts: Vec<String> = pending.iter().map(Document::embedding_text).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = embedder.embed_passages(&refs, config.embed_batch_size, &|| Ok(()))?;
        for (doc, vector) in pending.drain(..).zip(vectors) {
            writer.delete_term(lexical.id_term(&doc.id));
            writer.add_document(lexical.to_tantivy(&doc, Some(&vector)))?;
            builder.push(doc.id, &vector)?;
            backfilled.advance(1);
        }
        Ok(())
    };
    lexical.for_each_doc(searcher, |doc: StoredDoc| {
        match doc.embedding {
            Some(vector) if vector.len() == dims && !reembed_all => {
                builder.push(doc.id, &vector)?
            }
            _ => {
                pending.push(Document {
                    id: doc.id,
                    title: doc.title,
                    text: doc.text,
                });
                if pending.len() >= config.index_batch_size {
                    flush(&mut pending, &mut builder)?;
                }
            }
        }
        Ok(())
    })?;
    if !pending.is_empty() {
        flush(&mut pending, &mut builder)?;
    }
    let count = backfilled.done();
    if count > 0 {
        writer.commit()?;
        logging::info(&format!(
            "stored embeddings for {count} documents that had none (or of another size)"
        ));
    }
    if recorded.as_ref() != Some(&current) {
        write_synced(&stamp_path, current.to_string().as_bytes())?;
    }
    let dense = builder.finish()?;
    logging::info(&format!(
        "loaded {} embeddings ({:.1} MB) in {:.2} s",
        dense.matrix().len(),
        dense.matrix().vector_bytes() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    ));
    Ok(dense)
}

/// The file in the index directory naming the encoder its vectors came from.
const ENCODER_STAMP: &str = "encoder.json";

/// What makes stored passage vectors comparable: model, pooling,
/// normalisation and the passage prefix.
fn encoder_stamp(embedder: &crate::embedder::Embedder) -> Value {
    let spec = embedder.spec();
    json!({
        "model": embedder.dir().display().to_string(),
        "dims": embedder.dims(),
        "pooling": spec.pooling.name(),
        "normalize": spec.normalize,
        "passage_prefix": spec.passage_prefix,
    })
}

/// Total size of the files under `path`.
fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => dir_size(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
