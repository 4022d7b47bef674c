//! A disk of its own for each session's workspace: an ext4 filesystem in a
//! sparse image file, loop-mounted on the workspace directory. The kernel
//! refuses writes past its size (`ENOSPC`), whatever writes them (the
//! session's processes or the plugin's file tools), and the host's disk never
//! fills up. Sparse: an image takes only the space its files use.
//!
//! Why not quotas: project quotas need `CONFIG_QUOTA`, which kernels of small
//! VMs (this project's CI among them) lack; a loop device needs nothing but
//! `mkfs.ext4` and `mount` (Debian's `e2fsprogs` and `mount`, always there).
//!
//! Making a filesystem takes tens of milliseconds, so a few are kept ready,
//! mounted in a pool directory; a new session's directory gets the disk's
//! `workspace/` bound on it (microseconds), and its `layers/` hold the
//! session's writable layers (`layers.rs`); a background thread refills the
//! pool. Images
//! of servers that no longer run are unmounted and deleted at the next start.
//!
//! A session started from a frozen disk (`snapshot.rs`) gets a fresh disk
//! too, on which its workspace is an overlay: the frozen workspace below,
//! this disk's `workspace/` above (so every disk keeps its own files in
//! `workspace/` and `layers/`, whichever way it was started).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use crate::layers::{mount_overlay, overlay_options};
use crate::paths::left_by_dead_servers;
use crate::snapshot::{thaw, Frozen};

/// How many made filesystems wait for sessions.
const POOL: usize = 2;

/// Session disks of one size, made in one directory.
#[derive(Debug)]
pub struct Disks {
    shared: Arc<Shared>,
    refill: Mutex<Option<mpsc::Sender<()>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    bytes: u64,
    owner: (u32, u32),
    prefix: String,
    next: AtomicU64,
    ready: Mutex<Vec<Made>>,
    /// Set when the `Disks` goes: the refill thread stops making more.
    closed: AtomicBool,
}

/// A made, mounted filesystem.
#[derive(Debug)]
struct Made {
    image: PathBuf,
    mount: PathBuf,
}

/// Why a disk could not be made.
#[derive(Debug, thiserror::Error)]
#[error("session disk: {0}")]
pub struct DiskError(String);

impl Disks {
    /// Makes (and keeps) one filesystem to check that loop devices, ext4 and
    /// `mkfs.ext4` work here; `dir` holds the images (created, mode 0711).
    pub fn prepare(dir: &Path, bytes: u64, owner: (u32, u32)) -> Result<Self, DiskError> {
        fs::create_dir_all(dir)
            .and_then(|()| {
                use std::os::unix::fs::PermissionsExt;
                // Passable for bubblewrap (as the sandbox's user) to reach the
                // overlays; not listable.
                fs::set_permissions(dir, fs::Permissions::from_mode(0o711))
            })
            .map_err(|e| DiskError(format!("cannot create {}: {e}", dir.display())))?;
        remove_stale(dir);
        static INSTANCE: AtomicU64 = AtomicU64::new(0);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            bytes,
            owner,
            prefix: format!(
                "{}-{}-",
                std::process::id(),
                INSTANCE.fetch_add(1, Ordering::Relaxed)
            ),
            next: AtomicU64::new(0),
            ready: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        let first = shared.make()?;
        shared.lock().push(first);
        let (refill, wake) = mpsc::channel::<()>();
        let pool = shared.clone();
        let thread = std::thread::Builder::new()
            .name("agentflow-disks".into())
            .spawn(move || {
                // Ends when the Disks (the only sender) is dropped.
                while wake.recv().is_ok() {
                    while pool.lock().len() < POOL && !pool.closed.load(Ordering::Relaxed) {
                        match pool.make() {
                            Ok(made) => pool.lock().push(made),
                            Err(_) => break, // the next attach makes its own and says why
                        }
                    }
                }
            })
            .map_err(|e| DiskError(format!("cannot start the disk thread: {e}")))?;
        let _ = refill.send(());
        Ok(Self {
            shared,
            refill: Mutex::new(Some(refill)),
            thread: Some(thread),
        })
    }

    /// Mounts a fresh disk's workspace on `target` (an empty directory). With
    /// `bytes` other than the pool's size, a disk of that size is made for it.
    pub fn attach(&self, target: &Path, bytes: u64) -> Result<SessionDisk, DiskError> {
        self.attach_from(target, bytes, None)
    }

