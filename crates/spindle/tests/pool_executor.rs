//! `futures::ProcessPoolExecutor`, for every start method (spawn and forkserver behind the
//! switch in `tests/common/pool.rs`): the `Executor` contract, futures that mix with the
//! thread pool's in `wait` and `as_completed`, `cancel` and `stop`, dead workers,
//! `terminate_workers`/`kill_workers`, `shutdown(cancel_futures)`, `buffersize`, and a random
//! mix of faults and stops over thousands of tasks.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use spindle::futures::{
    as_completed, wait, Executor, Future, MapOptions, ProcessPoolExecutor, ReturnWhen,
    ThreadPoolExecutor,
};
use spindle::multiprocessing::StartMethod;
use spindle::Error;

mod common;
use common::{eventually, running, watchdog, watchdog_for};

#[path = "common/pool.rs"]
#[macro_use]
mod pool_common;

fn square(x: u64) -> u64 {
    x * x
}

fn my_pid(_: u64) -> u32 {
    std::process::id()
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn ignore_term_and_sleep(ms: u64) -> u64 {
    // SAFETY: SIG_IGN is a valid disposition for SIGTERM; no memory is touched.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn die(how: u8) -> u64 {
    match how {
        // SAFETY: kill of our own pid; no memory is touched.
        0 => unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
            0
        },
        1 => std::process::abort(),
        2 => {
            // SAFETY: not sound on purpose: the write faults, which is the fault under test.
            unsafe { std::ptr::null_mut::<u64>().write_volatile(1) };
            0
        }
        // SAFETY: _exit ends the process at once.
        _ => unsafe { libc::_exit(3) },
    }
}

fn failing_init() -> Result<(), String> {
    Err("the license server is down".into())
}

/// Code generic over "some executor": it runs on processes and threads alike.
fn total<E: Executor>(ex: &E) -> spindle::Result<u64> {
    let f = ex.submit(square, 20)?;
    let rest: u64 = ex.map(square, 1..=3)?.sum::<spindle::Result<u64>>()?;
    Ok(f.result()? + rest)
}

