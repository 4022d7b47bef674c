//! A writable layer of its own over the host's `/usr` and `/opt` (or every
//! directory of an operator's image) for every session: `pip install`, `make install` into `/usr/local`, an edited file
//! under `/opt` land in the session's layer (on its disk), never on the host
//! or in another session.
//!
//! The host's files belong to root, whom a sandbox cannot act as. So the
//! lower layer is an **idmapped**, read-only view of each directory (made
//! once per plugin, `mount_setattr(MOUNT_ATTR_IDMAP)`), in which root's files
//! show as the sandbox user's; over it, kernel **overlayfs** with the upper
//! layer on the session's disk. Only directories without secrets are shown
//! this way: `/etc` (shadow, private keys) stays a plain read-only bind,
//! with root's unreadable files unreadable.
//!
//! A session started from a frozen disk (`snapshot.rs`) stacks the frozen
//! upper layers between the view and its own upper layer.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::disk::{detach, UPPER};
use crate::paths::left_by_dead_servers;
use crate::snapshot::Frozen;

// From <linux/mount.h>; not all are in the `libc` crate.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x0000_0004;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Why layers cannot be made.
#[derive(Debug, thiserror::Error)]
#[error("session layers: {0}")]
pub struct LayerError(String);

fn error(what: &str, e: impl std::fmt::Display) -> LayerError {
    LayerError(format!("{what}: {e}"))
}

/// The idmapped, read-only views of the host's directories (one plugin's).
#[derive(Debug)]
pub struct BaseViews {
    dir: PathBuf,
    /// `(name, view)`: `/usr` is shown at `dir/usr`.
    views: Vec<(String, PathBuf)>,
}

impl BaseViews {
    /// Makes views of `dirs` (`(name, host path)`) in a new directory under
    /// `parent`, mapping root's files to `owner`. Views of servers that no
    /// longer run are removed.
    pub fn prepare(
        parent: &Path,
        dirs: &[(String, PathBuf)],
        owner: (u32, u32),
    ) -> Result<Self, LayerError> {
        remove_stale(parent);
        static INSTANCE: AtomicU64 = AtomicU64::new(0);
        let dir = parent.join(format!(
            "agentflow-base-{}-{}",
            std::process::id(),
            INSTANCE.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir)
            .and_then(|()| fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)))
            .map_err(|e| error(&format!("cannot create {}", dir.display()), e))?;
        let mut base = Self {
            dir,
            views: Vec::new(),
        };
        let userns = mapping_namespace(owner)?;
        for (name, host) in dirs {
            let view = base.dir.join(name);
            fs::create_dir_all(&view)
                .map_err(|e| error(&format!("cannot create {}", view.display()), e))?;
            idmapped_view(host, &view, &userns).map_err(|e| {
                error(
                    &format!("cannot make an idmapped view of {}", host.display()),
                    e,
                )
            })?;
            base.views.push((name.to_string(), view));
        }
        Ok(base)
    }
}

impl Drop for BaseViews {
    fn drop(&mut self) {
        // Never recursively: a view still mounted would be the host's /usr.
        for (_, view) in &self.views {
            detach(view);
            let _ = fs::remove_dir(view);
        }
        let _ = fs::remove_dir(&self.dir);
    }
}

/// A session's overlays: `mounts` (one per layered directory), each to be
/// bound over its host directory in the sandbox. Unmounted on drop.
#[derive(Debug)]
pub struct SessionLayers {
    mounts: Vec<(String, PathBuf)>,
}

impl SessionLayers {
    /// Mounts one overlay per view at `at/<name>`, upper layers in
    /// `layers/<name>` (on the session's disk), over the upper layers frozen
    /// in `from` (if the session was started from a frozen disk); `owner`
    /// owns the upper roots.
    pub fn mount(
        base: &BaseViews,
        from: Option<&Frozen>,
        layers: &Path,
        at: &Path,
        owner: (u32, u32),
    ) -> Result<Self, LayerError> {
        let mut made = Self { mounts: Vec::new() };
        for (name, view) in &base.views {
            let upper = layers.join(name).join(UPPER);
            let work = layers.join(name).join("work");
            let target = at.join(name);
            for dir in [&upper, &work, &target] {
                fs::create_dir_all(dir)
                    .map_err(|e| error(&format!("cannot create {}", dir.display()), e))?;
            }
            // The overlay's root takes the upper root's owner: the view's.
            std::os::unix::fs::chown(&upper, Some(owner.0), Some(owner.1))
                .and_then(|()| fs::set_permissions(&upper, fs::Permissions::from_mode(0o755)))
                .map_err(|e| error(&format!("cannot prepare {}", upper.display()), e))?;
            let mut lowers = from.map_or_else(Vec::new, |f| f.layer_uppers(name));
            lowers.push(view.clone());
            let options = overlay_options(&lowers, &upper, &work)
                .map_err(|e| error("cannot name the overlay's layers", e))?;
            mount_overlay(&target, &options).map_err(|e| {
                error(
                    &format!("cannot mount an overlay on {}", target.display()),
                    e,
                )
            })?;
            made.mounts.push((name.clone(), target));
        }
        Ok(made)
    }

