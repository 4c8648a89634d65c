//! A program that uses nothing of spindle but `Pool`: it works from a plain binary in every
//! start method; `SIGKILL` of it leaves no worker at any depth (nested pools); `SIGINT` to its
//! process group ends the whole tree; a program that catches `SIGINT` and drops its pool
//! leaves nothing behind. Its own test binary: it kills processes.

use std::io::BufRead;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;
use common::{eventually, running, watchdog};

#[path = "common/pool.rs"]
#[macro_use]
mod pool_common;

/// Starts the helper in `mode` and reads `count` worker pids from its stdout.
fn helper(mode: &str, method: &str, count: usize) -> (Child, Vec<u32>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spindle-pool-helper"))
        .args([mode, method])
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut pids = Vec::new();
    while pids.len() < count {
        let line = lines.next().expect("the helper ended early").unwrap();
        if let Some(pid) = line.strip_prefix("worker ") {
            pids.push(pid.parse().unwrap());
        }
    }
    // Keep reading in the background, so that a late line never blocks the helper.
    std::thread::spawn(move || lines.for_each(drop));
    (child, pids)
}

fn gone(pids: &[u32]) -> bool {
    eventually(Duration::from_secs(5), || pids.iter().all(|p| !running(*p)))
}

macro_rules! signals {
    ($name:ident, $method:ident, [$($attr:meta)?]) => {
        mod $name {
            use super::*;

            fn method() -> String {
                stringify!($name).to_string()
            }

            #[test]
            $(#[$attr])?
            fn a_plain_binary_runs_the_notes_example() {
                watchdog(|| {
                    let out = Command::new(env!("CARGO_BIN_EXE_spindle-pool-helper"))
                        .args(["map", &method()])
                        .output()
                        .unwrap();
                    assert!(out.status.success(), "{out:?}");
                    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[1, 4, 9, 16, 25]");
                });
            }

            #[test]
            $(#[$attr])?
            fn sigkill_of_the_parent_leaves_no_worker_at_any_depth() {
                watchdog(|| {
                    // 3 workers, each with 2 workers of its own.
                    let (mut parent, pids) = helper("nested", &method(), 9);
                    assert!(pids.iter().all(|p| running(*p)));
                    parent.kill().unwrap();
                    parent.wait().unwrap();
                    let left: Vec<_> = pids.iter().filter(|p| running(**p)).collect();
                    assert!(gone(&pids), "still running: {left:?}");
                });
            }

            #[test]
            $(#[$attr])?
            fn sigint_to_the_group_stops_the_tree() {
                watchdog(|| {
                    let (mut parent, pids) = helper("nested", &method(), 9);
                    let pgid = parent.id() as i32;
                    // SAFETY: kill with a negative pid signals a process group; no memory is
                    // touched.
                    assert_eq!(unsafe { libc::kill(-pgid, libc::SIGINT) }, 0);
                    let status = parent.wait().unwrap();
                    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
                    assert!(gone(&pids), "still running after Ctrl-C");
                });
            }

            #[test]
            $(#[$attr])?
            fn a_parent_that_catches_sigint_and_drops_its_pool_leaves_nothing() {
                watchdog(|| {
                    let (mut parent, pids) = helper("catch", &method(), 3);
                    let pgid = parent.id() as i32;
                    // SAFETY: kill with a negative pid signals a process group; no memory is
                    // touched.
                    assert_eq!(unsafe { libc::kill(-pgid, libc::SIGINT) }, 0);
                    let status = parent.wait().unwrap();
                    assert!(status.success(), "{status:?}");
                    // The workers ignore SIGINT: they are gone because the pool was dropped,
                    // and were reaped by it (no zombie left: the parent exited normally).
                    assert!(gone(&pids), "workers left behind");
                });
            }
        }
    };
}

per_start_method!(signals);

/// The memory cgroup this process is in (cgroup v1's `memory` hierarchy), if writable here.
fn memory_cgroup() -> Option<std::path::PathBuf> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|l| {
        let mut p = l.splitn(3, ':');
        let (_, ctl, path) = (p.next()?, p.next()?, p.next()?);
        ctl.split(',')
            .any(|c| c == "memory")
            .then(|| path.to_string())
    })?;
    let dir = std::path::PathBuf::from(format!("/sys/fs/cgroup/memory{path}"));
    let mine = dir.join(format!("spindle-oom-{}", std::process::id()));
    std::fs::create_dir(&mine).ok()?;
    Some(mine)
}

/// A worker killed by the kernel's OOM killer is reported as such: run the helper in a
/// memory cgroup limited to 128 MiB, where a task allocates 512 MiB.
#[test]
fn a_worker_killed_by_the_oom_killer_says_so() {
    let Some(cg) = memory_cgroup() else {
        eprintln!("SKIPPED: no writable cgroup v1 memory hierarchy on this machine");
        return;
    };
    watchdog(move || {
        std::fs::write(cg.join("memory.limit_in_bytes"), b"134217728").unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_spindle-pool-helper"))
            .args(["oom", "fork"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::fs::write(cg.join("cgroup.procs"), child.id().to_string()).unwrap();
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "go").unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let _ = std::fs::remove_dir(&cg);
        assert!(out.status.success(), "{out:?}");
        assert!(text.starts_with("oom LIKELY: worker died"), "{text}");
        assert!(
            text.contains("signal 9") && text.contains("likely the OOM killer"),
            "{text}"
        );
    });
}
