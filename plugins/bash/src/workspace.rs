//! Session directories, and moving files in and out of them.
//!
//! Every path a client gives is resolved inside the session's directory:
//! first lexically (absolute paths must lie under the directory, `..` may not
//! climb out of it), then by the kernel with `openat2(RESOLVE_BENEATH)`, which
//! refuses any symbolic link that leads out of the directory (absolute links
//! included), without the race of "canonicalize, then open".

use std::ffi::CString;
use std::fs::{self, DirBuilder, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use sandbox::{Disks, FreezeError, Freezer, Frozen, SessionDisk, SessionSandbox};

/// Why a client's path was not used.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// The path lies outside the session directory (absolute elsewhere, or `..` climbing out).
    #[error("path '{path}' is outside the session directory {dir}")]
    Outside { path: String, dir: String },
    /// A symbolic link on the way leads outside the session directory.
    #[error("path '{path}' leads outside the session directory {dir} through a symbolic link")]
    SymlinkEscape { path: String, dir: String },
    /// The path names something that is not a regular file.
    #[error("path '{path}' is not a regular file")]
    NotAFile { path: String },
    /// The path is empty or contains a NUL character.
    #[error("path '{path}' is not a usable path (empty, or contains NUL)")]
    Malformed { path: String },
    /// The file system refused.
    #[error("path '{path}': {source}")]
    Io { path: String, source: io::Error },
}

impl PathError {
    /// True when the client can fix the call (as opposed to a failure of the host).
    pub fn is_client_error(&self) -> bool {
        match self {
            Self::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::NotFound
                    | io::ErrorKind::IsADirectory
                    | io::ErrorKind::NotADirectory
                    | io::ErrorKind::AlreadyExists
                    | io::ErrorKind::PermissionDenied
            ),
            _ => true,
        }
    }
}

/// The disk a new session directory gets.
#[derive(Debug)]
pub struct NewDisk<'a> {
    /// Where it comes from.
    pub disks: &'a Disks,
    /// Its size.
    pub bytes: u64,
    /// The frozen disk its files start from (a restored session's).
    pub from: Option<Arc<Frozen>>,
}

/// The directory that holds all session directories.
#[derive(Debug)]
pub struct WorkspaceRoot {
    path: PathBuf,
    owner: Option<(u32, u32)>,
}

impl WorkspaceRoot {
    /// Creates the root if needed (mode 0700 for directories it creates;
    /// existing directories keep their mode) and resolves it to a canonical
    /// path. With `owner` (the sandbox's user) the root becomes 0711: that
    /// user must pass through it to its session's directory, but cannot list it.
    pub fn prepare(path: &Path, owner: Option<(u32, u32)>) -> io::Result<Self> {
        DirBuilder::new().recursive(true).mode(0o700).create(path)?;
        let root = Self {
            path: fs::canonicalize(path)?,
            owner,
        };
        if let Some(owner) = owner {
            fs::set_permissions(&root.path, fs::Permissions::from_mode(0o711))?;
            sandbox::ensure_passable(&root.path, owner, "workspace_root")?;
        }
        root.remove_stale_dirs();
        Ok(root)
    }

    /// Removes session directories left by a host process that no longer
    /// runs (killed with SIGKILL, say). Directory names start with the pid of
    /// the host that made them, so a live host sharing the root keeps its own.
    fn remove_stale_dirs(&self) {
        let Ok(entries) = fs::read_dir(&self.path) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.split_once('-'))
                .and_then(|(pid, _)| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
                // A session disk of the dead host is still mounted there.
                sandbox::disk::detach(&entry.path());
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Mounts the session's disk on the new directory `path` (its root
    /// belongs to the sandbox's user), or gives the directory to that user.
    fn finish_session_dir(&self, path: &Path, disk: Option<NewDisk<'_>>) -> io::Result<SessionDir> {
        let disk = match disk {
            Some(new) => Some(
                new.disks
                    .attach_from(path, new.bytes, new.from)
                    .map_err(io::Error::other)?,
            ),
            None => None,
        };
        let owned = match self.owner {
            Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid)),
            None => Ok(()),
        };
        owned.and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(0o700)))?;
        let handle = File::open(path)?.into();
        Ok(SessionDir {
            path: path.to_path_buf(),
            handle,
            owner: self.owner,
            disk: Mutex::new(disk),
        })
    }

    /// The canonical path of the root.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a fresh directory (mode 0700) for a session, named after its
    /// id, with `disk` mounted on it when given.
    pub fn create_session_dir(
        &self,
        session_id: &str,
        mut disk: Option<NewDisk<'_>>,
    ) -> io::Result<SessionDir> {
        let base = dir_name_for(session_id);
        // A name can be taken by a live session of another host sharing the
        // root, or left over by a host that was killed: never reuse it.
        for attempt in 0..1000u32 {
            let name = if attempt == 0 {
                base.clone()
            } else {
                format!("{base}-{attempt}")
            };
            let path = self.path.join(&name);
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    let made = self.finish_session_dir(&path, disk.take());
                    if made.is_err() {
                        let _ = fs::remove_dir(&path);
                    }
                    return made;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "no free directory name for session '{session_id}' in {}",
                self.path.display()
            ),
        ))
    }
}

