//! Isolated plugins: a plugin library run in a child process of its own (the
//! `agentflow` binary in its runner role), so that a segfault, an abort, a
//! stack overflow or a runaway allocation in plugin code kills that process
//! and not the host.
//!
//! - [`protocol`]: the JSON lines host and runner exchange — the same JSON
//!   text that crosses the in-process ABI, one message per line.
//! - [`runner`]: the child's side: loads the library through the same loader
//!   and answers requests, each call on a thread of its own.
//! - [`child`]: the host's side, a [`crate::core::handle::PluginHandle`]: it
//!   starts the runner, routes answers to waiting calls, passes cancellation
//!   on, reports a death to the calls in flight, and starts a new runner
//!   (warmed up again) after a back-off.

pub mod child;
pub mod protocol;
pub mod runner;
