//! Host paths as the sandbox's user meets them, and finding programs.

use std::io;
use std::path::{Path, PathBuf};

use crate::SandboxError;

/// Fails, naming the directory and the `setting` to change, unless the
/// sandbox's user `owner` may pass through `dir` and every directory above it
/// (bubblewrap runs as that user and opens what it binds by path).
pub fn ensure_passable(dir: &Path, owner: (u32, u32), setting: &str) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let (uid, gid) = owner;
    for dir in dir.ancestors() {
        let meta = std::fs::metadata(dir)?;
        let mode = meta.mode();
        let passable = if meta.uid() == uid {
            mode & 0o100 != 0
        } else if meta.gid() == gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !passable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "the sandbox's user (uid {uid}) cannot pass through {} (mode {:o}): \
                     allow it (chmod o+x) or choose another {setting}",
                    dir.display(),
                    mode & 0o7777
                ),
            ));
        }
    }
    Ok(())
}

/// A temporary directory owned by the sandbox's user, removed on drop.
pub(crate) struct TempDir {
    pub(crate) path: PathBuf,
}

impl TempDir {
    pub(crate) fn new_for(owner: Option<(u32, u32)>) -> io::Result<Self> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "agentflow-sandbox-probe-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
        }
        Ok(Self { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

pub(crate) fn text(path: &Path) -> Result<&str, SandboxError> {
    path.to_str()
        .ok_or_else(|| SandboxError::Config(format!("path {} is not UTF-8", path.display())))
}

/// `name` if it is a path, else the first executable `name` on `PATH`.
pub(crate) fn find_program(name: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.components().count() > 1 {
        return executable(name).then(|| name.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}

/// The entries of `dir` that a server which no longer runs left: `pid_of`
/// finds the server's pid in an entry's name (names without one are kept).
pub(crate) fn left_by_dead_servers(
    dir: &Path,
    pid_of: impl Fn(&str) -> Option<&str>,
) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(&pid_of)
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                return false;
            };
            pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists()
        })
        .map(|entry| entry.path())
        .collect()
}