/// A file-name-safe form of a session id.
fn dir_name_for(session_id: &str) -> String {
    let name: String = session_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let name = if name.is_empty() {
        "session".to_string()
    } else {
        name
    };
    format!("{}-{name}", std::process::id())
}

/// One session's directory: its path and an open handle that path
/// resolution for `read_file`/`write_file` starts from.
#[derive(Debug)]
pub struct SessionDir {
    path: PathBuf,
    handle: OwnedFd,
    /// The sandbox's user: file tools act as it.
    owner: Option<(u32, u32)>,
    /// The disk mounted on it (unmounted at removal).
    disk: Mutex<Option<SessionDisk>>,
}

/// While alive, file system calls of this thread act as the sandbox's user
/// (`setfsuid`/`setfsgid` change only the calling thread, and drop the file
/// capabilities of root): files the tools create belong to the session, and
/// only what the session itself may read or write is reachable, as inside.
struct AsOwner {
    previous: Option<(u32, u32)>,
}

impl AsOwner {
    fn enter(owner: Option<(u32, u32)>) -> Self {
        let previous = owner.map(|(uid, gid)| {
            // SAFETY: setfsgid/setfsuid only change this thread's credentials.
            unsafe {
                let gid_before = libc::setfsgid(gid) as u32;
                let uid_before = libc::setfsuid(uid) as u32;
                (uid_before, gid_before)
            }
        });
        Self { previous }
    }
}

impl Drop for AsOwner {
    fn drop(&mut self) {
        if let Some((uid, gid)) = self.previous {
            // SAFETY: as in `enter`; the uid first, to regain the right to set the gid.
            unsafe {
                libc::setfsuid(uid);
                libc::setfsgid(gid);
            }
        }
    }
}

/// A file read back from a session directory.
#[derive(Debug)]
pub struct FileContent {
    /// Absolute path of the file.
    pub path: PathBuf,
    /// The first bytes of the file, at most the requested number.
    pub bytes: Vec<u8>,
    /// The file's full size in bytes.
    pub size: u64,
}

