//! A dedicated, long-lived thread that forks every shell.
//!
//! The shells ask the kernel to kill them when their parent dies
//! (`PR_SET_PDEATHSIG`), and for the kernel "parent" means the *thread* that
//! forked them. The host runs calls on pool threads that exit when idle, which
//! would kill healthy shells; so all forks happen here, on a thread that lives
//! as long as the plugin (and dies with the host process, taking the shells
//! with it, which is the point).

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;

type Job = Box<dyn FnOnce() + Send>;

/// Runs closures on the spawner thread.
#[derive(Debug)]
pub struct Spawner {
    jobs: mpsc::Sender<Job>,
}

/// The spawner thread is gone, or a job panicked before answering.
#[derive(Debug, thiserror::Error)]
#[error("the shell spawner thread is not running")]
pub struct SpawnerGone;

impl Spawner {
    /// Starts the thread.
    pub fn start() -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("agentflow-bash-spawner".into())
            .spawn(move || {
                // Ends when the Spawner (the only sender) is dropped. A panicking
                // job must not end the thread: that would kill every shell.
                for job in queue {
                    let _ = panic::catch_unwind(AssertUnwindSafe(job));
                }
            })?;
        Ok(Self { jobs })
    }

    /// Runs `job` on the spawner thread and returns its result.
    pub fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, SpawnerGone> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            // The caller may have given up waiting; nothing to do then.
            let _ = reply.send(job());
        });
        self.jobs.send(job).map_err(|_| SpawnerGone)?;
        answer.recv().map_err(|_| SpawnerGone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_on_one_named_thread() {
        let spawner = Spawner::start().unwrap();
        let name = || thread::current().name().map(str::to_string);
        let first = spawner.run(name).unwrap();
        let second = spawner.run(name).unwrap();
        assert_eq!(first.as_deref(), Some("agentflow-bash-spawner"));
        assert_eq!(first, second);
    }
}
