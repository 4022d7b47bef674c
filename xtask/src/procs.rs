//! Process facts from `/proc`: descendants of the server, their memory, and
//! whether a process seen earlier is still alive.

use std::collections::BTreeMap;

/// A process identity that survives PID reuse: pid plus start time (clock ticks since boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProcId {
    pub pid: u32,
    pub start: u64,
}

/// `(ppid, starttime)` from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = text.get(text.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the name start at field 3 (state); ppid is field 4, starttime field 22.
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((ppid, start))
}

fn all_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Every live descendant of `root` (children, their children, …).
pub fn descendants(root: u32) -> Vec<ProcId> {
    let mut children: BTreeMap<u32, Vec<ProcId>> = BTreeMap::new();
    for pid in all_pids() {
        if let Some((ppid, start)) = stat(pid) {
            children
                .entry(ppid)
                .or_default()
                .push(ProcId { pid, start });
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for c in children.get(&p).into_iter().flatten() {
            out.push(*c);
            todo.push(c.pid);
        }
    }
    out
}

/// Whether the process `id` still exists (the same one, not a reused pid).
/// A zombie counts as gone: it holds no resources but its exit status.
pub fn alive(id: ProcId) -> bool {
    stat(id.pid).is_some_and(|(_, start)| start == id.start) && !is_zombie(id.pid)
}

fn is_zombie(pid: u32) -> bool {
    status_field(pid, "State:").is_some_and(|s| s.starts_with('Z'))
}

fn status_field(pid: u32, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_string())
}

fn kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resident memory of `pid` in MiB (`VmRSS`).
pub fn rss_mib(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kb_field(&text, "VmRSS:").map(|kb| kb as f64 / 1024.0)
}

/// Peak resident memory of `pid` in MiB (`VmHWM`).
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kb_field(&text, "VmHWM:").map(|kb| kb as f64 / 1024.0)
}

/// Proportional set size of `pid` and all its descendants, in MiB: memory
/// shared between them (libraries, the server's pages) is counted once.
pub fn tree_pss_mib(root: u32) -> f64 {
    let mut pids = vec![root];
    pids.extend(descendants(root).into_iter().map(|p| p.pid));
    pids.into_iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .filter_map(|text| kb_field(&text, "Pss:"))
        .sum::<u64>() as f64
        / 1024.0
}

/// The command line of `pid`, for reports of leftovers.
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            String::from_utf8_lossy(&raw)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_a_descendant_until_it_is_reaped() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let me = std::process::id();
        let found = descendants(me)
            .into_iter()
            .find(|p| p.pid == child.id())
            .expect("the child is listed");
        assert!(alive(found));
        assert!(cmdline(found.pid).starts_with("sleep 30"));
        child.kill().expect("kill");
        child.wait().expect("wait");
        assert!(!alive(found));
    }

    #[test]
    fn memory_of_this_process_is_read() {
        let me = std::process::id();
        assert!(rss_mib(me).is_some_and(|m| m > 0.0));
        assert!(peak_rss_mib(me).is_some_and(|m| m > 0.0));
        assert!(tree_pss_mib(me) > 0.0);
    }
}
