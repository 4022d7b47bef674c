//! A Faiss index file opened through the real Faiss library (Debian's
//! libfaiss, via the C shim in `faiss/shim.cpp` built by `build.rs`).
//!
//! Faiss's `search` is safe to call from many threads at once on the index
//! families served here (flat, HNSW, IVF): it only reads the index.
//!
//! Public so benchmarks and tools can search an index file exactly as the
//! plugin does (`examples/faiss_search.rs`).
//!
//! Memory mapping: the plugin asks Faiss for `IO_FLAG_MMAP`, as the Python
//! server does. Faiss 1.7.3 (Debian 12) maps the inverted lists of IVF
//! indexes with it; flat and HNSW indexes are read into memory whatever the
//! flag (so they are reported as not mapped).

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};

use crate::error::{RagError, RagResult};

extern "C" {
    fn agentflow_faiss_read(
        path: *const c_char,
        mmap: c_int,
        err: *mut c_char,
        len: usize,
    ) -> *mut c_void;
    fn agentflow_faiss_free(index: *mut c_void);
    fn agentflow_faiss_dims(index: *const c_void) -> i64;
    fn agentflow_faiss_ntotal(index: *const c_void) -> i64;
    fn agentflow_faiss_metric(index: *const c_void) -> c_int;
    fn agentflow_faiss_kind(index: *const c_void, out: *mut c_char, len: usize);
    fn agentflow_faiss_get_knob(index: *const c_void) -> i64;
    fn agentflow_faiss_set_knob(index: *mut c_void, value: i64) -> c_int;
    fn agentflow_faiss_search(
        index: *const c_void,
        n: i64,
        queries: *const f32,
        k: i64,
        distances: *mut f32,
        labels: *mut i64,
        err: *mut c_char,
        len: usize,
    ) -> c_int;
}

/// Room for a Faiss error message.
const ERR_LEN: usize = 1024;

/// How scores compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Inner product: higher is better (cosine on unit vectors).
    InnerProduct,
    /// Squared L2 distance: lower is better.
    L2,
    /// Another Faiss metric (by its number).
    Other(i32),
}

impl Metric {
    /// The name `rag:stats` shows.
    pub fn name(self) -> String {
        match self {
            Metric::InnerProduct => "inner_product".into(),
            Metric::L2 => "l2".into(),
            Metric::Other(n) => format!("faiss metric {n}"),
        }
    }
}

/// An opened index; freed when dropped.
pub struct FaissIndex {
    raw: *mut c_void,
    path: PathBuf,
    kind: String,
    mapped: bool,
}

// SAFETY: the index is only read after opening (search is const in Faiss and
// thread-safe for the index families served); it is freed once, on drop.
unsafe impl Send for FaissIndex {}
unsafe impl Sync for FaissIndex {}

