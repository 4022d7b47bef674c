//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "agentflow",
    version,
    about = "AgentFlow host: tool backends as plugins, served over HTTP"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Start the server.
    Serve(ServeArgs),
    /// Ask several hosts (behind one balancer) how they are.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Run one plugin library for an isolated plugin (started by the server).
    #[command(hide = true)]
    PluginRunner(RunnerArgs),
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// One table of the hosts: state, workers, sessions, plugins. Exits 1
    /// unless every host is ready.
    Status(ClusterStatusArgs),
}

#[derive(Args)]
pub struct ClusterStatusArgs {
    /// The hosts' addresses, comma-separated or repeated
    /// (e.g. http://127.0.0.1:18891,http://127.0.0.1:18892).
    #[arg(long, required = true, num_args = 1..)]
    pub hosts: Vec<String>,
    /// Bearer token (default: AGENTFLOW_TOKEN).
    #[arg(long)]
    pub token: Option<String>,
    /// Seconds to wait for each host.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
}

#[derive(Args)]
pub struct RunnerArgs {
    /// The plugin library to load.
    #[arg(long)]
    pub library: PathBuf,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Configuration file (server settings and one table per plugin).
    #[arg(long, default_value = "plugins.toml")]
    pub config: PathBuf,
    /// Address to bind (overrides the config).
    #[arg(long)]
    pub host: Option<String>,
    /// Port to bind; 0 picks a free one (overrides the config).
    #[arg(long)]
    pub port: Option<u16>,
    /// Plugin directory (overrides the config).
    #[arg(long)]
    pub plugin_dir: Option<PathBuf>,
}
