//! Sandboxes for the processes of plugin sessions (the bash plugin's shells,
//! the vm plugin's programs): commands written by a language model must not
//! reach the host, the server or other sessions.
//!
//! # Why bubblewrap
//!
//! The sandbox is built by [bubblewrap](https://github.com/containers/bubblewrap)
//! (`bwrap`, Debian package `bubblewrap`): a small, audited, widely deployed
//! (Flatpak) tool that creates the namespaces and mounts and applies a seccomp
//! filter, and, with `--die-with-parent`, dies with the server: no process of
//! a session outlives the server, even one killed with SIGKILL. Its start
//! costs a few milliseconds. An OCI runtime (Debian packages one) would also do cgroups,
//! but it leaves containers running when its caller is killed, and needs a
//! bundle on disk per session.
//!
//! What bubblewrap does not do, this crate adds, each with an existing
//! mechanism: a **disk** per workspace (`disk.rs`), **writable layers** over
//! `/usr` and `/opt` (kernel overlayfs on idmapped mounts, `layers.rs`),
//! per-session **cgroups** (memory, processes, CPU; `cgroup.rs`),
//! the **seccomp** deny list (`seccomp.rs`, compiled with `seccompiler`),
//! running bubblewrap as an **unprivileged host user** when the server is root
//! (`enter.rs`), so that root inside the sandbox is nobody outside, and
//! **frozen copies** of session disks that new sessions start from, sharing
//! them through overlayfs (`snapshot.rs`: snapshots and forks).
//!
//! What a sandboxed program sees is listed in `bwrap.rs`; a session's sandbox
//! is `session.rs`, errors `error.rs`, what status shows `status.rs`.
//!
//! # What is not isolated
//!
//! * The kernel is shared (as with every container): a kernel exploit escapes.
//! * The host's `/usr`, `/etc` and `/opt` are readable: world-readable
//!   secrets there are visible.
//! * `/etc` is read-only (no layer: an idmapped view would show root's
//!   secrets as the sandbox user's); writes to `/usr` and `/opt` go to the
//!   session's layer (`layers.rs`) only when the server runs as root and the
//!   session has a disk; otherwise they are refused.
//! * The workspace is a disk of its own (`disk.rs`) of `limits.disk_bytes`;
//!   `/tmp` is a tmpfs limited in size and counted as the session's memory.
//! * With `network = "egress"` (`egress.rs`), outside networks and the host's
//!   own non-loopback addresses; with `network = "host"`, the host's network
//!   and every port on it, the server's included.
//!
//! # What the host needs
//!
//! `bwrap` 0.8+ (`scripts/setup.sh` installs it), unprivileged user namespaces
//! (`user.max_user_namespaces` > 0; on Debian also
//! `kernel.unprivileged_userns_clone = 1`), cgroups with the memory, pids
//! and cpu controllers that the server may create groups in (see `cgroup.rs`),
//! for workspace disks loop devices, `mkfs.ext4` and `mount` (`disk.rs`),
//! for writable layers root (idmapped mounts, Linux 5.19+), and for
//! `network = "egress"` `slirp4netns`.
//! When any is missing, [`Sandbox::prepare`] fails with one line naming it.

mod bwrap;
pub mod cgroup;
mod config;
pub mod disk;
mod egress;
mod enter;
mod error;
pub mod layers;
mod paths;
pub mod seccomp;
mod session;
pub mod snapshot;
mod status;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

pub use crate::bwrap::{Bind, Jail};
use crate::cgroup::Cgroups;
pub use crate::config::{Isolation, Limits, Network, SandboxConfig};
pub use crate::disk::{Disks, SessionDisk};
pub use crate::egress::Egress;
pub use crate::enter::{Entry, EntryStep};
pub use crate::error::SandboxError;
use crate::layers::BaseViews;
pub use crate::paths::ensure_passable;
use crate::paths::{find_program, TempDir};
pub use crate::session::{SandboxedCommand, SessionSandbox};
pub use crate::snapshot::{FreezeError, Freezer, Frozen};
pub use crate::status::{SandboxStatus, NO_SANDBOX_WARNING};

