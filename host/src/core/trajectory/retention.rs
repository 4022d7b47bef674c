//! Retention: trajectories not written for `server.trajectory_max_age`
//! seconds are deleted, then the oldest until all of them fit in
//! `server.trajectory_max_total_bytes`. Live sessions' trajectories are
//! never deleted (they count towards the total).

use std::fs;
use std::time::{Duration, SystemTime};

use super::layout::session_dir;
use super::Trajectories;

impl Trajectories {
    /// How often to sweep, or `None` when nothing is ever deleted.
    pub fn sweep_period(&self) -> Option<Duration> {
        if self.max_age.is_none() && self.max_total.is_none() {
            return None;
        }
        let by_age = self.max_age.map_or(Duration::from_secs(60), |a| a / 4);
        Some(by_age.clamp(Duration::from_millis(200), Duration::from_secs(60)))
    }

    /// Deletes what retention says to; returns the ids deleted (blocking).
    pub fn sweep(&self) -> Vec<String> {
        if self.max_age.is_none() && self.max_total.is_none() {
            return Vec::new();
        }
        let Ok(mut all) = self.list(None) else {
            return Vec::new();
        };
        // Oldest written first.
        all.sort_by_key(|s| s.modified);
        let now = SystemTime::now();
        let mut total: u64 = all.iter().map(|s| s.bytes).sum();
        let mut deleted = Vec::new();
        for s in all {
            if s.live {
                continue;
            }
            let too_old = self
                .max_age
                .is_some_and(|age| now.duration_since(s.modified).unwrap_or_default() > age);
            let too_much = self.max_total.is_some_and(|max| total > max);
            if !(too_old || too_much) {
                continue;
            }
            // Its session may have started meanwhile: not if it is live now.
            if self.live_writer(&s.session_id).is_some() {
                continue;
            }
            match fs::remove_dir_all(session_dir(&self.root, &s.session_id)) {
                Ok(()) => {
                    total = total.saturating_sub(s.bytes);
                    tracing::info!(
                        session = %s.session_id,
                        bytes = s.bytes,
                        reason = if too_old { "server.trajectory_max_age" } else { "server.trajectory_max_total_bytes" },
                        "trajectory deleted by retention"
                    );
                    deleted.push(s.session_id);
                }
                Err(e) => {
                    tracing::warn!(session = %s.session_id, error = %e, "retention could not delete a trajectory")
                }
            }
        }
        deleted
    }
}
