//! What every handler of every surface can reach.

use std::sync::Arc;

use super::drain::InFlight;
use super::idempotency::Keys;
use crate::core::Core;
use crate::shutdown::ShutdownHandle;

#[derive(Clone)]
pub struct AppState {
    pub core: Arc<Core>,
    pub shutdown: ShutdownHandle,
    /// Requests being served, which a draining host waits for.
    pub inflight: Arc<InFlight>,
    /// `Idempotency-Key`s seen lately and their answers.
    pub idempotency: Arc<Keys>,
}

impl AsRef<AppState> for AppState {
    fn as_ref(&self) -> &AppState {
        self
    }
}
