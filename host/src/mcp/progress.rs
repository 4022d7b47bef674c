//! A tool's output chunks as MCP progress: a `tools/call` whose `_meta`
//! carries a `progressToken` gets one `notifications/progress` per chunk
//! (the chunk's text as its `message`), all before the call's result.

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::{Peer, RequestContext};
use rmcp::RoleServer;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::core::executor::{Chunk, ChunkSender};

/// Where the call's chunks go, and the task relaying them; `None` when the
/// client asked for no progress.
pub fn relay(context: &RequestContext<RoleServer>) -> Option<(ChunkSender, JoinHandle<()>)> {
    let token = context.meta.get_progress_token()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(forward(context.peer.clone(), token, rx));
    Some((tx, task))
}

async fn forward(
    peer: Peer<RoleServer>,
    token: ProgressToken,
    mut chunks: mpsc::UnboundedReceiver<Chunk>,
) {
    let mut n = 0.0;
    while let Some(chunk) = chunks.recv().await {
        n += 1.0;
        let note = ProgressNotificationParam::new(token.clone(), n).with_message(chunk.text);
        if peer.notify_progress(note).await.is_err() {
            // The client went away; the call's own cancel handles the rest.
            return;
        }
    }
}
