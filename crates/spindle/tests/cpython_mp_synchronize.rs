//! CPython's `Lib/test/_test_multiprocessing.py` (3.11), the process-shared primitives
//! (`_TestLock`, `_TestSemaphore`, `_TestCondition`, `_TestEvent`, `_TestBarrier`), ported to
//! `spindle::multiprocessing::synchronize` with real processes (forkserver children that get
//! the primitives in their arguments, fork children, and threads of this process mixed in, as
//! CPython mixes them). Its own binary: it starts processes.
//!
//! Ported (CPython test -> Rust test):
//!
//! * `_TestLock.test_lock`, `test_lock_context` -> `lock`
//! * `_TestLock.test_rlock` -> `rlock`
//! * `_TestSemaphore.test_semaphore`, `test_bounded_semaphore` -> `semaphore_values`
//! * `_TestSemaphore.test_timeout` -> `semaphore_timeout`
//! * `_TestCondition.test_notify` -> `condition_notify_one_at_a_time`
//! * `_TestCondition.test_notify_all` -> `condition_notify_all`
//! * `_TestCondition.test_notify_n` -> `condition_notify_n`
//! * `_TestCondition.test_timeout` -> `condition_timeout`
//! * `_TestCondition.test_waitfor` -> `condition_wait_for_across_processes`
//! * `_TestCondition.test_waitfor_timeout` -> `condition_wait_for_timeout_across_processes`
//! * `_TestCondition.test_wait_result` -> `condition_wait_result`
//! * `_TestEvent.test_event` -> `event`
//! * `lock_tests.EventTests.test_set_and_clear`, for the process-shared event ->
//!   `event_set_then_clear_wakes_waiters`
//! * `_TestBarrier.test_barrier`, `test_barrier_10` -> `barrier_lockstep`
//! * `_TestBarrier.test_wait_return` -> `barrier_wait_return`
//! * `_TestBarrier.test_abort` -> `barrier_abort`
//! * `_TestBarrier.test_reset` -> `barrier_reset`
//! * `_TestBarrier.test_abort_and_reset` -> `barrier_abort_and_reset`
//! * `_TestBarrier.test_timeout` -> `barrier_timeout`
//! * `_TestBarrier.test_single_thread` -> `barrier_single_party`
//! * `_TestBarrier.test_thousand` -> `barrier_many_passes` (one pipe end, `clone_handle`d for
//!   every child, as CPython pickles one `Connection` to each)
//!
//! Deliberate differences, tested as documented: spindle's process-shared `Lock` belongs to the
//! thread that took it (a second `acquire` by the holder is `WouldDeadlock`, a release by
//! another thread `NotOwner`), where CPython's is a semaphore any process may release; a
//! condition's `notify(n)` may wake more than `n` waiters that were about to sleep (CPython's
//! own docs allow it), so counts after a `notify(n)` are checked as "at least n, and all
//! eventually". Python names missing here: `Barrier(parties, action, timeout)`'s `action` and
//! default `timeout` (spindle's process-shared `Barrier::new` takes only the parties;
//! `_TestBarrier.test_action` and `test_default_timeout` are not ported), `Semaphore.release(n)`
//! of the thread side's `release_n`.

use std::time::{Duration, Instant};

use spindle::multiprocessing::connection::pipe;
use spindle::multiprocessing::queues::Queue;
use spindle::multiprocessing::sharedctypes::Value;
use spindle::multiprocessing::synchronize::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, LockError, RLock, Semaphore,
};
use spindle::multiprocessing::{Builder, Process, StartMethod};
use spindle::threading::Thread;
use spindle::Error;

mod common;
use common::{eventually, serial_watchdog};

const LONG: Duration = Duration::from_secs(20);
const TIMEOUT: Duration = Duration::from_millis(100);
const N: usize = 5;

fn in_process<Args, R, F>(f: F, args: Args) -> Process<R>
where
    F: spindle::multiprocessing::Target<Args, Output = R>,
    Args: serde::Serialize + serde::de::DeserializeOwned,
    R: serde::Serialize + serde::de::DeserializeOwned,
{
    let p = Builder::new()
        .start_method(StartMethod::Forkserver)
        .daemon(true)
        .target(f, args);
    p.start().unwrap();
    p
}