    /// As [`Disks::attach`]; with `from`, the workspace shows the frozen
    /// workspace (and those it stands on) under this disk's writes, and the
    /// disk keeps `from` alive (its layers stand on it too, see
    /// [`SessionDisk::from`]).
    pub fn attach_from(
        &self,
        target: &Path,
        bytes: u64,
        from: Option<Arc<Frozen>>,
    ) -> Result<SessionDisk, DiskError> {
        let made = if bytes == self.shared.bytes {
            self.shared.lock().pop()
        } else {
            None
        };
        if let Some(refill) = self.refill.lock().ok().as_ref().and_then(|r| r.as_ref()) {
            let _ = refill.send(());
        }
        let made = match made {
            Some(made) => made,
            None => self.shared.make_sized(bytes)?,
        };
        let mut disk = SessionDisk {
            image: made.image,
            mount: made.mount,
            target: None,
            from,
        };
        // On error the disk is dropped: unmounted and deleted (overlays on it too).
        let workspace = match &disk.from {
            None => disk.mount.join(WORKSPACE),
            Some(frozen) => disk.overlay_workspace(frozen).map_err(|e| {
                DiskError(format!(
                    "cannot show the snapshot's workspace under the new disk: {e}"
                ))
            })?,
        };
        bind(&workspace, target).map_err(|e| {
            DiskError(format!(
                "cannot mount the workspace on {}: {e}",
                target.display()
            ))
        })?;
        disk.target = Some(target.to_path_buf());
        Ok(disk)
    }
}

impl Drop for Disks {
    /// Stops the refill thread (after the disk it may be making: a server
    /// that exits right after must not leave it mounted), then unmounts the
    /// pool.
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        if let Ok(mut refill) = self.refill.lock() {
            refill.take();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        for made in self.shared.lock().drain(..) {
            drop(SessionDisk {
                image: made.image,
                mount: made.mount,
                target: None,
                from: None,
            });
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Made>> {
        self.ready.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn make(&self) -> Result<Made, DiskError> {
        self.make_sized(self.bytes)
    }

    /// A sparse image with an ext4 filesystem whose root belongs to the
    /// sandbox's user, mounted in the pool directory.
    fn make_sized(&self, bytes: u64) -> Result<Made, DiskError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let image = self.dir.join(format!("{}{n}.img", self.prefix));
        let mount = self.dir.join(format!("{}{n}.mnt", self.prefix));
        let cleanup = |e: DiskError| {
            let _ = fs::remove_file(&image);
            let _ = fs::remove_dir(&mount);
            e
        };
        fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&image)
            .and_then(|f| f.set_len(bytes))
            .map_err(|e| DiskError(format!("cannot create {}: {e}", image.display())))?;
        // No resize inode: these disks never grow, and its reserved blocks
        // took 4 MB of the host's disk per session (0.2 MB without).
        run(Command::new("mkfs.ext4")
            .args([
                "-q",
                "-F",
                "-m",
                "0",
                "-O",
                "^has_journal,^resize_inode",
                "-E",
            ])
            .arg("root_owner=0:0,lazy_itable_init=1,nodiscard")
            .arg(&image))
        .map_err(cleanup)?;
        fs::create_dir(&mount)
            .map_err(|e| cleanup(DiskError(format!("cannot create {}: {e}", mount.display()))))?;
        run(Command::new("mount")
            .args(["-o", "loop,nosuid,nodev"])
            .arg(&image)
            .arg(&mount))
        .map_err(cleanup)?;
        let _ = fs::remove_dir(mount.join("lost+found"));
        let laid_out = lay_out(&mount, self.owner);
        if let Err(e) = laid_out {
            detach(&mount);
            return Err(cleanup(DiskError(format!(
                "cannot lay out {}: {e}",
                mount.display()
            ))));
        }
        Ok(Made { image, mount })
    }
}

/// The workspace's directory on a disk (bind-mounted on the session's
/// directory; for a disk started from a frozen one, the upper layer of its
/// workspace), and the directory of the session's layers (out of its sight),
/// each layer's files in `layers/<name>/upper`.
pub(crate) const WORKSPACE: &str = "workspace";
pub(crate) const LAYERS: &str = "layers";
pub(crate) const UPPER: &str = "upper";
/// For a disk started from a frozen one: the workspace overlay's work
/// directory and where the overlay is mounted (then bound on the session's).
const WORKSPACE_WORK: &str = "workspace.work";
const WORKSPACE_MERGED: &str = "workspace.merged";
/// Where the session's overlays are mounted (bubblewrap, running as the
/// sandbox's user, must reach them: mode 0711 on the way).
const ROOT: &str = "root";

/// A new disk's directories: the disk's root and `root/` passable (0711),
/// the workspace the sandbox user's (0700), the layers root's (0700).
fn lay_out(mount: &Path, owner: (u32, u32)) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path, mode| fs::set_permissions(path, fs::Permissions::from_mode(mode));
    mode(mount, 0o711)?;
    for (name, bits) in [(WORKSPACE, 0o700), (LAYERS, 0o700), (ROOT, 0o711)] {
        fs::create_dir(mount.join(name))?;
        mode(&mount.join(name), bits)?;
    }
    std::os::unix::fs::chown(mount.join(WORKSPACE), Some(owner.0), Some(owner.1))
}

