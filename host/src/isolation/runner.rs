//! The runner role (`agentflow plugin-runner --library PATH`): the child
//! process an isolated plugin runs in. It loads the library through the same
//! loader as the host (version symbol, then layout), greets the host with the
//! plugin's info and tools, then serves requests from stdin until stdin
//! closes, which is how it learns the host stopped or died.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use plugin_loader::{CallControl, LoadedPlugin};

use super::protocol::{Greeting, Op, Outcome, Reply, Request, PROGRESS};

type Flags = Arc<Mutex<HashMap<u64, Arc<AtomicBool>>>>;

/// Where replies go; also used by [`forward_log`].
static OUT: OnceLock<Arc<Mutex<std::io::Stdout>>> = OnceLock::new();

thread_local! {
    /// The request this thread serves (0: none).
    static SERVING: Cell<u64> = const { Cell::new(0) };
}

/// The plugin's log records go to the host as `log` replies of the request
/// being served, so the host logs them in that call's span (request id,
/// worker, session) and through its own log settings.
fn forward_log(level: u8, _plugin: &str, module: &str, message: &str) {
    if let Some(out) = OUT.get() {
        let outcome = Outcome::Log {
            level,
            module: module.to_string(),
            message: message.to_string(),
        };
        let id = SERVING.with(Cell::get);
        send(out, &Reply { id, outcome });
    }
}

/// One line to stdout; lines of concurrent replies never interleave.
fn send(out: &Mutex<std::io::Stdout>, line: &impl serde::Serialize) {
    let Ok(mut text) = serde_json::to_string(line) else {
        return;
    };
    text.push('\n');
    let mut out = out.lock().unwrap_or_else(PoisonError::into_inner);
    // A host that went away cannot be told anything; stdin's end stops us.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

pub fn run(library: &Path) -> ExitCode {
    // The plugin's log records go to stderr, which is the host's.
    crate::server::init_logging();
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let plugin = match LoadedPlugin::load(library) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            send(
                &out,
                &Greeting::LoadFailed {
                    message: e.to_string(),
                },
            );
            return ExitCode::from(3);
        }
    };
    send(
        &out,
        &Greeting::Loaded {
            info: plugin.info().clone(),
            tools: plugin.tools().to_vec(),
        },
    );
    // After the greeting, which must be the first line.
    if OUT.set(out.clone()).is_ok() {
        plugin_loader::redirect_logs(forward_log);
    }
    let flags: Flags = Arc::default();
    let workers = Workers::default();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let request: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("plugin runner: unreadable request: {e}");
                continue;
            }
        };
        if let Op::Cancel { call } = request.op {
            if let Some(flag) = flags
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&call)
            {
                flag.store(true, Ordering::SeqCst);
            }
            continue;
        }
        // Every operation on a thread of its own (a slow call must not hold
        // up a cancel or another session's call), taken from idle ones.
        let (plugin, out, flags) = (plugin.clone(), out.clone(), flags.clone());
        workers.run(Box::new(move || {
            let id = request.id;
            SERVING.with(|s| s.set(id));
            let emit = |stream: &str, text: &str| {
                let outcome = Outcome::Chunk {
                    stream: stream.to_string(),
                    text: text.to_string(),
                };
                send(&out, &Reply { id, outcome });
            };
            let outcome = serve(&plugin, id, request.op, &flags, &emit);
            send(&out, &Reply { id, outcome });
            SERVING.with(|s| s.set(0));
        }));
    }
    // The host closed our stdin (it stopped, or died): end every session.
    let _ = plugin.shutdown();
    ExitCode::SUCCESS
}

type Job = Box<dyn FnOnce() + Send>;

/// Threads that run one job each at a time and wait for the next: a job goes
/// to an idle thread, or to a new one when none is idle, so no job ever
/// waits behind another (threads are kept, not spawned per request).
struct Workers {
    jobs: mpsc::Sender<Job>,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    /// Threads waiting for a job and not yet promised one.
    idle: Arc<AtomicUsize>,
}

impl Default for Workers {
    fn default() -> Self {
        let (jobs, queue) = mpsc::channel();
        Self {
            jobs,
            queue: Arc::new(Mutex::new(queue)),
            idle: Arc::default(),
        }
    }
}

impl Workers {
    fn run(&self, job: Job) {
        // Promise the job to an idle thread, or start one for it.
        let promised = self
            .idle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !promised {
            let (queue, idle) = (self.queue.clone(), self.idle.clone());
            let started = std::thread::Builder::new()
                .name("plugin-call".into())
                .spawn(move || loop {
                    let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok(job) = next else { return };
                    job();
                    idle.fetch_add(1, Ordering::SeqCst);
                });
            if let Err(e) = started {
                eprintln!("plugin runner: cannot start a thread: {e}");
            }
        }
        let _ = self.jobs.send(job);
    }
}

/// How often a warmup's latest log line is looked at.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Warms the plugin up, passing each new line it logs meanwhile to
/// `progress`, so the host's `/warmup/status` shows an isolated plugin's
/// progress as it shows an in-process one's.
fn warm(
    plugin: &LoadedPlugin,
    config: &serde_json::Value,
    progress: &(dyn Fn(&str) + Sync),
) -> Outcome {
    let done = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        // Without a thread to watch, the warmup still runs (no progress).
        let watcher = std::thread::Builder::new()
            .name("warmup-progress".into())
            .spawn_scoped(scope, || {
                let mut sent: Option<String> = None;
                while !done.load(Ordering::SeqCst) {
                    let line = plugin_loader::last_log_line(&plugin.info().name);
                    if line.is_some() && line != sent {
                        progress(line.as_deref().unwrap_or_default());
                        sent = line;
                    }
                    std::thread::park_timeout(PROGRESS_EVERY);
                }
            });
        let result = plugin.warmup(config);
        done.store(true, Ordering::SeqCst);
        if let Ok(watcher) = &watcher {
            watcher.thread().unpark();
        }
        result
    });
    Outcome::from_result(result.map(|()| String::new()))
}

fn serve(
    plugin: &LoadedPlugin,
    id: u64,
    op: Op,
    flags: &Flags,
    emit: &(dyn Fn(&str, &str) + Sync),
) -> Outcome {
    let done =
        |r: Result<(), plugin_api::PluginError>| Outcome::from_result(r.map(|()| String::new()));
    match op {
        Op::Warmup { config } => warm(plugin, &config, &|line| emit(PROGRESS, line)),
        Op::Shutdown => done(plugin.shutdown()),
        Op::Initialize { session, config } => done(plugin.initialize(&session, &config)),
        Op::Cleanup { session } => done(plugin.cleanup(&session)),
        Op::Call {
            session,
            worker,
            tool,
            params,
            deadline_ms,
            stream,
        } => {
            let flag = Arc::new(AtomicBool::new(false));
            flags
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id, flag.clone());
            let deadline = UNIX_EPOCH + Duration::from_millis(deadline_ms);
            let control = CallControl {
                cancel: &flag,
                deadline,
                emitter: stream.then_some(emit),
            };
            let r = plugin.call(session.as_deref(), &worker, &tool, &params, &control);
            flags
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
            Outcome::from_result(r)
        }
        Op::Snapshot { session, snapshot } => {
            Outcome::from_result(plugin.snapshot(&session, &snapshot))
        }
        Op::Restore {
            session,
            snapshot,
            config,
        } => done(plugin.restore(&session, &snapshot, &config)),
        Op::DropSnapshot { snapshot } => done(plugin.drop_snapshot(&snapshot)),
        Op::Cancel { .. } => Outcome::Ok(String::new()),
    }
}
