//! What status pages (`info`, `/warmup/status`) show about a plugin's sandbox.

use serde::Serialize;

use crate::config::{Isolation, Limits};

/// What status pages show about a plugin's sandbox.
#[derive(Debug, Clone, Serialize)]
pub struct SandboxStatus {
    /// `bubblewrap` or `none`.
    pub isolation: &'static str,
    /// `none` or `host` (absent without a sandbox).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<&'static str>,
    /// Host uid/gid the sandboxes run as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_uid: Option<u32>,
    /// Host gid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_gid: Option<u32>,
    /// `v1` or `v2`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<&'static str>,
    /// The operator's per-session limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// The names of the operator's images sessions may choose.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// A warning for the operator (with `isolation = "none"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<&'static str>,
}

/// The warning shown when sessions run without a sandbox.
pub const NO_SANDBOX_WARNING: &str = "sandbox.isolation = \"none\": session commands run as the \
     server's user with the host's filesystem, network and processes in reach";

impl SandboxStatus {
    /// The status of a plugin configured with `isolation = "none"`.
    pub fn none() -> Self {
        Self {
            isolation: Isolation::None.name(),
            network: None,
            host_uid: None,
            host_gid: None,
            cgroup: None,
            limits: None,
            images: Vec::new(),
            warning: Some(NO_SANDBOX_WARNING),
        }
    }
}