impl SessionDir {
    /// The directory's absolute path (the same inside the session's sandbox).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open directory handle.
    pub fn handle(&self) -> BorrowedFd<'_> {
        self.handle.as_fd()
    }

    /// Creates directory `path` (relative to the session directory, parents
    /// included) unless it exists, and returns its absolute path.
    pub fn create_dir(&self, path: &str) -> Result<PathBuf, PathError> {
        let _as_owner = AsOwner::enter(self.owner);
        let relative = self.relative(path)?;
        self.create_dirs(path, &relative)?;
        Ok(self.absolute(&relative))
    }

    /// Writes `bytes` to file `path`, creating parent directories; returns its absolute path.
    pub fn write_file(&self, path: &str, bytes: &[u8]) -> Result<PathBuf, PathError> {
        let _as_owner = AsOwner::enter(self.owner);
        let relative = self.relative(path)?;
        let Some(parent) = relative.parent() else {
            return Err(PathError::NotAFile { path: path.into() });
        };
        self.create_dirs(path, parent)?;
        let file = self.open(
            path,
            &relative,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NONBLOCK,
        )?;
        let mut file = File::from(file);
        ensure_regular(path, &file)?;
        file.write_all(bytes).map_err(|e| io_error(path, e))?;
        Ok(self.absolute(&relative))
    }

    /// Reads at most `max_bytes` of file `path`.
    pub fn read_file(&self, path: &str, max_bytes: u64) -> Result<FileContent, PathError> {
        let _as_owner = AsOwner::enter(self.owner);
        let relative = self.relative(path)?;
        // O_NONBLOCK: opening a FIFO must not hang the call; it is refused below.
        let file = File::from(self.open(path, &relative, libc::O_RDONLY | libc::O_NONBLOCK)?);
        let size = ensure_regular(path, &file)?;
        let mut bytes = Vec::with_capacity(size.min(max_bytes) as usize);
        file.take(max_bytes)
            .read_to_end(&mut bytes)
            .map_err(|e| io_error(path, e))?;
        Ok(FileContent {
            path: self.absolute(&relative),
            bytes,
            size,
        })
    }

    /// Mounts the sandbox's writable layers, kept on this directory's disk
    /// (nothing without a disk).
    pub fn mount_layers(&self, sandbox: &mut SessionSandbox) -> Result<(), sandbox::SandboxError> {
        let disk = self
            .disk
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match disk.as_ref() {
            Some(disk) => sandbox.mount_layers(disk),
            None => Ok(()),
        }
    }

    /// Freezes the directory's files (its disk, with the session's layers)
    /// with `freezer`; `Ok(None)` when it has no disk of its own.
    pub fn freeze(&self, freezer: &Freezer) -> Result<Option<Arc<Frozen>>, FreezeError> {
        let disk = self
            .disk
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        disk.as_ref().map(|disk| freezer.freeze(disk)).transpose()
    }

    /// Deletes the directory and everything in it (a disk of its own is
    /// unmounted and deleted whole).
    pub fn remove(&self) -> io::Result<()> {
        drop(
            self.disk
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        match fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// The absolute path of `relative` (the directory itself when empty).
    fn absolute(&self, relative: &Path) -> PathBuf {
        if relative.as_os_str().is_empty() {
            self.path.clone()
        } else {
            self.path.join(relative)
        }
    }

    /// The lexical part of resolution: `path` as a normalized path relative
    /// to the session directory, or an error if it clearly lies outside.
    fn relative(&self, path: &str) -> Result<PathBuf, PathError> {
        if path.is_empty() || path.contains('\0') {
            return Err(PathError::Malformed { path: path.into() });
        }
        let given = Path::new(path);
        let inside = if given.is_absolute() {
            given
                .strip_prefix(&self.path)
                .map_err(|_| self.outside(path))?
        } else {
            given
        };
        let mut relative = PathBuf::new();
        for component in inside.components() {
            match component {
                Component::Normal(name) => relative.push(name),
                Component::CurDir => {}
                Component::ParentDir => {
                    if !relative.pop() {
                        return Err(self.outside(path));
                    }
                }
                Component::RootDir | Component::Prefix(_) => return Err(self.outside(path)),
            }
        }
        Ok(relative)
    }

    /// Creates each missing directory of `relative`, one component at a time,
    /// so that every step is resolved beneath the session directory.
    fn create_dirs(&self, path: &str, relative: &Path) -> Result<(), PathError> {
        let mut done = PathBuf::new();
        for component in relative.components() {
            let parent = if done.as_os_str().is_empty() {
                None
            } else {
                Some(self.open(path, &done, libc::O_PATH | libc::O_DIRECTORY)?)
            };
            let parent_fd = parent.as_ref().map_or(self.handle(), |fd| fd.as_fd());
            done.push(component);
            let name = CString::new(component.as_os_str().as_bytes())
                .map_err(|_| PathError::Malformed { path: path.into() })?;
            // SAFETY: a valid directory fd and a NUL-terminated single-component name.
            let rc = unsafe { libc::mkdirat(parent_fd.as_raw_fd(), name.as_ptr(), 0o755) };
            if rc != 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::AlreadyExists {
                    return Err(io_error(path, e));
                }
            }
        }
        // Whatever existed must be a directory reachable beneath the session directory.
        if !done.as_os_str().is_empty() {
            self.open(path, &done, libc::O_PATH | libc::O_DIRECTORY)?;
        }
        Ok(())
    }

    /// `openat2` beneath the session directory.
    fn open(&self, path: &str, relative: &Path, flags: i32) -> Result<OwnedFd, PathError> {
        let target = if relative.as_os_str().is_empty() {
            Path::new(".")
        } else {
            relative
        };
        open_beneath(self.handle(), target, flags, 0o644).map_err(|e| match e.raw_os_error() {
            // EXDEV: resolution left the directory; ELOOP: a magic link (/proc/self/...).
            Some(libc::EXDEV) | Some(libc::ELOOP) => PathError::SymlinkEscape {
                path: path.into(),
                dir: self.path.display().to_string(),
            },
            _ => io_error(path, e),
        })
    }

    fn outside(&self, path: &str) -> PathError {
        PathError::Outside {
            path: path.into(),
            dir: self.path.display().to_string(),
        }
    }
}

