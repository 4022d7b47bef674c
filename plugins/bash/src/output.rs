//! Capturing a command's stdout and stderr: keep the first `limit` bytes of
//! each stream, keep reading (and dropping) the rest so the command never
//! blocks on a full pipe, and turn the bytes into text for the result.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;

/// Size of one read from a pipe (the default Linux pipe capacity).
const CHUNK: usize = 64 * 1024;

/// The bytes of one output stream: the first `limit` kept, the rest counted.
#[derive(Debug)]
pub struct CappedBuffer {
    kept: Vec<u8>,
    limit: usize,
    total: u64,
}

impl CappedBuffer {
    /// An empty buffer keeping at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            kept: Vec::new(),
            limit,
            total: 0,
        }
    }

    /// Appends bytes, dropping what exceeds the limit.
    pub fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = self.limit.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// How many bytes are kept.
    pub fn kept_len(&self) -> usize {
        self.kept.len()
    }

    /// The kept bytes from `start` on.
    pub fn kept_from(&self, start: usize) -> &[u8] {
        self.kept.get(start..).unwrap_or_default()
    }

    /// True when bytes were dropped.
    pub fn is_truncated(&self) -> bool {
        self.total > self.kept.len() as u64
    }

    /// The kept bytes as text. Invalid UTF-8 is replaced with U+FFFD (lossy);
    /// a character cut in half by the limit is dropped rather than mangled.
    /// Clients that need exact bytes write them to a file and use `read_file`.
    pub fn to_text(&self) -> String {
        let mut bytes = self.kept.as_slice();
        if self.is_truncated() {
            if let Err(e) = std::str::from_utf8(bytes) {
                // error_len() == None: the bytes end inside a character.
                if e.error_len().is_none() {
                    bytes = &bytes[..e.valid_up_to()];
                }
            }
        }
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// What a read from a nonblocking pipe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeState {
    /// Nothing more to read right now; writers remain.
    Open,
    /// Every writer has closed the pipe.
    Closed,
}

/// Reads from a nonblocking pipe into `buffer` until it would block, the
/// pipe closes, or `budget` bytes were read (`None`: no budget).
///
/// The budget lets the caller take exactly what was in the pipe at one moment
/// (see [`bytes_in_pipe`]) even while a background process keeps writing.
pub fn read_pipe(
    pipe: &mut File,
    buffer: &mut CappedBuffer,
    mut budget: Option<usize>,
) -> io::Result<PipeState> {
    let mut chunk = [0u8; CHUNK];
    loop {
        let want = budget.map_or(CHUNK, |b| b.min(CHUNK));
        if want == 0 {
            return Ok(PipeState::Open);
        }
        match pipe.read(&mut chunk[..want]) {
            Ok(0) => return Ok(PipeState::Closed),
            Ok(n) => {
                buffer.push(&chunk[..n]);
                budget = budget.map(|b| b - n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(PipeState::Open),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// How many bytes are waiting in a pipe right now (`FIONREAD`).
pub fn bytes_in_pipe(pipe: &File) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer.
    let rc = unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut n) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

/// The last `max_chars` characters of `text` (for error messages).
pub fn tail(text: &str, max_chars: usize) -> &str {
    let count = text.chars().count();
    if count <= max_chars {
        return text;
    }
    let skip = text
        .char_indices()
        .nth(count - max_chars)
        .map_or(0, |(i, _)| i);
    &text[skip..]
}

/// Passes a command's output on as it arrives (a streaming call): what each
/// read added to a stream's kept bytes, as text. A character split between
/// two reads waits for its other half, so no chunk carries a broken one.
pub struct Tap<'a> {
    emit: plugin_api::Emit<'a>,
    /// Per stream: bytes passed on so far, and the start of a split character.
    sent: [usize; 2],
    carry: [Vec<u8>; 2],
}

impl<'a> Tap<'a> {
    pub fn new(emit: plugin_api::Emit<'a>) -> Self {
        Self {
            emit,
            sent: [0, 0],
            carry: [Vec::new(), Vec::new()],
        }
    }

    /// Passes on what `buffer` (stream `i`: 0 stdout, 1 stderr) kept since last time.
    pub fn pass(&mut self, i: usize, buffer: &CappedBuffer) {
        let new = buffer.kept_from(self.sent[i]);
        if new.is_empty() {
            return;
        }
        self.sent[i] = buffer.kept_len();
        let mut bytes = std::mem::take(&mut self.carry[i]);
        bytes.extend_from_slice(new);
        let valid = match std::str::from_utf8(&bytes) {
            Ok(_) => bytes.len(),
            // An incomplete character at the end waits; invalid bytes go as U+FFFD.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => bytes.len(),
        };
        self.carry[i] = bytes.split_off(valid);
        if !bytes.is_empty() {
            let name = if i == 0 { "stdout" } else { "stderr" };
            (self.emit)(name, &String::from_utf8_lossy(&bytes));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_counts_the_rest() {
        let mut b = CappedBuffer::new(4);
        b.push(b"ab");
        b.push(b"cdef");
        assert_eq!(b.to_text(), "abcd");
        assert!(b.is_truncated());
        assert_eq!(b.total, 6);
    }

    #[test]
    fn invalid_utf8_is_replaced_and_cut_characters_dropped() {
        let mut b = CappedBuffer::new(100);
        b.push(b"ok \xff\xfe end");
        assert_eq!(b.to_text(), "ok \u{fffd}\u{fffd} end");

        let mut b = CappedBuffer::new(4);
        b.push("abc\u{e9}".as_bytes()); // 'é' is 2 bytes: the limit cuts it
        assert_eq!(b.to_text(), "abc");
    }

    #[test]
    fn tail_counts_characters() {
        assert_eq!(tail("héllo", 3), "llo");
        assert_eq!(tail("hi", 3), "hi");
    }
}
