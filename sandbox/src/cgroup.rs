//! One cgroup per session, for its memory, process-count and CPU limits, and
//! to find and kill every process it has.
//!
//! Session cgroups live in a directory `agentflow` next to (v2) or below (v1)
//! the server's own cgroup, named `<plugin>-<server pid>-<instance>-<n>`:
//! * **cgroup v2** (one hierarchy, e.g. `/sys/fs/cgroup`) is used when it has
//!   the `memory`, `pids` and `cpu` controllers. The server must be allowed to
//!   write its parent cgroup's `cgroup.subtree_control` (root, or a delegated
//!   subtree: systemd `Delegate=yes`).
//! * **cgroup v1** (one mount per controller, e.g. `/sys/fs/cgroup/memory`)
//!   otherwise; the server must be able to create directories there (root).
//!
//! Groups left by a server that no longer runs (killed with SIGKILL) are
//! emptied and removed when the next one prepares its sandbox.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::Limits;
use crate::paths::left_by_dead_servers;

/// The controllers a session needs.
const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];
/// CFS period for CPU quotas, microseconds.
const CPU_PERIOD_US: u64 = 100_000;

/// Why cgroups cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CgroupError(pub String);

fn error(what: impl Into<String>) -> CgroupError {
    CgroupError(what.into())
}

/// Which hierarchy session groups are made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The unified hierarchy.
    V2,
    /// One hierarchy per controller.
    V1,
}

impl Version {
    /// "v1" or "v2".
    pub fn name(self) -> &'static str {
        match self {
            Self::V2 => "v2",
            Self::V1 => "v1",
        }
    }
}

/// Where this plugin makes its session groups.
#[derive(Debug)]
pub struct Cgroups {
    version: Version,
    /// `agentflow` directories: one (v2) or one per controller (v1).
    parents: Vec<PathBuf>,
    prefix: String,
    next: AtomicU64,
}

/// A mounted cgroup hierarchy, from `/proc/self/mountinfo`.
struct Mount {
    root: PathBuf,
    point: PathBuf,
    v2: bool,
    /// v1: the controllers of this hierarchy.
    controllers: Vec<String>,
}

impl Cgroups {
    /// Finds the hierarchy, creates the `agentflow` directories and removes
    /// groups of dead servers. `plugin` names this plugin's groups.
    pub fn discover(plugin: &str) -> Result<Self, CgroupError> {
        let mounts = cgroup_mounts()?;
        let own = own_cgroups()?;
        // Several instances may live in one process (tests, an upgrade in drain).
        static INSTANCE: AtomicU64 = AtomicU64::new(0);
        let instance = INSTANCE.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{plugin}-{}-{instance}-", std::process::id());
        let v2 = mounts.iter().find(|m| m.v2).and_then(|m| {
            let available = fs::read_to_string(m.point.join("cgroup.controllers")).ok()?;
            let available: Vec<&str> = available.split_whitespace().collect();
            CONTROLLERS
                .iter()
                .all(|c| available.contains(c))
                .then_some(m)
        });
        let cgroups = if let Some(mount) = v2 {
            let own_path = own.iter().find(|(c, _)| c.is_empty()).map(|(_, p)| p);
            let own_dir = within(mount, own_path.map(String::as_str).unwrap_or("/"));
            // A v2 group with processes may not have controlled children: the
            // sessions go next to the server's group, not below it.
            let base = if own_dir == mount.point {
                own_dir
            } else {
                own_dir.parent().unwrap_or(&mount.point).to_path_buf()
            };
            let parent = base.join("agentflow");
            enable_controllers(&base)?;
            create_dir(&parent)?;
            enable_controllers(&parent)?;
            Self {
                version: Version::V2,
                parents: vec![parent],
                prefix,
                next: AtomicU64::new(0),
            }
        } else {
            let mut parents = Vec::new();
            let mut missing = Vec::new();
            for controller in CONTROLLERS {
                let mount = mounts
                    .iter()
                    .find(|m| !m.v2 && m.controllers.iter().any(|c| c == controller));
                let Some(mount) = mount else {
                    missing.push(controller);
                    continue;
                };
                let own_path = own
                    .iter()
                    .find(|(c, _)| c.split(',').any(|c| c == controller))
                    .map(|(_, p)| p.as_str())
                    .unwrap_or("/");
                let parent = within(mount, own_path).join("agentflow");
                if !parents.contains(&parent) {
                    create_dir(&parent)?;
                    parents.push(parent);
                }
            }
            if !missing.is_empty() {
                return Err(error(format!(
                    "the cgroup controllers {} are not available (neither a cgroup v2 hierarchy \
                     with memory, pids and cpu enabled nor cgroup v1 mounts of them); enable them \
                     in the kernel and mount them, or set isolation = \"none\"",
                    missing.join(", ")
                )));
            }
            Self {
                version: Version::V1,
                parents,
                prefix,
                next: AtomicU64::new(0),
            }
        };
        cgroups.remove_stale();
        Ok(cgroups)
    }

