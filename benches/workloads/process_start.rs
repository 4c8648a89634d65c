//! Process start-and-join of an empty task, one spindle row per start method, each beside its
//! floor (the bare system calls) and CPython's `multiprocessing.Process` with the same method.
//!
//! One start per repetition, so the median is the median start: `get_context(method)
//! .process().target(empty, ())`, `start()`, `join()`, building the `Process` included.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spindle::multiprocessing::bench::{self, ForkRung};
use spindle::multiprocessing::{get_context, StartMethod};

use crate::harness::{measure, Measurement, Plan};
use crate::peers::cpython;
use crate::report::thousands;
use crate::scoreboard::{Contender, Group, NotMeasured, Options, Progress, Rule};
use crate::workloads::{empty, failed, repeat};

const FORK: &str = "spindle fork";
const FORK_ELSEWHERE: &str = "spindle fork, from another thread";
const SPAWN: &str = "spindle spawn";
const FORKSERVER: &str = "spindle forkserver";
const FORKSERVER_SPARE: &str = "spindle forkserver, spare ready";
const FORKSERVER_BURST: &str = "spindle forkserver, 8 starts then 8 joins";
const RAW_FORK: &str = "raw fork+waitpid";
const RAW_FORK_SMALL: &str = "raw fork+waitpid, from a process the size of the fork server";
const ROUND_TRIP: &str = "socket round trip to a child";

/// Starts in a row in the burst row: more than one spare's worth.
const BURST: usize = 8;

