//! A JSONL corpus served without loading it: a line-offsets file says where
//! each passage starts, and a hit's line is read from disk when it is needed.
//!
//! Compatible with the AgentFlow Python server (`DiskBasedChunks` in its
//! rag backend): the offsets file beside the corpus is found under the same
//! names (`wiki.offsets`, `wiki.jsonl.offset`, `wiki.jsonl.offsets`) and read
//! in both of its formats (little-endian `u64` per line, or text lines
//! `offset[:length]`). Passage `i` is the `i`-th non-blank line, which is also
//! what the Python server's in-memory loader counts, so Faiss label `i` is
//! passage `i` either way. When no offsets file exists, one is written once in
//! the binary format (durably: a temporary file, fsync, rename), so the
//! Python server can use it too.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde_json::{Map, Value};

use crate::error::{RagError, RagResult};
use crate::logging;
use crate::progress::Progress;

/// Longest line read for one passage: a bound on memory per hit.
const MAX_LINE_BYTES: usize = 64 << 20;
/// How many malformed lines are named one by one while scanning.
const REPORTED_BAD_LINES: usize = 20;

/// One passage as the Python server reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    /// The line's `id` field, or its passage number when it has none.
    pub id: String,
    /// `title`, empty when absent.
    pub title: String,
    /// `contents`, else `text` (as the Python server picks them).
    pub text: String,
}

/// Where the offsets live and in which format.
enum Offsets {
    /// Binary: 8 bytes per passage, mapped.
    Mapped(Mmap),
    /// Text lines, parsed once.
    Parsed(Vec<u64>),
}

impl Offsets {
    fn len(&self) -> u64 {
        match self {
            Offsets::Mapped(map) => (map.len() / 8) as u64,
            Offsets::Parsed(list) => list.len() as u64,
        }
    }

    fn get(&self, i: u64) -> Option<u64> {
        match self {
            Offsets::Mapped(map) => {
                let start = usize::try_from(i).ok()?.checked_mul(8)?;
                let bytes: [u8; 8] = map.get(start..start + 8)?.try_into().ok()?;
                Some(u64::from_le_bytes(bytes))
            }
            Offsets::Parsed(list) => list.get(usize::try_from(i).ok()?).copied(),
        }
    }
}

/// How the offsets file came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetsSource {
    /// It was there (written by the Python tooling or an earlier start).
    Found,
    /// This start scanned the corpus and wrote it.
    Written,
}

/// The opened corpus.
pub struct LazyCorpus {
    path: PathBuf,
    file: File,
    bytes: u64,
    offsets: Offsets,
    offsets_path: PathBuf,
    source: OffsetsSource,
    /// Malformed lines found while writing the offsets (0 when found).
    malformed: u64,
}

