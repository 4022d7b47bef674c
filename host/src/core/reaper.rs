//! The TTL reaper: destroys named sessions idle past their TTL.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Core;

impl Core {
    /// Runs forever, checking a few times per TTL.
    pub async fn reap_idle_sessions(self: Arc<Self>) {
        let ttl = self.sessions.ttl();
        let period = (ttl / 4).clamp(Duration::from_millis(200), Duration::from_secs(15));
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            if self.is_shutting_down() {
                return;
            }
            self.expire_snapshots().await;
            for session in self.sessions.expired(SystemTime::now()) {
                if let Some(drained) = self.sessions.destroy_if_current(&session).await {
                    tracing::info!(worker = %session.worker_id, session = %session.id, "session expired (TTL)");
                    self.after_session_end(&session, drained).await;
                }
            }
        }
    }
}
