//! The child's side of [`super::launch`] and [`super::join`]: the code that
//! runs between `clone3` and `execve`. It builds no sandbox itself: with one,
//! it executes bubblewrap after joining the session's cgroup and dropping to
//! the sandbox's user (`sandbox::Entry`); to join a running shell's sandbox,
//! it enters that shell's namespaces and forks the program there (see
//! `join.rs`).
//!
//! The child is a copy of a multi-threaded process with only the calling
//! thread, so it may only make async-signal-safe calls (no allocation, no
//! locks): [`ChildPlan::new`] prepares every C string, pointer array and
//! descriptor in the parent, and [`ChildPlan::clone_child`] only makes system
//! calls in the child. A failing step is written to the report pipe as
//! `(step, errno)` before the child exits.

use std::ffi::{c_char, c_int, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr;

use sandbox::{Entry, EntryStep};

use super::join::Joining;
use super::LaunchSpec;

/// The sandbox part of a launch: bubblewrap's command and the child's entry steps.
pub(super) struct Sandboxed {
    pub(super) program: PathBuf,
    pub(super) argv: Vec<String>,
    pub(super) entry: Entry,
}

/// How the child becomes the program.
pub(super) enum Mode {
    /// It runs the program itself (`isolation = "none"`).
    Direct,
    /// It executes bubblewrap, which builds a new sandbox around the program.
    Bubblewrap(Sandboxed),
    /// It enters the sandbox of a running shell and forks the program there.
    Join(Joining),
}

/// The steps of the child's setup, as reported on failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(super) enum Step {
    DeathSignal = 1,
    Setsid,
    Limits,
    Fds,
    Chdir,
    JoinCgroup,
    DropIdentity,
    Prctl,
    Exec,
    JoinNamespaces,
    Fork,
    DropCapabilities,
    Seccomp,
}

/// Not a step: the record in which a joining child reports the host pid of
/// the program it forked (`(PID_RECORD, pid)`).
pub(super) const PID_RECORD: u32 = 0;

impl Step {
    const ALL: [Step; 13] = [
        Self::DeathSignal,
        Self::Setsid,
        Self::Limits,
        Self::Fds,
        Self::Chdir,
        Self::JoinCgroup,
        Self::DropIdentity,
        Self::Prctl,
        Self::Exec,
        Self::JoinNamespaces,
        Self::Fork,
        Self::DropCapabilities,
        Self::Seccomp,
    ];

    /// What the step with number `code` does, for error messages.
    pub(super) fn describe(code: u32) -> &'static str {
        match Self::ALL.into_iter().find(|step| *step as u32 == code) {
            Some(Self::DeathSignal) => "setting PR_SET_PDEATHSIG",
            Some(Self::Setsid) => "starting a process session (setsid)",
            Some(Self::JoinCgroup) => EntryStep::JoinCgroup.describe(),
            Some(Self::DropIdentity) => EntryStep::DropIdentity.describe(),
            Some(Self::Prctl) => EntryStep::Prctl.describe(),
            Some(Self::Limits) => "applying resource limits (setrlimit)",
            Some(Self::Fds) => "setting up file descriptors",
            Some(Self::Chdir) => "changing to the starting directory",
            Some(Self::Exec) => "running the program, or bubblewrap (execve)",
            Some(Self::JoinNamespaces) => "entering the shell's namespaces (setns)",
            Some(Self::Fork) => "forking the program inside the sandbox (clone3)",
            Some(Self::DropCapabilities) => "dropping capabilities",
            Some(Self::Seccomp) => "applying the seccomp filter",
            None => "an unknown step",
        }
    }
}

#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = c_int;

/// Everything the child needs, prepared in the parent.
pub(super) struct ChildPlan {
    /// The program's path, and others to try in turn if it does not exist
    /// (a joined sandbox may keep it elsewhere).
    programs: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
    fallback_cwd: CString,
    /// `fds[i]` becomes descriptor `i`; all are numbered >= 10 so that
    /// `dup2` onto 0..n never overwrites one not yet moved.
    fds: Vec<OwnedFd>,
    mode: Mode,
    limits: Vec<(Resource, u64)>,
    report: OwnedFd,
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "NUL byte in a path, argument or variable",
        )
    })
}

fn c_path(path: &Path) -> io::Result<CString> {
    c_string(path.as_os_str().as_bytes())
}