impl LazyCorpus {
    /// Opens `corpus` with the offsets file at `offsets` (or found beside the
    /// corpus, or written there when there is none).
    pub fn open(corpus: &Path, offsets: Option<&Path>) -> RagResult<Self> {
        let file = File::open(corpus).map_err(|e| {
            RagError::Corpus(format!(
                "corpus_path '{}' cannot be read: {e}",
                corpus.display()
            ))
        })?;
        let bytes = file.metadata()?.len();
        let existing = match offsets {
            Some(path) => path.exists().then(|| path.to_path_buf()),
            None => offsets_candidates(corpus).into_iter().find(|p| p.exists()),
        };
        let (offsets_path, source, malformed) = match existing {
            Some(path) => (path, OffsetsSource::Found, 0),
            None => {
                let target = offsets
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| offsets_candidates(corpus).remove(0));
                let malformed = write_offsets(corpus, &target)?;
                (target, OffsetsSource::Written, malformed)
            }
        };
        let offsets = read_offsets(&offsets_path)?;
        let corpus = Self {
            path: corpus.to_path_buf(),
            file,
            bytes,
            offsets,
            offsets_path,
            source,
            malformed,
        };
        corpus.check_matches()?;
        logging::info(&format!(
            "corpus {}: {} passages, read lazily through {} ({})",
            corpus.path.display(),
            corpus.len(),
            corpus.offsets_path.display(),
            match source {
                OffsetsSource::Found => "found",
                OffsetsSource::Written => "written now",
            }
        ));
        Ok(corpus)
    }

    /// Number of passages.
    pub fn len(&self) -> u64 {
        self.offsets.len()
    }

    /// The corpus file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The offsets file.
    pub fn offsets_path(&self) -> &Path {
        &self.offsets_path
    }

    /// Whether the offsets were found or written by this start.
    pub fn offsets_source(&self) -> OffsetsSource {
        self.source
    }

    /// Malformed lines seen while writing the offsets.
    pub fn malformed_lines(&self) -> u64 {
        self.malformed
    }

    /// Size of the corpus file in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Passage `i` (0-based), read from disk.
    pub fn get(&self, i: u64) -> RagResult<Passage> {
        let offset = self.offsets.get(i).ok_or_else(|| {
            RagError::Corpus(format!(
                "passage {i} is past the end of corpus '{}' ({} passages)",
                self.path.display(),
                self.len()
            ))
        })?;
        let line = self.read_line(i, offset)?;
        parse_passage(&line, i).map_err(|reason| {
            RagError::Corpus(format!(
                "corpus '{}' passage {i} (byte {offset}) is malformed: {reason}",
                self.path.display()
            ))
        })
    }

    fn read_line(&self, i: u64, offset: u64) -> RagResult<Vec<u8>> {
        let stale = |why: String| {
            RagError::Corpus(format!(
                "offsets file '{}' does not match corpus '{}' ({why}); delete the offsets file to have it written again",
                self.offsets_path.display(),
                self.path.display()
            ))
        };
        if offset >= self.bytes {
            return Err(stale(format!(
                "passage {i} starts at byte {offset}, past the corpus's {} bytes",
                self.bytes
            )));
        }
        if offset > 0 {
            let mut before = [0u8; 1];
            self.file.read_exact_at(&mut before, offset - 1)?;
            if before[0] != b'\n' {
                return Err(stale(format!(
                    "passage {i} at byte {offset} does not start a line"
                )));
            }
        }
        let mut line = Vec::new();
        let mut chunk = vec![0u8; 4096];
        let mut at = offset;
        loop {
            let read = self.file.read_at(&mut chunk, at)?;
            if read == 0 {
                break;
            }
            if let Some(end) = chunk[..read].iter().position(|b| *b == b'\n') {
                line.extend_from_slice(&chunk[..end]);
                break;
            }
            line.extend_from_slice(&chunk[..read]);
            at += read as u64;
            if line.len() > MAX_LINE_BYTES {
                return Err(RagError::Corpus(format!(
                    "corpus '{}' passage {i} is longer than {} MB",
                    self.path.display(),
                    MAX_LINE_BYTES >> 20
                )));
            }
            chunk.resize((chunk.len() * 2).min(1 << 20), 0);
        }
        Ok(line)
    }

    /// Reads the whole corpus in order (one sequential pass, bounded memory),
    /// calling `visit` with each passage number and the passage or why its
    /// line is malformed; stops at the first error `visit` returns.
    pub fn for_each(
        &self,
        mut visit: impl FnMut(u64, Result<Passage, String>) -> RagResult<()>,
    ) -> RagResult<()> {
        let mut reader = BufReader::with_capacity(1 << 20, File::open(&self.path)?);
        let mut line = Vec::new();
        let mut passage = 0u64;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                visit(passage, parse_passage(trim_newline(&line), passage))?;
                passage += 1;
            }
        }
    }

    /// Cheap checks that the offsets belong to this corpus.
    fn check_matches(&self) -> RagResult<()> {
        let n = self.len();
        if n == 0 {
            return Ok(());
        }
        for i in [0, n / 2, n - 1] {
            let offset = self.offsets.get(i).unwrap_or(u64::MAX);
            self.read_line(i, offset)?;
        }
        Ok(())
    }
}

/// Where the Python server looks for the offsets of `corpus`, in its order.
pub fn offsets_candidates(corpus: &Path) -> Vec<PathBuf> {
    let name = corpus.as_os_str().to_string_lossy().into_owned();
    match name.strip_suffix(".jsonl") {
        Some(stem) => vec![
            PathBuf::from(format!("{stem}.offsets")),
            PathBuf::from(format!("{name}.offset")),
            PathBuf::from(format!("{name}.offsets")),
        ],
        None => vec![
            PathBuf::from(format!("{name}.offsets")),
            PathBuf::from(format!("{name}.offset")),
        ],
    }
}

