//! The one thread that forks every process of a session.
//!
//! Why a thread of its own: `PR_SET_PDEATHSIG` fires when the *thread* that
//! forked a child exits, and the host's call threads exit when idle. This
//! thread lives exactly as long as its session, so the death signal fires when
//! the session ends or when the whole host dies (even by SIGKILL), never before.
//!
//! It also puts the session in a PID namespace of its own when the kernel
//! allows it (`unshare(CLONE_NEWPID)` affects only the calling thread's future
//! children): the first process it forks (Xvfb) becomes the namespace's init,
//! and when init dies the kernel kills every process left in the namespace,
//! including daemons that double-forked or called `setsid`.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

/// A session's spawner thread; dropping it ends the thread, which SIGKILLs
/// every process it started that is still alive.
pub struct Spawner {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    pid_namespace: bool,
}

impl Spawner {
    /// Starts the thread; with `want_namespace`, it tries to enter a new PID
    /// namespace for its children (falls back to plain children if not allowed).
    pub fn start(label: &str, want_namespace: bool) -> io::Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<bool>();
        let thread = std::thread::Builder::new()
            .name(format!("vm-spawner-{label}"))
            .spawn(move || {
                let ns = want_namespace && enter_new_pid_namespace();
                let _ = ready_tx.send(ns);
                // Runs until the session drops its sender.
                while let Ok(job) = rx.recv() {
                    job();
                }
            })?;
        let pid_namespace = ready_rx
            .recv()
            .map_err(|_| io::Error::other("the spawner thread died while starting"))?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
            pid_namespace,
        })
    }

    /// Whether the children of this spawner live in their own PID namespace.
    pub fn has_pid_namespace(&self) -> bool {
        self.pid_namespace
    }

    /// Spawns `cmd` on the spawner thread. The child gets SIGKILL when the
    /// spawner ends and leads a new session (so its process group can be killed).
    pub fn spawn(&self, mut cmd: Command) -> io::Result<Child> {
        // SAFETY: the closure runs between fork and exec and only makes
        // async-signal-safe system calls (prctl, setsid).
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                // A new session and process group, so cleanup can kill the
                // whole group; failure only means it already leads one.
                libc::setsid();
                Ok(())
            });
        }
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(cmd.spawn());
        });
        self.jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("the spawner is stopped"))?
            .send(job)
            .map_err(|_| io::Error::other("the spawner thread is gone"))?;
        rx.recv()
            .map_err(|_| io::Error::other("the spawner thread died while spawning"))?
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Moves this thread's future children into a new PID namespace.
fn enter_new_pid_namespace() -> bool {
    // SAFETY: plain system call; CLONE_NEWPID changes only which namespace the
    // calling thread's later children are created in.
    unsafe { libc::unshare(libc::CLONE_NEWPID) == 0 }
}
