//! The tools: typed params (their JSON Schema is what the host validates),
//! checks that name the offending field, and the calls into the engine.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use plugin_api::{CallContext, NoParams, PluginError, Tools};

use crate::backend::Backend as Engine;
use crate::config::MAX_TOP_K;
use crate::context::format_context;
use crate::document::Document;
use crate::engine::Hit;
use crate::error::RagError;
use crate::mode::Mode;
use crate::RagPlugin;

/// Most queries one `batch_search` takes.
pub const MAX_QUERIES: usize = 1000;
/// Most documents one `index` call takes.
pub const MAX_DOCUMENTS: usize = 10_000;
/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 10_000;

/// Params of `search`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchParams {
    /// What to look for (natural language or keywords).
    pub query: String,
    /// How many hits to return, 1 to 1000 (default from the plugin config, usually 10).
    #[serde(default)]
    pub top_k: Option<i64>,
    /// `hybrid` (default when the embedding model is installed), `bm25` or `dense`.
    #[serde(default)]
    pub mode: Option<Mode>,
}

/// Params of `batch_search`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct BatchSearchParams {
    /// The queries, answered in order (at most 1000).
    pub queries: Vec<String>,
    /// Hits per query, 1 to 1000 (default from the plugin config, usually 10).
    #[serde(default)]
    pub top_k: Option<i64>,
    /// `hybrid` (default when the embedding model is installed), `bm25` or `dense`.
    #[serde(default)]
    pub mode: Option<Mode>,
}

/// A document id given as a string or an integer.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum DocumentId {
    /// A string id.
    Text(String),
    /// An integer id (stored as its decimal string).
    Number(i64),
}

/// One document to index.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DocumentInput {
    /// Unique id; an existing document with this id is replaced. Generated from the content when absent.
    #[serde(default)]
    pub id: Option<DocumentId>,
    /// Optional title.
    #[serde(default)]
    pub title: Option<String>,
    /// The text (or give it as `text`).
    #[serde(default)]
    pub content: Option<String>,
    /// The text, when `content` is not given.
    #[serde(default)]
    pub text: Option<String>,
    /// The text, FlashRAG corpus spelling.
    #[serde(default)]
    pub contents: Option<String>,
}

/// Params of `index`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct IndexParams {
    /// Documents to add or replace (1 to 10000 per call).
    pub documents: Vec<DocumentInput>,
}

/// Result of `search`.
#[derive(Debug, Serialize)]
pub struct SearchResult {
    /// The query as given.
    pub query: String,
    /// Hits, best first.
    pub results: Vec<Hit>,
    /// The hits formatted for a prompt.
    pub context: String,
    /// The mode that ranked the hits.
    pub mode: Mode,
}

/// Result of `batch_search`.
#[derive(Debug, Serialize)]
pub struct BatchSearchResult {
    /// Number of queries answered.
    pub count: usize,
    /// Hits of each query, in query order.
    pub results: Vec<Vec<Hit>>,
    /// `context` of each query, in query order.
    pub contexts: Vec<String>,
    /// The mode that ranked the hits.
    pub mode: Mode,
}

/// Result of `index`.
#[derive(Debug, Serialize)]
pub struct IndexResult {
    /// Documents written (repeated ids in one call count once).
    pub indexed: usize,
    /// Documents in the index now.
    pub total: u64,
    /// The id of each input document, in input order.
    pub ids: Vec<String>,
}

/// The plugin's tools.
pub fn tools() -> Tools<RagPlugin> {
    Tools::new()
        .tool(
            "search",
            "Search the document index. Returns the best passages ({id, title, content, score}) and \
             `context`, the passages formatted for a prompt. mode: hybrid (default), bm25 or dense.",
            |plugin: &RagPlugin, cx: &CallContext<'_, ()>, p: SearchParams| search(plugin.engine(), cx, p),
        )
        .read_only()
        .tool(
            "batch_search",
            "Run several searches at once; results and contexts come back in query order.",
            |plugin: &RagPlugin, cx: &CallContext<'_, ()>, p: BatchSearchParams| {
                batch_search(plugin.engine(), cx, p)
            },
        )
        .read_only()
        .tool(
            "index",
            "Add documents ({id?, title?, content}) to the index durably; a document with an \
             existing id replaces it. Returns {indexed, total}.",
            |plugin: &RagPlugin, cx: &CallContext<'_, ()>, p: IndexParams| index(plugin.engine(), cx, p),
        )
        .hidden_tool(
            "stats",
            "Index size, document count, embedding model and available modes.",
            |plugin: &RagPlugin, _cx: &CallContext<'_, ()>, _p: NoParams| Ok(plugin.engine().stats()),
        )
        .read_only()
}