macro_rules! executor {
    ($name:ident, $method:ident, [$($attr:meta)?]) => {
        mod $name {
            use super::*;

            fn ex(n: usize) -> ProcessPoolExecutor {
                ProcessPoolExecutor::builder()
                    .max_workers(n)
                    .start_method(StartMethod::$method)
                    .build()
                    .unwrap()
            }

            #[test]
            $(#[$attr])?
            fn the_executor_contract() {
                watchdog(|| {
                    let e = ex(2);
                    assert_eq!(total(&e).unwrap(), 414);
                    assert_eq!(total(&ThreadPoolExecutor::new().unwrap()).unwrap(), 414);
                    let squares: Vec<u64> = e.map(square, 0..100).unwrap().map(Result::unwrap).collect();
                    assert_eq!(squares, (0..100).map(|x| x * x).collect::<Vec<_>>());
                    let chunked: Vec<u64> = e
                        .map_with(square, 0..100, MapOptions::new().chunksize(7))
                        .unwrap()
                        .map(Result::unwrap)
                        .collect();
                    assert_eq!(chunked, squares);
                    let mut timed = e.map_timeout(sleep_ms, [1, 1_000, 1], Duration::from_millis(300)).unwrap();
                    assert_eq!(timed.next().unwrap().unwrap(), 1);
                    assert!(matches!(timed.next(), Some(Err(Error::Timeout))));
                    assert!(timed.next().is_none());
                });
            }

            #[test]
            $(#[$attr])?
            fn buffersize_pulls_an_endless_input_in_bounded_memory() {
                watchdog(|| {
                    let e = ex(2);
                    let pulled = Arc::new(AtomicU64::new(0));
                    let counted = Arc::clone(&pulled);
                    let endless = (0u64..).inspect(move |_| {
                        counted.fetch_add(1, Ordering::SeqCst);
                    });
                    let mut m = e.map_with(square, endless, MapOptions::new().chunksize(5).buffersize(3)).unwrap();
                    for i in 0..200u64 {
                        assert_eq!(m.next().unwrap().unwrap(), i * i);
                    }
                    let n = pulled.load(Ordering::SeqCst);
                    assert!((200..=200 + 3 * 5 + 1).contains(&n), "pulled {n}");
                });
            }

            #[test]
            $(#[$attr])?
            fn futures_mix_with_thread_futures_in_wait_and_as_completed() {
                watchdog(|| {
                    let e = ex(2);
                    let threads = ThreadPoolExecutor::new().unwrap();
                    let mut fs: Vec<Future<u64>> = vec![
                        e.submit(sleep_ms, 200).unwrap(),
                        threads.submit(|ms: u64| { std::thread::sleep(Duration::from_millis(ms)); ms }, 1).unwrap(),
                        e.submit(square, 5).unwrap(),
                    ];
                    let r = wait(std::mem::take(&mut fs), ReturnWhen::AllCompleted, None);
                    assert_eq!(r.done.len(), 3);
                    let mut got: Vec<u64> = r.done.into_iter().map(|f| f.result().unwrap()).collect();
                    got.sort_unstable();
                    assert_eq!(got, [1, 25, 200]);
                    let fs = vec![
                        e.submit(sleep_ms, 300).unwrap(),
                        threads.submit(|x: u64| x, 7).unwrap(),
                    ];
                    let first = as_completed(fs, None).next().unwrap().unwrap();
                    assert_eq!(first.result().unwrap(), 7, "the thread task ends first");
                });
            }

            #[test]
            $(#[$attr])?
            fn cancel_keeps_pythons_meaning_and_stop_ends_a_running_task() {
                watchdog(|| {
                    let e = ex(1);
                    let task = e.submit(ignore_term_and_sleep, 30_000).unwrap();
                    let queued = e.submit(square, 3).unwrap();
                    assert!(eventually(Duration::from_secs(10), || task.running()));
                    assert!(!task.cancel(), "a running task is not cancelled");
                    assert!(queued.cancel(), "a task not started is");
                    assert!(queued.cancelled());
                    let pid = e.pids()[0];
                    // It ignores SIGTERM: SIGKILL follows the grace period.
                    assert!(e.stop_with_grace(&task, Duration::from_millis(100)));
                    let err = task.result().unwrap_err();
                    assert!(err.as_task().unwrap().is_cancelled(), "{err}");
                    assert!(eventually(Duration::from_secs(5), || !running(pid)), "its worker is gone");
                    assert_eq!(e.submit(square, 4).unwrap().result().unwrap(), 16, "a new worker serves");
                    assert!(!e.pids().contains(&pid));
                    let done = e.submit(square, 2).unwrap();
                    done.wait();
                    assert!(!e.stop(&done), "a finished task cannot be stopped");
                });
            }

            #[test]
            $(#[$attr])?
            fn a_dead_worker_fails_only_its_future() {
                watchdog(|| {
                    let e = ex(2);
                    for how in 0..4u8 {
                        let before = e.submit(sleep_ms, 50).unwrap();
                        let dead = e.submit(die, how).unwrap();
                        let after = e.submit(square, 9).unwrap();
                        let err = dead.result().unwrap_err();
                        let t = err.as_task().unwrap();
                        assert!(t.is_worker_died(), "{how}: {t}");
                        assert_eq!(t.exitcode(), Some([-9, -6, -11, 3][how as usize]), "{t}");
                        assert_eq!(before.result().unwrap(), 50);
                        assert_eq!(after.result().unwrap(), 81);
                    }
                    assert_eq!(e.pids().len(), 2);
                });
            }

            #[test]
            $(#[$attr])?
            fn terminate_and_kill_workers_end_every_pending_future() {
                watchdog(|| {
                    for kill in [false, true] {
                        let e = ex(2);
                        let pids = e.pids();
                        let fs: Vec<_> = (0..6).map(|_| e.submit(sleep_ms, 30_000).unwrap()).collect();
                        std::thread::sleep(Duration::from_millis(50));
                        if kill { e.kill_workers() } else { e.terminate_workers() }
                        for f in fs {
                            assert!(f.done());
                            assert!(f.result().unwrap_err().as_task().unwrap().is_cancelled());
                        }
                        assert!(pids.iter().all(|p| !running(*p)));
                        assert!(matches!(e.submit(square, 1), Err(Error::Shutdown)));
                    }
                });
            }

            #[test]
            $(#[$attr])?
            fn shutdown_with_cancel_futures_cancels_what_has_not_started() {
                watchdog(|| {
                    let e = ex(1);
                    let first = e.submit(sleep_ms, 300).unwrap();
                    assert!(eventually(Duration::from_secs(10), || first.running()));
                    let rest: Vec<_> = (0..5).map(|i| e.submit(square, i).unwrap()).collect();
                    e.shutdown(true, true);
                    assert_eq!(first.result().unwrap(), 300);
                    assert!(rest.iter().all(Future::cancelled));
                    assert!(e.pids().is_empty());
                });
            }

            #[test]
            $(#[$attr])?
            fn max_tasks_per_child_and_a_failing_initializer() {
                watchdog(|| {
                    let e = ProcessPoolExecutor::builder()
                        .max_workers(1)
                        .start_method(StartMethod::$method)
                        .max_tasks_per_child(2)
                        .build()
                        .unwrap();
                    let pids: Vec<u32> = (0..6).map(|i| e.submit(my_pid, i).unwrap().result().unwrap()).collect();
                    assert_eq!(pids.iter().collect::<HashSet<_>>().len(), 3, "{pids:?}");
                    let e = ProcessPoolExecutor::builder()
                        .max_workers(2)
                        .start_method(StartMethod::$method)
                        .initializer(failing_init, ())
                        .build()
                        .unwrap();
                    let err = e.submit(square, 1).unwrap().result().unwrap_err();
                    assert!(err.as_task().unwrap().is_initializer_failed());
                    assert!(err.to_string().contains("license server"), "{err}");
                });
            }
        }
    };
}

per_start_method!(executor);

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
enum Mix {
    Value,
    Panic,
    Die,
    Long,
}

fn mixed((i, what): (u64, Mix)) -> u64 {
    match what {
        Mix::Value => i,
        Mix::Panic => panic!("mixed {i}"),
        Mix::Die => std::process::abort(),
        Mix::Long => {
            std::thread::sleep(Duration::from_secs(30));
            i
        }
    }
}

/// Thousands of submits with kills, panics and stops of long tasks: every future ends exactly
/// once, and the way it ends matches what was planned.
#[test]
fn a_random_mix_of_faults_and_stops_ends_every_future_once() {
    watchdog_for(Duration::from_secs(120), || {
        let e = ProcessPoolExecutor::builder()
            .max_workers(3)
            .start_method(StartMethod::Fork)
            .build()
            .unwrap();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        const N: u64 = 3000;
        let plan: Vec<Mix> = (0..N)
            .map(|_| match next() % 1000 {
                0..=7 => Mix::Die,
                8..=27 => Mix::Panic,
                28..=31 => Mix::Long,
                _ => Mix::Value,
            })
            .collect();
        let futures: Vec<Future<u64>> = plan
            .iter()
            .enumerate()
            .map(|(i, w)| e.submit(mixed, (i as u64, *w)).unwrap())
            .collect();
        // Stop every long task, running or not.
        for (i, f) in futures.iter().enumerate() {
            if matches!(plan[i], Mix::Long) {
                assert!(e.stop_with_grace(f, Duration::from_millis(50)));
            }
        }
        let mut counts = [0usize; 4];
        for (i, f) in futures.into_iter().enumerate() {
            let kind = match f.result() {
                Ok(v) => {
                    assert_eq!(v, i as u64);
                    0
                }
                Err(err) => {
                    let t = err.as_task().unwrap();
                    if t.is_panic() {
                        1
                    } else if t.is_worker_died() {
                        2
                    } else if t.is_cancelled() {
                        3
                    } else {
                        panic!("item {i}: unexpected {t}")
                    }
                }
            };
            counts[kind] += 1;
            match (plan[i], kind) {
                (Mix::Value, 0) | (Mix::Panic, 1) | (Mix::Die, 2) | (Mix::Long, 3) => {}
                // Sent in the same message as a task that killed its worker.
                (Mix::Value | Mix::Panic, 2) => {}
                (what, k) => panic!("item {i}: planned {what:?}, ended as kind {k}"),
            }
        }
        assert_eq!(counts.iter().sum::<usize>(), N as usize);
        eprintln!("executor mix: {counts:?} (value, panic, died, stopped)");
    });
}
