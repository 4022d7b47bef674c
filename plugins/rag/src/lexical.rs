//! The tantivy index: schema, opening and creating it, BM25 queries, and
//! reading stored documents (with their embeddings) back.
//!
//! Embeddings are stored with their document (a stored bytes field), so one
//! tantivy commit makes a document and its vector durable together.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    BytesOptions, Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED,
    STRING,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    TextAnalyzer,
};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term,
};

use crate::document::Document;
use crate::error::{RagError, RagResult};

/// Name of the analyzer used for titles, texts and queries.
const ANALYZER: &str = "rag_en";

/// The file tantivy writes on every commit; its presence means "an index lives here".
const META_FILE: &str = "meta.json";

/// Fields of the index.
#[derive(Debug, Clone, Copy)]
struct Fields {
    id: Field,
    title: Field,
    content: Field,
    embedding: Field,
}

/// A document as read back from the index.
#[derive(Debug, Clone)]
pub struct StoredDoc {
    /// The document's id.
    pub id: String,
    /// Its title (empty when untitled).
    pub title: String,
    /// Its text.
    pub text: String,
    /// Its embedding, when one was stored.
    pub embedding: Option<Vec<f32>>,
}

/// An opened tantivy index with its reader.
pub struct LexicalIndex {
    index: Index,
    fields: Fields,
    reader: IndexReader,
    path: PathBuf,
}

/// `stored_text: false` keeps titles and texts out of the index (they are
/// read from the corpus instead: BM25 over a Faiss index's corpus).
fn build_schema(stored_text: bool) -> Schema {
    let mut text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    if stored_text {
        text = text.set_stored();
    }
    let mut builder = Schema::builder();
    builder.add_text_field("id", STRING | STORED);
    builder.add_text_field("title", text.clone());
    builder.add_text_field("content", text);
    builder.add_bytes_field("embedding", BytesOptions::default().set_stored());
    builder.build()
}

fn analyzer() -> TextAnalyzer {
    // Like tantivy's en_stem, plus folding accents so "café" matches "cafe".
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(Stemmer::new(Language::English))
        .build()
}

impl LexicalIndex {
    /// True when `path` holds a committed index.
    pub fn exists(path: &Path) -> bool {
        path.join(META_FILE).is_file()
    }

    /// Opens the index at `path`.
    pub fn open(path: &Path) -> RagResult<Self> {
        let index = Index::open_in_dir(path).map_err(|e| {
            RagError::IndexUnavailable(format!(
                "index_path '{}': cannot open the index: {e}",
                path.display()
            ))
        })?;
        Self::wrap(index, path)
    }

    /// Creates an empty index in the existing, empty directory `path`.
    pub fn create(path: &Path) -> RagResult<Self> {
        Self::create_with(path, true)
    }

    /// Creates an empty index that stores ids only (texts stay in the corpus).
    pub fn create_ids_only(path: &Path) -> RagResult<Self> {
        Self::create_with(path, false)
    }

    fn create_with(path: &Path, stored_text: bool) -> RagResult<Self> {
        let index = Index::create_in_dir(path, build_schema(stored_text)).map_err(|e| {
            RagError::IndexUnavailable(format!(
                "index_path '{}': cannot create an index: {e}",
                path.display()
            ))
        })?;
        Self::wrap(index, path)
    }

