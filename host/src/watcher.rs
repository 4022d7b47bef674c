//! Watches the plugin directory (notify with a debouncer, plus a periodic
//! rescan) and hands complete files to the core's discovery.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult};
use tokio::sync::mpsc;

use crate::core::discovery::ScanMemory;
use crate::core::{secs, Core};

enum Change {
    Arrived(PathBuf),
    Removed(PathBuf),
}

/// Starts watching; the returned guard keeps the watcher alive.
pub fn start(core: Arc<Core>) -> Option<Box<dyn std::any::Any + Send>> {
    let dir = core.config.server.plugin_dir.clone();
    let (tx, mut rx) = mpsc::unbounded_channel::<Change>();
    let debouncer = new_debouncer(
        Duration::from_millis(300),
        None,
        move |result: DebounceEventResult| {
            let Ok(events) = result else { return };
            for event in events {
                // `Create` comes before the data is complete: act only on a closed
                // write or a rename into place, and ignore the host's own reads.
                let change: fn(PathBuf) -> Change = match event.kind {
                    EventKind::Access(AccessKind::Close(AccessMode::Write))
                    | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => Change::Arrived,
                    EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                        if let Some(to) = event.paths.last() {
                            let _ = tx.send(Change::Arrived(to.clone()));
                        }
                        if let Some(from) = event.paths.first() {
                            let _ = tx.send(Change::Removed(from.clone()));
                        }
                        continue;
                    }
                    EventKind::Remove(_)
                    | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => Change::Removed,
                    _ => continue,
                };
                for p in &event.paths {
                    let _ = tx.send(change(p.clone()));
                }
            }
        },
    );
    let guard: Option<Box<dyn std::any::Any + Send>> = match debouncer {
        Ok(mut d) => match d.watch(&dir, notify::RecursiveMode::NonRecursive) {
            Ok(()) => {
                tracing::info!(dir = %dir.display(), "watching the plugin directory");
                Some(Box::new(d))
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the plugin directory; relying on the periodic rescan");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the file watcher; relying on the periodic rescan");
            None
        }
    };
    let events_core = core.clone();
    tokio::spawn(async move {
        while let Some(change) = rx.recv().await {
            match change {
                Change::Arrived(p) => events_core.file_arrived(&p).await,
                Change::Removed(p) => events_core.file_removed(&p),
            }
        }
    });
    let interval = core.config.server.rescan_interval;
    if interval > 0.0 {
        tokio::spawn(async move {
            let memory = ScanMemory::default();
            // The first scan only notes what is there (startup loaded it).
            core.rescan(&memory).await;
            let mut tick = tokio::time::interval(secs(interval));
            tick.tick().await;
            loop {
                tick.tick().await;
                if core.is_shutting_down() {
                    return;
                }
                core.rescan(&memory).await;
            }
        });
    }
    guard
}
