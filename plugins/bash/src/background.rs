//! A session's background processes (`bash:start`, `output`, `wait`, `kill`,
//! `write_stdin`, `processes`): the table of processes with their ids, their
//! output and stdin, and its limits.
//!
//! * **Where they run.** `bash -c <command>` in the session's sandbox — the
//!   very one the shell runs in (same files, `/tmp`, network, processes,
//!   cgroup and limits; see `launch/join.rs`) — or, without a sandbox, on the
//!   host like the shell. Each leads a process session (and so a process
//!   group) of its own, with stdin a pipe and stdout and stderr captured
//!   apart. The plugin is its parent: it has its exit status and pidfd.
//! * **Output** is read as it comes (`pump.rs`) into a stream per pipe that
//!   keeps the newest bytes (`stream.rs`; the plugin's `output_limit_bytes`
//!   per stream). Offsets count every byte written, so readers go on from
//!   where they stopped and learn what was dropped. A read without offsets
//!   goes on from where the last read of that process ended.
//! * **Signals** go to the process group, and only while the process is not
//!   reaped: its pid, and so the group's number, is then still reserved. The
//!   pump reaps a process once it exited and its output pipes are closed, so
//!   children it left running in its group (holding the pipes) can still be
//!   signalled.
//! * **Limits.** At most `max_processes` unfinished processes (not yet
//!   exited, or their pipes still open); the table keeps finished ones for
//!   reading until room is needed, then drops the oldest.
//! * **Lifetime.** [`Background::close`] (session cleanup) kills every group
//!   and reaps every process. In a sandbox they also live in the shell's PID
//!   namespace, so the kernel ends them with the shell: at cleanup, and when
//!   the shell is replaced (`exit`, an unstoppable timeout), which reports
//!   them killed by signal 9. A `bash:run` timeout spares them (see
//!   `processes.rs`).

mod pump;
mod stream;

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::fd::set_nonblocking;
use crate::launch::LaunchError;
use crate::process::{self, Exit, Process};
pub use stream::Chunk;
use stream::{PastEnd, Stream};

use pump::{Pump, Update, Watch};

/// How often a waiting call looks at its cancel flag.
const TICK: Duration = Duration::from_millis(20);

/// The names of the two output streams, as params and results spell them.
pub const STREAMS: [&str; 2] = ["stdout", "stderr"];

/// Why a background process call failed.
#[derive(Debug, thiserror::Error)]
pub enum BackgroundError {
    /// No process has this id (never had, or it was dropped to make room).
    #[error("no background process '{id}' in this session ({known})")]
    UnknownId { id: String, known: String },
    /// An offset beyond what the process wrote.
    #[error(
        "{offset} is past the end of {stream} ({total} bytes written so far); \
         pass an offset an earlier answer returned"
    )]
    PastEnd {
        stream: &'static str,
        offset: u64,
        total: u64,
    },
    /// The cap on processes is reached.
    #[error(
        "this session already has {max} background processes that have not finished \
         (max_background_processes); stop one with kill first"
    )]
    Full { max: usize },
    /// The operator turned background processes off.
    #[error("background processes are disabled on this server (max_background_processes = 0)")]
    Disabled,
    /// The session has ended.
    #[error("the session has ended")]
    Ended,
    /// The shell (whose sandbox a process joins) is being replaced.
    #[error("the session's shell is being restarted; try again")]
    NoShell,
    /// stdin was closed (`eof`), or the process closed it.
    #[error("the stdin of '{id}' is closed")]
    StdinClosed { id: String },
    /// Another `write_stdin` to the process is in progress.
    #[error("another write_stdin to '{id}' is in progress")]
    StdinBusy { id: String },
    /// The process could not be started.
    #[error("cannot start the process: {0}")]
    Launch(#[from] LaunchError),
    /// Plumbing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A session's background processes.
#[derive(Debug)]
pub struct Background {
    shared: Arc<Shared>,
    /// Started with the first process.
    pump: Mutex<Option<Pump>>,
    max_processes: usize,
    output_limit: usize,
}

/// What the pump and the calls share.
#[derive(Debug)]
struct Shared {
    table: Mutex<Table>,
    /// Notified when output arrives or a process exits.
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Default)]
struct Table {
    /// In the order they were started.
    entries: Vec<Entry>,
    next_id: u64,
    /// Starts under way: they count against the cap.
    starting: usize,
    closed: bool,
    /// New processes for the pump to watch.
    new_watches: Vec<Watch>,
}