/// The process start group.
pub(crate) fn group(opts: &Options) -> Group {
    let plan = opts.plan();
    // A spawn costs about a millisecond: repeat while under the minimum time, but never more
    // than a few hundred times.
    let spawn_plan = Plan {
        max_reps: plan.reps.max(opts.size(200, 500) as usize),
        ..plan
    };
    let py_fork = Plan::fixed(1, opts.size(20, 50) as usize);
    let py_spawn = Plan::fixed(1, opts.size(8, 20) as usize);
    let round_trips = opts.size(1_000, 5_000);
    let python = opts.python.clone();
    let (py1, py2, py3) = (python.clone(), python.clone(), python);
    let within = 1.0 / 1.3;
    let group = Group::new("process-start", "process start-and-join (empty task)")
        .note(
            "One start per repetition: `get_context(METHOD).process().target(empty, ())`, \
             `start()`, `join()` with `fn empty() {}`; figures are per start. Each peer is \
             compared with the spindle row of its start method. raw fork+waitpid: `fork()`, the \
             child `_exit(0)`s at once, `waitpid` (`bench::raw_fork_wait`). raw \
             posix_spawn+waitpid: `posix_spawn` of this same binary with an argument that a \
             pre-main hook of the benches answers by exiting at once, then `waitpid` \
             (`bench::raw_spawn_wait`): the floor of any spawn.",
        )
        .note(
            "The untimed warm-up start of each row starts what is started once per process: \
             spindle's fork server (so its one-time spawn is not counted) and launcher thread, \
             CPython's fork server and resource tracker. spindle creates a child on the main \
             thread when started there, and from any other thread hands the fork or spawn to \
             its long-lived `spindle-launcher` thread (a child's death signal fires when the \
             *thread* that created it ends): so the spindle and raw rows run on the board's \
             main thread, where a program usually starts its processes, and the two rows \
             \"from another thread\" show the same pair measured on a thread of their own, \
             where spindle pays a round trip to its launcher thread and the raw fork does not \
             (nor does it have a death signal to keep). fork warns once on stderr that the \
             process has several threads.",
        )
        .note(format!(
            "CPython: `ctx.Process(target=empty)`, `start()`, `join()`, with `empty` defined in \
             the peer script, which runs from a file so that spawn and forkserver children \
             import it as they would a user's program; {} starts for fork and forkserver, {} \
             for spawn (about 50–100 ms each), after one warm-up.",
            py_fork.reps, py_spawn.reps
        ))
        .note(format!(
            "Aims (issue #3): fork within 1.3× raw fork+waitpid; spawn within 1.3× raw \
             posix_spawn+waitpid; each method at least 10× faster than CPython's same method; \
             forkserver at most fork's cost plus one round trip, encoded as: median forkserver \
             start ≤ median spindle fork start + median \"{ROUND_TRIP}\" (one byte each way \
             over a Unix stream socket between this process and a forked child, {} per \
             repetition).",
            thousands(round_trips)
        ))
        .note(format!(
            "Issue #15. \"{FORKSERVER_SPARE}\": before each repetition (untimed) the board \
             waits until the fork server has announced its spare, a child forked ahead \
             (`bench::forkserver_spare_pid`); the start hands its call to it and the server \
             forks the next one meanwhile. Aim: no slower than raw fork+waitpid (0.6× is the \
             mark). \"{FORKSERVER_BURST}\": starts that come faster than the server forks: \
             the first takes the spare, a later one waits for the fork it asked for (and asks \
             for one more, up to four ahead); per start+join. \"{RAW_FORK_SMALL}\": a fresh \
             exec of this binary times bare forks before `main`, where the fork server lives \
             too: the floor under the server's fork, beside the board's own process's (a fork \
             costs more from a larger process). \"fork ladder N\": from a bare fork+waitpid \
             (0), the guarantees of spindle's fork start added one at a time, cumulative, in \
             order (`bench::fork_ladder`, made of the fork start's own calls): a socket pair \
             (the child writes one byte, read after its exit), a pidfd (the parent sleeps on \
             it before reaping), the death signal, the liveness check, spindle's locks held \
             across the fork, closing spindle's descriptors, exec's signal rule, the overflow \
             report; then (9) spindle's fork start and join itself. The ten are measured \
             together, interleaved in rounds of {ROUND} repetitions each, so that the \
             machine's load moves them alike: the step from one row to the next is what that \
             guarantee costs, and the last step what the `Process` API adds (the call, the \
             identity, the registry of children, the value's frame, `join`)."
        ))
        .contender(
            Contender::subject(FORK, move |p| spindle_starts(StartMethod::Fork, plan, p))
                .on_board_thread(),
        )
        .contender(
            Contender::peer(RAW_FORK, move |p| raw(plan, p, bench::raw_fork_wait))
                .on_board_thread()
                .versus(FORK)
                .aim(within, "spindle fork within 1.3× raw fork+waitpid"),
        );
    // The fork ladder sits right under the raw fork it starts from.
    let group = ladder(plan).into_iter().fold(group, Group::contender);
    group
        .contender(
            Contender::peer("CPython fork", move |_| {
                cpython::process_starts(&py1, "fork", py_fork)
            })
            .versus(FORK)
            .aim(10.0, "spindle fork at least 10× faster than CPython's fork"),
        )
        .contender(
            Contender::subject(SPAWN, move |p| {
                spindle_starts(StartMethod::Spawn, spawn_plan, p)
            })
            .on_board_thread(),
        )
        .contender(
            Contender::peer("raw posix_spawn+waitpid", move |p| {
                raw(spawn_plan, p, crate::empty_child::raw_spawn_wait)
            })
            .on_board_thread()
            .versus(SPAWN)
            .aim(
                within,
                "spindle spawn within 1.3× raw posix_spawn of the same binary",
            ),
        )
        .contender(
            Contender::peer("CPython spawn", move |_| {
                cpython::process_starts(&py2, "spawn", py_spawn)
            })
            .versus(SPAWN)
            .aim(
                10.0,
                "spindle spawn at least 10× faster than CPython's spawn",
            ),
        )
        .contender(
            Contender::subject(FORKSERVER, move |p| {
                spindle_starts(StartMethod::Forkserver, plan, p)
            })
            .on_board_thread()
            .aim_rule(
                Rule::AtMostSumOf(vec![FORK.to_string(), ROUND_TRIP.to_string()]),
                "spindle forkserver at most spindle fork + one socket round trip",
            ),
        )
        .contender(
            Contender::peer("CPython forkserver", move |_| {
                cpython::process_starts(&py3, "forkserver", py_fork)
            })
            .versus(FORKSERVER)
            .aim(
                10.0,
                "spindle forkserver at least 10× faster than CPython's forkserver",
            ),
        )
        .contender(
            Contender::subject(FORKSERVER_SPARE, move |p| forkserver_spare_ready(plan, p))
                .on_board_thread()
                .aim_rule(
                    Rule::AtMostSumOf(vec![RAW_FORK.to_string()]),
                    "spindle forkserver with a spare ready no slower than raw fork+waitpid \
                     (issue #15; 0.6× is the mark)",
                ),
        )
        .contender(
            Contender::subject(FORKSERVER_BURST, move |p| forkserver_burst(plan, p))
                .on_board_thread(),
        )
        .contender(Contender::reference(RAW_FORK_SMALL, move |_| {
            crate::fork_floor::raw_forks_from_a_small_process(plan.warmup, plan.max_reps)
        }))
        .contender(Contender::reference(ROUND_TRIP, move |p| {
            socket_round_trips(round_trips, plan, p)
        }))
        .contender(Contender::subject(FORK_ELSEWHERE, move |p| {
            spindle_starts(StartMethod::Fork, plan, p)
        }))
        .contender(
            Contender::peer("raw fork+waitpid, from another thread", move |p| {
                raw(plan, p, bench::raw_fork_wait)
            })
            .versus(FORK_ELSEWHERE),
        )
}