    /// `(name, mount)`: show `mount` at `/<name>` in the sandbox.
    pub fn mounts(&self) -> &[(String, PathBuf)] {
        &self.mounts
    }
}

impl Drop for SessionLayers {
    fn drop(&mut self) {
        for (_, mount) in &self.mounts {
            detach(mount);
        }
    }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))
}

/// Overlay mount options: `lowers` top first. Characters the kernel splits
/// options and layers at are escaped.
pub(crate) fn overlay_options(lowers: &[PathBuf], upper: &Path, work: &Path) -> io::Result<String> {
    let escape = |path: &Path| -> io::Result<String> {
        let text = path.to_str().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("path {} is not UTF-8", path.display()),
            )
        })?;
        Ok(text
            .replace('\\', "\\\\")
            .replace(',', "\\,")
            .replace(':', "\\:"))
    };
    let lowers = lowers
        .iter()
        .map(|p| escape(p))
        .collect::<io::Result<Vec<_>>>()?;
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        escape(upper)?,
        escape(work)?
    );
    // The kernel reads mount options from one page.
    if options.len() >= 4096 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} layers take {} bytes of mount options, more than the kernel's 4095",
                lowers.len() + 1,
                options.len()
            ),
        ));
    }
    Ok(options)
}

/// Mounts an overlay with `options` on `target`.
pub(crate) fn mount_overlay(target: &Path, options: &str) -> io::Result<()> {
    let target = c_path(target)?;
    let options = CString::new(options)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in overlay options"))?;
    // SAFETY: mount(2) with valid C strings.
    let rc = unsafe {
        libc::mount(
            c"overlay".as_ptr(),
            target.as_ptr(),
            c"overlay".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            options.as_ptr().cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A user namespace mapping id 0 to `owner`, for idmapped mounts: made by a
/// short-lived child, held by a descriptor of its namespace.
fn mapping_namespace(owner: (u32, u32)) -> Result<OwnedFd, LayerError> {
    let mut child = Command::new("sleep");
    child
        .arg("60")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: unshare is async-signal-safe.
    unsafe {
        child.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = child
        .spawn()
        .map_err(|e| error("cannot start a process in a new user namespace", e))?;
    let pid = child.id();
    let result = (|| {
        let map = format!("0 {} 1", owner.0);
        fs::write(format!("/proc/{pid}/uid_map"), &map)?;
        fs::write(format!("/proc/{pid}/gid_map"), format!("0 {} 1", owner.1))?;
        let ns = fs::File::open(format!("/proc/{pid}/ns/user"))?;
        Ok::<_, io::Error>(OwnedFd::from(ns))
    })();
    let _ = child.kill();
    let _ = child.wait();
    result.map_err(|e| error("cannot map ids in a user namespace", e))
}

/// Clones the mount at `host`, makes it read-only with root's files shown as
/// the namespace's root's, and attaches it at `view`.
fn idmapped_view(host: &Path, view: &Path, userns: &OwnedFd) -> io::Result<()> {
    let host = c_path(host)?;
    let view = c_path(view)?;
    // SAFETY: open_tree with a valid path; returns a new descriptor or -1.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            host.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if tree < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor we own.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as i32) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: mount_setattr on our detached tree with a valid attr struct.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: move_mount of our detached tree onto an existing directory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            view.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The server pid in a views directory's name, `agentflow-base-<pid>-<n>`.
fn base_dir_pid(name: &str) -> Option<&str> {
    name.strip_prefix("agentflow-base-")?.split('-').next()
}

/// Unmounts and removes the views of servers that no longer run.
fn remove_stale(parent: &Path) {
    for dir in left_by_dead_servers(parent, base_dir_pid) {
        // Never recursively: a view still mounted would be the host's /usr.
        if let Ok(views) = fs::read_dir(&dir) {
            for view in views.flatten() {
                detach(&view.path());
                let _ = fs::remove_dir(view.path());
            }
        }
        let _ = fs::remove_dir(&dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_escape_separators_and_fit_a_page() {
        let options = overlay_options(
            &[PathBuf::from("/a:b"), PathBuf::from("/c,d")],
            Path::new("/u\\p"),
            Path::new("/w"),
        )
        .unwrap();
        assert_eq!(options, r"lowerdir=/a\:b:/c\,d,upperdir=/u\\p,workdir=/w");
        let many: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("/{i:060}")))
            .collect();
        let err = overlay_options(&many, Path::new("/u"), Path::new("/w")).unwrap_err();
        assert!(err.to_string().contains("4095"), "{err}");
    }
}
