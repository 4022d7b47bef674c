//! BM25 over a Faiss index's corpus: a tantivy index of titles and texts
//! that stores only each passage's number (the texts stay in the corpus and
//! are read through its offsets), built once and reused by later starts.
//!
//! Durability: the index is built in `<dir>.partial` and renamed into place
//! only when committed, with a `corpus.json` that names the corpus it was
//! built from; a start that finds another corpus's index (or a half-built
//! one) builds it again.

use std::path::{Path, PathBuf};

use serde_json::json;
use tantivy::Searcher;

use crate::document::Document;
use crate::durable::write_synced;
use crate::error::{RagError, RagResult};
use crate::lazy_corpus::LazyCorpus;
use crate::lexical::LexicalIndex;
use crate::logging;
use crate::progress::Progress;

/// What names the corpus an index was built from.
const STAMP_FILE: &str = "corpus.json";

/// The opened BM25 index and a searcher on it (it never changes).
pub struct CorpusBm25 {
    index: LexicalIndex,
    searcher: Searcher,
    dir: PathBuf,
}

impl CorpusBm25 {
    /// Opens the index in `dir` if it was built from `corpus`, else builds it.
    pub fn open_or_build(dir: &Path, corpus: &LazyCorpus, memory_mb: usize) -> RagResult<Self> {
        let stamp = stamp(corpus);
        let found = std::fs::read_to_string(dir.join(STAMP_FILE))
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
        match found {
            Some(found) if found == stamp => {}
            Some(found) => {
                logging::info(&format!(
                    "BM25 index at {} was built from another corpus ({found}): building it again",
                    dir.display()
                ));
                build(dir, corpus, memory_mb, &stamp)?;
            }
            None => build(dir, corpus, memory_mb, &stamp)?,
        }
        let index = LexicalIndex::open(dir)?;
        let searcher = index.reload()?;
        logging::info(&format!(
            "BM25 over the corpus: {} passages indexed at {}",
            searcher.num_docs(),
            dir.display()
        ));
        Ok(Self {
            index,
            searcher,
            dir: dir.to_path_buf(),
        })
    }

    /// The BM25 top `k` of `query`: (passage number, score), best first.
    pub fn search(&self, query: &str, k: usize) -> RagResult<Vec<(u64, f32)>> {
        self.index
            .bm25(&self.searcher, query, k)?
            .into_iter()
            .map(|(address, score)| {
                let id = self.index.stored_id(&self.searcher, address)?;
                let passage = id.parse::<u64>().map_err(|_| {
                    RagError::IndexUnavailable(format!(
                        "BM25 index at {} holds '{id}', not a passage number: delete it to have it built again",
                        self.dir.display()
                    ))
                })?;
                Ok((passage, score))
            })
            .collect()
    }

    /// Where it lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Passages indexed.
    pub fn len(&self) -> u64 {
        self.searcher.num_docs()
    }
}

/// The corpus an index belongs to: path, size and passage count.
fn stamp(corpus: &LazyCorpus) -> serde_json::Value {
    json!({
        "corpus_path": corpus.path().display().to_string(),
        "corpus_bytes": corpus.bytes(),
        "passages": corpus.len(),
    })
}

fn build(
    dir: &Path,
    corpus: &LazyCorpus,
    memory_mb: usize,
    stamp: &serde_json::Value,
) -> RagResult<()> {
    let partial = PathBuf::from(format!("{}.partial", dir.display()));
    let io = |what: &str, path: &Path, e: std::io::Error| {
        RagError::IndexUnavailable(format!(
            "BM25 index: cannot {what} '{}': {e}",
            path.display()
        ))
    };
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| io("remove the half-built", &partial, e))?;
    }
    std::fs::create_dir_all(&partial).map_err(|e| io("create", &partial, e))?;
    let index = LexicalIndex::create_ids_only(&partial)?;
    let mut writer = index.writer(memory_mb)?;
    let mut progress = Progress::new(
        format!("building BM25 over corpus {}", corpus.path().display()),
        corpus.len() as usize,
    );
    let mut skipped = 0u64;
    corpus.for_each(|number, passage| {
        match passage {
            Ok(p) => {
                let doc = Document {
                    id: number.to_string(),
                    title: p.title,
                    text: p.text,
                };
                writer.add_document(index.to_tantivy(&doc, None))?;
            }
            Err(_) => skipped += 1,
        }
        progress.advance(1);
        Ok(())
    })?;
    writer.commit()?;
    writer.wait_merging_threads()?;
    let stamp_path = partial.join(STAMP_FILE);
    write_synced(&stamp_path, stamp.to_string().as_bytes())
        .map_err(|e| io("write", &stamp_path, e))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| io("replace", dir, e))?;
    }
    std::fs::rename(&partial, dir).map_err(|e| io("move the built index to", dir, e))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("sync", parent, e))?;
    }
    logging::info(&format!(
        "built BM25 over {} passages of {} in {:.1} s ({skipped} malformed lines left out)",
        progress.done(),
        corpus.path().display(),
        progress.elapsed().as_secs_f64()
    ));
    Ok(())
}
