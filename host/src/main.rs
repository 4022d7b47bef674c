//! `agentflow`: the AgentFlow plugin host.

use agentflow_host::{cli, server};
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Serve(args) => server::run(args),
    }
}
