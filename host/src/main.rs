//! `agentflow`: the AgentFlow plugin host.

mod cli;
mod config;
mod core;
mod http;
mod server;
mod shutdown;
mod watcher;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Serve(args) => server::run(args),
    }
}
