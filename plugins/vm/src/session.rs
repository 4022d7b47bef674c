//! One vm session: its directory, spawner thread, Xvfb, programs and X connection,
//! created together and torn down together.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use sandbox::{Disks, Limits, SessionDisk, SessionSandbox};

use crate::config::{PluginConfig, SessionConfig};
use crate::desktop::Desktop;
use crate::display::{describe_exit, Xvfb};
use crate::error::{VmError, VmResult};
use crate::programs::{self, LaunchEnv, Program};
use crate::spawner::Spawner;
use crate::video::Video;
use crate::xauth::Cookie;

/// How a session's programs are confined (absent: `isolation = "none"`).
pub struct Confinement {
    /// The session's sandbox: its cgroup, and the commands that run in it.
    pub sandbox: SessionSandbox,
    /// Host `(uid, gid)` of the sandboxed programs when it differs from the
    /// server's: the session's directory and cookie must belong to it.
    pub owner: Option<(u32, u32)>,
    /// Where the session's directory gets a disk of its own (with writable
    /// layers on it), `None` to keep it on the host's disk.
    pub disks: Option<Arc<Disks>>,
}

/// How long session creation waits for a window manager to announce itself.
const WM_READY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a call waiting for the session's desktop checks its deadline.
const LOCK_POLL: Duration = Duration::from_millis(2);

/// The processes of a session; dropping this kills them (programs first).
struct Processes {
    session_id: String,
    /// The screen recording, stopped first (while its display still exists).
    video: Option<Video>,
    programs: Vec<Program>,
    /// Dropped right after the programs: kills whatever of them is left.
    sandbox: Option<SessionSandbox>,
    /// The session directory's disk: unmounted once the programs are gone.
    disk: Option<SessionDisk>,
    /// Whether the programs were sandboxed (then all their processes were in
    /// the sandbox's cgroup, which `stop` empties).
    sandboxed: bool,
    xvfb: Option<Xvfb>,
    // Declared last: dropped after the processes it forked were stopped.
    spawner: Option<Spawner>,
}