/// A copy of `fd` numbered >= 10, close-on-exec.
fn high_fd(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we own.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just created.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

impl ChildPlan {
    pub(super) fn new(
        spec: &LaunchSpec,
        fds: Vec<OwnedFd>,
        report: File,
        mode: Mode,
    ) -> io::Result<Self> {
        // A sandbox's processes share one host user: RLIMIT_NPROC would count
        // every session's together. The session's cgroup limits them instead.
        let nproc = match mode {
            Mode::Direct => spec.limits.processes,
            Mode::Bubblewrap(_) | Mode::Join(_) => 0,
        };
        let (programs, args) = match &mode {
            Mode::Bubblewrap(s) => (vec![s.program.clone()], s.argv.clone()),
            Mode::Join(_) => (Joining::programs(&spec.program), spec.args.clone()),
            Mode::Direct => (vec![spec.program.clone()], spec.args.clone()),
        };
        let limits = &spec.limits;
        let limits = [
            (libc::RLIMIT_CPU, limits.cpu_seconds),
            (libc::RLIMIT_AS, limits.address_space_bytes),
            (libc::RLIMIT_NPROC, nproc),
            (libc::RLIMIT_FSIZE, limits.file_size_bytes),
        ]
        .into_iter()
        // 0: no limit of ours; the inherited one stays (raising it would need
        // CAP_SYS_RESOURCE, which the server may not have).
        .filter(|&(_, value)| value != 0)
        // No core files: they would land in the session's directory.
        .chain([(libc::RLIMIT_CORE, 0)])
        .collect();
        Ok(Self {
            programs: programs
                .iter()
                .map(|p| c_path(p))
                .collect::<io::Result<_>>()?,
            argv: args
                .iter()
                .map(|a| c_string(a.as_bytes()))
                .collect::<io::Result<_>>()?,
            envp: spec
                .env
                .iter()
                .map(|(k, v)| c_string(format!("{k}={v}").as_bytes()))
                .collect::<io::Result<_>>()?,
            cwd: c_path(&spec.cwd)?,
            fallback_cwd: c_path(&spec.session_dir)?,
            fds: fds
                .iter()
                .map(|fd| high_fd(fd.as_fd()))
                .collect::<io::Result<_>>()?,
            mode,
            limits,
            report: high_fd(report.as_fd())?,
        })
    }

    /// Clones the child (on the spawner thread); returns its pid and pidfd.
    pub(super) fn clone_child(self) -> io::Result<(i32, OwnedFd)> {
        let argv = null_terminated(&self.argv);
        let envp = null_terminated(&self.envp);
        let mut pidfd: c_int = -1;
        // SAFETY: clone_args is plain data; zero is the default for every field.
        let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
        args.flags = libc::CLONE_PIDFD as u64;
        args.pidfd = &mut pidfd as *mut c_int as u64;
        args.exit_signal = libc::SIGCHLD as u64;
        // SAFETY: clone3 without CLONE_VM behaves like fork: the child gets a
        // copy of this thread and runs only async-signal-safe code below.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &mut args as *mut libc::clone_args,
                std::mem::size_of::<libc::clone_args>(),
            )
        };
        match pid {
            -1 => Err(io::Error::last_os_error()),
            // SAFETY: we are the child; run_child never returns.
            0 => unsafe { self.run_child(&argv, &envp) },
            // SAFETY: CLONE_PIDFD stored a new descriptor in `pidfd`.
            pid => Ok((pid as i32, unsafe { OwnedFd::from_raw_fd(pidfd) })),
        }
    }

    /// The child's side: set up the sandbox and exec. Only async-signal-safe calls.
    unsafe fn run_child(&self, argv: &[*const c_char], envp: &[*const c_char]) -> ! {
        let Mode::Join(joining) = &self.mode else {
            self.become_program(argv, envp)
        };
        // Entering a PID namespace only places this process's children in
        // it: this process enters, and its child becomes the program.
        let report = self.report.as_raw_fd();
        set_death_signal(report);
        enter(&joining.entry, report);
        if let Err(errno) = joining.enter_namespaces() {
            fail_with(report, Step::JoinNamespaces, errno);
        }
        match clone_sibling() {
            -1 => fail(report, Step::Fork),
            0 => self.become_program(argv, envp),
            pid => {
                write_record(report, PID_RECORD, pid as i32);
                libc::_exit(0)
            }
        }
    }

    /// Sets the process up (signals, session, limits, descriptors,
    /// directory, confinement) and executes the program.
    unsafe fn become_program(&self, argv: &[*const c_char], envp: &[*const c_char]) -> ! {
        let report = self.report.as_raw_fd();
        set_death_signal(report);
        // Ignored signals stay ignored across execve, and Rust programs ignore
        // SIGPIPE: without this `yes | head` would never end cleanly.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut no_signals: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut no_signals);
        libc::sigprocmask(libc::SIG_SETMASK, &no_signals, ptr::null_mut());
        if libc::setsid() < 0 {
            fail(report, Step::Setsid);
        }
        for &(resource, value) in &self.limits {
            let limit = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            if libc::setrlimit(resource, &limit) != 0 {
                fail(report, Step::Limits);
            }
        }
        for (target, fd) in self.fds.iter().enumerate() {
            if libc::dup2(fd.as_raw_fd(), target as c_int) < 0 {
                fail(report, Step::Fds);
            }
        }
        // Descriptors the host leaked without close-on-exec must not reach the
        // shell; the report pipe stays open until execve closes it.
        libc::syscall(
            libc::SYS_close_range,
            self.fds.len() as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        if libc::chdir(self.cwd.as_ptr()) != 0 && libc::chdir(self.fallback_cwd.as_ptr()) != 0 {
            fail(report, Step::Chdir);
        }
        match &self.mode {
            Mode::Direct => {}
            Mode::Bubblewrap(sandboxed) => enter(&sandboxed.entry, report),
            Mode::Join(joining) => {
                if let Err((step, errno)) = joining.confine() {
                    fail_with(report, step, errno);
                }
            }
        }
        for program in &self.programs {
            libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr());
            if *libc::__errno_location() != libc::ENOENT {
                break;
            }
        }
        fail(report, Step::Exec)
    }
}

