//! The report: rows of figures beside their same-run baselines, grouped in
//! sections, rendered as the markdown of BENCHMARKS.md.

use std::fmt::Write as _;
use std::time::Duration;

use crate::figure::{number, Fig};
use crate::machine::{Machine, CPU_REFERENCE_STEPS};
use crate::plan::Plan;

/// One line of a results table.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub value: String,
    pub baseline: String,
    pub ratio: String,
    pub target: String,
    figure: Option<Fig>,
}

impl Row {
    /// A measured figure.
    pub fn new(name: impl Into<String>, figure: Fig) -> Self {
        Self {
            name: name.into(),
            value: figure.to_string(),
            baseline: "—".into(),
            ratio: "—".into(),
            target: String::new(),
            figure: Some(figure),
        }
    }

    /// A row whose result is text (a failure reason, a TODO).
    pub fn text(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            baseline: "—".into(),
            ratio: "—".into(),
            target: String::new(),
            figure: None,
        }
    }

    /// Puts the same-run baseline beside the figure, with the ratio figure ÷ baseline.
    pub fn vs(mut self, label: &str, baseline: Fig) -> Self {
        self.baseline = format!("{label}: {baseline}");
        if let Some(f) = self.figure {
            let r = f.comparable() / baseline.comparable();
            self.ratio = if r.is_finite() {
                format!("{}×", number(r))
            } else {
                "n/a".into()
            };
        }
        self
    }

    /// States the target and whether this run met it.
    pub fn target(mut self, text: &str, met: bool) -> Self {
        self.target = format!("{text} {}", if met { "✅ met" } else { "❌ missed" });
        self
    }
}

/// A titled table with notes about how it was measured.
#[derive(Debug, Clone, Default)]
pub struct Section {
    pub title: String,
    pub notes: Vec<String>,
    pub rows: Vec<Row>,
}

impl Section {
    pub fn new(title: &str) -> Self {
        Self {
            title: title.into(),
            ..Self::default()
        }
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    pub fn row(&mut self, row: Row) {
        eprintln!(
            "  {:<60} {:>22}   {} {}",
            row.name, row.value, row.ratio, row.target
        );
        self.rows.push(row);
    }
}

/// What the report says about the run itself.
pub struct Header<'a> {
    pub command: &'a str,
    pub plan: &'a Plan,
    pub machine: &'a Machine,
    pub build_time: Duration,
    pub run_time: Duration,
    pub missing: &'a [String],
}

/// The whole BENCHMARKS.md.
pub fn render(h: &Header<'_>, sections: &[Section]) -> String {
    let m = h.machine;
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "Written by `{}` ({} mode); do not edit by hand, run the command again. \
         It builds the server and plugins in release, starts a server per section \
         with a private plugin directory and config, loads it with the HTTP/1.1 \
         client in `xtask/` (one keep-alive connection per concurrent client, all \
         on one thread so the client takes as little CPU from the server as it can), \
         stops it, and writes this file.\n",
        h.command, h.plan.mode
    );
    let _ = writeln!(s, "| machine | |\n|---|---|");
    let _ = writeln!(s, "| CPU | {} ({} cores) |", m.cpu, m.cores);
    let _ = writeln!(s, "| memory | {:.1} GiB |", m.memory_gib);
    let _ = writeln!(s, "| kernel | {} |", m.kernel);
    let _ = writeln!(s, "| date | {} |", m.date);
    let _ = writeln!(s, "| command | `{}` |", h.command);
    let _ = writeln!(
        s,
        "| load average at start | {} (the machine may be shared; the same-run baselines absorb that) |",
        m.load_average
    );
    let _ = writeln!(
        s,
        "| CPU reference | {} at the start (2^{} dependent xorshift steps, one thread, best of 3; timed again before each section, whose rows use that value) |",
        Fig::duration(m.cpu_reference),
        CPU_REFERENCE_STEPS.trailing_zeros()
    );
    let _ = writeln!(
        s,
        "| time | build {:.0} s, measurements {:.0} s |",
        h.build_time.as_secs_f64(),
        h.run_time.as_secs_f64()
    );
    if !h.missing.is_empty() {
        let _ = writeln!(s, "| not built | {} |", h.missing.join(", "));
    }
    let _ = writeln!(
        s,
        "\nHow to read: every figure that depends on the machine's speed stands beside a \
         baseline measured in the same run on the same machine, and the ratio \
         (figure ÷ baseline) is what to compare between machines. Latencies are \
         client-side (request sent to last byte read); pN is the N-th percentile. \
         c=N is the number of concurrent clients. A throughput beside the CPU reference is \
         divided by reference runs per second (ref/s): the ratio is the work done in the \
         time of one reference run.\n"
    );
    for sec in sections {
        let _ = writeln!(s, "## {}\n", sec.title);
        for n in &sec.notes {
            let _ = writeln!(s, "{n}\n");
        }
        if sec.rows.is_empty() {
            continue;
        }
        let _ = writeln!(
            s,
            "| measurement | result | baseline (same run) | ratio | target |\n|---|---|---|---|---|"
        );
        for r in &sec.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                cell(&r.name),
                cell(&r.value),
                cell(&r.baseline),
                cell(&r.ratio),
                cell(&r.target)
            );
        }
        s.push('\n');
    }
    s
}

/// Table cells must not break the table.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_shows_its_baseline_ratio_and_target() {
        let row = Row::new("calls", Fig::rate(600.0, "calls/s"))
            .vs("spawn", Fig::rate(200.0, "calls/s"))
            .target("≥ 2×", true);
        assert_eq!(row.baseline, "spawn: 200 calls/s");
        assert_eq!(row.ratio, "3.00×");
        assert_eq!(row.target, "≥ 2× ✅ met");
    }

    #[test]
    fn seconds_compare_with_milliseconds() {
        let row = Row::new("build", Fig::secs(2.0)).vs("reference", Fig::ms(500.0));
        assert_eq!(row.ratio, "4.00×");
    }

    #[test]
    fn cells_cannot_break_the_table() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
