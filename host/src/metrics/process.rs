//! The host process's resident memory and open file descriptors, read from
//! `/proc/self` when `/metrics` is scraped.

use prometheus_client::metrics::gauge::Gauge;

#[derive(Default)]
pub struct ProcessMetrics {
    pub rss_bytes: Gauge,
    pub open_fds: Gauge,
}

impl ProcessMetrics {
    /// Reads both from `/proc/self` (left as they were where it cannot be read).
    pub fn refresh(&self) {
        if let Some(rss) = resident_bytes() {
            self.rss_bytes.set(rss);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // Less the descriptor read_dir itself holds open.
            self.open_fds.set(dir.count() as i64 - 1);
        }
    }
}

/// The second field of `/proc/self/statm` is resident pages.
fn resident_bytes() -> Option<i64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * if page > 0 { page } else { 4096 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let p = ProcessMetrics::default();
        p.refresh();
        assert!(p.rss_bytes.get() > 1 << 20, "{}", p.rss_bytes.get());
        // stdin, stdout and stderr at least (other tests open files meanwhile).
        assert!(p.open_fds.get() >= 3, "{}", p.open_fds.get());
    }
}