/// Asks for SIGKILL when the parent (thread) dies. Async-signal-safe.
unsafe fn set_death_signal(report: RawFd) {
    if libc::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        0,
        0,
        0,
    ) != 0
    {
        fail(report, Step::DeathSignal);
    }
}

/// Runs the sandbox's entry steps (cgroup, identity, no_new_privs).
/// Async-signal-safe.
unsafe fn enter(entry: &Entry, report: RawFd) {
    if let Err((step, error)) = entry.enter() {
        let step = match step {
            EntryStep::JoinCgroup => Step::JoinCgroup,
            EntryStep::DropIdentity => Step::DropIdentity,
            EntryStep::Prctl => Step::Prctl,
        };
        fail_with(report, step, error.raw_os_error().unwrap_or(0));
    }
}

/// Forks a child whose parent is this process's parent (`CLONE_PARENT`): the
/// host then owns the program directly (pidfd, exit status) and this
/// process can exit at once. Returns the child's host pid, 0 in the child,
/// -1 on failure. Async-signal-safe.
unsafe fn clone_sibling() -> libc::c_long {
    let mut args: libc::clone_args = std::mem::zeroed();
    args.flags = libc::CLONE_PARENT as u64;
    // clone3 requires 0 with CLONE_PARENT; the child gets ours (SIGCHLD).
    args.exit_signal = 0;
    libc::syscall(
        libc::SYS_clone3,
        &mut args as *mut libc::clone_args,
        std::mem::size_of::<libc::clone_args>(),
    )
}

/// Writes `(step, errno)` to the report pipe and exits. Async-signal-safe.
fn fail(report: RawFd, step: Step) -> ! {
    // SAFETY: errno location is thread-local and always valid.
    let errno = unsafe { *libc::__errno_location() };
    fail_with(report, step, errno)
}

/// Writes `(step, errno)` to the report pipe and exits. Async-signal-safe.
fn fail_with(report: RawFd, step: Step, errno: i32) -> ! {
    write_record(report, step as u32, errno);
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(127) }
}

/// Writes one 8-byte record to the report pipe (atomic: less than
/// `PIPE_BUF`). Async-signal-safe.
fn write_record(report: RawFd, kind: u32, value: i32) {
    let mut message = [0u8; 8];
    message[..4].copy_from_slice(&kind.to_ne_bytes());
    message[4..].copy_from_slice(&value.to_ne_bytes());
    // SAFETY: write is async-signal-safe; the buffer is valid.
    unsafe { libc::write(report, message.as_ptr().cast(), message.len()) };
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect()
}
