//! The measurements, one module per section of BENCHMARKS.md. Each starts its
//! own server, so one section's sessions and load never skew another's.

mod bash;
mod cluster;
mod faiss;
mod host;
mod hotplug;
mod isolated;
mod mcp;
mod metrics;
mod rag;
mod rollouts;
mod soak;
mod trajectories;
mod vm;

use std::path::Path;
use std::time::Duration;

use crate::artifacts::Artifacts;
use crate::figure::Fig;
use crate::load::Spec;
use crate::machine::{cpu_reference, Machine};
use crate::plan::{Plan, Scenario};
use crate::report::{Row, Section};

/// What every scenario gets.
pub struct Ctx<'a> {
    pub root: &'a Path,
    pub artifacts: &'a Artifacts,
    pub plan: &'a Plan,
    pub machine: &'a Machine,
    /// Files shared between sections of this run (the default corpus's index).
    pub shared: &'a Path,
    /// The CPU reference timed just before this section (other load on the
    /// machine changes over a run; the baseline follows it).
    pub cpu_reference: Duration,
}

impl Ctx<'_> {
    /// A load spec with this plan's warm-up and window.
    pub fn spec(&self, concurrency: usize) -> Spec {
        Spec::new(concurrency, self.plan.warmup, self.plan.window)
    }

    /// The CPU reference as a figure in milliseconds.
    pub fn cpu_ms(&self) -> Fig {
        Fig::duration(self.cpu_reference)
    }

    /// The CPU reference as a rate (reference runs per second), for throughputs.
    pub fn cpu_rate(&self) -> Fig {
        Fig::rate(1.0 / self.cpu_reference.as_secs_f64().max(1e-9), "ref/s")
    }

    /// The rag config of an index of the default corpus, built by the first
    /// section that needs it and reopened by the next.
    pub fn default_rag_table(&self) -> String {
        rag::rag_table(
            &self.shared.join("default-corpus-index"),
            &self.root.join("plugins/rag/corpus/default.jsonl"),
        )
    }
}

/// The machine facts and every section, in plan order.
pub struct Results {
    pub machine: Machine,
    pub sections: Vec<Section>,
}

/// Runs the plan's scenarios in order.
pub async fn run_all(root: &Path, artifacts: &Artifacts, plan: &Plan) -> anyhow::Result<Results> {
    let machine = tokio::task::spawn_blocking(Machine::probe).await?;
    eprintln!(
        "xtask bench: {} mode on {} ({} cores), CPU reference {:.0} ms",
        plan.mode,
        machine.cpu,
        machine.cores,
        machine.cpu_reference.as_secs_f64() * 1000.0
    );
    let shared = tempfile::Builder::new()
        .prefix("agentflow-bench-")
        .tempdir()?;
    let mut sections = Vec::new();
    for scenario in &plan.scenarios {
        let cpu_reference = tokio::task::spawn_blocking(cpu_reference).await?;
        let cx = Ctx {
            root,
            artifacts,
            plan,
            machine: &machine,
            shared: shared.path(),
            cpu_reference,
        };
        let mut section = Section::new(title(*scenario));
        eprintln!("== {}", section.title);
        let result = match scenario {
            Scenario::Host => host::run(&cx, &mut section).await,
            Scenario::Mcp => mcp::run(&cx, &mut section).await,
            Scenario::Isolated => isolated::run(&cx, &mut section).await,
            Scenario::Cluster => cluster::run(&cx, &mut section).await,
            Scenario::Bash => bash::run(&cx, &mut section).await,
            Scenario::Rollouts => rollouts::run(&cx, &mut section).await,
            Scenario::Vm => vm::run(&cx, &mut section).await,
            Scenario::Rag => rag::run(&cx, &mut section).await,
            Scenario::Faiss => faiss::run(&cx, &mut section).await,
            Scenario::Hotplug => hotplug::run(&cx, &mut section).await,
            Scenario::Soak => soak::run(&cx, &mut section).await,
            Scenario::Trajectories => trajectories::run(&cx, &mut section).await,
            Scenario::Metrics => metrics::run(&cx, &mut section).await,
        };
        if let Err(e) = result {
            let reason = format!("{e:#}");
            eprintln!("xtask bench: {}: {reason}", section.title);
            // Keep the rows measured so far; say plainly what was not.
            let first_line = reason.lines().next().unwrap_or_default().to_string();
            section.row(Row::text("**not measured**", first_line));
        }
        sections.push(section);
    }
    Ok(Results { machine, sections })
}

fn title(s: Scenario) -> &'static str {
    match s {
        Scenario::Host => "Host overhead",
        Scenario::Mcp => "MCP surface",
        Scenario::Isolated => "Isolated plugins",
        Scenario::Cluster => "Many hosts",
        Scenario::Bash => "bash",
        Scenario::Rollouts => "RL rollouts (bash)",
        Scenario::Vm => "vm",
        Scenario::Rag => "rag",
        Scenario::Faiss => "rag over a Faiss index",
        Scenario::Hotplug => "Hot-plug",
        Scenario::Soak => "Reliability soak",
        Scenario::Trajectories => "Trajectories",
        Scenario::Metrics => "Metrics",
    }
}

/// Runs `f(0..n)` with at most `width` at a time; the first error wins.
pub async fn parallel<F, Fut>(n: usize, width: usize, f: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        if set.len() >= width {
            if let Some(r) = set.join_next().await {
                r??;
            }
        }
        set.spawn(f(i));
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

/// The median of a few timings (the upper middle one of an even count).
pub fn median(values: &mut [std::time::Duration]) -> std::time::Duration {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or_default()
}
