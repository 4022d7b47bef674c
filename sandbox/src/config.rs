//! What an operator sets (the `sandbox` table of a plugin's config) and what a
//! client may tighten (the `limits` of its session config). Errors name the
//! field and the problem.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// The operator's sandbox settings, e.g. `[plugins.bash.config.sandbox]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// `bubblewrap` (the default) or `none`.
    pub isolation: Isolation,
    /// `none` (the default: the session's own loopback only), `egress` or `host`.
    pub network: Network,
    /// Host uid the sandbox runs as when the server runs as root (inside, it
    /// is root of its own user namespace). Default 65534 (`nobody`).
    pub uid: u32,
    /// Host gid, likewise.
    pub gid: u32,
    /// The `bwrap` program; default `bwrap` on `PATH`.
    pub bwrap: Option<PathBuf>,
    /// The `slirp4netns` program for `network = "egress"`; default on `PATH`.
    pub slirp4netns: Option<PathBuf>,
    /// Per-session limits (the most a client may ask for).
    pub limits: Limits,
    /// Base images a session may name (`"image": "<name>"` in its config):
    /// name → directory holding an unpacked root filesystem (for example an
    /// exported container image). Clients choose by name, never by path.
    pub images: std::collections::BTreeMap<String, PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            isolation: Isolation::Bubblewrap,
            network: Network::None,
            uid: 65534,
            gid: 65534,
            bwrap: None,
            slirp4netns: None,
            limits: Limits::default(),
            images: Default::default(),
        }
    }
}

/// How sessions are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Each session in a bubblewrap sandbox with cgroup limits and seccomp.
    Bubblewrap,
    /// No sandbox: commands run as the server's user on the host. Explicit
    /// opt-out only; logged as a warning and shown in status.
    None,
}

impl Isolation {
    /// The name used in config and status.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bubblewrap => "bubblewrap",
            Self::None => "none",
        }
    }
}

/// A sandbox's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// A network namespace of its own with only a loopback interface.
    None,
    /// Its own network namespace with outbound connections through
    /// slirp4netns; the host's loopback (the server's port) stays unreachable.
    Egress,
    /// The host's network, the server's own ports included (operator only).
    Host,
}

impl Network {
    /// The name used in config and status.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Egress => "egress",
            Self::Host => "host",
        }
    }
}

/// Per-session limits, enforced by cgroups for the whole session.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Memory of all the session's processes (and its tmpfs files), bytes.
    pub memory_bytes: u64,
    /// Processes and threads of the session at once.
    pub processes: u64,
    /// CPU time as a number of CPUs (1.0 = one core).
    pub cpus: f64,
    /// Size of the session's `/tmp` (a tmpfs, also counted as memory), bytes.
    pub tmp_bytes: u64,
    /// Size of the session's workspace (a disk of its own), bytes; 0: the
    /// workspace is a plain directory on the host's disk, without a limit.
    pub disk_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 2 * GIB,
            processes: 512,
            cpus: 1.0,
            tmp_bytes: GIB,
            disk_bytes: 10 * GIB,
        }
    }
}

impl Limits {
    /// Checks the operator's limits.
    pub fn check(&self) -> Result<(), String> {
        if self.memory_bytes < 16 * MIB {
            return Err(format!(
                "limits.memory_bytes: must be at least 16 MiB, got {}",
                self.memory_bytes
            ));
        }
        if self.processes < 8 {
            return Err(format!(
                "limits.processes: must be at least 8, got {}",
                self.processes
            ));
        }
        if !(self.cpus.is_finite() && self.cpus >= 0.01) {
            return Err(format!(
                "limits.cpus: must be a number of CPUs of at least 0.01, got {}",
                self.cpus
            ));
        }
        if self.disk_bytes != 0 && self.disk_bytes < 16 * MIB {
            return Err(format!(
                "limits.disk_bytes: must be 0 (no limit) or at least 16 MiB, got {}",
                self.disk_bytes
            ));
        }
        if self.tmp_bytes < MIB {
            return Err(format!(
                "limits.tmp_bytes: must be at least 1 MiB, got {}",
                self.tmp_bytes
            ));
        }
        Ok(())
    }

    /// These limits tightened by a client's `limits` object (null: unchanged).
    /// A client may lower any limit, never raise one.
    pub fn tightened_by(&self, client: &Value) -> Result<Limits, String> {
        if client.is_null() {
            return Ok(*self);
        }
        let wanted: Limits = serde_json::from_value(client.clone()).map_err(|e| {
            format!(
                "session config limits: {e} (fields: memory_bytes, processes, cpus, tmp_bytes, \
                 disk_bytes)"
            )
        })?;
        let same = |v| v;
        let limits = Limits {
            memory_bytes: tightened(
                client,
                "memory_bytes",
                wanted.memory_bytes,
                self.memory_bytes,
                same,
            )?,
            processes: tightened(client, "processes", wanted.processes, self.processes, same)?,
            cpus: tightened(client, "cpus", wanted.cpus, self.cpus, |v| v)?,
            tmp_bytes: tightened(client, "tmp_bytes", wanted.tmp_bytes, self.tmp_bytes, same)?,
            // 0 is "no limit": the most of all.
            disk_bytes: tightened(
                client,
                "disk_bytes",
                wanted.disk_bytes,
                self.disk_bytes,
                |v| {
                    if v == 0 {
                        u64::MAX
                    } else {
                        v
                    }
                },
            )?,
        };
        limits.check().map_err(|e| format!("session config {e}"))?;
        Ok(limits)
    }
}

/// The client's `field` when it named one no higher than the server's (as
/// `rank` orders them), the server's when it named none.
fn tightened<T: PartialOrd + Copy + std::fmt::Display>(
    client: &Value,
    field: &str,
    wanted: T,
    server: T,
    rank: impl Fn(T) -> T,
) -> Result<T, String> {
    // Absent fields took defaults in `wanted`: only named ones count.
    if client.get(field).is_none() {
        return Ok(server);
    }
    if rank(wanted) > rank(server) {
        return Err(format!(
            "session config limits.{field}: {wanted} is above the server's limit {server}; \
             a session may only tighten limits"
        ));
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_sandboxed_without_network() {
        let config: SandboxConfig = serde_json::from_value(json!({})).unwrap();
        assert_eq!(config.isolation, Isolation::Bubblewrap);
        assert_eq!(config.network, Network::None);
        assert_eq!(config.limits.memory_bytes, 2 * GIB);
        config.limits.check().unwrap();
    }

    #[test]
    fn clients_may_tighten_but_not_loosen() {
        let server = Limits::default();
        let tight = server
            .tightened_by(&json!({"memory_bytes": 64 * MIB, "processes": 32}))
            .unwrap();
        assert_eq!(tight.memory_bytes, 64 * MIB);
        assert_eq!(tight.processes, 32);
        assert_eq!(tight.cpus, server.cpus);
        let err = server.tightened_by(&json!({"cpus": 4.0})).unwrap_err();
        assert!(
            err.contains("limits.cpus") && err.contains("tighten"),
            "{err}"
        );
        let err = server.tightened_by(&json!({"memory": 1})).unwrap_err();
        assert!(err.contains("memory"), "{err}");
        let err = server.tightened_by(&json!({"processes": 1})).unwrap_err();
        assert!(err.contains("limits.processes"), "{err}");
    }

    #[test]
    fn unknown_operator_fields_are_named() {
        let err = serde_json::from_value::<SandboxConfig>(json!({"netwrk": "host"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("netwrk"), "{err}");
    }
}