/// A session's disk: its workspace bound on the session's directory.
/// Unmounted and deleted on drop.
#[derive(Debug)]
pub struct SessionDisk {
    image: PathBuf,
    /// Where the disk itself is mounted (in the disks directory).
    mount: PathBuf,
    /// The session's directory its workspace is bound on.
    target: Option<PathBuf>,
    /// The frozen disk the session was started from: the lower layers of
    /// its workspace and writable layers, kept until this disk goes.
    from: Option<Arc<Frozen>>,
}

impl SessionDisk {
    /// The frozen disk this one was started from.
    pub fn from(&self) -> Option<&Arc<Frozen>> {
        self.from.as_ref()
    }

    /// The disk's image file.
    pub(crate) fn image(&self) -> &Path {
        &self.image
    }

    /// Where the disk's filesystem is mounted.
    pub(crate) fn mount_point(&self) -> &Path {
        &self.mount
    }

    /// Mounts the workspace overlay (the frozen workspaces below this
    /// disk's `workspace/`) and returns where.
    fn overlay_workspace(&self, frozen: &Frozen) -> io::Result<PathBuf> {
        let work = self.mount.join(WORKSPACE_WORK);
        let merged = self.mount.join(WORKSPACE_MERGED);
        fs::create_dir(&work)?;
        fs::create_dir(&merged)?;
        let options = overlay_options(
            &frozen.workspace_layers(),
            &self.mount.join(WORKSPACE),
            &work,
        )?;
        mount_overlay(&merged, &options)?;
        Ok(merged)
    }

    /// Where the session's layers keep their files (on this disk).
    pub fn layers_dir(&self) -> PathBuf {
        self.mount.join(LAYERS)
    }

    /// Where the session's overlays are mounted.
    pub fn overlay_dir(&self) -> PathBuf {
        self.mount.join(ROOT)
    }
}

impl Drop for SessionDisk {
    fn drop(&mut self) {
        // Lazily: the kernel finishes once the last user is gone, and frees
        // the loop device (mount(8) set it to clear itself). Detaching the
        // disk takes the overlays mounted below it along.
        if let Some(target) = &self.target {
            detach(target);
        }
        detach(&self.mount);
        let _ = fs::remove_dir(&self.mount);
        let _ = fs::remove_file(&self.image);
    }
}

/// Unmounts `path` lazily (nothing if it is not a mount point).
pub fn detach(path: &Path) {
    if let Ok(path) = CString::new(path.as_os_str().as_bytes()) {
        // SAFETY: umount2 with a valid C string.
        unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
    }
}

fn bind(from: &Path, to: &Path) -> io::Result<()> {
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))
    };
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: mount(2) with valid C strings; MS_BIND ignores type and data.
    let rc = unsafe {
        libc::mount(
            from.as_ptr(),
            to.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) fn run(command: &mut Command) -> Result<(), DiskError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| DiskError(format!("cannot run {program}: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(DiskError(format!(
        "{program} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}

/// Unmounts and deletes the pool mounts and images of servers that no longer run.
fn remove_stale(dir: &Path) {
    for path in left_by_dead_servers(dir, |name| name.split('-').next()) {
        // A server killed while snapshotting leaves the disk frozen.
        thaw(&path);
        detach(&path);
        let _ = fs::remove_dir(&path);
        let _ = fs::remove_file(&path);
    }
}
