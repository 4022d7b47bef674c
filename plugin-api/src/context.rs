use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::PluginError;

/// Receives a streaming call's chunks: `(stream, text)`.
pub type Emit<'a> = &'a dyn Fn(&str, &str);

/// What a tool handler knows about the call it serves: its session, the worker,
/// and when to stop.
///
/// Long-running work should poll [`CallContext::check`] (or
/// [`CallContext::is_cancelled`]) and stop promptly: the host has already
/// answered the client with a timeout by then and waits for the plugin thread
/// only to free its slot.
pub struct CallContext<'a, S> {
    pub(crate) session: Option<&'a S>,
    pub(crate) session_id: &'a str,
    pub(crate) worker_id: &'a str,
    pub(crate) cancel: &'a AtomicBool,
    pub(crate) deadline: SystemTime,
    pub(crate) emitter: Option<Emit<'a>>,
}

impl<'a, S> CallContext<'a, S> {
    /// A context for driving a plugin in-process (unit tests, tools); the host
    /// builds its contexts at the ABI boundary.
    pub fn new(
        session: Option<&'a S>,
        session_id: &'a str,
        worker_id: &'a str,
        cancel: &'a AtomicBool,
        deadline: SystemTime,
    ) -> Self {
        Self {
            session,
            session_id,
            worker_id,
            cancel,
            deadline,
            emitter: None,
        }
    }

    /// The same context with output chunks going to `emitter` (what the host
    /// does for a streaming call; tests use it to see the chunks).
    pub fn with_emitter(mut self, emitter: Emit<'a>) -> Self {
        self.emitter = Some(emitter);
        self
    }

    /// Sends a chunk of output while the tool runs: `stream` names it
    /// (`stdout`, `stderr`, `progress`, …). A client of `/execute/stream`
    /// sees each chunk as it comes; for any other call this does nothing.
    /// The tool's result must still carry its whole output: chunks are a
    /// preview, not a replacement.
    pub fn emit(&self, stream: &str, text: &str) {
        if let Some(emit) = self.emitter {
            emit(stream, text);
        }
    }

    /// Does anyone receive [`Self::emit`]'s chunks? (A tool may skip work
    /// that only serves streaming.)
    pub fn is_streaming(&self) -> bool {
        self.emitter.is_some()
    }

    /// The session this call runs in, or an error for plugins or calls without one.
    pub fn session(&self) -> Result<&'a S, PluginError> {
        self.session.ok_or_else(|| {
            PluginError::new(
                crate::ErrorKind::NoSession,
                "this tool needs a session, and the call has none",
            )
        })
    }

    /// The session id (empty for shared plugins).
    pub fn session_id(&self) -> &str {
        self.session_id
    }

    /// The worker that made the call.
    pub fn worker_id(&self) -> &str {
        self.worker_id
    }

    /// The moment the host stops waiting for this call.
    pub fn deadline(&self) -> SystemTime {
        self.deadline
    }

    /// Time left until the deadline (zero once it has passed).
    pub fn remaining(&self) -> Duration {
        self.deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }

    /// True once the host cancelled the call or the deadline passed.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.remaining().is_zero()
    }

    /// `Err` with a timeout or cancellation error once the call should stop.
    pub fn check(&self) -> Result<(), PluginError> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(PluginError::cancelled("the call was cancelled"))
        } else if self.remaining().is_zero() {
            Err(PluginError::timeout("the call ran past its deadline"))
        } else {
            Ok(())
        }
    }
}