#[derive(Debug)]
struct Entry {
    id: String,
    name: Option<String>,
    command: String,
    cwd: String,
    started_at: SystemTime,
    /// Its pid as the session sees it (in the sandbox's PID namespace),
    /// which is also its process group and session id there.
    pid: i32,
    process: Process,
    /// Set once it exited (it may not be reaped yet).
    exit: Option<Exit>,
    stdin: Stdin,
    streams: [Stream; 2],
    /// Where the last read of each stream ended.
    cursor: [u64; 2],
}

#[derive(Debug)]
enum Stdin {
    Open(File),
    /// A `write_stdin` call holds it.
    Writing,
    Closed,
}

impl Entry {
    /// Exited, and nothing holds its output pipes any more.
    fn is_finished(&self) -> bool {
        self.exit.is_some() && self.streams.iter().all(|s| !s.is_open())
    }

    fn status(&self) -> Status {
        Status {
            running: self.exit.is_none(),
            exit: self.exit,
        }
    }
}

/// Whether a process runs, and how it ended.
#[derive(Debug, Clone, Copy)]
pub struct Status {
    pub running: bool,
    pub exit: Option<Exit>,
}

/// A process to start.
#[derive(Debug)]
pub struct NewProcess {
    pub command: String,
    pub name: Option<String>,
    /// Its working directory, as the session sees it.
    pub cwd: String,
}

/// A process that was started.
#[derive(Debug)]
pub struct Started {
    pub id: String,
    /// Its pid as the session sees it.
    pub pid: i32,
    /// Its working directory, as the session sees it.
    pub cwd: String,
}

/// New output of a process, and its status.
#[derive(Debug)]
pub struct Output {
    pub id: String,
    /// stdout and stderr.
    pub streams: [Chunk; 2],
    pub status: Status,
}

/// One line of `processes`.
#[derive(Debug)]
pub struct Summary {
    pub id: String,
    pub name: Option<String>,
    pub command: String,
    pub cwd: String,
    pub pid: i32,
    pub started_at: SystemTime,
    pub status: Status,
    /// Bytes written to stdout and stderr.
    pub written: [u64; 2],
    /// Bytes written since the last read ended.
    pub unread: [u64; 2],
}

/// What `kill` did.
#[derive(Debug)]
pub struct Signalled {
    /// False when the process had ended and was reaped: nothing was sent.
    pub sent: bool,
    pub status: Status,
}