/// The `PATH` of sandboxed programs: the host's may name directories the
/// sandbox does not show, or say things about the host.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A prepared sandbox runtime for one plugin: checked, with its filter
/// compiled. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: SandboxConfig,
    bwrap: PathBuf,
    /// With `network = "egress"`.
    slirp4netns: Option<PathBuf>,
    /// The host's base, then the operator's images by name.
    host: BaseRoot,
    images: std::collections::BTreeMap<String, BaseRoot>,
    seccomp: Vec<u8>,
    cgroups: Cgroups,
    identity: Option<(u32, u32)>,
}

/// What a session's root is made of, and the lower layers of its writable
/// layers (only when the server is root: idmapped views need it).
#[derive(Debug)]
struct BaseRoot {
    base: bwrap::Base,
    views: Option<BaseViews>,
}

impl BaseRoot {
    fn prepare(base: bwrap::Base, identity: Option<(u32, u32)>) -> Result<Self, SandboxError> {
        let views = match identity {
            Some(owner) => Some(BaseViews::prepare(
                &std::env::temp_dir(),
                base.layered(),
                owner,
            )?),
            None => None,
        };
        Ok(Self { base, views })
    }
}

impl Sandbox {
    /// The plugin's sandbox as its config says: prepared for `bubblewrap`,
    /// `None` (with the warning on stderr) for an explicit `none`.
    pub fn from_config(plugin: &str, config: &SandboxConfig) -> Result<Option<Self>, SandboxError> {
        match config.isolation {
            Isolation::Bubblewrap => Self::prepare(plugin, config).map(Some),
            Isolation::None => {
                eprintln!("agentflow-{plugin}: warning: {NO_SANDBOX_WARNING}");
                Ok(None)
            }
        }
    }

