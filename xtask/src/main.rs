//! Project automation. `cargo xtask bench [--quick]` builds the server and the
//! plugins in release, starts them, measures them over HTTP with the load
//! generator in this crate, stops them, and writes `BENCHMARKS.md`.

mod artifacts;
mod client;
mod figure;
mod load;
mod machine;
mod plan;
mod procs;
mod report;
mod scenarios;
mod server;
mod stats;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

use crate::plan::{Plan, Scenario};

#[derive(Parser)]
#[command(name = "xtask", about = "AgentFlow project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build in release, measure the server and plugins, write BENCHMARKS.md.
    Bench(BenchArgs),
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Short runs and small rag corpora, for iteration (a few minutes).
    #[arg(long)]
    quick: bool,
    /// Where to write the report. Default: BENCHMARKS.md at the workspace
    /// root (full runs) or target/BENCHMARKS.quick.md (quick runs).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only these scenarios (comma-separated).
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<Scenario>,
    /// Passages of the synthetic rag corpus indexed with dense embeddings
    /// (overrides the mode's default; the target size is 100000).
    #[arg(long)]
    rag_passages: Option<u64>,
}

/// The workspace root: this crate lives in `<root>/xtask`.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn main() -> ExitCode {
    let Command::Bench(args) = Cli::parse().command;
    let root = workspace_root();
    let command = reconstruct_command();
    let mut plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    if let Some(n) = args.rag_passages {
        plan.rag_passages = n;
    }
    if !args.only.is_empty() {
        plan.scenarios = args.only.clone();
    }
    let out = args.out.clone().unwrap_or_else(|| {
        if args.quick {
            root.join("target").join("BENCHMARKS.quick.md")
        } else {
            root.join("BENCHMARKS.md")
        }
    });
    match run(&root, plan, &command, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(root: &Path, plan: Plan, command: &str, out: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let artifacts = artifacts::build(root)?;
    let build_time = started.elapsed();
    // The build leaves hundreds of MB of dirty pages; their writeback would
    // otherwise compete with the first measurements.
    if let Err(e) = std::process::Command::new("sync").status() {
        eprintln!("xtask bench: sync failed ({e}); measuring anyway");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let measured = Instant::now();
    let report = runtime.block_on(async {
        tokio::select! {
            r = scenarios::run_all(root, &artifacts, &plan) => r,
            // Dropping the run kills the servers it started (`kill_on_drop`).
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    })?;
    let text = report::render(
        &report::Header {
            command,
            plan: &plan,
            machine: &report.machine,
            build_time,
            run_time: measured.elapsed(),
            missing: &artifacts.missing,
        },
        &report.sections,
    );
    println!("{text}");
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(out, text)?;
    eprintln!("xtask bench: wrote {}", out.display());
    Ok(())
}

/// The command as a user types it, for the report.
fn reconstruct_command() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("cargo xtask {}", args.join(" "))
}
