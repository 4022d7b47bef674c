//! One output stream of a background process: the newest `limit` bytes,
//! addressed by byte offsets counted from the stream's first byte, so a
//! client reads on from where it stopped and learns exactly what was
//! dropped in between.
//!
//! Reads return text. Offsets stay on character boundaries: while the stream
//! is open, a character whose last bytes have not arrived yet is left for
//! the next read, and a read that starts where old bytes were dropped skips
//! the remains of a character cut there (counted as dropped). Invalid UTF-8
//! is replaced with U+FFFD, as `bash:run` does.

use std::collections::VecDeque;

/// The newest bytes of one stream.
#[derive(Debug)]
pub struct Stream {
    kept: VecDeque<u8>,
    limit: usize,
    /// Bytes the process wrote, dropped ones included.
    total: u64,
    /// The writers may still write (no end-of-file yet).
    open: bool,
}

/// What a read returns.
#[derive(Debug, PartialEq, Eq)]
pub struct Chunk {
    /// The bytes read, as text.
    pub text: String,
    /// The offset to read from next time.
    pub end: u64,
    /// Bytes from the requested offset on that were dropped before this read.
    pub dropped: u64,
}

/// The requested offset lies beyond what the process wrote.
#[derive(Debug, PartialEq, Eq)]
pub struct PastEnd {
    /// Bytes written so far.
    pub total: u64,
}

impl Stream {
    /// An empty, open stream keeping at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            kept: VecDeque::new(),
            limit,
            total: 0,
            open: true,
        }
    }

    /// Appends what the process wrote, dropping the oldest bytes beyond the limit.
    pub fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let bytes = &bytes[bytes.len().saturating_sub(self.limit)..];
        let excess = (self.kept.len() + bytes.len()).saturating_sub(self.limit);
        self.kept.drain(..excess);
        self.kept.extend(bytes);
    }

    /// The stream reached end-of-file: no byte will follow.
    pub fn close(&mut self) {
        self.open = false;
    }

    /// True until end-of-file.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Bytes written so far (the offset a complete read ends at).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The offset of the oldest byte still kept.
    fn first_kept(&self) -> u64 {
        self.total - self.kept.len() as u64
    }

    /// Everything from offset `from` on that is still kept.
    pub fn read(&self, from: u64) -> Result<Chunk, PastEnd> {
        if from > self.total {
            return Err(PastEnd { total: self.total });
        }
        let first = self.first_kept();
        let start = from.max(first);
        let mut bytes: Vec<u8> = self
            .kept
            .range((start - first) as usize..)
            .copied()
            .collect();
        let mut dropped = start - from;
        if dropped > 0 {
            // The drop may have cut a character: skip its remains.
            let remains = bytes
                .iter()
                .take(3)
                .take_while(|b| is_continuation(**b))
                .count();
            bytes.drain(..remains);
            dropped += remains as u64;
        }
        if self.open {
            let incomplete = incomplete_tail(&bytes);
            bytes.truncate(bytes.len() - incomplete);
        }
        Ok(Chunk {
            end: from + dropped + bytes.len() as u64,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            dropped,
        })
    }
}

fn is_continuation(byte: u8) -> bool {
    byte & 0xC0 == 0x80
}

/// How many bytes at the end of `bytes` begin a character whose other bytes
/// have not arrived (0 when it ends on a boundary or in invalid UTF-8).
fn incomplete_tail(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        if is_continuation(byte) {
            continue;
        }
        let length = match byte {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => 1,
        };
        return if length > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_continue_from_their_offsets() {
        let mut s = Stream::new(100);
        s.push(b"one\n");
        let first = s.read(0).unwrap();
        assert_eq!(
            (first.text.as_str(), first.end, first.dropped),
            ("one\n", 4, 0)
        );
        s.push(b"two\n");
        let next = s.read(first.end).unwrap();
        assert_eq!((next.text.as_str(), next.end), ("two\n", 8));
        assert_eq!(s.read(8).unwrap().text, "");
        assert_eq!(s.read(9), Err(PastEnd { total: 8 }));
    }

    #[test]
    fn the_oldest_bytes_are_dropped_and_reads_say_how_many() {
        let mut s = Stream::new(4);
        s.push(b"abcdef");
        s.push(b"gh");
        assert_eq!(s.total(), 8);
        let chunk = s.read(0).unwrap();
        assert_eq!(
            (chunk.text.as_str(), chunk.end, chunk.dropped),
            ("efgh", 8, 4)
        );
        let chunk = s.read(6).unwrap();
        assert_eq!((chunk.text.as_str(), chunk.dropped), ("gh", 0));
    }

    #[test]
    fn characters_are_never_split_between_reads() {
        let mut s = Stream::new(100);
        let e_acute = "é".as_bytes(); // 2 bytes
        s.push(b"caf");
        s.push(&e_acute[..1]);
        let chunk = s.read(0).unwrap();
        assert_eq!((chunk.text.as_str(), chunk.end), ("caf", 3));
        s.push(&e_acute[1..]);
        assert_eq!(s.read(chunk.end).unwrap().text, "é");
        // At end-of-file a cut character is shown as it is, replaced.
        let mut s = Stream::new(100);
        s.push(&e_acute[..1]);
        s.close();
        assert_eq!(s.read(0).unwrap().text, "\u{fffd}");
    }

    #[test]
    fn a_character_cut_by_the_drop_is_skipped_and_counted() {
        let mut s = Stream::new(3);
        s.push("aé€".as_bytes()); // 1 + 2 + 3 bytes: keeps the euro sign only
        let chunk = s.read(0).unwrap();
        assert_eq!((chunk.text.as_str(), chunk.dropped, chunk.end), ("€", 3, 6));
        let mut s = Stream::new(4);
        s.push("aé€".as_bytes()); // keeps the second byte of 'é' and the euro sign
        let chunk = s.read(0).unwrap();
        assert_eq!((chunk.text.as_str(), chunk.dropped, chunk.end), ("€", 3, 6));
    }
}