    /// Checks that sandboxes can be built here (bubblewrap, user namespaces,
    /// cgroups) by running one, and compiles the seccomp filter. `plugin`
    /// names the plugin's cgroups.
    pub fn prepare(plugin: &str, config: &SandboxConfig) -> Result<Self, SandboxError> {
        if config.isolation == Isolation::None {
            return Err(SandboxError::Config(
                "isolation = \"none\" has no sandbox to prepare".into(),
            ));
        }
        config.limits.check().map_err(SandboxError::Config)?;
        let wanted = config.bwrap.clone().unwrap_or_else(|| "bwrap".into());
        let bwrap = find_program(&wanted)
            .ok_or_else(|| SandboxError::RuntimeMissing(wanted.display().to_string()))?;
        let slirp4netns = match config.network {
            Network::Egress => {
                let wanted = config
                    .slirp4netns
                    .clone()
                    .unwrap_or_else(|| "slirp4netns".into());
                Some(
                    find_program(&wanted)
                        .ok_or_else(|| SandboxError::SlirpMissing(wanted.display().to_string()))?,
                )
            }
            _ => None,
        };
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let identity = root.then_some((config.uid, config.gid));
        if root && config.uid == 0 {
            return Err(SandboxError::Config(
                "uid: must not be 0 (the sandbox would be root on the host)".into(),
            ));
        }
        let mut images = std::collections::BTreeMap::new();
        for (name, root) in &config.images {
            let base = bwrap::Base::image(root).map_err(|e| {
                SandboxError::Config(format!(
                    "images.{name}: '{}' is not a readable directory: {e}",
                    root.display()
                ))
            })?;
            if !root.join("usr").is_dir() && !root.join("bin").exists() {
                return Err(SandboxError::Config(format!(
                    "images.{name}: '{}' holds no root filesystem (no usr/ or bin/)",
                    root.display()
                )));
            }
            images.insert(name.clone(), BaseRoot::prepare(base, identity)?);
        }
        let sandbox = Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                bwrap,
                slirp4netns,
                host: BaseRoot::prepare(bwrap::Base::host(), identity)?,
                images,
                seccomp: seccomp::compile()?,
                cgroups: Cgroups::discover(plugin)?,
                identity,
            }),
        };
        sandbox.probe()?;
        Ok(sandbox)
    }

    /// The operator's settings.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Host `(uid, gid)` of sandboxed processes, when it differs from the
    /// server's: the files a plugin makes for a session must belong to it.
    pub fn owner(&self) -> Option<(u32, u32)> {
        self.inner.identity
    }

    /// Disks for the sessions' workspaces, their images kept in `dir`
    /// (`None` with `limits.disk_bytes = 0`).
    pub fn disks(&self, dir: &Path) -> Result<Option<Disks>, SandboxError> {
        let bytes = self.inner.config.limits.disk_bytes;
        if bytes == 0 {
            return Ok(None);
        }
        // SAFETY: getuid/getgid have no preconditions.
        let owner = self
            .inner
            .identity
            .unwrap_or_else(|| unsafe { (libc::getuid(), libc::getgid()) });
        Disks::prepare(dir, bytes, owner).map(Some).map_err(|e| {
            SandboxError::Disk(format!(
                "{e} (workspaces are disks of their own; set sandbox.limits.disk_bytes = 0 \
                     to keep them on the host's disk, unlimited)"
            ))
        })
    }

    /// What status pages show.
    pub fn status(&self) -> SandboxStatus {
        // SAFETY: getuid/getgid have no preconditions.
        let (uid, gid) = self
            .inner
            .identity
            .unwrap_or_else(|| unsafe { (libc::getuid(), libc::getgid()) });
        SandboxStatus {
            isolation: Isolation::Bubblewrap.name(),
            network: Some(self.inner.config.network.name()),
            host_uid: Some(uid),
            host_gid: Some(gid),
            cgroup: Some(self.inner.cgroups.version().name()),
            limits: Some(self.inner.config.limits),
            images: self.inner.images.keys().cloned().collect(),
            warning: if self.inner.config.network == Network::Host {
                Some("sandbox.network = \"host\": sessions reach the host's network and the server's port")
            } else if self.inner.config.network == Network::Egress {
                Some("sandbox.network = \"egress\": sessions reach outside networks (not the host's loopback)")
            } else if self.inner.config.limits.disk_bytes == 0 {
                Some("sandbox.limits.disk_bytes = 0: workspaces can fill the host's disk")
            } else {
                None
            },
        }
    }

    /// Creates a session's cgroup with `limits` (already checked against the
    /// operator's with [`Limits::tightened_by`]); its root is the host's
    /// base or the operator's image named `image`.
    pub fn session(
        &self,
        limits: Limits,
        image: Option<&str>,
    ) -> Result<SessionSandbox, SandboxError> {
        if let Some(name) = image {
            if !self.inner.images.contains_key(name) {
                let known: Vec<&str> = self.inner.images.keys().map(String::as_str).collect();
                return Err(SandboxError::UnknownImage(format!(
                    "session config image: no image named '{name}' (this server has: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
        let cgroup = self.inner.cgroups.create(&limits)?;
        Ok(SessionSandbox::new(
            self.clone(),
            cgroup,
            limits,
            image.map(str::to_string),
        ))
    }

    /// Runs `true` in a sandbox: the one way to know that bubblewrap, user
    /// namespaces and cgroups all work together.
    fn probe(&self) -> Result<(), SandboxError> {
        let session = self.session(self.inner.config.limits, None)?;
        let workspace = TempDir::new_for(self.owner())?;
        let jail = Jail {
            argv: vec!["true".into()],
            workspace: workspace.path.clone(),
            cwd: PathBuf::from("/"),
            binds: Vec::new(),
            as_pid_1: false,
            inside_id: 0,
        };
        let command = session.command(&jail, 3)?;
        let output = command
            .into_std(3)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| SandboxError::RuntimeFailed(format!("cannot run bwrap: {e}")))?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        let hint = if stderr.contains("namespace") || stderr.contains("No space left") {
            " (unprivileged user namespaces must be enabled: sysctl user.max_user_namespaces=15000 \
             and, on Debian, kernel.unprivileged_userns_clone=1)"
        } else {
            ""
        };
        Err(SandboxError::RuntimeFailed(format!(
            "a test sandbox failed ({}): {stderr}{hint}",
            output.status
        )))
    }
}