    /// The hierarchy in use.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Creates a session's group with `limits`.
    pub fn create(&self, limits: &Limits) -> Result<SessionCgroup, CgroupError> {
        let name = format!(
            "{}{}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let dirs: Vec<PathBuf> = self.parents.iter().map(|p| p.join(&name)).collect();
        let group = SessionCgroup {
            version: self.version,
            dirs,
        };
        for dir in &group.dirs {
            create_dir(dir)?;
        }
        group.apply(limits)?;
        Ok(group)
    }

    /// Empties and removes the groups of servers that no longer run.
    fn remove_stale(&self) {
        for parent in &self.parents {
            // `<plugin>-<pid>-<instance>-<n>`; plugin names may hold dashes.
            for dir in left_by_dead_servers(parent, |name| name.rsplit('-').nth(2)) {
                // Dropping it kills what is left and removes it.
                drop(SessionCgroup {
                    version: self.version,
                    dirs: vec![dir],
                });
            }
        }
    }
}

/// A session's group (one directory per hierarchy used). Dropping it kills
/// every process left in it and removes it.
#[derive(Debug)]
pub struct SessionCgroup {
    version: Version,
    dirs: Vec<PathBuf>,
}

impl SessionCgroup {
    /// The `cgroup.procs` files a process writes "0" to, to join the group.
    pub fn procs_files(&self) -> io::Result<Vec<CString>> {
        self.dirs
            .iter()
            .map(|dir| {
                CString::new(dir.join("cgroup.procs").as_os_str().as_bytes())
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in cgroup path"))
            })
            .collect()
    }