/// Opens `relative` beneath `dir`: no `..`, absolute path or symbolic link may
/// take the resolution outside `dir` (Linux 5.6+).
fn open_beneath(
    dir: BorrowedFd<'_>,
    relative: &Path,
    flags: i32,
    mode: u32,
) -> io::Result<OwnedFd> {
    let c_path = CString::new(relative.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: open_how is plain old data; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & libc::O_CREAT != 0 {
        u64::from(mode)
    } else {
        0
    };
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    loop {
        // SAFETY: valid fd, NUL-terminated path, and `how` with its exact size.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c_path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel just returned this new descriptor to us.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let e = io::Error::last_os_error();
        // EAGAIN: a concurrent rename raced the lookup; the kernel asks to retry.
        if !matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EAGAIN)) {
            return Err(e);
        }
    }
}

/// The file's size if it is a regular file.
fn ensure_regular(path: &str, file: &File) -> Result<u64, PathError> {
    let metadata = file.metadata().map_err(|e| io_error(path, e))?;
    if metadata.is_file() {
        Ok(metadata.len())
    } else {
        Err(PathError::NotAFile { path: path.into() })
    }
}

fn io_error(path: &str, source: io::Error) -> PathError {
    PathError::Io {
        path: path.into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root(tag: &str) -> WorkspaceRoot {
        let dir =
            std::env::temp_dir().join(format!("agentflow-bash-unit-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        WorkspaceRoot::prepare(&dir, None).unwrap()
    }

    #[test]
    fn session_dir_names_are_sanitized_and_unique() {
        let root = temp_root("names");
        let a = root.create_session_dir("w1/../x y", None).unwrap();
        let b = root.create_session_dir("w1/../x y", None).unwrap();
        let expected = format!("{}-w1____x_y", std::process::id());
        assert_eq!(a.path().file_name().unwrap().to_str().unwrap(), expected);
        assert_ne!(a.path(), b.path());
        assert!(a.path().starts_with(root.path()));
        fs::remove_dir_all(root.path()).unwrap();
    }

    #[test]
    fn directories_of_dead_hosts_are_removed_and_live_ones_kept() {
        let root = temp_root("stale");
        let dead = root.path().join("999999999-bash_w_001_deadbeef");
        let live = root
            .path()
            .join(format!("{}-bash_w_002_cafe", std::process::id()));
        fs::create_dir(&dead).unwrap();
        fs::create_dir(&live).unwrap();
        let again = WorkspaceRoot::prepare(root.path(), None).unwrap();
        assert!(!dead.exists(), "a dead host's directory was kept");
        assert!(live.exists(), "a live host's directory was removed");
        fs::remove_dir_all(again.path()).unwrap();
    }

    #[test]
    fn files_round_trip_and_escapes_are_refused() {
        let root = temp_root("paths");
        let dir = root.create_session_dir("s", None).unwrap();
        let written = dir.write_file("a/b/c.bin", &[0, 159, 255]).unwrap();
        assert_eq!(written, dir.path().join("a/b/c.bin"));
        let read = dir.read_file(written.to_str().unwrap(), 10).unwrap();
        assert_eq!(read.bytes, vec![0, 159, 255]);
        assert_eq!(read.size, 3);
        assert_eq!(
            dir.read_file("a/./b/../b/c.bin", 2).unwrap().bytes,
            vec![0, 159]
        );

        assert!(matches!(
            dir.read_file("../x", 1),
            Err(PathError::Outside { .. })
        ));
        assert!(matches!(
            dir.read_file("/etc/passwd", 1),
            Err(PathError::Outside { .. })
        ));
        std::os::unix::fs::symlink("/etc", dir.path().join("etc")).unwrap();
        assert!(matches!(
            dir.read_file("etc/passwd", 1),
            Err(PathError::SymlinkEscape { .. })
        ));
        assert!(matches!(
            dir.write_file("etc/evil", b"x"),
            Err(PathError::SymlinkEscape { .. })
        ));
        assert!(matches!(
            dir.read_file("a", 1),
            Err(PathError::NotAFile { .. })
        ));
        fs::remove_dir_all(root.path()).unwrap();
    }
}