    fn wrap(index: Index, path: &Path) -> RagResult<Self> {
        let schema = index.schema();
        let field = |name: &str| {
            schema.get_field(name).map_err(|_| {
                RagError::IndexUnavailable(format!(
                    "index_path '{}' holds an index without the field '{name}': it was not made by the rag plugin",
                    path.display()
                ))
            })
        };
        let fields = Fields {
            id: field("id")?,
            title: field("title")?,
            content: field("content")?,
            embedding: field("embedding")?,
        };
        index.tokenizers().register(ANALYZER, analyzer());
        // Reloaded by hand right after each commit, so a search sees either
        // the whole commit or none of it.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            fields,
            reader,
            path: path.to_path_buf(),
        })
    }

    /// The index directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The single writer of this index (it takes the directory's lock file).
    pub fn writer(&self, memory_mb: usize) -> RagResult<IndexWriter> {
        self.index
            .writer_with_num_threads(1, memory_mb * 1024 * 1024)
            .map_err(|e| match e {
                tantivy::TantivyError::LockFailure(..) => RagError::IndexUnavailable(format!(
                    "index_path '{}' is locked: another process (or plugin instance) is writing to it",
                    self.path.display()
                )),
                other => RagError::Tantivy(other),
            })
    }

    /// Makes the last commit visible and returns a searcher on it.
    pub fn reload(&self) -> RagResult<Searcher> {
        self.reader.reload()?;
        Ok(self.reader.searcher())
    }

    /// The term that identifies a document (for deletes and lookups).
    pub fn id_term(&self, id: &str) -> Term {
        Term::from_field_text(self.fields.id, id)
    }

    /// The tantivy document for `doc`, with its embedding when there is one.
    pub fn to_tantivy(&self, doc: &Document, embedding: Option<&[f32]>) -> TantivyDocument {
        let mut out = TantivyDocument::new();
        out.add_text(self.fields.id, &doc.id);
        if !doc.title.is_empty() {
            out.add_text(self.fields.title, &doc.title);
        }
        out.add_text(self.fields.content, &doc.text);
        if let Some(vector) = embedding {
            out.add_bytes(self.fields.embedding, &encode_vector(vector));
        }
        out
    }

    /// The BM25 top `k` of `query` over titles and texts.
    pub fn bm25(
        &self,
        searcher: &Searcher,
        query: &str,
        k: usize,
    ) -> RagResult<Vec<(DocAddress, f32)>> {
        let mut analyzer = self.index.tokenizer_for_field(self.fields.content)?;
        let mut stream = analyzer.token_stream(query);
        let mut terms = BTreeSet::new();
        while stream.advance() {
            terms.insert(stream.token().text.clone());
        }
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        // Query terms are matched one by one (no query syntax): user text
        // such as `what's "AND" (x)?` must never be a parse error.
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .flat_map(|t| [self.fields.title, self.fields.content].map(|f| (f, t)))
            .map(|(field, text)| {
                let query = TermQuery::new(
                    Term::from_field_text(field, text),
                    IndexRecordOption::WithFreqs,
                );
                (Occur::Should, Box::new(query) as Box<dyn Query>)
            })
            .collect();
        let hits = searcher.search(
            &BooleanQuery::new(clauses),
            &TopDocs::with_limit(k).order_by_score(),
        )?;
        Ok(hits
            .into_iter()
            .map(|(score, address)| (address, score))
            .collect())
    }

    /// The stored id of a hit.
    pub fn stored_id(&self, searcher: &Searcher, address: DocAddress) -> RagResult<String> {
        let doc: TantivyDocument = searcher.doc(address)?;
        Ok(doc
            .get_first(self.fields.id)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default())
    }

    /// Reads a stored document.
    pub fn stored(&self, searcher: &Searcher, address: DocAddress) -> RagResult<StoredDoc> {
        let doc: TantivyDocument = searcher.doc(address)?;
        Ok(self.unpack(&doc))
    }

    /// Where the document with `id` is in this snapshot.
    pub fn address_of(&self, searcher: &Searcher, id: &str) -> RagResult<Option<DocAddress>> {
        let query = TermQuery::new(self.id_term(id), IndexRecordOption::Basic);
        let hit = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?;
        Ok(hit.first().map(|(_, address)| *address))
    }

    /// Looks a document up by id.
    #[cfg(test)]
    pub fn find(&self, searcher: &Searcher, id: &str) -> RagResult<Option<StoredDoc>> {
        match self.address_of(searcher, id)? {
            Some(address) => self.stored(searcher, address).map(Some),
            None => Ok(None),
        }
    }

    /// Calls `visit` for every live document of the searcher's snapshot, in
    /// storage order, with bounded memory.
    pub fn for_each_doc(
        &self,
        searcher: &Searcher,
        mut visit: impl FnMut(StoredDoc) -> RagResult<()>,
    ) -> RagResult<()> {
        for segment in searcher.segment_readers() {
            let store = segment.get_store_reader(4)?;
            for doc in store.iter::<TantivyDocument>(segment.alive_bitset()) {
                visit(self.unpack(&doc?))?;
            }
        }
        Ok(())
    }

    fn unpack(&self, doc: &TantivyDocument) -> StoredDoc {
        let text = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        };
        StoredDoc {
            id: text(self.fields.id),
            title: text(self.fields.title),
            text: text(self.fields.content),
            embedding: doc
                .get_first(self.fields.embedding)
                .and_then(|v| v.as_bytes())
                .and_then(decode_vector),
        }
    }
}

/// Little-endian f32s.
fn encode_vector(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode_vector(bytes: &[u8]) -> Option<Vec<f32>> {
    let chunks = bytes.chunks_exact(4);
    if bytes.is_empty() || !chunks.remainder().is_empty() {
        return None;
    }
    Some(
        chunks
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip() {
        let v = vec![0.5, -1.25, 3.0];
        assert_eq!(decode_vector(&encode_vector(&v)), Some(v));
        assert_eq!(decode_vector(&[1, 2, 3]), None);
    }

    #[test]
    fn bm25_ranks_matching_document_first_and_survives_syntax() {
        let dir = tempfile::tempdir().unwrap();
        let index = LexicalIndex::create(dir.path()).unwrap();
        let mut writer = index.writer(15).unwrap();
        for (id, title, text) in [
            ("1", "Paris", "Paris is the capital of France."),
            ("2", "Berlin", "Berlin is the capital of Germany."),
        ] {
            let doc = Document::new(Some(id.into()), title.into(), text.into());
            writer
                .add_document(index.to_tantivy(&doc, Some(&[1.0, 0.0])))
                .unwrap();
        }
        writer.commit().unwrap();
        let searcher = index.reload().unwrap();
        let hits = index
            .bm25(&searcher, "capital of GERMANY's \"AND\" (x:", 5)
            .unwrap();
        let top = index.stored(&searcher, hits[0].0).unwrap();
        assert_eq!(top.id, "2");
        assert_eq!(top.embedding, Some(vec![1.0, 0.0]));
        assert!(index.bm25(&searcher, "?!", 5).unwrap().is_empty());
        assert_eq!(index.find(&searcher, "1").unwrap().unwrap().title, "Paris");
        let mut count = 0;
        index
            .for_each_doc(&searcher, |_| {
                count += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(count, 2);
    }
}
