//! Plugin log records to the host's log. A plugin logs with the `log` facade
//! (`plugin_api::log::info!(…)`); the records cross the ABI to the host, which
//! emits them under the target `plugin` with the plugin's name and, inside a
//! call, the request id, worker and session of that call. The host's
//! `RUST_LOG` filters them (`RUST_LOG=plugin=debug`), and records below the
//! host's level are dropped in the plugin, before they are formatted.

use std::sync::OnceLock;

use abi_stable::std_types::RStr;

pub use crate::ffi::HostLog;

struct Sink {
    host: HostLog,
    plugin: String,
}

static SINK: OnceLock<Sink> = OnceLock::new();

struct ToHost;

fn code(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 1,
        log::Level::Warn => 2,
        log::Level::Info => 3,
        log::Level::Debug => 4,
        log::Level::Trace => 5,
    }
}

fn filter(max: u8) -> log::LevelFilter {
    match max {
        0 => log::LevelFilter::Off,
        1 => log::LevelFilter::Error,
        2 => log::LevelFilter::Warn,
        3 => log::LevelFilter::Info,
        4 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    }
}

impl log::Log for ToHost {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        let Some(sink) = SINK.get() else { return };
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        (sink.host.log)(
            code(record.level()),
            RStr::from_str(&sink.plugin),
            RStr::from_str(record.target()),
            RStr::from_str(&message),
        );
    }

    fn flush(&self) {}
}

/// Sends this library's log records to `host` from now on.
pub(crate) fn install(host: HostLog, max_level: u8, plugin: String) {
    if SINK.set(Sink { host, plugin }).is_ok() {
        // Fails only if this library already installed a logger of its own.
        let _ = log::set_logger(&ToHost);
    }
    log::set_max_level(filter(max_level));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_both_ways() {
        for level in [
            log::Level::Error,
            log::Level::Warn,
            log::Level::Info,
            log::Level::Debug,
            log::Level::Trace,
        ] {
            assert_eq!(filter(code(level)), level.to_level_filter());
        }
        assert_eq!(filter(0), log::LevelFilter::Off);
    }
}
