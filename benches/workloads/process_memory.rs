//! The memory one idle child costs, per start method: its private resident pages
//! (`Private_Clean + Private_Dirty` of `/proc/PID/smaps_rollup`), which is what one more child
//! really adds; pages still shared with the parent (or the fork server) are not counted.

use std::path::Path;
use std::time::{Duration, Instant};

use spindle::multiprocessing::{bench, get_context, StartMethod};

use crate::harness::{Measurement, Unit};
use crate::peers::cpython;
use crate::scoreboard::{Contender, Group, NotMeasured, Options, Progress, Rule};
use crate::scratch::ScratchDir;
use crate::workloads::{empty, failed};

/// How long a child is left alone after it said it is ready, before its memory is read (the
/// CPython script waits as long).
const SETTLE: Duration = Duration::from_millis(50);

/// How long a child may take to reach its target.
const READY_WITHIN: Duration = Duration::from_secs(30);

const TWO_MIB: f64 = 2.0 * 1024.0 * 1024.0;

/// The idle memory group.
pub(crate) fn group(opts: &Options) -> Group {
    let count = opts.size(3, 5) as usize;
    let python = opts.python.clone();
    let py = move || python.clone();
    let (py1, py2, py3, py4) = (py(), py(), py(), py());
    Group::new("process-memory", "idle child process memory (private RSS)")
        .unit(Unit::Bytes)
        .note(format!(
            "Per start method, {count} children one after another: each runs a target that \
             writes a \"ready\" file and sleeps; {} ms after the file appears the parent reads \
             the child's private memory (`bench::private_rss`: Private_Clean + Private_Dirty \
             of /proc/PID/smaps_rollup, pages shared with the parent or the fork server not \
             counted), then kills and joins it. The fork server rows are the server process \
             itself, read once while it is idle; the spare row is the child the server keeps \
             forked ahead for the next start (issue #15), read once while it waits. CPython's children set a \
             `multiprocessing.Event` instead of writing a file and are read as long after.",
            SETTLE.as_millis()
        ))
        .note(
            "Aim (issue #3): an idle fork or forkserver child adds under 2 MiB of private \
             memory. A spawned child is a whole new process (its own heap, its own copy of \
             the relocated data), so it has no aim; it is shown beside CPython's.",
        )
        .contender(
            Contender::subject("spindle fork child", move |p| {
                idle_children(StartMethod::Fork, count, p)
            })
            .aim_rule(
                Rule::AtMost(TWO_MIB),
                "an idle fork child under 2 MiB of private memory",
            ),
        )
        .contender(
            Contender::peer("CPython fork child", move |_| {
                cpython::idle_child_rss(&py1, "fork", count)
            })
            .versus("spindle fork child"),
        )
        .contender(
            Contender::subject("spindle forkserver child", move |p| {
                idle_children(StartMethod::Forkserver, count, p)
            })
            .aim_rule(
                Rule::AtMost(TWO_MIB),
                "an idle forkserver child under 2 MiB of private memory",
            ),
        )
        .contender(
            Contender::peer("CPython forkserver child", move |_| {
                cpython::idle_child_rss(&py2, "forkserver", count)
            })
            .versus("spindle forkserver child"),
        )
        .contender(Contender::subject(
            "spindle fork server process",
            forkserver_rss,
        ))
        .contender(
            Contender::peer("CPython fork server process", move |_| {
                cpython::forkserver_rss(&py3)
            })
            .versus("spindle fork server process"),
        )
        .contender(Contender::subject(
            "spindle fork server's spare child",
            spare_rss,
        ))
        .contender(Contender::subject("spindle spawn child", move |p| {
            idle_children(StartMethod::Spawn, count, p)
        }))
        .contender(
            Contender::peer("CPython spawn child", move |_| {
                cpython::idle_child_rss(&py4, "spawn", count)
            })
            .versus("spindle spawn child"),
        )
}

