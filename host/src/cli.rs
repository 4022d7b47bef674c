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
    /// Run one plugin library for an isolated plugin (started by the server).
    #[command(hide = true)]
    PluginRunner(RunnerArgs),
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
