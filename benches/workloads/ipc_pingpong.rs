//! Ping-pong between two processes: a small value sent to a forked echo child and its answer
//! received, one round trip at a time (issue #13's scoreboard).

use std::time::Instant;

use spindle::multiprocessing::connection::pipe;
use spindle::multiprocessing::queues::Queue;
use spindle::multiprocessing::Builder;

use crate::harness::{Measurement, Plan};
use crate::peers::{cpython, raw_ipc};
use crate::report::thousands;
use crate::scoreboard::{Contender, Group, NotMeasured, Options, Progress};
use crate::workloads::repeat_timed;

const PIPE: &str = "spindle Pipe";
const QUEUES: &str = "spindle two Queues";

/// The ping-pong group.
pub(crate) fn group(opts: &Options) -> Group {
    let count = opts.size(5_000, 20_000);
    let py_count = opts.size(2_000, 5_000);
    let plan = Plan {
        max_reps: opts.plan().reps.max(20),
        ..opts.plan()
    };
    let py_reps = opts.size(3, 5) as usize;
    let (py1, py2) = (opts.python.clone(), opts.python.clone());
    let py_args = move |kind: &str| -> Vec<String> {
        vec![
            "pingpong".into(),
            kind.into(),
            py_count.to_string(),
            py_reps.to_string(),
            "1".into(),
        ]
    };
    let (a1, a2) = (py_args("pipe"), py_args("queues"));
    Group::new("ipc-pingpong", "ping-pong round trip between two processes")
        .note(format!(
            "{} round trips of a u64 per repetition ({} for CPython) with a forked echo child \
             that is already running; figures are per round trip. spindle Pipe: a duplex \
             `Connection<u64, u64>`; two Queues: one each way. futex handshake: a word in \
             shared memory set and woken with FUTEX_WAKE, the other side sleeping in FUTEX_WAIT. \
             raw socketpair: 8-byte write and read_exact on a bare AF_UNIX stream pair.",
            thousands(count),
            thousands(py_count)
        ))
        .contender(Contender::subject(PIPE, move |p| {
            spindle_pipe(count, plan, p)
        }))
        .contender(Contender::subject(QUEUES, move |p| {
            spindle_queues(count, plan, p)
        }))
        .contender(
            Contender::peer("futex handshake (raw)", move |p| {
                repeat_timed(plan, count, &p, || raw_ipc::futex_pingpong(count))
            })
            .versus(PIPE)
            .aim(1.0 / 1.5, "ping-pong within 1.5× of the futex handshake"),
        )
        .contender(
            Contender::peer("raw socketpair", move |p| {
                repeat_timed(plan, count, &p, || raw_ipc::socketpair_pingpong(count))
            })
            .versus(PIPE),
        )
        .contender(
            Contender::peer("CPython Pipe", move |_| {
                cpython::ipc(&py1, &a1, "times_s", py_reps, py_count)
            })
            .versus(PIPE)
            .aim(5.0, "at least 5× faster than CPython's Pipe"),
        )
        .contender(
            Contender::peer("CPython two Queues", move |_| {
                cpython::ipc(&py2, &a2, "times_s", py_reps, py_count)
            })
            .versus(QUEUES),
        )
}

fn spindle_pipe(count: u64, plan: Plan, p: Progress) -> Result<Measurement, NotMeasured> {
    let (ours, theirs) = pipe::<u64, u64>(true).map_err(crate::workloads::failed)?;
    let child = Builder::new().fork_target(move || {
        while let Ok(v) = theirs.recv() {
            if v == u64::MAX || theirs.send(&(v + 1)).is_err() {
                break;
            }
        }
    });
    child.start().map_err(crate::workloads::failed)?;
    let out = repeat_timed(plan, count, &p, || {
        let t0 = Instant::now();
        for i in 0..count {
            ours.send(&i).map_err(|e| e.to_string())?;
            if ours.recv().map_err(|e| e.to_string())? != i + 1 {
                return Err("wrong echo".into());
            }
        }
        Ok(t0.elapsed())
    });
    let _ = ours.send(&u64::MAX);
    child.join().map_err(crate::workloads::failed)?;
    out
}

fn spindle_queues(count: u64, plan: Plan, p: Progress) -> Result<Measurement, NotMeasured> {
    let (to_tx, to_rx) = Queue::<u64>::new()
        .and_then(Queue::split)
        .map_err(crate::workloads::failed)?;
    let (back_tx, back_rx) = Queue::<u64>::new()
        .and_then(Queue::split)
        .map_err(crate::workloads::failed)?;
    let child = Builder::new().fork_target(move || {
        while let Ok(v) = to_rx.get() {
            if v == u64::MAX || back_tx.put(v + 1).is_err() {
                break;
            }
        }
    });
    child.start().map_err(crate::workloads::failed)?;
    let out = repeat_timed(plan, count, &p, || {
        let t0 = Instant::now();
        for i in 0..count {
            to_tx.put(i).map_err(|e| e.to_string())?;
            if back_rx.get().map_err(|e| e.to_string())? != i + 1 {
                return Err("wrong echo".into());
            }
        }
        Ok(t0.elapsed())
    });
    let _ = to_tx.put(u64::MAX);
    child.join().map_err(crate::workloads::failed)?;
    out
}
