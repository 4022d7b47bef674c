//! Log lines of the plugin, through the `log` facade that plugin-api hands to
//! the host: they reach the host's log with the plugin's name (and, inside a
//! call, its request id). Without a host (the plugin's own tests and tools)
//! no logger is installed, and the line goes to stderr instead, so warmup
//! progress and warnings stay visible either way.

use plugin_api::log;

/// Logs an informational line.
pub fn info(message: &str) {
    if log::max_level() >= log::LevelFilter::Info {
        log::info!("{message}");
    } else if log::max_level() == log::LevelFilter::Off {
        eprintln!("[rag] INFO {message}");
    }
}

/// Logs a warning: something was skipped or degraded, and the plugin goes on.
pub fn warn(message: &str) {
    if log::max_level() >= log::LevelFilter::Warn {
        log::warn!("{message}");
    } else if log::max_level() == log::LevelFilter::Off {
        eprintln!("[rag] WARN {message}");
    }
}