/// Reads a passage line the way the Python server's `_format_doc` does.
fn parse_passage(raw: &[u8], i: u64) -> Result<Passage, String> {
    let line = std::str::from_utf8(raw).map_err(|e| format!("not UTF-8: {e}"))?;
    let value: Value = serde_json::from_str(line.trim_start_matches('\u{feff}'))
        .map_err(|e| format!("not valid JSON: {e}"))?;
    let object = value.as_object().ok_or("not a JSON object")?;
    passage_from_object(object, i)
}

fn passage_from_object(object: &Map<String, Value>, i: u64) -> Result<Passage, String> {
    let text_of = |key: &str| -> Result<Option<String>, String> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("'{key}' must be a string, got {other}")),
        }
    };
    // Python: doc.get("contents") or doc.get("text", ""): an empty contents falls through.
    let text = match text_of("contents")? {
        Some(t) if !t.is_empty() => t,
        _ => text_of("text")?.unwrap_or_default(),
    };
    if text.is_empty() {
        return Err("no text: expected a non-empty string in 'contents' or 'text'".into());
    }
    let title = text_of("title")?.unwrap_or_default();
    let id = match object.get("id") {
        None | Some(Value::Null) => i.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return Err(format!("'id' must be a string or a number, got {other}")),
    };
    Ok(Passage { id, title, text })
}

/// Reads an offsets file in either of the Python server's formats.
fn read_offsets(path: &Path) -> RagResult<Offsets> {
    let fail = |why: String| RagError::Corpus(format!("offsets file '{}': {why}", path.display()));
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut head = [0u8; 100];
    let read = file
        .read_at(&mut head, 0)
        .map_err(|e| fail(e.to_string()))?;
    // The Python server's test: printable ASCII in the first 100 bytes means text.
    let is_text = head[..read]
        .iter()
        .all(|b| (32..=126).contains(b) || matches!(b, 9 | 10 | 13));
    if is_text {
        let mut list = Vec::new();
        for (n, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| fail(e.to_string()))?;
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let number = line.split(':').next().unwrap_or(line);
            let offset = number
                .parse::<u64>()
                .map_err(|_| fail(format!("line {}: '{line}' is not an offset", n + 1)))?;
            list.push(offset);
        }
        return Ok(Offsets::Parsed(list));
    }
    let len = file.metadata().map_err(|e| fail(e.to_string()))?.len();
    if len % 8 != 0 {
        return Err(fail(format!(
            "{len} bytes is not a whole number of 8-byte offsets: the file is truncated or not an offsets file"
        )));
    }
    // SAFETY: the file is only read; a corpus tool rewriting it in place while
    // we serve would be a misuse the stale-offset checks in `read_line` catch.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| fail(e.to_string()))?;
    Ok(Offsets::Mapped(map))
}

