//! The in-memory matrix of document embeddings, searched by brute-force
//! cosine similarity (the vectors are unit length, so a dot product).
//!
//! Rows live in fixed-size chunks, each an immutable candle tensor behind an
//! `Arc`. A snapshot ([`DenseMatrix`]) is a list of chunk pointers, so cloning
//! it is cheap, and a writer changes only the chunks it touches (copy on
//! write): searches keep reading the old snapshot until the new one is
//! swapped in. Memory: 4 bytes x dims per document (384 dims: 1.5 KiB, so
//! 100k documents take ~154 MB) plus the ids.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{Device, Tensor};

use crate::error::{RagError, RagResult};

/// Rows per chunk: small enough that changing one row copies little (6 MB at
/// 384 dims), large enough that a search is a few big matrix products.
pub const CHUNK_ROWS: usize = 4096;

/// An immutable block of rows.
struct DenseChunk {
    /// `ids.len() x dims`, row `i` is the embedding of `ids[i]`.
    vectors: Tensor,
    ids: Vec<String>,
}

impl DenseChunk {
    fn new(data: Vec<f32>, ids: Vec<String>, dims: usize) -> RagResult<Self> {
        let vectors = Tensor::from_vec(data, (ids.len(), dims), &Device::Cpu)?;
        Ok(Self { vectors, ids })
    }

    fn data(&self) -> RagResult<Vec<f32>> {
        Ok(self.vectors.flatten_all()?.to_vec1::<f32>()?)
    }
}

/// A consistent snapshot of every embedding.
#[derive(Clone)]
pub struct DenseMatrix {
    dims: usize,
    chunks: Vec<Arc<DenseChunk>>,
    len: usize,
}

impl DenseMatrix {
    /// Number of documents with an embedding.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes held by the vectors.
    pub fn vector_bytes(&self) -> usize {
        self.len * self.dims * std::mem::size_of::<f32>()
    }

    /// For every query vector, the `k` most similar documents (id, cosine), best first.
    pub fn search(&self, queries: &[Vec<f32>], k: usize) -> RagResult<Vec<Vec<(String, f32)>>> {
        let mut best: Vec<Vec<(f32, usize, usize)>> = vec![Vec::new(); queries.len()];
        if queries.is_empty() || self.len == 0 || k == 0 {
            return Ok(vec![Vec::new(); queries.len()]);
        }
        let mut flat = Vec::with_capacity(queries.len() * self.dims);
        for q in queries {
            if q.len() != self.dims {
                return Err(RagError::Embedding(format!(
                    "query vector has {} dims, the index {}",
                    q.len(),
                    self.dims
                )));
            }
            flat.extend_from_slice(q);
        }
        let queries_t = Tensor::from_vec(flat, (queries.len(), self.dims), &Device::Cpu)?
            .t()?
            .contiguous()?;
        for (chunk_index, chunk) in self.chunks.iter().enumerate() {
            // rows x queries
            let scores = chunk
                .vectors
                .matmul(&queries_t)?
                .t()?
                .contiguous()?
                .to_vec2::<f32>()?;
            for (query_best, query_scores) in best.iter_mut().zip(scores) {
                for (row, score) in top_k(&query_scores, k) {
                    query_best.push((score, chunk_index, row));
                }
                keep_best(query_best, k);
            }
        }
        Ok(best
            .into_iter()
            .map(|mut hits| {
                hits.sort_by(|a, b| b.0.total_cmp(&a.0));
                hits.truncate(k);
                hits.into_iter()
                    .map(|(score, c, row)| (self.chunks[c].ids[row].clone(), score))
                    .collect()
            })
            .collect())
    }
}

/// Indices and values of the `k` largest scores, unordered.
fn top_k(scores: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut indexed: Vec<(usize, f32)> = scores.iter().copied().enumerate().collect();
    if indexed.len() > k {
        indexed.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
        indexed.truncate(k);
    }
    indexed
}

/// Shrinks `hits` to its `k` best entries (unordered) once it holds more than 2k.
fn keep_best(hits: &mut Vec<(f32, usize, usize)>, k: usize) {
    if hits.len() > 2 * k {
        hits.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        hits.truncate(k);
    }
}

/// A new matrix computed by [`DenseWriter::stage`], applied only once the
/// documents it belongs to are committed.
pub struct StagedDense {
    matrix: DenseMatrix,
    new_rows: Vec<(String, usize)>,
}

impl StagedDense {
    /// The matrix including the staged rows.
    #[cfg(test)]
    pub fn matrix(&self) -> &DenseMatrix {
        &self.matrix
    }
}