/// Starts and joins one empty child with `method` per repetition.
pub(crate) fn spindle_starts(
    method: StartMethod,
    plan: Plan,
    p: Progress,
) -> Result<Measurement, NotMeasured> {
    let ctx = get_context(method);
    repeat(plan, 1, &p, || {
        let child = ctx.process().target(empty, ());
        child.start().map_err(|e| e.to_string())?;
        child.join().map_err(|e| e.to_string())
    })
}

/// One bare start (`bench::raw_fork_wait`, `bench::raw_spawn_wait`, a rung of
/// `bench::fork_ladder`) per repetition.
fn raw(
    plan: Plan,
    p: Progress,
    start: impl Fn() -> spindle::Result<()>,
) -> Result<Measurement, NotMeasured> {
    repeat(plan, 1, &p, || start().map_err(|e| e.to_string()))
}

/// The fork ladder, from the bare fork up, one guarantee of spindle's fork start more per row,
/// then spindle's fork start itself, measured on the board's thread.
///
/// A step of the ladder is a few microseconds, less than what the machine's load moves a
/// figure from one second to the next; so the rungs are measured together, interleaved (rounds
/// of [`ROUND`] repetitions of each), by the first row to run, and every row reports its own.
fn ladder(plan: Plan) -> Vec<Contender> {
    type Shared = Arc<Mutex<Option<Result<Vec<Measurement>, String>>>>;
    let shared: Shared = Arc::new(Mutex::new(None));
    let rungs = ForkRung::ALL.len();
    (0..=rungs)
        .map(|i| {
            let shared = Arc::clone(&shared);
            Contender::reference(&ladder_row(i), move |p| {
                let mut g = shared.lock().unwrap_or_else(|e| e.into_inner());
                let all = g.get_or_insert_with(|| ladder_interleaved(plan, &p));
                match all {
                    Ok(ms) => Ok(ms[i].clone()),
                    Err(e) => Err(NotMeasured::Failed(e.clone())),
                }
            })
            .on_board_thread()
        })
        .collect()
}

/// Repetitions of one rung in a row, before the next rung's.
const ROUND: usize = 20;

/// Every rung of the ladder and spindle's fork start+join, interleaved: rounds of [`ROUND`]
/// repetitions each, after one warm-up round, until each has `plan.reps` samples and (within
/// `plan.max_reps`) `plan.min_time` in total.
fn ladder_interleaved(plan: Plan, p: &Progress) -> Result<Vec<Measurement>, String> {
    let rungs = ForkRung::ALL.len();
    let ctx = get_context(StartMethod::Fork);
    let one = |i: usize| -> Result<(), String> {
        if i < rungs {
            bench::fork_ladder(ForkRung::ALL[i]).map_err(|e| e.to_string())
        } else {
            let child = ctx.process().target(empty, ());
            child.start().map_err(|e| e.to_string())?;
            child.join().map_err(|e| e.to_string())
        }
    };
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); rungs + 1];
    for i in 0..=rungs {
        for _ in 0..plan.warmup.max(1) {
            one(i)?;
        }
    }
    let enough = |t: &Vec<Duration>| {
        t.len() >= plan.reps
            && (t.iter().sum::<Duration>() >= plan.min_time || t.len() >= plan.max_reps)
    };
    let mut rounds = 0;
    while !times.iter().all(enough) {
        for (i, t) in times.iter_mut().enumerate() {
            for _ in 0..ROUND {
                let started = Instant::now();
                one(i)?;
                t.push(started.elapsed());
            }
        }
        rounds += 1;
        p.rep(rounds, Duration::ZERO);
    }
    Ok(times
        .into_iter()
        .map(|t| Measurement::times(1, t))
        .collect())
}

