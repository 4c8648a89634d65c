//! `wait` and `as_completed`, black-box. Completion order is forced with gates, never with
//! sleeps. Behaviours follow CPython's `test_concurrent_futures` (`WaitTests`,
//! `AsCompletedTests`), rewritten for spindle's types.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::futures::Gate;
use common::watchdog;
use spindle::futures::{as_completed, promise, wait, Future, ReturnWhen, ThreadPoolExecutor};
use spindle::{Error, TaskError};

/// `n` pool tasks, task `i` returning `i` once gate `i` opens.
fn gated(pool: &ThreadPoolExecutor, n: usize) -> (Vec<Future<usize>>, Vec<Gate>) {
    let gates: Vec<Gate> = (0..n).map(|_| Gate::new()).collect();
    let fs = gates
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let g = g.clone();
            pool.spawn(move || {
                g.wait();
                i
            })
            .unwrap()
        })
        .collect();
    (fs, gates)
}

fn values(fs: Vec<Future<usize>>) -> Vec<usize> {
    fs.into_iter().map(|f| f.result().unwrap()).collect()
}

#[test]
fn first_completed() {
    watchdog(|| {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(3)
            .build()
            .unwrap();
        let (fs, gates) = gated(&pool, 3);
        let g = gates[1].clone();
        let opener = thread::spawn(move || g.open());
        let r = wait(fs, ReturnWhen::FirstCompleted, None);
        opener.join().unwrap();
        assert_eq!(values(r.done), [1]);
        assert_eq!(r.not_done.len(), 2);
        assert!(r.not_done.iter().all(|f| !f.done()));
        gates.iter().for_each(Gate::open);
        assert_eq!(values(r.not_done), [0, 2]);
    });
}

#[test]
fn first_completed_counts_a_cancellation_and_returns_at_once_when_one_is_done() {
    watchdog(|| {
        let (_p0, f0) = promise::<u8>();
        let (_p1, f1) = promise::<u8>();
        assert!(f1.cancel());
        let r = wait([f0, f1], ReturnWhen::FirstCompleted, None);
        assert_eq!(r.done.len(), 1);
        assert!(r.done[0].cancelled());
        assert_eq!(r.not_done.len(), 1);
    });
}

#[test]
fn first_exception_returns_early_on_a_panic() {
    watchdog(|| {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(3)
            .build()
            .unwrap();
        let (mut fs, gates) = gated(&pool, 2);
        gates[0].open();
        fs.push(
            pool.spawn(|| -> usize { panic!("first exception") })
                .unwrap(),
        );
        // Gate 1 never opens before `wait` returns: only the panic can end the wait.
        let r = wait(fs, ReturnWhen::FirstException, None);
        assert_eq!(r.not_done.len(), 1);
        assert!(r
            .done
            .iter()
            .any(|f| f.exception().is_some_and(|e| e.is_panic())));
        // `done` keeps the given order; the finished value may or may not be in it yet.
        let last = r.done.last().unwrap();
        assert_eq!(
            last.exception().unwrap().panic_message(),
            Some("first exception")
        );
        gates[1].open();
        assert_eq!(values(r.not_done), [1]);
    });
}

#[test]
fn first_exception_ignores_cancellation_and_otherwise_waits_for_all() {
    watchdog(|| {
        let (p0, f0) = promise::<u8>();
        let (_p1, f1) = promise::<u8>();
        let (p2, f2) = promise::<u8>();
        assert!(f1.cancel());
        // A cancellation is not an exception: with a timeout, the pending ones stay pending.
        let r = wait(
            [f0, f1, f2],
            ReturnWhen::FirstException,
            Some(Duration::from_millis(20)),
        );
        assert_eq!(r.done.len(), 1);
        assert_eq!(r.not_done.len(), 2);
        // Without exceptions it returns once all are done.
        let t = thread::spawn(move || {
            p0.set_result(0).unwrap();
            p2.set_result(2).unwrap();
        });
        let all: Vec<_> = r.done.into_iter().chain(r.not_done).collect();
        let r = wait(all, ReturnWhen::FirstException, None);
        t.join().unwrap();
        assert_eq!(r.done.len(), 3);
        assert!(r.not_done.is_empty());
    });
}

#[test]
fn first_exception_counts_a_failed_promise() {
    watchdog(|| {
        let (p0, f0) = promise::<u8>();
        let (_p1, f1) = promise::<u8>();
        p0.set_exception(TaskError::failed("x")).unwrap();
        let r = wait([f0, f1], ReturnWhen::FirstException, None);
        assert_eq!((r.done.len(), r.not_done.len()), (1, 1));
    });
}

#[test]
fn all_completed() {
    watchdog(|| {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(4)
            .build()
            .unwrap();
        let (fs, gates) = gated(&pool, 4);
        let opener = thread::spawn(move || {
            for g in gates.iter().rev() {
                g.open();
            }
        });
        let r = wait(fs, ReturnWhen::AllCompleted, None);
        opener.join().unwrap();
        assert!(r.not_done.is_empty());
        // Handed back in the order given.
        assert_eq!(values(r.done), [0, 1, 2, 3]);
    });
}

#[test]
fn timeout_leaves_not_done_non_empty() {
    watchdog(|| {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(2)
            .build()
            .unwrap();
        let (fs, gates) = gated(&pool, 2);
        gates[0].open();
        fs[0].wait();
        let r = wait(
            fs,
            ReturnWhen::AllCompleted,
            Some(Duration::from_millis(20)),
        );
        assert_eq!(values(r.done), [0]);
        assert_eq!(r.not_done.len(), 1);
        gates[1].open();
        assert_eq!(values(r.not_done), [1]);
    });
}