/// The writer's side: the current matrix and where each id's row is. Only
/// one writer exists (it lives under the index writer's lock).
pub struct DenseWriter {
    matrix: DenseMatrix,
    rows: HashMap<String, usize>,
}

impl DenseWriter {
    /// The current matrix.
    pub fn matrix(&self) -> &DenseMatrix {
        &self.matrix
    }

    /// Computes the matrix with `entries` inserted or replaced (ids must be
    /// unique within `entries`), leaving the current one untouched.
    pub fn stage(&self, entries: Vec<(String, Vec<f32>)>) -> RagResult<StagedDense> {
        let dims = self.matrix.dims;
        if let Some((id, v)) = entries.iter().find(|(_, v)| v.len() != dims) {
            return Err(RagError::Embedding(format!(
                "embedding of '{id}' has {} dims, the index {dims}",
                v.len()
            )));
        }
        let mut chunks = self.matrix.chunks.clone();
        let mut replaced: HashMap<usize, Vec<(usize, Vec<f32>)>> = HashMap::new();
        let mut appended = Vec::new();
        for (id, vector) in entries {
            match self.rows.get(&id) {
                Some(&row) => replaced
                    .entry(row / CHUNK_ROWS)
                    .or_default()
                    .push((row % CHUNK_ROWS, vector)),
                None => appended.push((id, vector)),
            }
        }
        for (chunk_index, updates) in replaced {
            let old = &chunks[chunk_index];
            let mut data = old.data()?;
            for (row, vector) in updates {
                data[row * dims..(row + 1) * dims].copy_from_slice(&vector);
            }
            chunks[chunk_index] = Arc::new(DenseChunk::new(data, old.ids.clone(), dims)?);
        }

        let mut len = self.matrix.len;
        let mut new_rows = Vec::with_capacity(appended.len());
        let mut pending = appended.into_iter().peekable();
        while pending.peek().is_some() {
            // Fill the last chunk if it has room, else start a new one.
            let (mut data, mut ids) = match chunks.last() {
                Some(last) if last.ids.len() < CHUNK_ROWS => {
                    let last = chunks
                        .pop()
                        .ok_or_else(|| RagError::Embedding("no chunk".into()))?;
                    (last.data()?, last.ids.clone())
                }
                _ => (Vec::new(), Vec::new()),
            };
            while ids.len() < CHUNK_ROWS {
                let Some((id, vector)) = pending.next() else {
                    break;
                };
                data.extend_from_slice(&vector);
                new_rows.push((id.clone(), len));
                ids.push(id);
                len += 1;
            }
            chunks.push(Arc::new(DenseChunk::new(data, ids, dims)?));
        }
        Ok(StagedDense {
            matrix: DenseMatrix { dims, chunks, len },
            new_rows,
        })
    }

    /// Makes a staged matrix the current one.
    pub fn apply(&mut self, staged: StagedDense) {
        self.rows.extend(staged.new_rows);
        self.matrix = staged.matrix;
    }
}

/// Builds a [`DenseWriter`] from many rows without copying chunks (for
/// loading an index): rows are packed into chunks as they come.
pub struct DenseBuilder {
    dims: usize,
    chunks: Vec<Arc<DenseChunk>>,
    data: Vec<f32>,
    ids: Vec<String>,
    rows: HashMap<String, usize>,
    len: usize,
    /// Repeated ids whose first row is already in a finished chunk.
    late: Vec<(String, Vec<f32>)>,
}

impl DenseBuilder {
    /// An empty builder of `dims`-long rows.
    pub fn new(dims: usize) -> Self {
        Self {
            dims,
            chunks: Vec::new(),
            data: Vec::new(),
            ids: Vec::new(),
            rows: HashMap::new(),
            len: 0,
            late: Vec::new(),
        }
    }

    /// Adds (or, for a repeated id, replaces) a row; `vector` must have `dims` values.
    pub fn push(&mut self, id: String, vector: &[f32]) -> RagResult<()> {
        let dims = self.dims;
        if vector.len() != dims {
            return Err(RagError::Embedding(format!(
                "embedding of '{id}' has {} dims, expected {dims}",
                vector.len()
            )));
        }
        if let Some(&row) = self.rows.get(&id) {
            let first_open_row = self.chunks.len() * CHUNK_ROWS;
            if row >= first_open_row {
                let at = (row - first_open_row) * dims;
                self.data[at..at + dims].copy_from_slice(vector);
            } else {
                self.late.push((id, vector.to_vec()));
            }
            return Ok(());
        }
        self.data.extend_from_slice(vector);
        self.rows.insert(id.clone(), self.len);
        self.ids.push(id);
        self.len += 1;
        if self.ids.len() == CHUNK_ROWS {
            self.seal()?;
        }
        Ok(())
    }

