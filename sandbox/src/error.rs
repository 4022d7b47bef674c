//! Why a sandbox cannot be prepared or started.

use std::io;

use crate::{cgroup, layers, seccomp};

/// Why a sandbox cannot be prepared or started.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The operator's settings are wrong.
    #[error("sandbox config {0}")]
    Config(String),
    /// A session named an image the operator did not list.
    #[error("{0}")]
    UnknownImage(String),
    /// `bwrap` is not installed.
    #[error(
        "bubblewrap (`{0}`) is not installed: install the Debian package `bubblewrap` \
         (scripts/setup.sh does), or set sandbox.isolation = \"none\" to run without a sandbox"
    )]
    RuntimeMissing(String),
    /// `slirp4netns` is not installed (needed for `network = "egress"`).
    #[error(
        "slirp4netns (`{0}`) is not installed, and network = \"egress\" needs it: install the \
         Debian package `slirp4netns` (scripts/setup.sh does)"
    )]
    SlirpMissing(String),
    /// `bwrap` runs but cannot build a sandbox here.
    #[error("bubblewrap cannot build a sandbox on this host: {0}")]
    RuntimeFailed(String),
    /// Workspace disks cannot be made.
    #[error("{0}")]
    Disk(String),
    /// Writable layers cannot be made.
    #[error(transparent)]
    Layers(#[from] layers::LayerError),
    /// Cgroups are missing or not writable.
    #[error("cgroups: {0}")]
    Cgroup(#[from] cgroup::CgroupError),
    /// The seccomp filter could not be compiled.
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    /// Plumbing failed.
    #[error("sandbox: {0}")]
    Io(#[from] io::Error),
}