/// Scans `corpus` once and writes the offset of every non-blank line to
/// `target` (binary format), durably. Returns how many lines are malformed
/// (they keep their numbers; serving one gives a clear error).
fn write_offsets(corpus: &Path, target: &Path) -> RagResult<u64> {
    let partial = target.with_extension("offsets.partial");
    let cannot_write = |e: std::io::Error| {
        RagError::Corpus(format!(
            "cannot write the corpus's line offsets to '{}': {e}; set offsets_path to a writable place",
            partial.display()
        ))
    };
    let total_mb = (std::fs::metadata(corpus)?.len() >> 20) as usize;
    logging::info(&format!(
        "corpus {}: no offsets file, scanning it once to write {}",
        corpus.display(),
        target.display()
    ));
    let mut progress = Progress::counting(
        format!("scanning corpus {} for line offsets", corpus.display()),
        total_mb,
        "MB",
    );
    let mut reader = BufReader::with_capacity(1 << 20, File::open(corpus)?);
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&partial).map_err(cannot_write)?);
    let (mut at, mut passages, mut malformed, mut reported_mb) = (0u64, 0u64, 0u64, 0usize);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            if let Err(reason) = parse_passage(trim_newline(&line), passages) {
                malformed += 1;
                if malformed <= REPORTED_BAD_LINES as u64 {
                    logging::warn(&format!(
                        "corpus {} passage {passages} (byte {at}): {reason}",
                        corpus.display()
                    ));
                }
            }
            out.write_all(&at.to_le_bytes()).map_err(cannot_write)?;
            passages += 1;
        }
        at += read as u64;
        let mb = (at >> 20) as usize;
        if mb > reported_mb {
            progress.advance(mb - reported_mb);
            reported_mb = mb;
        }
    }
    let file = out.into_inner().map_err(|e| cannot_write(e.into_error()))?;
    file.sync_all().map_err(cannot_write)?;
    drop(file);
    std::fs::rename(&partial, target).map_err(cannot_write)?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(cannot_write)?;
    }
    if malformed > 0 {
        logging::warn(&format!(
            "corpus {}: {malformed} of {passages} passages are malformed (the first {} are listed above); a search that hits one answers with an error naming it",
            corpus.display(),
            malformed.min(REPORTED_BAD_LINES as u64)
        ));
    }
    logging::info(&format!(
        "corpus {}: wrote offsets of {passages} passages in {:.1} s",
        corpus.display(),
        progress.elapsed().as_secs_f64()
    ));
    Ok(malformed)
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(dir: &Path, lines: &[&str]) -> PathBuf {
        let path = dir.join("wiki.jsonl");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    }

    #[test]
    fn writes_binary_offsets_python_can_read_and_skips_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = corpus(
            dir.path(),
            &[
                r#"{"id": "a", "contents": "\"Paris\"\nCapital.", "title": "Paris"}"#,
                "",
                r#"{"text": "no id"}"#,
            ],
        );
        let c = LazyCorpus::open(&path, None).unwrap();
        assert_eq!(c.offsets_source(), OffsetsSource::Written);
        assert_eq!(c.offsets_path(), dir.path().join("wiki.offsets"));
        assert_eq!(c.len(), 2);
        let first = c.get(0).unwrap();
        assert_eq!((first.id.as_str(), first.title.as_str()), ("a", "Paris"));
        assert_eq!(first.text, "\"Paris\"\nCapital.");
        assert_eq!(c.get(1).unwrap().id, "1");
        assert!(c.get(2).unwrap_err().to_string().contains("past the end"));
        let raw = std::fs::read(dir.path().join("wiki.offsets")).unwrap();
        assert_eq!(raw.len(), 16);
        // A second open finds the file instead of scanning again.
        let again = LazyCorpus::open(&path, None).unwrap();
        assert_eq!(again.offsets_source(), OffsetsSource::Found);
    }

    #[test]
    fn reads_text_offsets_and_names_malformed_and_stale_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = corpus(
            dir.path(),
            &[
                r#"{"contents": "one"}"#,
                "not json",
                r#"{"contents": "three"}"#,
            ],
        );
        let first = r#"{"contents": "one"}"#.len() as u64 + 1;
        std::fs::write(
            dir.path().join("wiki.jsonl.offset"),
            format!("0:{first}\n{first}:9\n{}:22\n", first + 9),
        )
        .unwrap();
        let c = LazyCorpus::open(&path, None).unwrap();
        assert_eq!(c.offsets_source(), OffsetsSource::Found);
        assert_eq!(c.get(2).unwrap().text, "three");
        let e = c.get(1).unwrap_err().to_string();
        assert!(
            e.contains("passage 1") && e.contains("not valid JSON"),
            "{e}"
        );
        // Offsets of another corpus are refused at open, naming both files.
        std::fs::write(dir.path().join("wiki.jsonl.offset"), "0\n3\n").unwrap();
        let e = LazyCorpus::open(&path, None).err().unwrap().to_string();
        assert!(e.contains("does not match corpus"), "{e}");
    }

    #[test]
    fn truncated_binary_offsets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = corpus(dir.path(), &[r#"{"contents": "one"}"#]);
        std::fs::write(
            dir.path().join("wiki.offsets"),
            [0u8, 0, 0, 0, 0, 0, 0, 0, 200, 0, 1],
        )
        .unwrap();
        let e = LazyCorpus::open(&path, None).err().unwrap().to_string();
        assert!(e.contains("not a whole number of 8-byte offsets"), "{e}");
    }
}