    fn seal(&mut self) -> RagResult<()> {
        let data = std::mem::take(&mut self.data);
        let ids = std::mem::take(&mut self.ids);
        self.chunks
            .push(Arc::new(DenseChunk::new(data, ids, self.dims)?));
        Ok(())
    }

    /// The writer holding every pushed row.
    pub fn finish(mut self) -> RagResult<DenseWriter> {
        if !self.ids.is_empty() {
            self.seal()?;
        }
        let mut writer = DenseWriter {
            matrix: DenseMatrix {
                dims: self.dims,
                chunks: self.chunks,
                len: self.len,
            },
            rows: self.rows,
        };
        if !self.late.is_empty() {
            let mut latest: HashMap<String, Vec<f32>> = HashMap::new();
            latest.extend(self.late);
            let staged = writer.stage(latest.into_iter().collect())?;
            writer.apply(staged);
        }
        Ok(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(dims: usize, hot: usize) -> Vec<f32> {
        let mut v = vec![0.0; dims];
        v[hot] = 1.0;
        v
    }

    #[test]
    fn search_finds_nearest_and_replacement_wins() {
        let mut builder = DenseBuilder::new(4);
        builder.push("a".into(), &unit(4, 0)).unwrap();
        builder.push("b".into(), &unit(4, 1)).unwrap();
        let mut writer = builder.finish().unwrap();
        let hits = writer.matrix().search(&[unit(4, 1)], 1).unwrap();
        assert_eq!(hits[0][0].0, "b");

        let staged = writer
            .stage(vec![("a".into(), unit(4, 2)), ("c".into(), unit(4, 3))])
            .unwrap();
        // Not applied yet: the current matrix is unchanged.
        assert_eq!(writer.matrix().len(), 2);
        writer.apply(staged);
        let m = writer.matrix();
        assert_eq!(m.len(), 3);
        assert_eq!(m.search(&[unit(4, 2)], 1).unwrap()[0][0].0, "a");
        assert_eq!(m.search(&[unit(4, 3)], 1).unwrap()[0][0].0, "c");
        assert_eq!(m.search(&[unit(4, 0)], 3).unwrap()[0].len(), 3);
    }

    /// Prints how long a brute-force search over 100k x 384 takes (a
    /// measurement, not a check): `cargo test --release -p agentflow-rag --lib -- --ignored --nocapture`.
    #[test]
    #[ignore = "measurement"]
    fn measure_search_over_100k_rows() {
        let (rows, dims) = (100_000, 384);
        let mut state = 1u64;
        let mut value = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        let mut builder = DenseBuilder::new(dims);
        for i in 0..rows {
            let v: Vec<f32> = (0..dims).map(|_| value()).collect();
            builder.push(format!("d{i}"), &v).unwrap();
        }
        let matrix = builder.finish().unwrap().matrix().clone();
        let queries: Vec<Vec<f32>> = (0..8)
            .map(|_| (0..dims).map(|_| value()).collect())
            .collect();
        let started = std::time::Instant::now();
        for q in &queries {
            matrix.search(std::slice::from_ref(q), 10).unwrap();
        }
        let single = started.elapsed().as_secs_f64() * 1000.0 / queries.len() as f64;
        let started = std::time::Instant::now();
        matrix.search(&queries, 10).unwrap();
        let batch = started.elapsed().as_secs_f64() * 1000.0;
        println!(
            "dense search over {rows} x {dims} ({:.0} MB): {single:.1} ms per query, {batch:.1} ms for a batch of {}",
            matrix.vector_bytes() as f64 / 1e6,
            queries.len()
        );
    }

    #[test]
    fn many_rows_span_chunks() {
        let dims = 8;
        let mut builder = DenseBuilder::new(dims);
        let n = CHUNK_ROWS + 10;
        for i in 0..n {
            let mut v = vec![0.01; dims];
            v[i % dims] = (i as f32) / (n as f32);
            builder.push(format!("d{i}"), &v).unwrap();
        }
        builder.push("d3".into(), &unit(dims, 5)).unwrap();
        let writer = builder.finish().unwrap();
        assert_eq!(writer.matrix().len(), n);
        let hits = writer.matrix().search(&[unit(dims, 5)], 2).unwrap();
        assert_eq!(hits[0][0].0, "d3");
        let staged = writer.stage(vec![("new".into(), unit(dims, 7))]).unwrap();
        assert_eq!(staged.matrix().len(), n + 1);
    }
}
