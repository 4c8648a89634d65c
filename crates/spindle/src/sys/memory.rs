//! Memory figures of a process and of this process's cgroup: resident size from
//! `/proc/PID/statm`, and the cgroup's count of OOM kills from `memory.events`.

use std::io;

/// The size of a memory page in bytes.
fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system value.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

/// The resident set size of process `pid` in bytes (the second field of `/proc/PID/statm`,
/// in pages): one read of a small file, cheap enough to do after every chunk of work.
pub(crate) fn resident_bytes(pid: u32) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm"))?;
    parse_statm_resident(&text)
        .map(|pages| pages * page_size())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed statm"))
}

fn parse_statm_resident(text: &str) -> Option<u64> {
    text.split_whitespace().nth(1)?.parse().ok()
}

/// How many processes the kernel's OOM killer has killed in this process's memory cgroup, or
/// `None` where it cannot be read (no memory controller, no permission).
///
/// cgroup v2: the `oom_kill` line of `memory.events`; cgroup v1: the `oom_kill` line of
/// `memory.oom_control` (Linux 4.13+). The cgroup's path comes from `/proc/self/cgroup`.
pub(crate) fn oom_kill_count() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?.trim());
        if path.contains("..") {
            continue;
        }
        let file = if controllers.is_empty() {
            format!("/sys/fs/cgroup{path}/memory.events")
        } else if controllers.split(',').any(|c| c == "memory") {
            format!("/sys/fs/cgroup/memory{path}/memory.oom_control")
        } else {
            continue;
        };
        if let Some(n) = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| parse_oom_kill(&t))
        {
            return Some(n);
        }
    }
    None
}

fn parse_oom_kill(events: &str) -> Option<u64> {
    events.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        match (it.next(), it.next()) {
            (Some("oom_kill"), Some(n)) => n.parse().ok(),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_resident_size() {
        let rss = resident_bytes(std::process::id()).unwrap();
        assert!(rss > 100 * 1024, "{rss}");
    }

    #[test]
    fn parses_statm_and_memory_events() {
        assert_eq!(parse_statm_resident("1000 250 100 1 0 300 0\n"), Some(250));
        assert_eq!(parse_statm_resident("garbage"), None);
        let events = "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(parse_oom_kill(events), Some(2));
        assert_eq!(parse_oom_kill("oom 1\n"), None);
        // Wherever it is readable, it is a number; elsewhere `None`, never a panic.
        let _ = oom_kill_count();
    }
}