    /// The host pids of the group's processes.
    pub fn pids(&self) -> Vec<i32> {
        let Some(dir) = self.dirs.first() else {
            return Vec::new();
        };
        fs::read_to_string(dir.join("cgroup.procs"))
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Times the kernel's OOM killer acted in this group (v1
    /// `memory.oom_control`, v2 `memory.events`: the `oom_kill` line).
    pub fn oom_kills(&self) -> u64 {
        let file = match self.version {
            Version::V2 => "memory.events",
            Version::V1 => "memory.oom_control",
        };
        self.dirs
            .iter()
            .find_map(|dir| fs::read_to_string(dir.join(file)).ok())
            .and_then(|text| {
                text.lines().find_map(|line| {
                    let (key, value) = line.split_once(' ')?;
                    (key == "oom_kill").then(|| value.trim().parse().ok())?
                })
            })
            .unwrap_or(0)
    }

    /// Kills every process in the group and waits (up to two seconds) until
    /// none is left.
    pub fn kill_all(&self) {
        if let Some(dir) = self.dirs.first() {
            // cgroup v2 (Linux 5.14+): one write kills the whole group, forks included.
            let _ = fs::write(dir.join("cgroup.kill"), "1");
        }
        let give_up = Instant::now() + Duration::from_secs(2);
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() >= give_up {
                return;
            }
            for pid in pids {
                // SAFETY: kill(2) with a pid read from the group just now.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn apply(&self, limits: &Limits) -> Result<(), CgroupError> {
        let quota = ((limits.cpus * CPU_PERIOD_US as f64) as u64).max(1000);
        let memory = limits.memory_bytes.to_string();
        let processes = limits.processes.to_string();
        match self.version {
            Version::V2 => {
                let dir = &self.dirs[0];
                write(dir, "memory.max", &memory)?;
                // No swap: the limit is the limit (absent without swap support).
                let _ = fs::write(dir.join("memory.swap.max"), "0");
                write(dir, "pids.max", &processes)?;
                write(dir, "cpu.max", &format!("{quota} {CPU_PERIOD_US}"))?;
            }
            Version::V1 => {
                for dir in &self.dirs {
                    if dir.join("memory.limit_in_bytes").exists() {
                        write(dir, "memory.limit_in_bytes", &memory)?;
                        if dir.join("memory.memsw.limit_in_bytes").exists() {
                            let _ = fs::write(dir.join("memory.memsw.limit_in_bytes"), &memory);
                        }
                    }
                    if dir.join("pids.max").exists() {
                        write(dir, "pids.max", &processes)?;
                    }
                    if dir.join("cpu.cfs_quota_us").exists() {
                        write(dir, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                        write(dir, "cpu.cfs_quota_us", &quota.to_string())?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl Drop for SessionCgroup {
    fn drop(&mut self) {
        self.kill_all();
        for dir in &self.dirs {
            let _ = fs::remove_dir(dir);
        }
    }
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    fs::write(dir.join(file), value)
        .map_err(|e| error(format!("cannot set {}: {e}", dir.join(file).display())))
}

fn create_dir(dir: &Path) -> Result<(), CgroupError> {
    match fs::create_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) => Err(error(format!(
            "cannot create the cgroup {}: {e} (the server needs root, or a delegated cgroup subtree)",
            dir.display()
        ))),
    }
}

/// Enables the controllers for the children of `dir` (cgroup v2).
fn enable_controllers(dir: &Path) -> Result<(), CgroupError> {
    let file = dir.join("cgroup.subtree_control");
    let enabled = fs::read_to_string(&file).unwrap_or_default();
    let enabled: Vec<&str> = enabled.split_whitespace().collect();
    for controller in CONTROLLERS {
        if !enabled.contains(&controller) {
            fs::write(&file, format!("+{controller}")).map_err(|e| {
                error(format!(
                    "cannot enable the {controller} controller in {}: {e} (the server needs \
                     root or a delegated cgroup, and that group must hold no processes)",
                    file.display()
                ))
            })?;
        }
    }
    Ok(())
}

/// The directory of cgroup `path` (as `/proc/self/cgroup` gives it) in `mount`.
fn within(mount: &Mount, path: &str) -> PathBuf {
    let path = Path::new(path);
    let relative = path.strip_prefix(&mount.root).unwrap_or(path);
    let relative = relative.strip_prefix("/").unwrap_or(relative);
    mount.point.join(relative)
}

fn cgroup_mounts() -> Result<Vec<Mount>, CgroupError> {
    let text = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| error(format!("cannot read /proc/self/mountinfo: {e}")))?;
    Ok(text.lines().filter_map(parse_mount).collect())
}

/// One `mountinfo` line, if it is a cgroup hierarchy.
fn parse_mount(line: &str) -> Option<Mount> {
    let fields: Vec<&str> = line.split(' ').collect();
    let separator = fields.iter().position(|f| *f == "-")?;
    let fstype = *fields.get(separator + 1)?;
    let options = *fields.get(separator + 3)?;
    let v2 = match fstype {
        "cgroup2" => true,
        "cgroup" => false,
        _ => return None,
    };
    Some(Mount {
        root: PathBuf::from(fields.get(3)?),
        point: PathBuf::from(fields.get(4)?),
        v2,
        controllers: options.split(',').map(str::to_string).collect(),
    })
}

/// `(controllers, path)` per line of `/proc/self/cgroup` ("" for v2).
fn own_cgroups() -> Result<Vec<(String, String)>, CgroupError> {
    let text = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| error(format!("cannot read /proc/self/cgroup: {e}")))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_are_read() {
        let v1 = parse_mount(
            "36 25 0:31 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory",
        )
        .unwrap();
        assert!(!v1.v2);
        assert_eq!(v1.point, Path::new("/sys/fs/cgroup/memory"));
        assert!(v1.controllers.iter().any(|c| c == "memory"));
        let v2 = parse_mount("30 25 0:26 /sub /sys/fs/cgroup rw - cgroup2 cgroup2 rw").unwrap();
        assert!(v2.v2);
        assert_eq!(within(&v2, "/sub/a/b"), Path::new("/sys/fs/cgroup/a/b"));
        assert!(parse_mount("22 1 8:1 / / rw - ext4 /dev/vda rw").is_none());
    }
}