/// The row of rung `i` of the fork ladder (every guarantee up to it), or of spindle's fork
/// start after the last rung.
fn ladder_row(i: usize) -> String {
    match ForkRung::ALL.get(i) {
        Some(ForkRung::Bare) => "fork ladder 0: bare fork+waitpid".to_string(),
        Some(rung) => format!("fork ladder {i}: + {}", rung.adds()),
        None => format!("fork ladder {i}: spindle fork start+join"),
    }
}

/// A forkserver start and join per repetition, each made once the fork server has announced
/// its spare (the wait for it is not timed): the start hands its call to a child forked
/// earlier.
pub(crate) fn forkserver_spare_ready(plan: Plan, p: Progress) -> Result<Measurement, NotMeasured> {
    let ctx = get_context(StartMethod::Forkserver);
    let one = || {
        let child = ctx.process().target(empty, ());
        child.start().map_err(|e| e.to_string())?;
        child.join().map_err(|e| e.to_string())
    };
    let spare = || match bench::forkserver_spare_pid() {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("the fork server announced no spare".to_string()),
        Err(e) => Err(e.to_string()),
    };
    for _ in 0..plan.warmup {
        spare().and_then(|()| one()).map_err(NotMeasured::Failed)?;
    }
    let mut times = Vec::with_capacity(plan.reps);
    let mut total = Duration::ZERO;
    while times.len() < plan.reps || (total < plan.min_time && times.len() < plan.max_reps) {
        spare().map_err(NotMeasured::Failed)?;
        let started = Instant::now();
        one().map_err(NotMeasured::Failed)?;
        let took = started.elapsed();
        total += took;
        times.push(took);
        p.rep(times.len(), took);
    }
    Ok(Measurement::times(1, times))
}

