//! Streaming reader of a JSONL corpus: one document per line, read in batches
//! so a corpus larger than memory can be indexed. Malformed lines are skipped
//! with a warning naming their line number.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::document::{document_from_object, Document};
use crate::error::{RagError, RagResult};
use crate::logging;

/// How many malformed lines are reported one by one before only counting.
const REPORTED_BAD_LINES: usize = 20;

/// Reads documents from a JSONL file in order.
pub struct CorpusReader {
    path: PathBuf,
    reader: BufReader<File>,
    line_number: usize,
    buffer: Vec<u8>,
    /// Line numbers (1-based) of malformed lines seen so far.
    bad_lines: Vec<usize>,
}

impl CorpusReader {
    /// Opens `path`, or says clearly why it cannot be read.
    pub fn open(path: &Path) -> RagResult<Self> {
        let file = File::open(path).map_err(|e| {
            RagError::IndexUnavailable(format!(
                "corpus_path '{}' cannot be read: {e}",
                path.display()
            ))
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 20, file),
            line_number: 0,
            buffer: Vec::new(),
            bad_lines: Vec::new(),
        })
    }

    /// Up to `max` next documents; empty once the file is exhausted.
    pub fn next_batch(&mut self, max: usize) -> RagResult<Vec<Document>> {
        let mut batch = Vec::with_capacity(max.min(4096));
        while batch.len() < max {
            self.buffer.clear();
            let read = self.reader.read_until(b'\n', &mut self.buffer)?;
            if read == 0 {
                break;
            }
            self.line_number += 1;
            match parse_line(&self.buffer) {
                Ok(Some(doc)) => batch.push(doc),
                Ok(None) => {}
                Err(reason) => self.report_bad_line(&reason),
            }
        }
        Ok(batch)
    }

    fn report_bad_line(&mut self, reason: &str) {
        self.bad_lines.push(self.line_number);
        if self.bad_lines.len() <= REPORTED_BAD_LINES {
            logging::warn(&format!(
                "corpus {} line {}: skipped: {reason}",
                self.path.display(),
                self.line_number
            ));
        }
    }

    /// Line numbers of the malformed lines skipped so far.
    pub fn bad_lines(&self) -> &[usize] {
        &self.bad_lines
    }

    /// Logs how many lines were skipped (the first ones were reported as they came).
    pub fn log_summary(&self) {
        if self.bad_lines.len() > REPORTED_BAD_LINES {
            logging::warn(&format!(
                "corpus {}: skipped {} malformed lines in all (only the first {REPORTED_BAD_LINES} were listed)",
                self.path.display(),
                self.bad_lines.len()
            ));
        }
    }
}

/// `Ok(None)` for a blank line, the document, or why the line is unusable.
fn parse_line(raw: &[u8]) -> Result<Option<Document>, String> {
    let line = std::str::from_utf8(raw).map_err(|e| format!("not UTF-8: {e}"))?;
    let line = line.trim_start_matches('\u{feff}').trim();
    if line.is_empty() {
        return Ok(None);
    }
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let object = value
        .as_object()
        .ok_or_else(|| "not a JSON object".to_string())?;
    document_from_object(object).map(Some)
}

/// Counts the lines of a file (for progress), without parsing them.
pub fn count_lines(path: &Path) -> RagResult<usize> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut count = 0;
    let mut last_byte = b'\n';
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        count += chunk.iter().filter(|b| **b == b'\n').count();
        last_byte = chunk[chunk.len() - 1];
        let len = chunk.len();
        reader.consume(len);
    }
    if last_byte != b'\n' {
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn skips_bad_lines_with_their_numbers() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "{{\"id\": \"a\", \"contents\": \"one\"}}").unwrap();
        writeln!(file, "not json").unwrap();
        writeln!(file).unwrap();
        writeln!(file, "{{\"id\": \"b\"}}").unwrap();
        write!(file, "{{\"id\": \"c\", \"text\": \"three\"}}").unwrap();
        let mut reader = CorpusReader::open(file.path()).unwrap();
        let docs = reader.next_batch(10).unwrap();
        let ids: Vec<_> = docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(reader.bad_lines(), [2, 4]);
        assert_eq!(count_lines(file.path()).unwrap(), 5);
    }
}