fn search(
    engine: &Engine,
    cx: &CallContext<'_, ()>,
    p: SearchParams,
) -> Result<SearchResult, PluginError> {
    check_query("query", &p.query)?;
    let k = top_k(p.top_k, engine)?;
    let mode = p.mode.unwrap_or_else(|| engine.default_mode());
    let check = || cx.check().map_err(RagError::Stopped);
    check()?;
    let query = p.query;
    let mut hits = engine.search(std::slice::from_ref(&query), k, mode, &check)?;
    let results = hits.pop().unwrap_or_default();
    let context = format_context(&results);
    Ok(SearchResult {
        query,
        results,
        context,
        mode,
    })
}

fn batch_search(
    engine: &Engine,
    cx: &CallContext<'_, ()>,
    p: BatchSearchParams,
) -> Result<BatchSearchResult, PluginError> {
    if p.queries.is_empty() {
        return Err(PluginError::invalid_params(
            "queries: must hold at least one query",
        ));
    }
    if p.queries.len() > MAX_QUERIES {
        return Err(PluginError::invalid_params(format!(
            "queries: {} queries given, at most {MAX_QUERIES} per call",
            p.queries.len()
        )));
    }
    for (i, query) in p.queries.iter().enumerate() {
        check_query(&format!("queries[{i}]"), query)?;
    }
    let k = top_k(p.top_k, engine)?;
    let mode = p.mode.unwrap_or_else(|| engine.default_mode());
    let check = || cx.check().map_err(RagError::Stopped);
    check()?;
    let results = engine.search(&p.queries, k, mode, &check)?;
    let contexts = results.iter().map(|hits| format_context(hits)).collect();
    Ok(BatchSearchResult {
        count: results.len(),
        results,
        contexts,
        mode,
    })
}

fn index(
    engine: &Engine,
    cx: &CallContext<'_, ()>,
    p: IndexParams,
) -> Result<IndexResult, PluginError> {
    if p.documents.is_empty() {
        return Err(PluginError::invalid_params(
            "documents: must hold at least one document",
        ));
    }
    if p.documents.len() > MAX_DOCUMENTS {
        return Err(PluginError::invalid_params(format!(
            "documents: {} documents given, at most {MAX_DOCUMENTS} per call",
            p.documents.len()
        )));
    }
    let documents = p
        .documents
        .into_iter()
        .enumerate()
        .map(|(i, input)| to_document(i, input))
        .collect::<Result<Vec<_>, _>>()?;
    let check = || cx.check().map_err(RagError::Stopped);
    let outcome = engine.index(documents, &check)?;
    Ok(IndexResult {
        indexed: outcome.indexed,
        total: outcome.total,
        ids: outcome.ids,
    })
}

fn to_document(i: usize, input: DocumentInput) -> Result<Document, PluginError> {
    let id = match input.id {
        None => None,
        Some(DocumentId::Number(n)) => Some(n.to_string()),
        Some(DocumentId::Text(s)) if s.trim().is_empty() => {
            return Err(PluginError::invalid_params(format!(
                "documents[{i}].id: must not be empty"
            )));
        }
        Some(DocumentId::Text(s)) => Some(s),
    };
    let text = [input.content, input.text, input.contents]
        .into_iter()
        .flatten()
        .map(|t| t.trim().to_string())
        .find(|t| !t.is_empty());
    let Some(text) = text else {
        let which = id
            .as_deref()
            .map(|id| format!(" (id '{id}')"))
            .unwrap_or_default();
        return Err(PluginError::invalid_params(format!(
            "documents[{i}]{which}: no text: give a non-empty 'content' or 'text'"
        )));
    };
    let title = input
        .title
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    Ok(Document::new(id, title, text))
}

fn check_query(field: &str, query: &str) -> Result<(), PluginError> {
    if query.trim().is_empty() {
        return Err(PluginError::invalid_params(format!(
            "{field}: must not be empty"
        )));
    }
    let chars = query.chars().count();
    if chars > MAX_QUERY_CHARS {
        return Err(PluginError::invalid_params(format!(
            "{field}: {chars} characters, at most {MAX_QUERY_CHARS}"
        )));
    }
    Ok(())
}

fn top_k(given: Option<i64>, engine: &Engine) -> Result<usize, PluginError> {
    match given {
        None => Ok(engine.default_top_k()),
        Some(k) if (1..=MAX_TOP_K as i64).contains(&k) => Ok(k as usize),
        Some(k) => Err(PluginError::invalid_params(format!(
            "top_k: {k} is out of range 1..={MAX_TOP_K}"
        ))),
    }
}