impl FaissIndex {
    /// Opens `path`, memory-mapped where Faiss allows it (falling back to
    /// reading it, as the Python server does); errors name the file.
    pub fn open(path: &Path) -> RagResult<Self> {
        let meta = std::fs::metadata(path).map_err(|e| {
            RagError::IndexUnavailable(format!("index_path '{}': {e}", path.display()))
        })?;
        if !meta.is_file() {
            return Err(RagError::IndexUnavailable(format!(
                "index_path '{}' is not a Faiss index file",
                path.display()
            )));
        }
        let c_path = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| {
            RagError::IndexUnavailable(format!(
                "index_path '{}' contains a NUL byte",
                path.display()
            ))
        })?;
        let (raw, mapped) = match read(&c_path, true) {
            Ok(raw) => (raw, true),
            Err(_) => (
                read(&c_path, false).map_err(|e| {
                    RagError::IndexUnavailable(format!(
                        "index_path '{}' is not a readable Faiss index: {e}",
                        path.display()
                    ))
                })?,
                false,
            ),
        };
        let mut kind = vec![0 as c_char; 256];
        // SAFETY: raw is a live index; the buffer's length is passed.
        unsafe { agentflow_faiss_kind(raw, kind.as_mut_ptr(), kind.len()) };
        let kind = message(&kind).trim_start_matches("faiss::").to_string();
        // Only IVF inverted lists are mapped by the flag (see the module docs).
        let mapped = mapped && kind.contains("IVF");
        Ok(Self {
            raw,
            path: path.to_path_buf(),
            kind,
            mapped,
        })
    }

    /// Length of every vector.
    pub fn dims(&self) -> usize {
        // SAFETY: self.raw is live until drop.
        unsafe { agentflow_faiss_dims(self.raw) }.max(0) as usize
    }

    /// Number of vectors.
    pub fn len(&self) -> u64 {
        // SAFETY: as above.
        unsafe { agentflow_faiss_ntotal(self.raw) }.max(0) as u64
    }

    /// True when the index holds no vectors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The index's Faiss class, e.g. `IndexHNSWFlat`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Whether Faiss mapped the file rather than reading it.
    pub fn mapped(&self) -> bool {
        self.mapped
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How scores compare.
    pub fn metric(&self) -> Metric {
        // SAFETY: as above.
        match unsafe { agentflow_faiss_metric(self.raw) } {
            0 => Metric::InnerProduct,
            1 => Metric::L2,
            n => Metric::Other(n),
        }
    }

    /// `efSearch` of an HNSW index or `nprobe` of an IVF index (as stored
    /// in the file unless set), `None` for other families.
    pub fn search_knob(&self) -> Option<(&'static str, i64)> {
        // SAFETY: as above.
        let value = unsafe { agentflow_faiss_get_knob(self.raw) };
        if value < 0 {
            return None;
        }
        Some((
            if self.kind.contains("HNSW") {
                "ef_search"
            } else {
                "nprobe"
            },
            value,
        ))
    }

    /// Sets that knob before the index is shared; false when it has none.
    pub fn set_search_knob(&mut self, value: i64) -> bool {
        // SAFETY: &mut self: no search runs concurrently.
        unsafe { agentflow_faiss_set_knob(self.raw, value) != 0 }
    }

    /// The `k` nearest of each query (`queries` holds whole vectors of
    /// [`dims`](Self::dims) floats): `(label, score)` best first; Faiss's
    /// `-1` labels (fewer than `k` found) are left out.
    pub fn search(&self, queries: &[f32], k: usize) -> RagResult<Vec<Vec<(i64, f32)>>> {
        let dims = self.dims();
        if dims == 0 || !queries.len().is_multiple_of(dims) {
            return Err(RagError::Embedding(format!(
                "{} query floats are not whole vectors of {dims}",
                queries.len()
            )));
        }
        let n = queries.len() / dims;
        let mut distances = vec![0f32; n * k];
        let mut labels = vec![-1i64; n * k];
        let mut err = vec![0 as c_char; ERR_LEN];
        // SAFETY: the buffers hold n * k results and n * dims query floats.
        let status = unsafe {
            agentflow_faiss_search(
                self.raw,
                n as i64,
                queries.as_ptr(),
                k as i64,
                distances.as_mut_ptr(),
                labels.as_mut_ptr(),
                err.as_mut_ptr(),
                err.len(),
            )
        };
        if status != 0 {
            return Err(RagError::Search(format!(
                "Faiss search in '{}': {}",
                self.path.display(),
                message(&err)
            )));
        }
        Ok(labels
            .chunks(k.max(1))
            .zip(distances.chunks(k.max(1)))
            .map(|(labels, scores)| {
                labels
                    .iter()
                    .zip(scores)
                    .filter(|(label, _)| **label >= 0)
                    .map(|(label, score)| (*label, *score))
                    .collect()
            })
            .collect())
    }
}

impl Drop for FaissIndex {
    fn drop(&mut self) {
        // SAFETY: freed once; no search can run (drop has the only reference).
        unsafe { agentflow_faiss_free(self.raw) };
    }
}

fn read(path: &CStr, mmap: bool) -> Result<*mut c_void, String> {
    let mut err = vec![0 as c_char; ERR_LEN];
    // SAFETY: path is NUL-terminated; the buffer's length is passed.
    let raw = unsafe {
        agentflow_faiss_read(
            path.as_ptr(),
            c_int::from(mmap),
            err.as_mut_ptr(),
            err.len(),
        )
    };
    if raw.is_null() {
        Err(message(&err))
    } else {
        Ok(raw)
    }
}

/// The NUL-terminated text in `buffer`.
fn message(buffer: &[c_char]) -> String {
    let bytes: Vec<u8> = buffer
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).trim().to_string()
}