/// The idle child's target: says it is ready, then sleeps until it is killed.
fn idle(ready: String) {
    if std::fs::write(&ready, b"ready").is_ok() {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

/// The private memory of `count` idle children started with `method`, one sample each.
pub(crate) fn idle_children(
    method: StartMethod,
    count: usize,
    p: Progress,
) -> Result<Measurement, NotMeasured> {
    let dir = ScratchDir::new("idle").map_err(failed)?;
    let ctx = get_context(method);
    let mut sizes = Vec::with_capacity(count);
    for i in 0..count {
        let ready = dir.path().join(format!("ready-{i}"));
        let arg = ready
            .to_str()
            .ok_or_else(|| failed("the temporary directory's path is not UTF-8"))?
            .to_string();
        // A daemon: dropped on an error path, it is killed rather than waited for.
        let child = ctx.process().daemon(true).target(idle, (arg,));
        child.start().map_err(failed)?;
        let started = Instant::now();
        wait_for_file(&ready, || child.is_alive()).map_err(NotMeasured::Failed)?;
        std::thread::sleep(SETTLE);
        let pid = child
            .pid()
            .ok_or_else(|| failed("a started child has no pid"))?;
        let size = bench::private_rss(pid).map_err(failed);
        child.kill().map_err(failed)?;
        let _ = child.join();
        if child.exitcode() != Some(-9) {
            return Err(failed(format!(
                "the idle child ended with {:?}, not by SIGKILL",
                child.exitcode()
            )));
        }
        sizes.push(size?);
        p.rep(i + 1, started.elapsed());
    }
    Ok(Measurement::bytes(1, sizes))
}

/// Waits until `path` exists, failing when `alive` says the child is gone or after
/// [`READY_WITHIN`].
fn wait_for_file(path: &Path, alive: impl Fn() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + READY_WITHIN;
    while !path.exists() {
        if !alive() {
            return Err("the idle child ended before it was ready".to_string());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the idle child was not ready within {} s",
                READY_WITHIN.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// The private memory of spindle's fork server, started here if no earlier row started it.
fn forkserver_rss(_: Progress) -> Result<Measurement, NotMeasured> {
    if bench::forkserver_pid().is_none() {
        let child = get_context(StartMethod::Forkserver)
            .process()
            .target(empty, ());
        child.start().map_err(failed)?;
        child.join().map_err(failed)?;
    }
    let pid = bench::forkserver_pid().ok_or_else(|| failed("no fork server runs"))?;
    std::thread::sleep(SETTLE);
    let size = bench::private_rss(pid).map_err(failed)?;
    Ok(Measurement::bytes(1, vec![size]))
}

/// The private memory of the fork server's spare, the child it keeps forked ahead (the fork
/// server is started here if no earlier row started it).
fn spare_rss(_: Progress) -> Result<Measurement, NotMeasured> {
    let pid = bench::forkserver_spare_pid()
        .map_err(failed)?
        .ok_or_else(|| failed("the fork server announced no spare"))?;
    std::thread::sleep(SETTLE);
    let size = bench::private_rss(pid).map_err(failed)?;
    Ok(Measurement::bytes(1, vec![size]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::Samples;
    use crate::workloads::with_processes;

    #[test]
    fn an_idle_child_of_each_method_is_read_then_killed() {
        with_processes(|| {
            for method in StartMethod::ALL {
                let m = idle_children(method, 1, Progress::quiet()).unwrap();
                match &m.samples {
                    Samples::Bytes(b) => assert!(b.len() == 1 && b[0] > 0, "{method:?}: {b:?}"),
                    other => panic!("{other:?}"),
                }
            }
            let server = forkserver_rss(Progress::quiet()).unwrap();
            assert!(matches!(&server.samples, Samples::Bytes(b) if b.len() == 1 && b[0] > 0));
            let spare = spare_rss(Progress::quiet()).unwrap();
            assert!(matches!(&spare.samples, Samples::Bytes(b) if b.len() == 1 && b[0] > 0));
        });
    }

    #[test]
    fn waiting_for_a_child_that_died_fails_at_once() {
        let dir = ScratchDir::new("test").unwrap();
        let err = wait_for_file(&dir.path().join("never"), || false).unwrap_err();
        assert!(err.contains("ended before"), "{err}");
        std::fs::write(dir.path().join("there"), b"").unwrap();
        assert_eq!(wait_for_file(&dir.path().join("there"), || false), Ok(()));
    }
}
