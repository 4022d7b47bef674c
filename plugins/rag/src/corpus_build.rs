//! Creating the index when `index_path` holds none: stream the corpus in
//! bounded batches (read, embed, add), commit once, then move the finished
//! index into place so a crash mid-build never leaves a half-built index
//! that looks complete.
//!
//! Memory while building is bounded by the tantivy writer's heap
//! (`writer_memory_mb`, flushed to a segment when full) plus one batch of
//! `index_batch_size` documents with their vectors plus the model's
//! activations for one `embed_batch_size` forward pass; embeddings go
//! straight into the index and are not kept.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::config::RagConfig;
use crate::corpus::{count_lines, CorpusReader};
use crate::embedder::Embedder;
use crate::error::{RagError, RagResult};
use crate::lexical::LexicalIndex;
use crate::logging;
use crate::progress::Progress;

/// Builds the index at `config.index_path` from `config.corpus_path` (an
/// empty index when there is no corpus).
pub fn build_index(config: &RagConfig, embedder: Option<&Embedder>) -> RagResult<()> {
    let target = &config.index_path;
    check_target(target)?;
    let partial = partial_dir(target);
    if partial.exists() {
        // Left by a build that crashed; it was never moved into place.
        logging::warn(&format!("removing unfinished build {}", partial.display()));
        fs::remove_dir_all(&partial).map_err(|e| unusable(&partial, &e))?;
    }
    fs::create_dir_all(&partial).map_err(|e| unusable(&partial, &e))?;

    let index = LexicalIndex::create(&partial)?;
    let mut writer = index.writer(config.writer_memory_mb)?;
    match &config.corpus_path {
        Some(corpus) => {
            let summary = add_corpus(config, corpus, &index, &mut writer, embedder)?;
            logging::info(&summary);
        }
        None => logging::info("no corpus_path configured: the new index starts empty"),
    }
    writer.commit()?;
    writer.wait_merging_threads()?;
    drop(index);

    if target.is_dir() {
        // An empty directory (checked above) is replaced by the new index.
        fs::remove_dir(target).map_err(|e| unusable(target, &e))?;
    }
    fs::rename(&partial, target).map_err(|e| unusable(target, &e))?;
    sync_parent(target);
    Ok(())
}

/// `index_path` may be missing or an empty directory; anything else is not ours to overwrite.
fn check_target(target: &Path) -> RagResult<()> {
    if target.exists() && !target.is_dir() {
        return Err(RagError::IndexUnavailable(format!(
            "index_path '{}' is a file, not a directory",
            target.display()
        )));
    }
    if target.is_dir() {
        let mut entries = fs::read_dir(target).map_err(|e| unusable(target, &e))?;
        if entries.next().is_some() {
            return Err(RagError::IndexUnavailable(format!(
                "index_path '{}' is not empty but holds no index (no meta.json); refusing to overwrite it",
                target.display()
            )));
        }
    }
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| unusable(parent, &e))?;
    }
    Ok(())
}

fn add_corpus(
    config: &RagConfig,
    corpus: &Path,
    index: &LexicalIndex,
    writer: &mut tantivy::IndexWriter,
    embedder: Option<&Embedder>,
) -> RagResult<String> {
    let total = count_lines(corpus).map_err(|e| match e {
        RagError::Io(io) => RagError::IndexUnavailable(format!(
            "corpus_path '{}' cannot be read: {io}",
            corpus.display()
        )),
        other => other,
    })?;
    let mut reader = CorpusReader::open(corpus)?;
    logging::info(&format!(
        "building the index at {} from {} ({total} lines, {})",
        config.index_path.display(),
        corpus.display(),
        if embedder.is_some() {
            "BM25 + embeddings"
        } else {
            "BM25 only, no embedding model"
        }
    ));
    let mut progress = Progress::new("building the index", total);
    let mut seen = HashSet::new();
    let mut duplicates = 0usize;
    loop {
        let batch = reader.next_batch(config.index_batch_size)?;
        if batch.is_empty() {
            break;
        }
        let vectors = match embedder {
            Some(model) => {
                let texts: Vec<String> = batch.iter().map(|d| d.embedding_text()).collect();
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                Some(model.embed_passages(&refs, config.embed_batch_size, &|| Ok(()))?)
            }
            None => None,
        };
        for (i, doc) in batch.iter().enumerate() {
            if !seen.insert(doc.id.clone()) {
                // The later line wins, as `index` does for a repeated id.
                duplicates += 1;
                writer.delete_term(index.id_term(&doc.id));
            }
            let vector = vectors.as_ref().map(|v| v[i].as_slice());
            writer.add_document(index.to_tantivy(doc, vector))?;
        }
        progress.advance(batch.len());
    }
    reader.log_summary();
    if duplicates > 0 {
        logging::warn(&format!(
            "corpus {}: {duplicates} repeated ids; the later lines replaced the earlier",
            corpus.display()
        ));
    }
    Ok(format!(
        "indexed {} documents from {} in {:.1} s ({:.1} docs/s), skipped {} malformed lines",
        progress.done(),
        corpus.display(),
        progress.elapsed().as_secs_f64(),
        progress.rate(),
        reader.bad_lines().len()
    ))
}

/// `<index_path>.partial`, next to the index.
fn partial_dir(target: &Path) -> PathBuf {
    let mut name = target
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".partial");
    target.with_file_name(name)
}

fn unusable(path: &Path, e: &std::io::Error) -> RagError {
    RagError::IndexUnavailable(format!("index_path '{}': {e}", path.display()))
}

/// Makes the rename itself durable.
fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = fs::File::open(parent) {
        let _ = dir.sync_all();
    }
}
