//! Shared helpers of the process tests.
#![allow(dead_code)]

pub(crate) mod futures;
pub(crate) mod mpi;

use std::sync::mpsc;
use std::time::Duration;

/// Runs `body` on a thread named `test-body` and fails the test if it does not finish within
/// 30 s, so that a hang fails instead of stalling CI. A panic in `body` is re-raised.
pub(crate) fn watchdog<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    watchdog_for(Duration::from_secs(30), body)
}

/// The lock that makes the tests of one binary take turns when they fork: a forked child
/// inherits every descriptor its parent holds at that moment, its neighbours' channel ends
/// among them, and would keep them from ever seeing end of stream (nix's `FORK_MTX`).
static FORK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// [`watchdog`], one test of this binary at a time (see [`FORK`]).
pub(crate) fn serial_watchdog<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let _turn = FORK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    watchdog(body)
}

/// [`watchdog`] with another limit.
pub(crate) fn watchdog_for<T: Send + 'static>(
    limit: Duration,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let runner = std::thread::Builder::new()
        .name("test-body".into())
        .spawn(move || {
            let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)));
        })
        .expect("spawn the test body");
    match rx.recv_timeout(limit) {
        Ok(Ok(value)) => {
            runner.join().expect("test body");
            value
        }
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("watchdog: test body did not finish within {limit:?}: a hang"),
    }
}

/// Polls `cond` until it holds or `limit` passes; returns whether it held.
pub(crate) fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `pid` exists and is not a zombie.
pub(crate) fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// The children of `parent` as `(pid, state letter)`, read from `/proc/*/stat`.
pub(crate) fn children_of(parent: u32) -> Vec<(u32, char)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if f.next().and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
            out.push((pid, state));
        }
    }
    out
}

/// The number of open descriptors of this process.
pub(crate) fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Runs the test `name` of this test binary alone, in a copy of its own with `env` set, and
/// returns what it printed and how it ended: for a case that needs its own process (an
/// environment read at start, a crash that must not take this process down).
#[allow(dead_code)] // Not every test binary that includes `common` re-runs itself.
pub(crate) fn rerun_alone(name: &str, env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(std::env::current_exe().expect("this test's path"))
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .envs(env.iter().copied())
        .output()
        .expect("the copy of this test binary runs")
}

/// Runs the helper binary with `args`, returning the child and a reader of its stdout lines.
pub(crate) fn helper(
    args: &[&str],
    own_group: bool,
) -> (
    std::process::Child,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_spindle-process-helper"));
    cmd.args(args).stdout(std::process::Stdio::piped());
    if own_group {
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().expect("helper starts");
    let out = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    (child, out)
}

/// Reads `child PID` / `server PID` lines up to `ready`.
pub(crate) fn read_pids(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> Vec<u32> {
    let mut pids = Vec::new();
    for line in lines {
        let line = line.unwrap();
        if line == "ready" {
            return pids;
        }
        let (_, pid) = line.split_once(' ').expect("`kind pid` line");
        pids.push(pid.parse().unwrap());
    }
    panic!("the helper ended before `ready` (pids so far: {pids:?})");
}