impl Background {
    /// No processes yet; at most `max_processes` unfinished ones, keeping
    /// `output_limit` bytes of each stream.
    pub fn new(max_processes: usize, output_limit: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                table: Mutex::new(Table::default()),
                changed: Condvar::new(),
            }),
            pump: Mutex::new(None),
            max_processes,
            output_limit,
        }
    }

    /// Starts a process: `launch` gets its stdin, stdout and stderr (as
    /// descriptors 0, 1, 2) and starts it as a process session's leader.
    pub fn start(
        &self,
        new: NewProcess,
        launch: impl FnOnce(Vec<OwnedFd>) -> Result<Process, BackgroundError>,
    ) -> Result<Started, BackgroundError> {
        let reservation = self.reserve()?;
        self.ensure_pump()?;
        let (stdin_child, stdin) = process::pipe()?;
        let (stdout, stdout_child) = process::pipe()?;
        let (stderr, stderr_child) = process::pipe()?;
        for pipe in [&stdin, &stdout, &stderr] {
            set_nonblocking(pipe)?;
        }
        let process = launch(vec![
            stdin_child.into(),
            stdout_child.into(),
            stderr_child.into(),
        ])?;
        let pid = session_pid(process.pid());
        let pidfd = process.pidfd().try_clone_to_owned()?;
        let mut table = self.shared.lock();
        reservation.release(&mut table);
        if table.closed {
            // The session ended while this one started: it goes too.
            let _ = process.signal_group(libc::SIGKILL);
            return Err(BackgroundError::Ended);
        }
        table.next_id += 1;
        let id = format!("p{}", table.next_id);
        table
            .new_watches
            .push(Watch::new(id.clone(), stdout, stderr, pidfd));
        table.entries.push(Entry {
            id: id.clone(),
            name: new.name,
            command: new.command,
            cwd: new.cwd.clone(),
            started_at: SystemTime::now(),
            pid,
            process,
            exit: None,
            stdin: Stdin::Open(stdin),
            streams: [
                Stream::new(self.output_limit),
                Stream::new(self.output_limit),
            ],
            cursor: [0, 0],
        });
        drop(table);
        if let Some(pump) = self.pump().as_ref() {
            pump.wake();
        }
        Ok(Started {
            id,
            pid,
            cwd: new.cwd,
        })
    }

    /// Output of process `id` since the given offsets (`None`: where the
    /// last read ended), and its status; later reads go on from here.
    pub fn read(&self, id: &str, since: [Option<u64>; 2]) -> Result<Output, BackgroundError> {
        self.read_from(id, since, true)
    }

    /// [`Self::read`] that leaves the last-read place where it was (what a
    /// streaming `wait` passes on as it comes).
    pub fn peek(&self, id: &str, since: [Option<u64>; 2]) -> Result<Output, BackgroundError> {
        self.read_from(id, since, false)
    }

    fn read_from(
        &self,
        id: &str,
        since: [Option<u64>; 2],
        advance: bool,
    ) -> Result<Output, BackgroundError> {
        let mut table = self.shared.lock();
        let entry = table.find(id)?;
        let read = |i: usize| {
            let from = since[i].unwrap_or(entry.cursor[i]);
            entry.streams[i]
                .read(from)
                .map_err(|PastEnd { total }| BackgroundError::PastEnd {
                    stream: STREAMS[i],
                    offset: from,
                    total,
                })
        };
        let streams = [read(0)?, read(1)?];
        if advance {
            entry.cursor = [streams[0].end, streams[1].end];
        }
        Ok(Output {
            id: entry.id.clone(),
            streams,
            status: entry.status(),
        })
    }

    /// Waits until process `id` exits, `until` passes or `stop()` says so.
    pub fn wait(
        &self,
        id: &str,
        until: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<Status, BackgroundError> {
        let mut table = self.shared.lock();
        loop {
            let status = table.find(id)?.status();
            let now = Instant::now();
            if !status.running || now >= until || stop() {
                return Ok(status);
            }
            table = self
                .shared
                .changed
                .wait_timeout(table, (until - now).min(TICK))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Sends `signal` to the process group of process `id`.
    pub fn signal(&self, id: &str, signal: i32) -> Result<Signalled, BackgroundError> {
        let mut table = self.shared.lock();
        let entry = table.find(id)?;
        let sent = match entry.process.signal_group(signal) {
            Ok(()) => true,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => false,
            Err(e) => return Err(e.into()),
        };
        Ok(Signalled {
            sent,
            status: entry.status(),
        })
    }

    /// Takes the stdin of process `id` for writing; give it back with
    /// [`Background::return_stdin`].
    pub fn take_stdin(&self, id: &str) -> Result<File, BackgroundError> {
        let mut table = self.shared.lock();
        let entry = table.find(id)?;
        match std::mem::replace(&mut entry.stdin, Stdin::Writing) {
            Stdin::Open(file) => Ok(file),
            Stdin::Writing => Err(BackgroundError::StdinBusy { id: id.into() }),
            Stdin::Closed => {
                entry.stdin = Stdin::Closed;
                Err(BackgroundError::StdinClosed { id: id.into() })
            }
        }
    }

    /// Gives back the stdin taken by [`Background::take_stdin`]; `None`
    /// closes it for good.
    pub fn return_stdin(&self, id: &str, stdin: Option<File>) {
        // Dropped when the process is gone or the session ended.
        if let Ok(entry) = self.shared.lock().find(id) {
            entry.stdin = stdin.map_or(Stdin::Closed, Stdin::Open);
        }
    }

    /// Status of process `id`.
    pub fn status(&self, id: &str) -> Result<Status, BackgroundError> {
        Ok(self.shared.lock().find(id)?.status())
    }

    /// Every process in the table, oldest first.
    pub fn list(&self) -> Vec<Summary> {
        let table = self.shared.lock();
        table
            .entries
            .iter()
            .map(|e| Summary {
                id: e.id.clone(),
                name: e.name.clone(),
                command: e.command.clone(),
                cwd: e.cwd.clone(),
                pid: e.pid,
                started_at: e.started_at,
                status: e.status(),
                written: [e.streams[0].total(), e.streams[1].total()],
                unread: [
                    e.streams[0].total().saturating_sub(e.cursor[0]),
                    e.streams[1].total().saturating_sub(e.cursor[1]),
                ],
            })
            .collect()
    }

    /// The process sessions of background processes, numbered as the
    /// session sees them: a `bash:run` timeout spares them.
    pub fn session_ids(&self) -> Vec<i32> {
        self.shared.lock().entries.iter().map(|e| e.pid).collect()
    }

    /// The cap on unfinished processes.
    pub fn max_processes(&self) -> usize {
        self.max_processes
    }

    /// Ends every process (SIGKILL to each group) and reaps them; later
    /// calls fail with [`BackgroundError::Ended`].
    pub fn close(&self) {
        let mut table = self.shared.lock();
        table.closed = true;
        for entry in &mut table.entries {
            let _ = entry.process.signal_group(libc::SIGKILL);
            entry.stdin = Stdin::Closed;
        }
        drop(table);
        if let Some(pump) = self.pump().take() {
            pump.stop();
        }
        let mut table = self.shared.lock();
        for entry in &mut table.entries {
            // Killed above: this does not wait long.
            let _ = entry.process.reap();
        }
        drop(table);
        self.shared.changed.notify_all();
    }

    /// Claims room for one more process, dropping the oldest finished one
    /// when the table is full.
    fn reserve(&self) -> Result<Reservation, BackgroundError> {
        if self.max_processes == 0 {
            return Err(BackgroundError::Disabled);
        }
        let mut table = self.shared.lock();
        if table.closed {
            return Err(BackgroundError::Ended);
        }
        let unfinished = table.entries.iter().filter(|e| !e.is_finished()).count();
        if unfinished + table.starting >= self.max_processes {
            return Err(BackgroundError::Full {
                max: self.max_processes,
            });
        }
        while table.entries.len() + table.starting >= self.max_processes {
            match table.entries.iter().position(Entry::is_finished) {
                Some(oldest) => drop(table.entries.remove(oldest)),
                None => break,
            }
        }
        table.starting += 1;
        Ok(Reservation {
            shared: self.shared.clone(),
            held: true,
        })
    }

    fn ensure_pump(&self) -> Result<(), BackgroundError> {
        let mut pump = self.pump();
        if pump.is_none() {
            if self.shared.lock().closed {
                return Err(BackgroundError::Ended);
            }
            *pump = Some(Pump::start(self.shared.clone())?);
        }
        Ok(())
    }

    fn pump(&self) -> MutexGuard<'_, Option<Pump>> {
        self.pump.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.close();
    }
}

/// Room claimed for a process being started; given back when dropped.
#[derive(Debug)]
struct Reservation {
    shared: Arc<Shared>,
    held: bool,
}

impl Reservation {
    /// Gives the room back under a lock the caller holds already.
    fn release(mut self, table: &mut Table) {
        self.held = false;
        table.starting -= 1;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.held {
            self.shared.lock().starting -= 1;
        }
    }
}

impl Table {
    fn find(&mut self, id: &str) -> Result<&mut Entry, BackgroundError> {
        if self.closed {
            return Err(BackgroundError::Ended);
        }
        if let Some(i) = self.entries.iter().position(|e| e.id == id) {
            return Ok(&mut self.entries[i]);
        }
        let known: Vec<&str> = self.entries.iter().map(|e| e.id.as_str()).collect();
        Err(BackgroundError::UnknownId {
            id: id.to_string(),
            known: match known.is_empty() {
                true => "it has none".to_string(),
                false => format!(
                    "it has {}; finished ones are dropped to make room",
                    known.join(", ")
                ),
            },
        })
    }

    /// Applies what the pump found; reaps a process that has finished.
    fn apply(&mut self, update: Update) {
        // Gone when it was dropped to make room.
        let Some(entry) = self.entries.iter_mut().find(|e| e.id == update.id) else {
            return;
        };
        for (i, stream) in entry.streams.iter_mut().enumerate() {
            stream.push(&update.data[i]);
            if update.closed[i] {
                stream.close();
            }
        }
        if update.exited && entry.exit.is_none() {
            entry.exit = Some(
                entry
                    .process
                    .peek_exit()
                    .ok()
                    .flatten()
                    .unwrap_or(Exit::Code(-1)),
            );
        }
        if entry.is_finished() {
            let _ = entry.process.reap();
        }
    }
}

/// Host pid `pid` as the process's own PID namespace numbers it (the last
/// `NSpid` field); the host pid without namespaces.
fn session_pid(pid: i32) -> i32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
            line.split_whitespace().last()?.parse().ok()
        })
        .unwrap_or(pid)
}
