//! What every handler of every surface can reach.

use std::sync::Arc;

use crate::core::Core;
use crate::shutdown::ShutdownHandle;

#[derive(Clone)]
pub struct AppState {
    pub core: Arc<Core>,
    pub shutdown: ShutdownHandle,
}

impl AsRef<AppState> for AppState {
    fn as_ref(&self) -> &AppState {
        self
    }
}