#[test]
fn lock() {
    serial_watchdog(|| {
        let lock = Lock::new().unwrap();
        lock.acquire().unwrap();
        assert!(matches!(lock.try_acquire(), Err(LockError::WouldDeadlock)));
        let l = lock.clone();
        let other = std::thread::spawn(move || matches!(l.try_acquire(), Err(LockError::Timeout)));
        assert!(other.join().unwrap(), "held: another thread cannot take it");
        lock.release().unwrap();
        assert!(matches!(lock.release(), Err(Error::NotOwner)));
        {
            let _g = lock.lock().unwrap();
            assert!(lock.locked());
        }
        assert!(!lock.locked());
    });
}

#[test]
fn rlock() {
    let lock = RLock::new().unwrap();
    for _ in 0..3 {
        lock.acquire().unwrap();
    }
    for _ in 0..3 {
        lock.release().unwrap();
    }
    assert!(matches!(lock.release(), Err(Error::NotOwner)));
    assert!(!lock.locked());
}

fn check_semaphore(acquire: impl Fn() -> bool, release: impl Fn(), value: impl Fn() -> u32) {
    assert_eq!(value(), 2);
    assert!(acquire());
    assert_eq!(value(), 1);
    assert!(acquire());
    assert_eq!(value(), 0);
    assert!(!acquire());
    assert_eq!(value(), 0);
    release();
    assert_eq!(value(), 1);
    release();
    assert_eq!(value(), 2);
}

#[test]
fn semaphore_values() {
    let sem = Semaphore::new(2).unwrap();
    check_semaphore(
        || sem.try_acquire(),
        || sem.release().unwrap(),
        || sem.get_value(),
    );
    sem.release().unwrap();
    assert_eq!(sem.get_value(), 3);
    sem.release().unwrap();
    assert_eq!(sem.get_value(), 4);
    let b = BoundedSemaphore::new(2).unwrap();
    check_semaphore(
        || b.try_acquire(),
        || b.release().unwrap(),
        || b.get_value(),
    );
    assert!(matches!(b.release(), Err(Error::OverRelease)));
    assert_eq!(b.get_value(), 2);
}

#[test]
fn semaphore_timeout() {
    let sem = Semaphore::new(0).unwrap();
    assert!(!sem.try_acquire());
    assert!(!sem.acquire_timeout(Duration::ZERO));
    let t0 = Instant::now();
    assert!(!sem.acquire_timeout(TIMEOUT));
    assert!(t0.elapsed() >= TIMEOUT);
}

/// CPython's `_TestCondition.f`: announce on `sleeping`, wait, announce on `woken`.
fn cond_waiter(cond: Condition, sleeping: Semaphore, woken: Semaphore, timeout_ms: u64) {
    cond.acquire().unwrap();
    sleeping.release().unwrap();
    if timeout_ms == 0 {
        cond.wait().unwrap();
    } else {
        cond.wait_timeout(Duration::from_millis(timeout_ms))
            .unwrap();
    }
    woken.release().unwrap();
    cond.release().unwrap();
}

/// One process and one thread waiting on `cond`, as CPython starts them.
fn start_waiters(
    cond: &Condition,
    sleeping: &Semaphore,
    woken: &Semaphore,
    timeout_ms: u64,
) -> (Process<()>, Thread) {
    let p = in_process(
        cond_waiter,
        (cond.clone(), sleeping.clone(), woken.clone(), timeout_ms),
    );
    let (c, s, w) = (cond.clone(), sleeping.clone(), woken.clone());
    let mut t = Thread::new(move || cond_waiter(c, s, w, timeout_ms));
    t.start().unwrap();
    (p, t)
}

fn notify(cond: &Condition, n: u32) {
    cond.acquire().unwrap();
    cond.notify(n).unwrap();
    cond.release().unwrap();
}

