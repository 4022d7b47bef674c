//! Which tools run directly on the async runtime's threads.
//!
//! Handing a call to a call thread and back costs two context switches, most
//! of the host's own cost for a trivial call. A tool whose plugin declares it
//! non-blocking skips that hop. The host cannot interrupt such a call, so it
//! keeps the plugin to its word: a tool that overruns the limit a few times is
//! moved back to call threads for good (until the plugin is reloaded).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use plugin_api::ToolInfo;

/// A non-blocking call should take microseconds; this leaves room for the
/// thread being preempted on a loaded machine.
pub const LIMIT: Duration = Duration::from_millis(10);
/// Overruns before a tool is moved to call threads: one could be preemption.
pub const STRIKES: u32 = 3;

#[derive(Default)]
struct State {
    inline: AtomicBool,
    overruns: AtomicU32,
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
        let Some(state) = self.tools.get(tool) else {
            return Verdict::Fine;
        };
        if took <= LIMIT {
            return Verdict::Fine;
        }
        if state.overruns.fetch_add(1, Ordering::Relaxed) + 1 >= STRIKES
            && state.inline.swap(false, Ordering::Relaxed)
        {
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
}
