//! One vm session: its directory, spawner thread, Xvfb, programs and X connection,
//! created together and torn down together.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use crate::config::{PluginConfig, SessionConfig};
use crate::desktop::Desktop;
use crate::display::{describe_exit, Xvfb};
use crate::error::{VmError, VmResult};
use crate::programs::{self, LaunchEnv, Program};
use crate::spawner::Spawner;
use crate::xauth::Cookie;

/// How long session creation waits for a window manager to announce itself.
const WM_READY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a call waiting for the session's desktop checks its deadline.
const LOCK_POLL: Duration = Duration::from_millis(2);

/// The processes of a session; dropping this kills them (programs first).
struct Processes {
    session_id: String,
    programs: Vec<Program>,
    xvfb: Option<Xvfb>,
    // Declared last: dropped after the processes it forked were stopped.
    spawner: Option<Spawner>,
}

impl Processes {
    fn stop(&mut self) {
        for p in &mut self.programs {
            p.stop();
        }
        self.programs.clear();
        if let Some(mut x) = self.xvfb.take() {
            x.stop();
        }
        let namespaced = self
            .spawner
            .as_ref()
            .is_some_and(Spawner::has_pid_namespace);
        self.spawner.take();
        if !namespaced {
            // Without a PID namespace, daemons that left their process group
            // are found by the marker in their environment.
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
    size: (u32, u32),
    dir: PathBuf,
    procs: Mutex<Processes>,
    desktop: Mutex<Desktop>,
    /// Why the session cannot be used any more, once that is known.
    broken: Mutex<Option<String>>,
}

impl VmSession {
    /// Starts Xvfb, connects, then starts the window manager and programs.
    pub fn create(id: &str, plugin: &PluginConfig, cfg: &SessionConfig) -> VmResult<Self> {
        let dir = session_dir(&plugin.run_dir, id);
        std::fs::create_dir_all(&dir).map_err(|e| {
            VmError::Internal(format!(
                "cannot create the session directory {}: {e}",
                dir.display()
            ))
        })?;
        let result = Self::start(id, plugin, cfg, &dir);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    fn start(id: &str, plugin: &PluginConfig, cfg: &SessionConfig, dir: &Path) -> VmResult<Self> {
        let cwd = cfg.cwd.clone().unwrap_or_else(|| dir.to_path_buf());
        if !cwd.is_dir() {
            return Err(VmError::invalid(format!(
                "cwd {} is not a directory",
                cwd.display()
            )));
        }
        let spawner = Spawner::start(&short_label(id), plugin.pid_namespace)
            .map_err(|e| VmError::Internal(format!("cannot start the spawner thread: {e}")))?;
        let pid_namespace = spawner.has_pid_namespace();
        let mut procs = Processes {
            session_id: id.to_string(),
            programs: Vec::new(),
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
        cookie.write_file(&xauthority).map_err(|e| {
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
        let log = dir.join("programs.log");
        let launch = LaunchEnv {
            display,
            xauthority: &xauthority,
            session_id: id,
            cwd: &cwd,
            env: &cfg.env,
            log: &log,
        };
        if let Some(wm) = &cfg.window_manager {
            procs
                .programs
                .push(Program::start(spawner, wm, "window_manager", &launch)?);
            // A window manager without ICCCM/EWMH announcements just costs the timeout.
            desktop.wait_for_window_manager(WM_READY_TIMEOUT)?;
        }
        for (i, p) in cfg.programs.iter().enumerate() {
            let program = Program::start(spawner, p, &format!("programs[{i}]"), &launch)?;
            procs.programs.push(program);
        }
        Ok(Self {
            id: id.to_string(),
            display,
            xvfb_pid,
            pid_namespace,
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

    /// Host pids of the started programs (window manager first).
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
        let _ = std::fs::remove_dir_all(&self.dir);
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