/// Waits until every announced waiter sits in its `wait` (it announces just before: give
/// it a moment), so that a notify reaches sleepers only.
fn settle() {
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn condition_notify_one_at_a_time() {
    serial_watchdog(|| {
        let cond = Condition::new().unwrap();
        let (sleeping, woken) = (Semaphore::new(0).unwrap(), Semaphore::new(0).unwrap());
        let (p, mut t) = start_waiters(&cond, &sleeping, &woken, 0);
        assert!(sleeping.acquire_timeout(LONG) && sleeping.acquire_timeout(LONG));
        settle();
        assert_eq!(woken.get_value(), 0, "nobody woke without a notify");
        notify(&cond, 1);
        assert!(eventually(LONG, || woken.get_value() >= 1));
        notify(&cond, 1);
        assert!(eventually(LONG, || woken.get_value() == 2));
        p.join().unwrap();
        t.join().unwrap();
    });
}

#[test]
fn condition_notify_all() {
    serial_watchdog(|| {
        let cond = Condition::new().unwrap();
        let (sleeping, woken) = (Semaphore::new(0).unwrap(), Semaphore::new(0).unwrap());
        // Waiters that time out.
        let mut waiters: Vec<_> = (0..3)
            .map(|_| start_waiters(&cond, &sleeping, &woken, TIMEOUT.as_millis() as u64))
            .collect();
        for _ in 0..6 {
            assert!(sleeping.acquire_timeout(LONG));
        }
        for _ in 0..6 {
            assert!(woken.acquire_timeout(LONG), "every waiter timed out");
        }
        assert_eq!(woken.get_value(), 0);
        // Waiters without a timeout, all woken by one notify_all.
        waiters.extend((0..3).map(|_| start_waiters(&cond, &sleeping, &woken, 0)));
        for _ in 0..6 {
            assert!(sleeping.acquire_timeout(LONG));
        }
        settle();
        assert_eq!(woken.get_value(), 0);
        cond.acquire().unwrap();
        cond.notify_all().unwrap();
        cond.release().unwrap();
        assert!(eventually(LONG, || woken.get_value() == 6));
        for (p, mut t) in waiters {
            p.join().unwrap();
            t.join().unwrap();
        }
    });
}

#[test]
fn condition_notify_n() {
    serial_watchdog(|| {
        let cond = Condition::new().unwrap();
        let (sleeping, woken) = (Semaphore::new(0).unwrap(), Semaphore::new(0).unwrap());
        let waiters: Vec<_> = (0..3)
            .map(|_| start_waiters(&cond, &sleeping, &woken, 0))
            .collect();
        for _ in 0..6 {
            assert!(sleeping.acquire_timeout(LONG));
        }
        settle();
        assert_eq!(woken.get_value(), 0);
        notify(&cond, 2);
        assert!(eventually(LONG, || woken.get_value() >= 2));
        notify(&cond, 4);
        assert!(eventually(LONG, || woken.get_value() == 6));
        notify(&cond, 3);
        assert_eq!(woken.get_value(), 6, "nothing more to wake");
        for (p, mut t) in waiters {
            p.join().unwrap();
            t.join().unwrap();
        }
    });
}

#[test]
fn condition_timeout() {
    let cond = Condition::new().unwrap();
    cond.acquire().unwrap();
    let t0 = Instant::now();
    assert!(!cond.wait_timeout(TIMEOUT).unwrap());
    assert!(t0.elapsed() >= TIMEOUT);
    cond.release().unwrap();
    // Without the lock: Python's RuntimeError.
    assert!(matches!(
        cond.wait_timeout(TIMEOUT),
        Err(LockError::NotOwner)
    ));
    assert!(matches!(cond.notify(1), Err(LockError::NotOwner)));
}

fn waitfor_child(cond: Condition, state: Value<i32>) -> bool {
    cond.acquire().unwrap();
    state.set(0);
    cond.notify(1).unwrap();
    cond.wait_for(|| state.get() == 4).unwrap();
    let ok = state.get() == 4;
    cond.release().unwrap();
    ok
}

#[test]
fn condition_wait_for_across_processes() {
    serial_watchdog(|| {
        let cond = Condition::new().unwrap();
        let state = Value::new(-1i32).unwrap();
        let p = in_process(waitfor_child, (cond.clone(), state.clone()));
        cond.acquire().unwrap();
        assert!(cond.wait_for_timeout(|| state.get() == 0, LONG).unwrap());
        cond.release().unwrap();
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(10));
            cond.acquire().unwrap();
            state.fetch_add(1);
            cond.notify(1).unwrap();
            cond.release().unwrap();
        }
        assert!(p.join().unwrap());
        assert_eq!(p.exitcode(), Some(0));
    });
}

