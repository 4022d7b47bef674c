//! The bubblewrap command line for one sandboxed program.
//!
//! What the program sees:
//! * `/usr` and `/opt` of the host under a writable layer of its own
//!   (`layers.rs`; read-only without one), `/etc` and the `/bin`, `/lib*`,
//!   `/sbin` links read-only; or, when the session names one of the
//!   operator's images, that image's directories, each under a layer;
//!   nothing else of the host's filesystem (no `/root`, `/home`,
//!   `/var`, `/srv`, `/mnt`, `/media`, `/run`, `/sys`, no server directories);
//! * its own `/proc` (its PID namespace), a minimal `/dev` (null, zero, full,
//!   random, urandom, tty, pts/ptmx, shm: no `/dev/kvm`, no disks), its own
//!   `/tmp` and `/var/tmp` (tmpfs, counted against its memory limit);
//! * its workspace, read-write at the same path as on the host (and, for a
//!   session started from a snapshot, also where the snapshotted session's
//!   workspace was), and whatever else the plugin binds (the vm plugin: the
//!   X socket and cookie);
//! * root of a user namespace of its own with no capabilities, mapped to an
//!   unprivileged host uid; no further user namespaces (`--disable-userns`);
//! * its own PID, IPC, UTS and cgroup namespaces, and unless `network =
//!   "host"`, a network namespace with only a loopback interface.

use std::path::{Path, PathBuf};

use crate::config::Network;

/// Directories of an image that are never shown from it: the sandbox makes
/// its own, or they hold nothing a session needs.
const NOT_FROM_IMAGES: [&str; 11] = [
    "proc",
    "sys",
    "dev",
    "tmp",
    "run",
    "mnt",
    "media",
    "boot",
    "home",
    "root",
    "lost+found",
];

/// What a sandbox's root is made of: the host's system directories, or an
/// operator's image (a directory holding an unpacked root filesystem).
#[derive(Debug, Clone)]
pub(crate) struct Base {
    /// `(path inside, what is there)`.
    entries: Vec<(PathBuf, Entry)>,
    /// Directories sessions get a writable layer over: `(name, host path)`.
    layered: Vec<(String, PathBuf)>,
}

#[derive(Debug, Clone)]
enum Entry {
    /// A symbolic link with this target (merged-`/usr` systems: `/bin`).
    Link(PathBuf),
    /// A host directory, shown read-only (or under the session's layer).
    Dir(PathBuf),
}

impl Base {
    /// The host's `/usr`, `/etc`, `/opt` and `/bin`, `/lib*`, `/sbin`; layers
    /// over `/usr` and `/opt` only (`/etc` holds root's secrets).
    pub(crate) fn host() -> Self {
        let names = [
            "usr", "etc", "opt", "bin", "sbin", "lib", "lib32", "lib64", "libx32",
        ];
        let entries: Vec<(PathBuf, Entry)> = names
            .iter()
            .filter_map(|name| entry(Path::new("/"), name))
            .collect();
        let layered = ["usr", "opt"]
            .iter()
            .filter(|name| {
                entries
                    .iter()
                    .any(|(p, e)| matches!(e, Entry::Dir(_)) && p == &Path::new("/").join(name))
            })
            .map(|name| (name.to_string(), Path::new("/").join(name)))
            .collect();
        Self { entries, layered }
    }