impl Processes {
    fn stop(&mut self) {
        if let Some(mut video) = self.video.take() {
            video.stop();
        }
        for p in &mut self.programs {
            p.stop();
        }
        self.programs.clear();
        if let Some(sandbox) = self.sandbox.take() {
            // Dropping it kills the rest too; kill first so that the cgroup
            // is empty when it is removed.
            sandbox.kill_all();
        }
        self.disk.take();
        if let Some(mut x) = self.xvfb.take() {
            x.stop();
        }
        let namespaced = self
            .spawner
            .as_ref()
            .is_some_and(Spawner::has_pid_namespace);
        self.spawner.take();
        if !namespaced && !self.sandboxed {
            // Without a PID namespace or a sandbox, daemons that left their
            // process group are found by the marker in their environment.
            programs::kill_marked(&self.session_id);
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A live virtual desktop.
pub struct VmSession {
    id: String,
    display: u32,
    xvfb_pid: u32,
    pid_namespace: bool,
    /// The session's sandbox limits (`None` without a sandbox).
    limits: Option<Limits>,
    size: (u32, u32),
    dir: PathBuf,
    procs: Mutex<Processes>,
    desktop: Mutex<Desktop>,
    /// Why the session cannot be used any more, once that is known.
    broken: Mutex<Option<String>>,
}

impl VmSession {
    /// Starts Xvfb, connects, then starts the window manager and programs
    /// (in the session's sandbox when `confinement` is given).
    pub fn create(
        id: &str,
        plugin: &PluginConfig,
        confinement: Option<Confinement>,
        cfg: &SessionConfig,
    ) -> VmResult<Self> {
        let owner = confinement.as_ref().and_then(|c| c.owner);
        let dir = create_session_dir(&plugin.run_dir, id, owner)?;
        let mut confinement = confinement;
        let result = attach_disk(confinement.as_mut(), &dir)
            .and_then(|disk| Self::start(id, plugin, confinement, disk, cfg, &dir));
        if result.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        result
    }

    fn start(
        id: &str,
        plugin: &PluginConfig,
        confinement: Option<Confinement>,
        disk: Option<SessionDisk>,
        cfg: &SessionConfig,
        dir: &Path,
    ) -> VmResult<Self> {
        let owner = confinement.as_ref().and_then(|c| c.owner);
        let cwd = session_cwd(cfg.cwd.as_deref(), dir, confinement.is_some(), owner)?;
        // No session-wide PID namespace with a sandbox: each program has one of
        // its own (and the session's cgroup), and bubblewrap cannot start in a
        // PID namespace whose /proc is not mounted (it looks itself up there).
        let want_namespace = plugin.pid_namespace && confinement.is_none();
        let spawner = Spawner::start(&short_label(id), want_namespace)
            .map_err(|e| VmError::Internal(format!("cannot start the spawner thread: {e}")))?;
        let pid_namespace = spawner.has_pid_namespace();
        let limits = confinement.as_ref().map(|c| *c.sandbox.limits());
        let mut procs = Processes {
            session_id: id.to_string(),
            video: None,
            programs: Vec::new(),
            sandboxed: confinement.is_some(),
            sandbox: confinement.map(|c| c.sandbox),
            disk,
            xvfb: None,
            spawner: Some(spawner),
        };
        let spawner = procs
            .spawner
            .as_ref()
            .ok_or_else(|| VmError::Internal("no spawner".into()))?;
        let cookie = Cookie::generate()
            .map_err(|e| VmError::Internal(format!("cannot draw an X cookie: {e}")))?;
        let xauthority = dir.join("Xauthority");
        cookie
            .write_file(&xauthority)
            .and_then(|()| chown(&xauthority, owner))
            .map_err(|e| {
                VmError::Internal(format!("cannot write {}: {e}", xauthority.display()))
            })?;
        let xvfb = Xvfb::start(
            spawner,
            &plugin.xvfb,
            id,
            cfg.screen_size,
            &xauthority,
            &dir.join("xvfb.log"),
            plugin.startup_timeout,
        )?;
        let (display, xvfb_pid) = (xvfb.display(), xvfb.pid());
        procs.xvfb = Some(xvfb);
        let desktop = Desktop::connect(display, &cookie, plugin.x_timeout, plugin.png_small)?;
        if let Some(path) = &cfg.video {
            procs.video = Some(Video::start(
                spawner,
                display,
                &xauthority,
                cfg.screen_size,
                path,
                &dir.join("ffmpeg.log"),
            )?);
        }
        // Opened once, now: once a sandboxed program runs, the session's
        // directory is its to change (a path opened later might be its symlink).
        let log_path = dir.join("programs.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| VmError::Internal(format!("cannot open {}: {e}", log_path.display())))?;
        let launch = LaunchEnv {
            display,
            xauthority: &xauthority,
            session_id: id,
            workspace: dir,
            cwd: &cwd,
            env: &cfg.env,
            log: &log,
            sandbox: procs.sandbox.as_ref(),
        };
        let mut programs = Vec::new();
        if let Some(wm) = &cfg.window_manager {
            programs.push(Program::start(spawner, wm, "window_manager", &launch)?);
            // A window manager without ICCCM/EWMH announcements just costs the timeout.
            desktop.wait_for_window_manager(WM_READY_TIMEOUT)?;
        }
        for (i, p) in cfg.programs.iter().enumerate() {
            programs.push(Program::start(
                spawner,
                p,
                &format!("programs[{i}]"),
                &launch,
            )?);
        }
        procs.programs = programs;
        Ok(Self {
            id: id.to_string(),
            display,
            xvfb_pid,
            pid_namespace,
            limits,
            size: cfg.screen_size,
            dir: dir.to_path_buf(),
            procs: Mutex::new(procs),
            desktop: Mutex::new(desktop),
            broken: Mutex::new(None),
        })
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The X display number (`DISPLAY=:N`).
    pub fn display(&self) -> u32 {
        self.display
    }

    /// The host pid of the session's Xvfb.
    pub fn xvfb_pid(&self) -> u32 {
        self.xvfb_pid
    }

    /// Host pids of the started programs (window manager first): of their
    /// bubblewrap processes when sandboxed.
    pub fn program_pids(&self) -> Vec<u32> {
        lock(&self.procs)
            .programs
            .iter()
            .map(Program::pid)
            .collect()
    }

    /// Whether the session's processes live in a PID namespace of their own.
    pub fn has_pid_namespace(&self) -> bool {
        self.pid_namespace
    }

    /// The session's sandbox limits (`None` when programs run without a sandbox).
    pub fn sandbox_limits(&self) -> Option<Limits> {
        self.limits
    }

    /// Screen width and height.
    pub fn screen_size(&self) -> (u32, u32) {
        self.size
    }

    /// The session's directory (logs; the programs' default working directory).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `f` on the desktop, waiting for other calls of this session while
    /// `check` allows. A lost X server marks the session broken for good.
    pub fn with_desktop<T>(
        &self,
        check: &dyn Fn() -> VmResult<()>,
        f: impl FnOnce(&mut Desktop) -> VmResult<T>,
    ) -> VmResult<T> {
        self.ensure_alive()?;
        let mut desktop = loop {
            match self.desktop.try_lock() {
                Ok(d) => break d,
                Err(TryLockError::Poisoned(p)) => break p.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    check()?;
                    std::thread::sleep(LOCK_POLL);
                }
            }
        };
        self.ensure_alive()?;
        match f(&mut desktop) {
            Err(VmError::Broken(why)) => {
                // Prefer the process's own story (e.g. "killed by signal 9").
                let reason = self.dead_reason().unwrap_or(why);
                Err(self.mark_broken(reason))
            }
            other => other,
        }
    }

    /// `Err(Broken)` once the session was closed or its Xvfb has exited.
    pub fn ensure_alive(&self) -> VmResult<()> {
        if let Some(why) = lock(&self.broken).clone() {
            return Err(VmError::Broken(why));
        }
        match self.dead_reason() {
            Some(why) => Err(self.mark_broken(why)),
            None => Ok(()),
        }
    }

    fn dead_reason(&self) -> Option<String> {
        let mut procs = lock(&self.procs);
        match procs.xvfb.as_mut() {
            None => Some("the session was closed".into()),
            Some(x) => x
                .exit_status()
                .map(|s| format!("its X server (Xvfb) exited ({})", describe_exit(s))),
        }
    }

    fn mark_broken(&self, why: String) -> VmError {
        let msg = format!(
            "vm session {} (display :{}) is broken: {why}; destroy it and create a new one",
            self.id, self.display
        );
        *lock(&self.broken) = Some(msg.clone());
        VmError::Broken(msg)
    }

    /// Stops every process of the session and removes its directory.
    pub fn close(&self) {
        lock(&self.procs).stop();
        // Symlink-safe: the programs may have left links to anywhere.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Drop for VmSession {
    fn drop(&mut self) {
        self.close();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A directory name for a session id: safe characters only, plus our pid so
/// two hosts on one machine never share one.
fn session_dir(root: &Path, id: &str) -> PathBuf {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(80)
        .collect();
    root.join(format!("{}-{safe}", std::process::id()))
}

/// Creates the run directory if needed and returns its canonical path.
/// Directories it creates get mode 0711. With `owner` (the sandbox's user,
/// which bubblewrap runs as and which must pass through to its session's
/// directory) a run directory that user cannot pass through gets `o+x` when
/// it is the server's own, and warmup fails naming any other directory on
/// the way that it cannot pass.
pub fn prepare_run_dir(path: &Path, owner: Option<(u32, u32)>) -> io::Result<PathBuf> {
    DirBuilder::new().recursive(true).mode(0o711).create(path)?;
    let path = fs::canonicalize(path)?;
    let Some((uid, gid)) = owner else {
        return Ok(path);
    };
    let meta = fs::metadata(&path)?;
    // SAFETY: geteuid has no preconditions.
    if !passable(&meta, uid, gid) && meta.uid() == unsafe { libc::geteuid() } {
        let mode = meta.mode() & 0o7777;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode | 0o011))?;
    }
    sandbox::ensure_passable(&path, (uid, gid), "run_dir")?;
    Ok(path)
}

/// Whether `uid`/`gid` may search a directory (sandboxes have no
/// supplementary groups).
fn passable(meta: &fs::Metadata, uid: u32, gid: u32) -> bool {
    let mode = meta.mode();
    if meta.uid() == uid {
        mode & 0o100 != 0
    } else if meta.gid() == gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// Mounts a disk of its own on the session's directory, and the sandbox's
/// writable layers on that disk, when the confinement has disks.
fn attach_disk(confinement: Option<&mut Confinement>, dir: &Path) -> VmResult<Option<SessionDisk>> {
    let Some(confinement) = confinement else {
        return Ok(None);
    };
    let bytes = confinement.sandbox.limits().disk_bytes;
    let Some(disks) = confinement.disks.as_ref().filter(|_| bytes > 0) else {
        return Ok(None);
    };
    let disk = disks
        .attach(dir, bytes)
        .map_err(|e| VmError::Unavailable(format!("cannot give the session its disk: {e}")))?;
    confinement
        .sandbox
        .mount_layers(&disk)
        .map_err(|e| VmError::Unavailable(format!("cannot give the session its layers: {e}")))?;
    Ok(Some(disk))
}

/// Creates a fresh session directory (mode 0700, owned by `owner` if given).
fn create_session_dir(run_dir: &Path, id: &str, owner: Option<(u32, u32)>) -> VmResult<PathBuf> {
    let dir = session_dir(run_dir, id);
    let mut created = DirBuilder::new().mode(0o700).create(&dir);
    if matches!(&created, Err(e) if e.kind() == io::ErrorKind::NotFound) {
        // The run directory went away since warmup (a tmp cleaner): remake it.
        created = prepare_run_dir(run_dir, owner)
            .and_then(|_| DirBuilder::new().mode(0o700).create(&dir));
    }
    created.and_then(|()| chown(&dir, owner)).map_err(|e| {
        VmError::Internal(format!(
            "cannot create the session directory {}: {e}",
            dir.display()
        ))
    })?;
    Ok(dir)
}

/// The programs' working directory: the session's directory by default; a
/// relative `cwd` is taken inside it and created. An absolute `cwd` must lie
/// inside it when programs are sandboxed (a sandbox shows no other host
/// directory, and binding one the client names would give its programs that
/// part of the host); without a sandbox it must be an existing directory.
fn session_cwd(
    cwd: Option<&Path>,
    dir: &Path,
    sandboxed: bool,
    owner: Option<(u32, u32)>,
) -> VmResult<PathBuf> {
    let Some(cwd) = cwd else {
        return Ok(dir.to_path_buf());
    };
    let relative = match cwd.strip_prefix(dir) {
        Ok(inside) => inside,
        Err(_) if cwd.is_relative() => cwd,
        Err(_) if sandboxed => {
            return Err(VmError::invalid(format!(
                "cwd {}: programs run in a sandbox that shows no host directory but the \
                 session's own ({}); give a path relative to it (created if missing), or no cwd",
                cwd.display(),
                dir.display()
            )))
        }
        Err(_) if cwd.is_dir() => return Ok(cwd.to_path_buf()),
        Err(_) => {
            return Err(VmError::invalid(format!(
                "cwd {} is not a directory",
                cwd.display()
            )))
        }
    };
    let mut path = dir.to_path_buf();
    for part in relative.components() {
        match part {
            Component::CurDir => continue,
            Component::Normal(name) => path.push(name),
            _ => {
                return Err(VmError::invalid(format!(
                    "cwd {}: must stay inside the session's directory (no '..')",
                    cwd.display()
                )))
            }
        }
        // No program runs yet: nothing can race these steps.
        match DirBuilder::new().mode(0o755).create(&path) {
            Ok(()) => chown(&path, owner),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
        .map_err(|e| VmError::invalid(format!("cwd {}: {e}", cwd.display())))?;
    }
    if !path.is_dir() {
        return Err(VmError::invalid(format!(
            "cwd {} is not a directory",
            cwd.display()
        )));
    }
    Ok(path)
}

/// Gives `path` to the sandbox's user, if there is one.
fn chown(path: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    match owner {
        Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid)),
        None => Ok(()),
    }
}

/// Removes session directories left by hosts that died without cleanup
/// (their names start with the pid of a process that no longer exists).
pub fn sweep_stale_dirs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.split('-').next()?.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            // A dead server's session disk may still be mounted there.
            sandbox::disk::detach(&e.path());
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn short_label(id: &str) -> String {
    id.chars()
        .rev()
        .take(8)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}