fn waitfor_timeout_child(cond: Condition, state: Value<i32>, started: Semaphore) -> bool {
    started.release().unwrap();
    cond.acquire().unwrap();
    let t0 = Instant::now();
    let result = cond
        .wait_for_timeout(|| state.get() == 4, Duration::from_millis(100))
        .unwrap();
    let waited = t0.elapsed();
    cond.release().unwrap();
    !result && waited >= Duration::from_millis(100)
}

#[test]
fn condition_wait_for_timeout_across_processes() {
    serial_watchdog(|| {
        let cond = Condition::new().unwrap();
        let state = Value::new(0i32).unwrap();
        let started = Semaphore::new(0).unwrap();
        let p = in_process(
            waitfor_timeout_child,
            (cond.clone(), state.clone(), started.clone()),
        );
        assert!(started.acquire_timeout(LONG));
        // Only three increments: state 4 is never reached.
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(10));
            cond.acquire().unwrap();
            state.fetch_add(1);
            cond.notify(1).unwrap();
            cond.release().unwrap();
        }
        assert!(p.join().unwrap(), "the child timed out, and not early");
    });
}

fn notify_once(cond: Condition) {
    cond.acquire().unwrap();
    cond.notify(1).unwrap();
    cond.release().unwrap();
}

#[test]
fn condition_wait_result() {
    serial_watchdog(|| {
        let cond = Condition::new().unwrap();
        cond.acquire().unwrap();
        assert!(!cond.wait_timeout(Duration::ZERO).unwrap());
        assert!(!cond.wait_timeout(TIMEOUT).unwrap());
        let p = in_process(notify_once, (cond.clone(),));
        assert!(cond.wait_timeout(Duration::from_secs(60)).unwrap());
        cond.release().unwrap();
        p.join().unwrap();
    });
}

fn set_later(event: Event) {
    std::thread::sleep(Duration::from_millis(50));
    event.set();
}

#[test]
fn event() {
    serial_watchdog(|| {
        let event = Event::new().unwrap();
        assert!(!event.is_set());
        assert!(!event.wait_timeout(Duration::ZERO));
        let t0 = Instant::now();
        assert!(!event.wait_timeout(TIMEOUT));
        assert!(t0.elapsed() >= TIMEOUT);
        event.set();
        assert!(event.is_set());
        event.wait();
        assert!(event.wait_timeout(TIMEOUT));
        event.clear();
        assert!(!event.is_set());
        let p = in_process(set_later, (event.clone(),));
        assert!(event.wait_timeout(LONG));
        p.join().unwrap();
        assert!(format!("{event:?}").contains("true"), "{event:?}");
    });
}

fn wait_long(ready: Event, event: Event) -> bool {
    ready.set();
    event.wait_timeout(LONG)
}

#[test]
fn event_set_then_clear_wakes_waiters() {
    // `lock_tests.EventTests.test_set_and_clear` (gh-57711) with a waiting process and a
    // waiting thread: one `set(); clear()` pulse while they wait, and both say true.
    serial_watchdog(|| {
        let event = Event::new().unwrap();
        let (ready_p, ready_t) = (Event::new().unwrap(), Event::new().unwrap());
        let p = in_process(wait_long, (ready_p.clone(), event.clone()));
        let (r, e) = (ready_t.clone(), event.clone());
        let mut t = Thread::new(move || wait_long(r, e));
        t.start().unwrap();
        assert!(ready_p.wait_timeout(LONG) && ready_t.wait_timeout(LONG));
        std::thread::sleep(Duration::from_millis(100)); // into their waits (CPython sleeps too)
        event.set();
        event.clear();
        assert!(p.join().unwrap(), "the process saw the pulse");
        assert!(t.join().unwrap(), "the thread saw the pulse");
        // `wait()` without a timeout returns on a pulse too.
        let (r, e) = (ready_t.clone(), event.clone());
        ready_t.clear();
        let mut t = Thread::new(move || {
            r.set();
            e.wait()
        });
        t.start().unwrap();
        assert!(ready_t.wait_timeout(LONG));
        std::thread::sleep(Duration::from_millis(100));
        event.set();
        event.clear();
        t.join_timeout(LONG).expect("wait() returned on the pulse");
    });
}

