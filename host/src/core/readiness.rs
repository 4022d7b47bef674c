//! Whether this host should receive work (`/ready`): not while the startup
//! warmup of `server.warmup` runs, not while a plugin named there failed to
//! load or warm (until a later `/warmup` or call warms it), and not while
//! draining. Liveness (`/health`) is a separate matter: a host with a failed
//! plugin is alive, and restarting it would not fix the plugin.

use super::backend::WarmState;
use super::Core;

/// Why a host is not ready, or that it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// The startup warmup is still running.
    Warming,
    /// These configured backends failed to load or warm.
    WarmupFailed(Vec<String>),
    /// Shutdown began.
    Draining,
}

impl Readiness {
    /// The word `/ready` answers with.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Warming => "warming",
            Self::WarmupFailed(_) => "warmup_failed",
            Self::Draining => "draining",
        }
    }
}

impl Core {
    pub fn readiness(&self) -> Readiness {
        if self.is_shutting_down() {
            return Readiness::Draining;
        }
        if self.is_warming() {
            return Readiness::Warming;
        }
        let failed = self.failed_configured_backends();
        if failed.is_empty() {
            Readiness::Ready
        } else {
            Readiness::WarmupFailed(failed)
        }
    }

    /// Backends of `server.warmup` that are not warm: a named one that is not
    /// loaded or whose warmup failed; with `"*"`, any loaded one whose warmup
    /// failed (and any file that could not be loaded at all).
    fn failed_configured_backends(&self) -> Vec<String> {
        let configured = &self.config.server.warmup;
        if configured.is_empty() {
            return Vec::new();
        }
        let failed_warm = |name: &str| {
            self.registry
                .backend(name)
                .is_none_or(|b| matches!(b.warm_state(), WarmState::Failed(_)))
        };
        let mut failed: Vec<String> = if configured.iter().any(|n| n == "*") {
            let mut names: Vec<String> = self
                .registry
                .backends()
                .iter()
                .filter(|b| failed_warm(&b.name))
                .map(|b| b.name.clone())
                .collect();
            names.extend(
                self.registry
                    .files()
                    .into_iter()
                    .filter(|f| f.error.is_some() && self.registry.backend(&f.name).is_none())
                    .map(|f| f.name),
            );
            names
        } else {
            configured
                .iter()
                .filter(|n| failed_warm(n))
                .cloned()
                .collect()
        };
        failed.sort();
        failed.dedup();
        failed
    }
}
