//! Which tools run directly on the async runtime's threads.
//!
//! Handing a call to a call thread and back costs two context switches, most
//! of the host's own cost for a trivial call. A tool whose plugin declares it
//! non-blocking skips that hop. The host cannot interrupt such a call, so it
//! keeps the plugin to its word: a tool that overruns the limit a few times
//! within a short window is moved back to call threads for good (until the
//! plugin is reloaded). The window keeps rare preemptions of an honest tool,
//! spread over days of uptime, from adding up to a demotion.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use plugin_api::ToolInfo;

/// A non-blocking call should take microseconds; this leaves room for the
/// thread being preempted on a loaded machine.
pub const LIMIT: Duration = Duration::from_millis(10);
/// Overruns within [`WINDOW`] before a tool is moved to call threads: one
/// could be preemption.
pub const STRIKES: u32 = 3;
/// How close together the overruns must be.
pub const WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
struct State {
    inline: AtomicBool,
    /// When the current run of overruns began, and how many it has. Only
    /// touched on an overrun, so the hot path stays one atomic load.
    overruns: Mutex<Option<(Instant, u32)>>,
}

/// The inline state of one plugin version's non-blocking tools.
#[derive(Default)]
pub struct InlineTools {
    tools: HashMap<String, State>,
}

/// What [`InlineTools::record`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Fine,
    Overran,
    /// This overrun was the last allowed: the tool now runs on call threads.
    Demoted,
}

impl InlineTools {
    pub fn new(tools: &[ToolInfo]) -> Self {
        let tools = tools
            .iter()
            .filter(|t| t.non_blocking)
            .map(|t| {
                let state = State::default();
                state.inline.store(true, Ordering::Relaxed);
                (t.name.clone(), state)
            })
            .collect();
        Self { tools }
    }

    /// Whether a call of `tool` should run inline now.
    pub fn runs_inline(&self, tool: &str) -> bool {
        self.tools
            .get(tool)
            .is_some_and(|s| s.inline.load(Ordering::Relaxed))
    }

    /// Records how long an inline call of `tool` took.
    pub fn record(&self, tool: &str, took: Duration) -> Verdict {
        self.record_at(tool, took, Instant::now())
    }

    fn record_at(&self, tool: &str, took: Duration, now: Instant) -> Verdict {
        let Some(state) = self.tools.get(tool) else {
            return Verdict::Fine;
        };
        if took <= LIMIT {
            return Verdict::Fine;
        }
        // A poisoned lock only means another overrun panicked mid-count; the count is still usable.
        let mut overruns = state.overruns.lock().unwrap_or_else(|e| e.into_inner());
        let count = match overruns.as_mut() {
            Some((since, count)) if now.duration_since(*since) <= WINDOW => {
                *count += 1;
                *count
            }
            _ => {
                *overruns = Some((now, 1));
                1
            }
        };
        if count >= STRIKES && state.inline.swap(false, Ordering::Relaxed) {
            return Verdict::Demoted;
        }
        Verdict::Overran
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, non_blocking: bool) -> ToolInfo {
        ToolInfo {
            name: name.into(),
            description: String::new(),
            hidden: false,
            parameters: serde_json::json!({"type": "object"}),
            non_blocking,
            read_only: false,
            destructive: false,
        }
    }

    #[test]
    fn only_declared_tools_run_inline_until_they_overrun_repeatedly() {
        let t = InlineTools::new(&[tool("quick", true), tool("slow", false)]);
        assert!(t.runs_inline("quick"));
        assert!(!t.runs_inline("slow"));
        assert!(!t.runs_inline("unknown"));
        assert_eq!(t.record("quick", Duration::from_micros(5)), Verdict::Fine);
        let over = LIMIT * 2;
        for _ in 1..STRIKES {
            assert_eq!(t.record("quick", over), Verdict::Overran);
            assert!(t.runs_inline("quick"));
        }
        assert_eq!(t.record("quick", over), Verdict::Demoted);
        assert!(!t.runs_inline("quick"));
        // A call already running inline when it was demoted is only counted.
        assert_eq!(t.record("quick", over), Verdict::Overran);
    }

    #[test]
    fn overruns_far_apart_do_not_add_up() {
        let t = InlineTools::new(&[tool("quick", true)]);
        let over = LIMIT * 2;
        let mut now = Instant::now();
        for _ in 0..10 * STRIKES {
            assert_eq!(t.record_at("quick", over, now), Verdict::Overran);
            now += WINDOW + Duration::from_secs(1);
        }
        assert!(t.runs_inline("quick"));
        for _ in 1..STRIKES {
            assert_eq!(t.record_at("quick", over, now), Verdict::Overran);
        }
        assert_eq!(t.record_at("quick", over, now), Verdict::Demoted);
        assert!(!t.runs_inline("quick"));
    }
}
