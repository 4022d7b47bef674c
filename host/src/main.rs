//! `agentflow`: the AgentFlow plugin host.

use agentflow_host::{cli, cluster, isolation, server};
use clap::Parser;

// Requests allocate many small short-lived objects (JSON values, strings);
// mimalloc serves them markedly faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Serve(args) => server::run(args),
        cli::Command::Cluster(cli::ClusterCommand::Status(args)) => cluster::status(args),
        cli::Command::PluginRunner(args) => isolation::runner::run(&args.library),
    }
}