/// The body every party runs: its own process for `N - 1` of them, this thread for one.
/// (`body` must be a named function: a process target.)
fn barrier_parties<F, A>(body: F, args: impl Fn() -> A)
where
    F: Fn(A) + Copy + spindle::multiprocessing::Target<(A,), Output = ()>,
    A: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let procs: Vec<Process<()>> = (0..N - 1).map(|_| in_process(body, (args(),))).collect();
    body(args());
    for p in procs {
        p.join().unwrap();
    }
}

fn multipass((barrier, r0, r1, passes): (Barrier, Value<u32>, Value<u32>, u32)) {
    let m = barrier.parties() as u32;
    for i in 0..passes {
        r0.fetch_add(1);
        assert_eq!(r1.get(), i * m);
        barrier.wait_timeout(LONG).unwrap();
        r1.fetch_add(1);
        assert_eq!(r0.get(), (i + 1) * m);
        barrier.wait_timeout(LONG).unwrap();
    }
    assert!(!barrier.broken());
}

#[test]
fn barrier_lockstep() {
    serial_watchdog(|| {
        for passes in [1, 10] {
            let b = Barrier::new(N as u32).unwrap();
            let (r0, r1) = (Value::new(0u32).unwrap(), Value::new(0u32).unwrap());
            barrier_parties(multipass, || (b.clone(), r0.clone(), r1.clone(), passes));
            assert_eq!(b.n_waiting(), 0);
        }
    });
}

fn wait_return((barrier, q): (Barrier, Queue<usize>)) {
    q.put(barrier.wait_timeout(LONG).unwrap()).unwrap();
}

#[test]
fn barrier_wait_return() {
    serial_watchdog(|| {
        let b = Barrier::new(N as u32).unwrap();
        let q = Queue::new().unwrap();
        barrier_parties(wait_return, || (b.clone(), q.clone_handle().unwrap()));
        let mut got: Vec<usize> = (0..N).map(|_| q.get_timeout(LONG).unwrap()).collect();
        got.sort();
        assert_eq!(got, (0..N).collect::<Vec<_>>());
    });
}

