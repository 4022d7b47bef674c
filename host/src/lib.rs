//! The AgentFlow host as a library: the `agentflow` binary is a thin `main`
//! over [`server::run`]; the fuzz targets call [`fuzzing`].

pub mod cli;
pub mod cluster;
mod compat;
pub mod config;
pub mod core;
#[doc(hidden)]
pub mod fuzzing;
#[doc(hidden)]
pub mod isolation;
mod mcp;
mod metrics;
mod native;
mod openmp;
pub mod server;
mod shutdown;
mod watcher;
mod web;