#[test]
fn wait_on_nothing_returns_at_once() {
    watchdog(|| {
        for how in [
            ReturnWhen::FirstCompleted,
            ReturnWhen::FirstException,
            ReturnWhen::AllCompleted,
        ] {
            let r = wait(Vec::<Future<u8>>::new(), how, None);
            assert!(r.done.is_empty() && r.not_done.is_empty());
        }
    });
}

#[test]
fn wait_with_a_zero_timeout_can_be_repeated() {
    watchdog(|| {
        let (p, f) = promise::<u8>();
        let mut fs = vec![f];
        for _ in 0..100 {
            let r = wait(fs, ReturnWhen::FirstCompleted, Some(Duration::ZERO));
            assert_eq!(r.not_done.len(), 1);
            fs = r.not_done;
        }
        p.set_result(1).unwrap();
        let r = wait(fs, ReturnWhen::AllCompleted, None);
        assert_eq!(r.done.len(), 1);
    });
}

#[test]
fn as_completed_yields_in_completion_order() {
    watchdog(|| {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(4)
            .build()
            .unwrap();
        let (fs, gates) = gated(&pool, 4);
        let order = [2, 0, 3, 1];
        let mut it = as_completed(fs, None);
        let mut got = Vec::new();
        for &i in &order {
            // Only task `i` can finish now, so it must be the next one out.
            gates[i].open();
            got.push(it.next().unwrap().unwrap().result().unwrap());
        }
        assert!(it.next().is_none());
        assert_eq!(got, order);
    });
}

#[test]
fn as_completed_yields_the_finished_ones_first() {
    watchdog(|| {
        let (p0, f0) = promise::<u8>();
        let (p1, f1) = promise::<u8>();
        p1.set_result(1).unwrap();
        let mut it = as_completed([f0, f1], None);
        assert_eq!(it.next().unwrap().unwrap().result().unwrap(), 1);
        let t = thread::spawn(move || p0.set_result(0).unwrap());
        assert_eq!(it.next().unwrap().unwrap().result().unwrap(), 0);
        assert!(it.next().is_none());
        t.join().unwrap();
    });
}

#[test]
fn as_completed_timeout_yields_one_error_then_ends() {
    watchdog(|| {
        let (p0, f0) = promise::<u8>();
        let (p1, f1) = promise::<u8>();
        p0.set_result(0).unwrap();
        let mut it = as_completed([f0, f1], Some(Duration::from_millis(20)));
        assert_eq!(it.next().unwrap().unwrap().result().unwrap(), 0);
        let e = it.next().unwrap().unwrap_err();
        assert!(e.is_timeout());
        assert!(matches!(
            e,
            Error::Unfinished {
                unfinished: 1,
                total: 2
            }
        ));
        assert!(it.next().is_none());
        // The futures not yielded are not lost.
        let rest = it.remaining();
        assert_eq!(rest.len(), 1);
        p1.set_result(1).unwrap();
        assert_eq!(rest.into_iter().next().unwrap().result().unwrap(), 1);
    });
}

/// Python's `as_completed` timeout says how many were left: "2 (of 4) futures unfinished".
#[test]
fn as_completed_timeout_counts_the_unfinished_futures() {
    watchdog(|| {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(4)
            .build()
            .unwrap();
        let gate = Gate::new();
        let mut fs = Vec::new();
        for i in 0..4u32 {
            let g = gate.clone();
            // Two finish at once, two wait for the gate.
            fs.push(
                pool.submit(
                    move |i: u32| {
                        if i >= 2 {
                            g.wait();
                        }
                        i
                    },
                    i,
                )
                .unwrap(),
            );
        }
        let mut it = as_completed(fs, Some(Duration::from_millis(200)));
        let mut first: Vec<u32> = (0..2)
            .map(|_| it.next().unwrap().unwrap().result().unwrap())
            .collect();
        first.sort_unstable();
        assert_eq!(first, [0, 1]);
        let e = it.next().unwrap().unwrap_err();
        assert_eq!(e.to_string(), "2 (of 4) futures unfinished");
        assert!(e.is_timeout());
        let Error::Unfinished { unfinished, total } = e else {
            panic!("not Unfinished: {e:?}");
        };
        assert_eq!((unfinished, total), (2, 4));
        assert!(it.next().is_none());
        assert_eq!(it.remaining().len(), 2);
        gate.open();
        // An empty set never times out: nothing is unfinished.
        let mut none = as_completed(Vec::<Future<u8>>::new(), Some(Duration::ZERO));
        assert!(none.next().is_none());
    });
}

#[test]
fn as_completed_mixes_executors_and_hand_made_futures() {
    watchdog(|| {
        let a = ThreadPoolExecutor::builder()
            .max_workers(1)
            .build()
            .unwrap();
        let (tx, rx) = mpsc::channel::<()>();
        let fa = a
            .spawn(move || {
                rx.recv().unwrap();
                7usize
            })
            .unwrap();
        let (p, fb) = promise::<usize>();
        let mut it = as_completed([fa, fb], None);
        p.set_result(8).unwrap();
        assert_eq!(it.next().unwrap().unwrap().result().unwrap(), 8);
        tx.send(()).unwrap();
        assert_eq!(it.next().unwrap().unwrap().result().unwrap(), 7);
        assert!(it.next().is_none());
    });
}
