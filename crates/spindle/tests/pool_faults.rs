//! Faults injected for real into pool workers, for every start method (spawn and forkserver
//! behind the switch in `tests/common/pool.rs`): `SIGKILL`, `abort`, a null write and
//! `_exit` of a worker during `map`, `imap` and `apply_async`, every worker at once, panics,
//! time limits, `maxtasksperchild`, failing initializers, values that do not encode, large
//! values, nested pools. Each fault ends exactly the items it hit, and the pool goes on.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use spindle::multiprocessing::{Pool, StartMethod};
use spindle::{Error, TaskError};

mod common;
use common::{eventually, rerun_alone, running, watchdog, watchdog_for};

#[path = "common/pool.rs"]
#[macro_use]
mod pool_common;
use pool_common::Scratch;

/// How a task ends its worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Fault {
    Kill,
    Abort,
    NullWrite,
    Exit,
}

impl Fault {
    const ALL: [Fault; 4] = [Fault::Kill, Fault::Abort, Fault::NullWrite, Fault::Exit];

    /// The worker's exit code afterwards (minus the signal).
    fn exitcode(self) -> i32 {
        match self {
            Fault::Kill => -libc::SIGKILL,
            Fault::Abort => -libc::SIGABRT,
            Fault::NullWrite => -libc::SIGSEGV,
            Fault::Exit => 3,
        }
    }

    fn strike(self) -> ! {
        match self {
            // SAFETY: kill of our own pid with SIGKILL; no memory is touched.
            Fault::Kill => unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
                unreachable!()
            },
            Fault::Abort => std::process::abort(),
            Fault::NullWrite => {
                // SAFETY: not sound on purpose: the write faults (SIGSEGV) and ends the
                // process, which is the fault under test.
                unsafe { std::ptr::null_mut::<u64>().write_volatile(1) };
                unreachable!()
            }
            // SAFETY: _exit ends the process at once; nothing runs after it.
            Fault::Exit => unsafe { libc::_exit(3) },
        }
    }
}

/// Squares `i`, except the item `victim`, which ends its worker with `fault`.
fn square_or_die(i: u64, victim: u64, fault: Fault) -> u64 {
    if i == victim {
        fault.strike();
    }
    i * i
}

fn square(i: u64) -> u64 {
    i * i
}

fn my_pid(_: u64) -> u32 {
    std::process::id()
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn panics_on(i: u64, bad: u64) -> u64 {
    if i == bad {
        panic!("item {i} is bad");
    }
    i
}

fn failing_init(why: String) -> Result<(), String> {
    Err(why)
}

fn counting_init(dir: String, fail: bool) -> Result<(), String> {
    std::fs::write(format!("{dir}/{}", std::process::id()), b"").map_err(|e| e.to_string())?;
    if fail {
        Err("no database at db://nowhere".into())
    } else {
        Ok(())
    }
}

/// Writes a line to the process's standard error (descriptor 2). Not `eprintln!`: under
/// `cargo test`'s output capture, a forked worker inherits the harness's in-memory capture,
/// and `eprintln!` would write there instead of to the descriptor the pool relays.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn aborting_init() {
    say("initializer: about to abort");
    std::process::abort()
}

fn say_and_die(n: u64) -> u64 {
    say(&format!("task {n}: working"));
    say(&format!("task {n}: allocating too much"));
    Fault::Kill.strike()
}

/// A value whose encoding fails when `bad` (serde's custom error).
#[derive(Debug, Clone, Deserialize)]
struct Picky {
    n: u64,
    bad: bool,
}

impl Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.bad {
            return Err(serde::ser::Error::custom(
                "this value refuses to be encoded",
            ));
        }
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Picky", 2)?;
        st.serialize_field("n", &self.n)?;
        st.serialize_field("bad", &self.bad)?;
        st.end()
    }
}

fn picky_result(n: u64) -> Picky {
    Picky { n, bad: n == 3 }
}

fn picky_arg(p: Picky) -> u64 {
    p.n
}

/// `mib` MiB of text (a string encodes as its length and its bytes, copied at once).
fn big(mib: usize) -> String {
    "ab".repeat(mib << 19)
}

fn len_of(s: String) -> usize {
    s.len()
}