/// CPython's `_test_abort_f`; `results`: [passed, broken].
fn abort_f((barrier, passed, broken): (Barrier, Value<u32>, Value<u32>)) {
    let r = (|| {
        if barrier.wait_timeout(LONG)? == N / 2 {
            barrier.abort();
            return Ok(true);
        }
        barrier.wait_timeout(LONG)?;
        Ok(false)
    })();
    match r {
        Ok(true) => {}
        Ok(false) => {
            passed.fetch_add(1);
        }
        Err(Error::BrokenBarrier) => {
            broken.fetch_add(1);
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn barrier_abort() {
    serial_watchdog(|| {
        let b = Barrier::new(N as u32).unwrap();
        let (passed, broken) = (Value::new(0u32).unwrap(), Value::new(0u32).unwrap());
        barrier_parties(abort_f, || (b.clone(), passed.clone(), broken.clone()));
        assert_eq!(passed.get(), 0);
        assert_eq!(broken.get(), N as u32 - 1);
        assert!(b.broken());
    });
}

fn reset_f((barrier, passed, broken, again): (Barrier, Value<u32>, Value<u32>, Value<u32>)) {
    let i = barrier.wait_timeout(LONG).unwrap();
    if i == N / 2 {
        assert!(eventually(LONG, || barrier.n_waiting() >= N - 1));
        barrier.reset();
    } else {
        match barrier.wait_timeout(LONG) {
            Ok(_) => passed.fetch_add(1),
            Err(Error::BrokenBarrier) => broken.fetch_add(1),
            Err(e) => panic!("{e}"),
        };
    }
    barrier.wait_timeout(LONG).unwrap();
    again.fetch_add(1);
}

#[test]
fn barrier_reset() {
    serial_watchdog(|| {
        let b = Barrier::new(N as u32).unwrap();
        let v = || Value::new(0u32).unwrap();
        let (passed, broken, again) = (v(), v(), v());
        barrier_parties(reset_f, || {
            (b.clone(), passed.clone(), broken.clone(), again.clone())
        });
        assert_eq!(
            (passed.get(), broken.get(), again.get()),
            (0, N as u32 - 1, N as u32)
        );
    });
}

fn abort_and_reset_f(
    (barrier, barrier2, passed, broken, again): (
        Barrier,
        Barrier,
        Value<u32>,
        Value<u32>,
        Value<u32>,
    ),
) {
    abort_f((barrier.clone(), passed, broken));
    // Everyone has left the barrier before the reset, and nobody enters before it.
    if barrier2.wait_timeout(LONG).unwrap() == N / 2 {
        barrier.reset();
    }
    barrier2.wait_timeout(LONG).unwrap();
    barrier.wait_timeout(LONG).unwrap();
    again.fetch_add(1);
}

#[test]
fn barrier_abort_and_reset() {
    serial_watchdog(|| {
        let (b, b2) = (
            Barrier::new(N as u32).unwrap(),
            Barrier::new(N as u32).unwrap(),
        );
        let v = || Value::new(0u32).unwrap();
        let (passed, broken, again) = (v(), v(), v());
        barrier_parties(abort_and_reset_f, || {
            (
                b.clone(),
                b2.clone(),
                passed.clone(),
                broken.clone(),
                again.clone(),
            )
        });
        assert_eq!(
            (passed.get(), broken.get(), again.get()),
            (0, N as u32 - 1, N as u32)
        );
    });
}

fn timeout_f((barrier, broken): (Barrier, Value<u32>)) {
    let i = barrier.wait_timeout(LONG).unwrap();
    if i == N / 2 {
        // One party is late: it comes once the others broke the barrier.
        assert!(eventually(LONG, || barrier.broken()));
    }
    if let Err(Error::BrokenBarrier) = barrier.wait_timeout(Duration::from_millis(100)) {
        broken.fetch_add(1);
    }
}

#[test]
fn barrier_timeout() {
    serial_watchdog(|| {
        let b = Barrier::new(N as u32).unwrap();
        let broken = Value::new(0u32).unwrap();
        barrier_parties(timeout_f, || (b.clone(), broken.clone()));
        assert_eq!(broken.get(), b.parties() as u32);
    });
}

#[test]
fn barrier_single_party() {
    let b = Barrier::new(1).unwrap();
    assert_eq!(b.wait().unwrap(), 0);
    assert_eq!(b.wait().unwrap(), 0);
    assert!(matches!(Barrier::new(0), Err(Error::InvalidArgument(_))));
}

fn thousand_f(
    barrier: Barrier,
    passes: u32,
    conn: spindle::multiprocessing::Connection<u32, ()>,
    lock: Lock,
) {
    for i in 0..passes {
        barrier.wait_timeout(LONG).unwrap();
        let _g = lock.lock().unwrap();
        conn.send(&i).unwrap();
    }
}

#[test]
fn barrier_many_passes() {
    serial_watchdog(|| {
        const PASSES: u32 = 100;
        let barrier = Barrier::new(N as u32).unwrap();
        let lock = Lock::new().unwrap();
        let (conn, child_conn) = pipe::<(), u32>(false).unwrap();
        let procs: Vec<Process<()>> = (0..N)
            .map(|_| {
                in_process(
                    thousand_f,
                    (
                        barrier.clone(),
                        PASSES,
                        child_conn.clone_handle().unwrap(),
                        lock.clone(),
                    ),
                )
            })
            .collect();
        drop(child_conn);
        for i in 0..PASSES {
            for _ in 0..N {
                assert_eq!(conn.recv_timeout(LONG).unwrap(), i);
            }
        }
        procs.into_iter().for_each(|p| p.join().unwrap());
        assert!(
            conn.recv().is_err(),
            "every child's handle is gone: end of stream"
        );
    });
}
