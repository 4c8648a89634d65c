//! No lost wake-ups (issue #11): a signal that is given and at once taken back still wakes
//! every thread that was waiting when it was given.
//!
//! The shape, for each primitive built on the completion latch: waiters block (in the plain
//! wait and in a wait with a 20 s timeout), and only once every one of them sleeps — seen in
//! `/proc/self/task/TID/stat` — the signal comes and is undone at once; every waiter must
//! return, and a timed one must say it was woken, not timed out. Each shape is repeated many
//! times on the same threads. A wait that missed its signal would hang (the watchdog fails the
//! test) or report a time-out after 20 s (the assertion fails).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier as StdBarrier};
use std::thread;
use std::time::Duration;

use common::watchdog_for;
use spindle::futures::{promise, Future};
use spindle::threading::{get_native_id, Barrier, Condition, Event, Timer};
use spindle::Error;

const LONG: Duration = Duration::from_secs(20);
/// The watchdog of each test: comfortably above the rounds' real time, far below one 20 s
/// timeout per round.
const LIMIT: Duration = Duration::from_secs(60);

/// Whether the thread `tid` of this process is asleep (state `S`).
fn asleep(tid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('S'))
    })
}

/// `waiters` threads, each doing `wait(i)` once per round; the pulse comes once they all
/// announced their wait and all sleep, twice in a row (so none sits between the announcement
/// and the wait). `wait` returns whether the waiter was woken (not timed out).
fn rounds(
    waiters: usize,
    rounds: usize,
    wait: impl Fn(usize) -> bool + Send + Sync + 'static,
    mut pulse: impl FnMut(),
) {
    let wait = Arc::new(wait);
    let start = Arc::new(StdBarrier::new(waiters + 1));
    let end = Arc::new(StdBarrier::new(waiters + 1));
    let about_to_wait: Arc<Vec<AtomicBool>> =
        Arc::new((0..waiters).map(|_| AtomicBool::new(false)).collect());
    let tids: Arc<Vec<AtomicU64>> = Arc::new((0..waiters).map(|_| AtomicU64::new(0)).collect());
    let handles: Vec<_> = (0..waiters)
        .map(|i| {
            let (wait, start, end, flags, tids) = (
                Arc::clone(&wait),
                Arc::clone(&start),
                Arc::clone(&end),
                Arc::clone(&about_to_wait),
                Arc::clone(&tids),
            );
            thread::spawn(move || {
                tids[i].store(get_native_id().expect("a native id"), Ordering::SeqCst);
                let mut woken = 0;
                for _ in 0..rounds {
                    start.wait();
                    flags[i].store(true, Ordering::SeqCst);
                    if wait(i) {
                        woken += 1;
                    }
                    end.wait();
                }
                woken
            })
        })
        .collect();
    for _ in 0..rounds {
        start.wait();
        let all_asleep = || {
            about_to_wait.iter().all(|f| f.load(Ordering::SeqCst))
                && tids.iter().all(|t| asleep(t.load(Ordering::SeqCst)))
        };
        while !(all_asleep() && {
            thread::sleep(Duration::from_micros(200));
            all_asleep()
        }) {
            thread::sleep(Duration::from_micros(200));
        }
        for f in about_to_wait.iter() {
            f.store(false, Ordering::SeqCst);
        }
        pulse();
        end.wait();
    }
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), rounds, "waiter {i} missed a pulse");
    }
}

/// Python's promise: ten threads wait on one `Event` (five in `wait()`, five in
/// `wait_timeout(20 s)`); `set(); clear()` wakes all ten, every round.
#[test]
fn an_event_set_clear_pulse_wakes_every_waiter() {
    watchdog_for(LIMIT, || {
        let event = Arc::new(Event::new());
        let e = Arc::clone(&event);
        rounds(
            10,
            100,
            move |i| {
                if i < 5 {
                    e.wait();
                    true
                } else {
                    e.wait_timeout(LONG)
                }
            },
            || {
                event.set();
                event.clear();
            },
        );
        assert!(!event.is_set());
    });
}

/// `notify_all()` under the lock, then the lock taken again at once by the notifier: every
/// waiter (in `wait` and `wait_timeout`) is woken, none reports a time-out.
#[test]
fn a_condition_notify_all_wakes_every_waiter() {
    watchdog_for(LIMIT, || {
        let cond = Arc::new(Condition::new());
        let c = Arc::clone(&cond);
        rounds(
            6,
            100,
            move |i| {
                let _held = c.lock();
                if i % 2 == 0 {
                    c.wait().unwrap();
                    true
                } else {
                    c.wait_timeout(LONG).unwrap()
                }
            },
            || {
                let held = cond.lock();
                cond.notify_all().unwrap();
                drop(held);
                let _again = cond.lock();
            },
        );
    });
}

/// `abort(); reset()` on a barrier with waiters: the reset comes at once, but every waiter
/// was released (with `BrokenBarrier`), and the barrier works again afterwards.
#[test]
fn a_barrier_abort_reset_pulse_releases_every_waiter() {
    watchdog_for(LIMIT, || {
        let waiters = 4;
        // One party more than the waiters: the barrier never fills by itself.
        let barrier = Arc::new(Barrier::new(waiters + 1).unwrap());
        let b = Arc::clone(&barrier);
        rounds(
            waiters,
            100,
            move |_| matches!(b.wait(), Err(Error::BrokenBarrier)),
            || {
                barrier.abort();
                barrier.reset();
            },
        );
        assert!(!barrier.broken());
        // Still a working barrier: one round with every party.
        let b = Arc::new(Barrier::new(2).unwrap());
        let b2 = Arc::clone(&b);
        let t = thread::spawn(move || b2.wait().unwrap());
        b.wait().unwrap();
        t.join().unwrap();
    });
}

/// A future's waiters (plain and timed) all wake when it ends. (A future's end cannot be
/// undone; the next round waits on a fresh future put in its place at once.)
#[test]
fn a_futures_end_wakes_every_waiter() {
    watchdog_for(LIMIT, || {
        let (p0, f0) = promise::<u32>();
        let slot = Arc::new(std::sync::Mutex::new(Arc::new(f0)));
        let mut promise_slot = Some(p0);
        let s = Arc::clone(&slot);
        rounds(
            6,
            100,
            move |i| {
                let f: Arc<Future<u32>> = Arc::clone(&s.lock().unwrap());
                if i % 2 == 0 {
                    f.wait();
                    f.done()
                } else {
                    f.wait_timeout(LONG)
                }
            },
            move || {
                promise_slot.take().unwrap().set_result(7).unwrap();
                let (p, f) = promise::<u32>();
                *slot.lock().unwrap() = Arc::new(f);
                promise_slot = Some(p);
            },
        );
    });
}

/// A timer's `join_timeout` and a thread's (both on the latch of their end) return as soon
/// as the end comes, every time: never a time-out. (Their ends cannot be undone, and only the
/// owner of the handle may wait, so the shape is one waiter and no undo.)
#[test]
fn timer_and_thread_joins_wake_at_the_end() {
    watchdog_for(LIMIT, || {
        for i in 0..200u64 {
            let mut timer = Timer::new(Duration::from_micros(i % 7 * 50), move || i);
            timer.start().unwrap();
            assert_eq!(timer.join_timeout(LONG).unwrap(), Some(i));
            assert!(timer.finished());

            let mut t = spindle::threading::Thread::new(move || i * 2);
            t.start().unwrap();
            assert_eq!(t.join_timeout(LONG).unwrap(), i * 2);
        }
    });
}