/// Allocates `mib` MiB, touches it and keeps it for the life of the worker; returns the pid.
fn grow(mib: usize) -> u32 {
    let v = vec![1u8; mib << 20];
    std::mem::forget(v);
    std::process::id()
}

fn inner_pool_sum(n: u64) -> u64 {
    let p = Pool::builder()
        .processes(2)
        .start_method(StartMethod::Fork)
        .build()
        .unwrap();
    p.map(square, 0..n).unwrap().iter().sum()
}

/// Checks a dead worker's error: it died, it names the task and a pid that is gone, and the
/// exit code says how.
fn assert_died(e: &Error, task: u64, fault: Fault) -> u32 {
    let t = e
        .as_task()
        .unwrap_or_else(|| panic!("not a task error: {e}"));
    assert!(t.is_worker_died(), "{fault:?}: {t}");
    assert_eq!(t.task(), Some(task), "{t}");
    assert_eq!(t.exitcode(), Some(fault.exitcode()), "{fault:?}: {t}");
    let pid = t.pid().expect("the dead worker's pid");
    assert_ne!(pid, std::process::id());
    assert!(!running(pid), "the dead worker {pid} is gone");
    pid
}

macro_rules! faults {
    ($name:ident, $method:ident, [$($attr:meta)?]) => {
        mod $name {
            use super::*;

            const METHOD: StartMethod = StartMethod::$method;

            fn pool(n: usize) -> Pool {
                Pool::builder().processes(n).start_method(METHOD).build().unwrap()
            }

            #[test]
            $(#[$attr])?
            fn a_worker_dying_mid_map_ends_only_its_item_and_the_pool_goes_on() {
                watchdog_for(Duration::from_secs(60), || {
                    let p = pool(2);
                    for fault in Fault::ALL {
                        // map: the first error is the dead worker's item; every item ran.
                        let e = p
                            .call()
                            .chunksize(1)
                            .starmap(square_or_die, (0..20).map(|i| (i, 7, fault)))
                            .unwrap_err();
                        assert_died(&e, 7, fault);
                        // imap: every other item is a value.
                        let out: Vec<_> = p
                            .call()
                            .chunksize(1)
                            .imap(|(i, v, f): (u64, u64, Fault)| square_or_die(i, v, f), (0..20).map(move |i| (i, 11, fault)))
                            .unwrap()
                            .collect();
                        assert_eq!(out.len(), 20);
                        for (i, r) in out.iter().enumerate() {
                            match r {
                                Ok(v) => assert_eq!(*v, (i * i) as u64),
                                Err(e) => {
                                    assert_eq!(i, 11, "{fault:?}: item {i}: {e}");
                                    assert_died(e, 11, fault);
                                }
                            }
                        }
                        assert!(out[11].is_err());
                        // apply_async
                        let r = p.apply_async(square_or_die, (5, 5, fault)).unwrap();
                        assert_died(&r.get().unwrap_err(), 0, fault);
                        // The next call is served, by a full pool.
                        assert_eq!(p.map(square, 0..10).unwrap(), (0..10).map(|i| i * i).collect::<Vec<_>>());
                        assert_eq!(p.pids().len(), 2);
                    }
                });
            }

            #[test]
            $(#[$attr])?
            fn with_adaptive_chunks_only_the_held_items_are_lost() {
                watchdog(|| {
                    let p = pool(2);
                    let out: Vec<_> = p
                        .imap(|(i, v, f): (u64, u64, Fault)| square_or_die(i, v, f), (0..5000).map(|i| (i, 2500, Fault::Kill)))
                        .unwrap()
                        .collect();
                    let lost: Vec<u64> = out
                        .iter()
                        .filter_map(|r| r.as_ref().err())
                        .map(|e| e.as_task().unwrap().task().unwrap())
                        .collect();
                    assert!(lost.contains(&2500), "{lost:?}");
                    for (i, r) in out.iter().enumerate() {
                        match r {
                            Ok(v) => assert_eq!(*v, (i * i) as u64),
                            Err(e) => assert!(e.as_task().unwrap().is_worker_died(), "{e}"),
                        }
                    }
                    // The lost items are those of the chunk the worker held: a small part.
                    assert!(lost.len() < 2500, "{} lost", lost.len());
                });
            }

            #[test]
            $(#[$attr])?
            fn every_worker_killed_at_once_from_outside() {
                watchdog(|| {
                    let p = pool(3);
                    let r = p.call().chunksize(1).map_async(sleep_ms, vec![300u64; 9]).unwrap();
                    std::thread::sleep(Duration::from_millis(100));
                    let victims = p.pids();
                    assert_eq!(victims.len(), 3);
                    for pid in &victims {
                        // SAFETY: kill of a worker's pid with SIGKILL; no memory is touched.
                        unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
                    }
                    let e = r.get().unwrap_err();
                    let t = e.as_task().unwrap();
                    assert!(t.is_worker_died(), "{t}");
                    assert_eq!(t.signal(), Some(libc::SIGKILL));
                    assert!(victims.contains(&t.pid().unwrap()));
                    // The same, item by item: the three held items died, the other six ran.
                    let out: Vec<_> = p.call().chunksize(1).imap(sleep_ms, vec![300u64; 9]).unwrap().collect();
                    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 9, "no kill this time");
                    let mut it = p.call().chunksize(1).imap(sleep_ms, vec![300u64; 9]).unwrap();
                    std::thread::sleep(Duration::from_millis(100));
                    for pid in p.pids() {
                        // SAFETY: kill of a worker's pid with SIGKILL; no memory is touched.
                        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    }
                    let out: Vec<_> = it.by_ref().collect();
                    let died = out.iter().filter(|r| r.as_ref().is_err_and(|e| e.as_task().unwrap().is_worker_died())).count();
                    assert_eq!(died, 3, "{out:?}");
                    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 6);
                    assert_eq!(p.map(square, [4]).unwrap(), [16]);
                    assert!(victims.iter().all(|v| !p.pids().contains(v)));
                });
            }

            #[test]
            $(#[$attr])?
            fn a_panic_is_the_items_error_and_the_worker_lives_on() {
                watchdog(|| {
                    let p = pool(1);
                    let before = p.apply(my_pid, (0,)).unwrap();
                    let out: Vec<_> = p.call().chunksize(4).imap(|(i, b): (u64, u64)| panics_on(i, b), (0..10).map(|i| (i, 6))).unwrap().collect();
                    let e = out[6].as_ref().unwrap_err().as_task().unwrap().clone();
                    assert!(e.is_panic(), "{e}");
                    assert_eq!(e.panic_message(), Some("item 6 is bad"));
                    assert!(e.panic().unwrap().location().unwrap().contains("pool_faults.rs"));
                    assert_eq!(e.pid(), Some(before));
                    assert_eq!(e.task(), Some(6));
                    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 9);
                    assert_eq!(p.apply(my_pid, (0,)).unwrap(), before, "the same worker");
                });
            }

            #[test]
            $(#[$attr])?
            fn a_task_past_its_time_limit_is_stopped_and_its_worker_replaced() {
                watchdog(|| {
                    let p = Pool::builder()
                        .processes(2)
                        .start_method(METHOD)
                        .task_timeout(Duration::from_millis(300))
                        .build()
                        .unwrap();
                    let before: HashSet<u32> = p.pids().into_iter().collect();
                    let out: Vec<_> = p.imap(sleep_ms, [10, 10_000, 20, 30]).unwrap().collect();
                    assert_eq!(*out[0].as_ref().unwrap(), 10);
                    let e = out[1].as_ref().unwrap_err().as_task().unwrap().clone();
                    assert!(e.is_timeout(), "{e}");
                    assert_eq!(e.task(), Some(1));
                    assert_eq!(*out[2].as_ref().unwrap(), 20);
                    assert_eq!(*out[3].as_ref().unwrap(), 30);
                    let after: HashSet<u32> = p.pids().into_iter().collect();
                    assert_eq!(after.len(), 2);
                    assert_eq!(before.intersection(&after).count(), 1, "one worker was replaced");
                    let gone: Vec<u32> = before.difference(&after).copied().collect();
                    assert!(!running(gone[0]));
                    // A limit per call, on a pool without one; apply_async too.
                    let p = pool(1);
                    let r = p.call().timeout(Duration::from_millis(200)).apply_async(sleep_ms, (10_000,)).unwrap();
                    assert!(r.get().unwrap_err().is_timeout());
                    assert_eq!(p.apply(sleep_ms, (1,)).unwrap(), 1);
                });
            }

            #[test]
            $(#[$attr])?
            fn maxtasksperchild_replaces_workers() {
                watchdog(|| {
                    let p = Pool::builder()
                        .processes(1)
                        .start_method(METHOD)
                        .maxtasksperchild(2)
                        .build()
                        .unwrap();
                    let pids = p.map(my_pid, 0..6).unwrap();
                    let distinct: HashSet<u32> = pids.iter().copied().collect();
                    assert_eq!(distinct.len(), 3, "{pids:?}");
                    for pid in &distinct {
                        assert_eq!(pids.iter().filter(|p| *p == pid).count(), 2);
                    }
                    assert!(eventually(Duration::from_secs(5), || p.worker_starts() >= 3));
                });
            }

            #[test]
            $(#[$attr])?
            fn a_worker_above_max_memory_per_child_is_replaced_after_its_chunk() {
                watchdog(|| {
                    // Under a bound no worker stays below, every task gets a fresh worker,
                    // after the one before it ended; under a bound none reaches, one worker
                    // serves them all.
                    let p = Pool::builder()
                        .processes(1)
                        .start_method(METHOD)
                        .max_memory_per_child(1)
                        .build()
                        .unwrap();
                    let pids: Vec<u32> = (0..4).map(|_| p.apply(grow, (1,)).unwrap()).collect();
                    assert_eq!(pids.iter().collect::<HashSet<_>>().len(), 4, "{pids:?}");
                    let big = pids[3];
                    let p = Pool::builder()
                        .processes(1)
                        .start_method(METHOD)
                        .max_memory_per_child(1 << 40)
                        .build()
                        .unwrap();
                    let pids: Vec<u32> = (0..4).map(|_| p.apply(grow, (1,)).unwrap()).collect();
                    assert_eq!(pids.iter().collect::<HashSet<_>>().len(), 1, "{pids:?}");
                    assert!(eventually(Duration::from_secs(5), || !running(big)));
                });
            }

            #[test]
            $(#[$attr])?
            fn a_failing_initializer_fails_every_call_without_a_restart_storm() {
                watchdog(|| {
                    let dir = Scratch::new("storm");
                    let p = Pool::builder()
                        .processes(2)
                        .start_method(METHOD)
                        .initializer(counting_init, (dir.path(), true))
                        .build()
                        .unwrap();
                    let e = p.map(square, 0..10).unwrap_err();
                    let t = e.as_task().unwrap();
                    assert!(t.is_initializer_failed(), "{t}");
                    assert!(t.to_string().contains("no database at db://nowhere"), "{t}");
                    // Later calls fail at once with the same error.
                    let e = p.apply(square, (1,)).unwrap_err();
                    assert!(e.as_task().unwrap().is_initializer_failed());
                    std::thread::sleep(Duration::from_millis(300));
                    assert_eq!(p.worker_starts(), 2, "no worker was started again");
                    assert!(dir.count() <= 2, "{} initializer runs", dir.count());
                    // A panicking or aborting initializer: the same, with its message.
                    let p = Pool::builder().processes(1).start_method(METHOD)
                        .initializer(failing_init, ("the config is missing".to_string(),))
                        .build().unwrap();
                    let e = p.apply(square, (1,)).unwrap_err();
                    assert!(e.to_string().contains("the config is missing"), "{e}");
                    let p = Pool::builder().processes(2).start_method(METHOD)
                        .initializer(aborting_init, ())
                        .build().unwrap();
                    let e = p.map(square, 0..4).unwrap_err();
                    let t = e.as_task().unwrap();
                    assert!(t.is_initializer_failed(), "{t}");
                    assert!(t.to_string().contains("signal 6"), "{t}");
                    assert!(t.to_string().contains("about to abort"), "{t}");
                    assert_eq!(p.worker_starts(), 2);
                });
            }

            #[test]
            $(#[$attr])?
            fn a_dead_workers_error_carries_its_last_stderr_lines() {
                watchdog(|| {
                    let p = pool(1);
                    let e = p.apply(say_and_die, (4,)).unwrap_err();
                    let t = e.as_task().unwrap();
                    assert!(t.is_worker_died() && t.signal() == Some(9), "{t}");
                    assert_eq!(t.stderr_tail(), ["task 4: working", "task 4: allocating too much"]);
                    assert!(t.to_string().contains("| task 4: allocating too much"), "{t}");
                    // A killed worker is not blamed on the OOM killer unless the cgroup says so.
                    assert!(!t.likely_oom());
                });
            }

            #[test]
            $(#[$attr])?
            fn a_value_that_does_not_encode_fails_its_item_only() {
                watchdog(|| {
                    let p = pool(2);
                    let out: Vec<_> = p.imap(picky_result, 0..6).unwrap().collect();
                    for (i, r) in out.iter().enumerate() {
                        if i == 3 {
                            let e = r.as_ref().unwrap_err();
                            assert!(e.to_string().contains("cannot be encoded"), "{e}");
                            assert_eq!(e.as_task().unwrap().task(), Some(3));
                        } else {
                            assert_eq!(r.as_ref().unwrap().n, i as u64);
                        }
                    }
                    let args = (0..5).map(|n| Picky { n, bad: n == 1 });
                    let out: Vec<_> = p.imap(picky_arg, args.collect::<Vec<_>>()).unwrap().collect();
                    assert!(out[1].as_ref().unwrap_err().to_string().contains("cannot be encoded"));
                    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 4);
                    let e = p.map_async(picky_arg, vec![Picky { n: 1, bad: true }]).unwrap().get().unwrap_err();
                    assert_eq!(e.as_task().unwrap().task(), Some(0));
                });
            }

            #[test]
            $(#[$attr])?
            fn large_values_come_back_without_deadlock() {
                watchdog_for(Duration::from_secs(90), || {
                    let p = pool(2);
                    let out = p.call().chunksize(1).map(big, [24, 1, 32]).unwrap();
                    assert_eq!(out.iter().map(String::len).collect::<Vec<_>>(), [24 << 20, 1 << 20, 32 << 20]);
                    assert!(out[2].bytes().all(|b| b == b'a' || b == b'b'));
                    // Large arguments travel too.
                    let sizes = p.map(len_of, [big(16), big(2)]).unwrap();
                    assert_eq!(sizes, [16 << 20, 2 << 20]);
                });
            }

            #[test]
            $(#[$attr])?
            fn a_task_may_build_its_own_pool() {
                watchdog(|| {
                    let p = pool(2);
                    let sums = p.map(inner_pool_sum, [10, 100]).unwrap();
                    assert_eq!(sums, [285, 328_350]);
                });
            }
        }
    };
}

per_start_method!(faults);

/// The random mix: kills, aborts, panics and time limits over thousands of tasks, on fork
/// workers; every task ends exactly once, with its value or its error.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Mix {
    Value,
    Panic,
    Die(Fault),
    Hang,
}

fn mixed(i: u64, what: Mix) -> u64 {
    match what {
        Mix::Value => i,
        Mix::Panic => panic!("mixed {i}"),
        Mix::Die(f) => f.strike(),
        Mix::Hang => {
            std::thread::sleep(Duration::from_secs(30));
            i
        }
    }
}

#[test]
fn a_random_mix_of_faults_ends_every_task_exactly_once() {
    // Run in a copy of this test binary of its own, without backtraces: a panic's first
    // backtrace in a fresh worker is symbolised from the debug info, which under the load of
    // the neighbouring tests can outlast the time limit that the hanging items need.
    if std::env::var_os("SPINDLE_POOL_MIX").is_none() {
        let out = rerun_alone(
            "a_random_mix_of_faults_ends_every_task_exactly_once",
            &[("SPINDLE_POOL_MIX", "1"), ("RUST_BACKTRACE", "0")],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("mix: ["), "the mix ran: {stderr}");
        return;
    }
    watchdog_for(Duration::from_secs(120), || {
        let p = Pool::builder()
            .processes(3)
            .start_method(StartMethod::Fork)
            .task_timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        // A small xorshift: the same mix on every run.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        const N: u64 = 3000;
        let plan: Vec<(u64, Mix)> = (0..N)
            .map(|i| {
                let what = match next() % 1000 {
                    0..=9 => Mix::Die(Fault::ALL[(next() % 4) as usize]),
                    10..=29 => Mix::Panic,
                    30..=31 => Mix::Hang,
                    _ => Mix::Value,
                };
                (i, what)
            })
            .collect();
        let mut seen = vec![0u32; N as usize];
        let mut kinds = [0usize; 4];
        for r in p
            .imap_unordered(|(i, w): (u64, Mix)| mixed(i, w), plan.clone())
            .unwrap()
        {
            let (i, kind) = match r {
                Ok(v) => (v, 0),
                Err(e) => {
                    let t: &TaskError = e.as_task().expect("a task error");
                    let kind = if t.is_panic() {
                        1
                    } else if t.is_worker_died() {
                        2
                    } else if t.is_timeout() {
                        3
                    } else {
                        panic!("unexpected error {t}")
                    };
                    (t.task().expect("names its task"), kind)
                }
            };
            seen[i as usize] += 1;
            kinds[kind] += 1;
            // The outcome matches the plan.
            match (plan[i as usize].1, kind) {
                (Mix::Value, 0) | (Mix::Panic, 1) | (Mix::Die(_), 2) | (Mix::Hang, 3) => {}
                // A value or panic held by a worker that another item killed.
                (Mix::Value | Mix::Panic, 2) => {}
                (what, k) => panic!("item {i}: planned {what:?}, ended as kind {k}"),
            }
        }
        assert!(seen.iter().all(|n| *n == 1), "every task exactly once");
        assert!(kinds[1] > 0 && kinds[2] > 0 && kinds[3] > 0, "{kinds:?}");
        eprintln!("mix: {kinds:?} (value, panic, worker died, timed out)");
    });
}

#[inline(never)]
fn panics_with_a_backtrace(n: u64) -> u64 {
    if n == 3 {
        panic!("task {n} gave up");
    }
    n
}

#[test]
fn a_panic_under_rust_backtrace_comes_back_with_its_backtrace_location_and_pid() {
    // In a copy of this binary of its own, so that RUST_BACKTRACE=1 is set before the
    // workers start and touches no other test.
    if std::env::var_os("SPINDLE_POOL_BACKTRACE").is_none() {
        let out = rerun_alone(
            "a_panic_under_rust_backtrace_comes_back_with_its_backtrace_location_and_pid",
            &[("SPINDLE_POOL_BACKTRACE", "1"), ("RUST_BACKTRACE", "1")],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(
            stderr.contains("backtrace checked"),
            "the case ran: {stderr}"
        );
        return;
    }
    watchdog_for(Duration::from_secs(60), || {
        for method in [StartMethod::Fork, StartMethod::Spawn] {
            let p = Pool::builder()
                .processes(2)
                .start_method(method)
                .build()
                .unwrap();
            let results = p.imap(panics_with_a_backtrace, 0..6u64).unwrap();
            let results: Vec<_> = results.collect();
            let pids: Vec<u32> = p.pids();
            for (i, r) in results.iter().enumerate() {
                if i == 3 {
                    continue;
                }
                assert_eq!(*r.as_ref().unwrap(), i as u64, "{method:?}");
            }
            let err = results[3].as_ref().unwrap_err();
            let t = err.as_task().expect("a task error");
            assert!(t.is_panic(), "{method:?}: {t}");
            let report = t.panic().expect("the panic's report");
            assert_eq!(report.message(), "task 3 gave up");
            let location = report.location().expect("a location");
            assert!(location.contains("pool_faults.rs"), "{location}");
            let bt = report.backtrace().expect("RUST_BACKTRACE=1: a backtrace");
            assert!(bt.contains("panics_with_a_backtrace"), "{method:?}: {bt}");
            let pid = t.pid().expect("the worker's pid");
            assert_ne!(pid, std::process::id());
            assert!(
                pids.contains(&pid),
                "{pid} is a worker of {pids:?}: it lives on"
            );
            assert_eq!(t.task(), Some(3));
        }
        eprintln!("backtrace checked");
    });
}