    /// Every top-level directory and link of the image at `root` (but those
    /// the sandbox makes itself), each with a layer.
    pub(crate) fn image(root: &Path) -> std::io::Result<Self> {
        let mut entries = Vec::new();
        for item in std::fs::read_dir(root)? {
            let name = item?.file_name();
            let Some(name) = name.to_str() else { continue };
            if NOT_FROM_IMAGES.contains(&name) {
                continue;
            }
            entries.extend(entry(root, name));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let layered = entries
            .iter()
            .filter_map(|(path, e)| match e {
                Entry::Dir(source) => {
                    Some((path.file_name()?.to_str()?.to_string(), source.clone()))
                }
                Entry::Link(_) => None,
            })
            .collect();
        Ok(Self { entries, layered })
    }

    /// Directories that get a layer of the session's own.
    pub(crate) fn layered(&self) -> &[(String, PathBuf)] {
        &self.layered
    }
}

/// `root/name` as a base entry, if it is a directory or a symbolic link.
fn entry(root: &Path, name: &str) -> Option<(PathBuf, Entry)> {
    let source = root.join(name);
    let meta = source.symlink_metadata().ok()?;
    let inside = Path::new("/").join(name);
    if meta.file_type().is_symlink() {
        Some((inside, Entry::Link(source.read_link().ok()?)))
    } else if meta.is_dir() {
        Some((inside, Entry::Dir(source)))
    } else {
        None
    }
}

/// A host path made visible inside at the same path.
#[derive(Debug, Clone)]
pub struct Bind {
    /// The path, outside and inside.
    pub path: PathBuf,
    /// Writable (else read-only).
    pub writable: bool,
}

/// What one sandboxed program needs.
#[derive(Debug, Clone)]
pub struct Jail {
    /// `argv` of the program; `argv[0]` is its path (looked up on `PATH` inside).
    pub argv: Vec<String>,
    /// The session's workspace, writable, at the same path inside.
    pub workspace: PathBuf,
    /// Starting directory inside.
    pub cwd: PathBuf,
    /// More host paths to show (sockets or files too).
    pub binds: Vec<Bind>,
    /// Run the program as PID 1 of its namespace (no bubblewrap reaper); it
    /// must then reap orphans itself (bash does).
    pub as_pid_1: bool,
    /// The uid and gid the program has inside: 0 makes it root of its user
    /// namespace (without capabilities); programs that misbehave as a root
    /// without `setgroups` (xterm) want another, e.g. 65534. The host side
    /// is the sandbox's user either way.
    pub inside_id: u32,
}

/// Bubblewrap's arguments (without `argv[0]`) for `jail`; the workspace is
/// also shown at `aliases`.
pub(crate) fn arguments(
    base: &Base,
    overlays: &[(String, PathBuf)],
    jail: &Jail,
    aliases: &[PathBuf],
    network: Network,
    tmp_bytes: u64,
    seccomp_fd: i32,
) -> Result<Vec<String>, String> {
    let mut args: Vec<String> = Vec::with_capacity(64);
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
    let inside = jail.inside_id.to_string();
    push(&[
        "--die-with-parent",
        "--new-session",
        "--unshare-user",
        "--uid",
        &inside,
        "--gid",
        &inside,
        "--disable-userns",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--hostname",
        "sandbox",
        "--unshare-cgroup",
        "--cap-drop",
        "ALL",
    ]);
    if network != Network::Host {
        push(&["--unshare-net"]);
    }
    if jail.as_pid_1 {
        push(&["--as-pid-1"]);
    }
    push(&["--seccomp", &seccomp_fd.to_string()]);
    for (path, entry) in &base.entries {
        let overlay = overlays
            .iter()
            .find(|(name, _)| Path::new("/").join(name) == *path);
        let path = text(path)?;
        match (entry, overlay) {
            (Entry::Link(target), _) => push(&["--symlink", text(target)?, path]),
            // The session's writable layer over the directory.
            (Entry::Dir(_), Some((_, mount))) => push(&["--bind", text(mount)?, path]),
            (Entry::Dir(source), None) => push(&["--ro-bind", text(source)?, path]),
        }
    }
    let tmp_size = tmp_bytes.to_string();
    push(&["--proc", "/proc", "--dev", "/dev"]);
    push(&["--size", &tmp_size, "--tmpfs", "/tmp"]);
    push(&["--size", &tmp_size, "--tmpfs", "/var/tmp"]);
    push(&["--dir", "/run", "--dir", "/root"]);
    let workspace = text(&jail.workspace)?;
    push(&["--bind", workspace, workspace]);
    for alias in aliases {
        push(&["--bind", workspace, text(alias)?]);
    }
    for bind in &jail.binds {
        let path = text(&bind.path)?;
        let kind = if bind.writable { "--bind" } else { "--ro-bind" };
        push(&[kind, path, path]);
    }
    push(&["--chdir", text(&jail.cwd)?, "--"]);
    for arg in &jail.argv {
        push(&[arg]);
    }
    Ok(args)
}

fn text(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("path {} is not UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jail() -> Jail {
        Jail {
            argv: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            workspace: "/tmp/ws/s1".into(),
            cwd: "/tmp/ws/s1".into(),
            binds: vec![],
            as_pid_1: false,
            inside_id: 0,
        }
    }

    #[test]
    fn the_network_is_unshared_unless_host() {
        let base = Base::host();
        let args = arguments(&base, &[], &jail(), &[], Network::None, 1 << 20, 4).unwrap();
        assert!(args.iter().any(|a| a == "--unshare-net"));
        let args = arguments(&base, &[], &jail(), &[], Network::Host, 1 << 20, 4).unwrap();
        assert!(!args.iter().any(|a| a == "--unshare-net"));
    }

    #[test]
    fn the_program_comes_last_after_the_workspace_bind() {
        let args = arguments(&Base::host(), &[], &jail(), &[], Network::None, 1 << 20, 4).unwrap();
        let dash = args.iter().position(|a| a == "--").unwrap();
        assert_eq!(&args[dash + 1..], ["/bin/sh", "-c", "true"]);
        let bind = args.iter().position(|a| a == "--bind").unwrap();
        let tmp = args.iter().position(|a| a == "/tmp").unwrap();
        assert!(
            tmp < bind,
            "the workspace is bound over the new /tmp, not under it"
        );
    }

    #[test]
    fn aliases_show_the_workspace_again() {
        let aliases = [PathBuf::from("/tmp/ws/s0")];
        let args = arguments(
            &Base::host(),
            &[],
            &jail(),
            &aliases,
            Network::None,
            1 << 20,
            4,
        )
        .unwrap();
        let binds: Vec<(&str, &str)> = args
            .windows(3)
            .filter(|w| w[0] == "--bind")
            .map(|w| (w[1].as_str(), w[2].as_str()))
            .collect();
        assert_eq!(
            binds,
            [("/tmp/ws/s1", "/tmp/ws/s1"), ("/tmp/ws/s1", "/tmp/ws/s0")]
        );
    }
}