/// [`BURST`] forkserver starts in a row, then their joins, per repetition: starts that come
/// faster than the server forks spares (the first takes the spare ready, each later one waits
/// for the fork it asked for).
pub(crate) fn forkserver_burst(plan: Plan, p: Progress) -> Result<Measurement, NotMeasured> {
    let ctx = get_context(StartMethod::Forkserver);
    repeat(plan, BURST as u64, &p, || {
        let children: Vec<_> = (0..BURST)
            .map(|_| {
                let child = ctx.process().target(empty, ());
                child.start().map(|()| child).map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        children
            .iter()
            .try_for_each(|c| c.join().map_err(|e| e.to_string()))
    })
}

/// `n` one-byte round trips per repetition to a forked child that echoes them; a zero byte
/// ends the child, which returns how many it echoed (checked against what was sent).
pub(crate) fn socket_round_trips(
    n: u64,
    plan: Plan,
    p: Progress,
) -> Result<Measurement, NotMeasured> {
    let (mut ours, theirs) = UnixStream::pair().map_err(failed)?;
    let echo = get_context(StartMethod::Fork)
        .process()
        .daemon(true)
        .fork_target(move || echo_until_zero(theirs));
    echo.start().map_err(failed)?;
    let mut sent = 0u64;
    let measured = measure(
        plan,
        n,
        |i, t| p.rep(i, t),
        || {
            let mut byte = [0u8; 1];
            for _ in 0..n {
                ours.write_all(&[1]).map_err(|e| e.to_string())?;
                ours.read_exact(&mut byte).map_err(|e| e.to_string())?;
                if byte != [1] {
                    return Err(format!("the echo child sent back {byte:?}"));
                }
            }
            sent += n;
            Ok(())
        },
    );
    // Stop the child before reporting, also after a failure (a daemon dropped unjoined would
    // be killed anyway).
    let _ = ours.write_all(&[0]);
    let echoed = echo.join().map_err(failed)?;
    let m = measured.map_err(NotMeasured::Failed)?;
    if echoed != sent {
        return Err(NotMeasured::Failed(format!(
            "the echo child echoed {echoed} bytes, {sent} were sent"
        )));
    }
    Ok(m)
}

/// The echo child: sends back every byte until it reads a zero or the socket closes.
fn echo_until_zero(mut sock: UnixStream) -> u64 {
    let mut echoed = 0;
    let mut byte = [0u8; 1];
    while sock.read_exact(&mut byte).is_ok() && byte != [0] {
        if sock.write_all(&byte).is_err() {
            break;
        }
        echoed += 1;
    }
    echoed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoreboard::Progress;
    use crate::workloads::with_processes;

    // These run the workloads once from the test binary: no figure is checked, only that each
    // start method, spawn included, works from a binary that merely links spindle.

    #[test]
    fn every_start_method_starts_and_joins_from_this_binary() {
        with_processes(|| {
            for method in StartMethod::ALL {
                let m = spindle_starts(method, Plan::fixed(1, 2), Progress::quiet()).unwrap();
                assert_eq!((m.ops, m.samples.len()), (1, 2), "{method:?}");
            }
            raw(
                Plan::fixed(0, 1),
                Progress::quiet(),
                crate::empty_child::raw_spawn_wait,
            )
            .unwrap();
            raw(Plan::fixed(0, 1), Progress::quiet(), bench::raw_fork_wait).unwrap();
        });
    }

    #[test]
    fn the_forkserver_rows_and_every_rung_of_the_fork_ladder_run() {
        with_processes(|| {
            let m = forkserver_spare_ready(Plan::fixed(1, 2), Progress::quiet()).unwrap();
            assert_eq!((m.ops, m.samples.len()), (1, 2));
            let m = forkserver_burst(Plan::fixed(0, 1), Progress::quiet()).unwrap();
            assert_eq!((m.ops, m.samples.len()), (BURST as u64, 1));
            for rung in ForkRung::ALL {
                raw(Plan::fixed(0, 1), Progress::quiet(), || {
                    bench::fork_ladder(rung)
                })
                .unwrap();
            }
        });
        let ms =
            with_processes(|| ladder_interleaved(Plan::fixed(0, 1), &Progress::quiet()).unwrap());
        assert_eq!(ms.len(), ForkRung::ALL.len() + 1);
        assert!(ms.iter().all(|m| m.samples.len() == ROUND));
        let g = group(&Options::default());
        let names: Vec<&str> = g.contenders.iter().map(|c| c.name()).collect();
        for i in 0..=ForkRung::ALL.len() {
            assert!(names.contains(&ladder_row(i).as_str()), "{i}");
        }
        assert_eq!(ladder_row(2), "fork ladder 2: + pidfd");
        assert_eq!(ladder_row(9), "fork ladder 9: spindle fork start+join");
    }

    #[test]
    fn the_aims_compare_rows_made_on_the_same_thread() {
        let g = group(&Options::default());
        let on_board = |name: &str| {
            g.contenders
                .iter()
                .find(|c| c.name() == name)
                .map(|c| c.runs_on_board_thread())
                .unwrap_or_else(|| panic!("no row {name}"))
        };
        assert!(on_board(FORK) && on_board("raw fork+waitpid"));
        assert!(on_board(SPAWN) && on_board("raw posix_spawn+waitpid"));
        assert!(on_board(FORKSERVER) && on_board(FORKSERVER_SPARE) && on_board(RAW_FORK));
        assert!(on_board(&ladder_row(8)));
        assert!(!on_board(FORK_ELSEWHERE) && !on_board("raw fork+waitpid, from another thread"));
    }

    #[test]
    fn the_echo_child_echoes_every_byte_of_every_repetition() {
        // 1 warm-up + 2 timed repetitions of 10: the child must report exactly 30.
        let m = with_processes(|| {
            socket_round_trips(10, Plan::fixed(1, 2), Progress::quiet()).unwrap()
        });
        assert_eq!((m.ops, m.samples.len()), (10, 2));
    }
}
