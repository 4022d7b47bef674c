//! Answers written by blocking code (file copies, a `.tar.gz` being made)
//! as they are produced: a bounded channel, so memory stays a few pieces
//! however large the file, and a client that goes away stops the writer.

use std::io::{self, Write};

use axum::body::{Body, Bytes};
use tokio::sync::mpsc;

/// Bytes per piece sent.
const PIECE: usize = 64 * 1024;
/// Pieces in flight between the writer and the connection.
const PIECES: usize = 8;

type Piece = Result<Bytes, io::Error>;

/// A body produced by `write` on a blocking thread.
pub fn blocking_body(write: impl FnOnce(&mut Pieces) -> io::Result<()> + Send + 'static) -> Body {
    let (tx, rx) = mpsc::channel::<Piece>(PIECES);
    tokio::task::spawn_blocking(move || {
        let mut out = Pieces {
            tx: tx.clone(),
            buf: Vec::with_capacity(PIECE),
        };
        if let Err(e) = write(&mut out).and_then(|()| out.flush()) {
            if e.kind() != io::ErrorKind::BrokenPipe {
                tracing::warn!(error = %e, "a streamed answer failed part way");
            }
            // The client sees the answer cut off, not a complete file.
            let _ = tx.blocking_send(Err(e));
        }
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    }))
}

/// The writer side: buffers a piece, then hands it to the connection.
pub struct Pieces {
    tx: mpsc::Sender<Piece>,
    buf: Vec<u8>,
}

impl Write for Pieces {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(PIECE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PIECE {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}
