//! CPython's `Lib/test/_test_multiprocessing.py` (3.11), the pool part (`_TestPool`,
//! `_TestPoolWorkerErrors`, `_TestPoolWorkerLifetime`, `TestInitializers.test_pool_initializer`),
//! ported to `spindle::multiprocessing::Pool` (under fork, the cheapest start; the suites of
//! `pool_conformance.rs` cover every method) and, for the `ThreadsMixin` instance, to
//! `multiprocessing::dummy::Pool`. Its own binary: it forks.
//!
//! Ported (CPython test -> Rust test):
//!
//! * `_TestPool.test_apply` -> `apply`
//! * `_TestPool.test_map`, `test_map_chunksize` -> `map_and_chunksize`
//! * `_TestPool.test_starmap`, `test_starmap_async` -> `starmap`
//! * `_TestPool.test_map_async`, `test_map_async_callbacks` -> `map_async_and_callbacks`
//! * `_TestPool.test_map_unplicklable` -> `map_of_an_argument_that_does_not_encode`
//! * `_TestPool.test_map_handle_iterable_exception`, `test_imap_handle_iterable_exception`,
//!   `test_imap_unordered_handle_iterable_exception` -> `a_panicking_input_leaves_the_pool_usable`
//! * `_TestPool.test_async`, `test_async_timeout` -> `async_result_and_timeout`,
//!   `successful_after_get` (ignored: a pool bug)
//! * `_TestPool.test_imap` -> `imap`
//! * `_TestPool.test_imap_unordered` -> `imap_unordered`
//! * `_TestPool.test_make_pool` -> `make_pool`
//! * `_TestPool.test_terminate` -> `terminate_ends_pending_work`
//! * `_TestPool.test_empty_iterable` -> `empty_iterable`
//! * `_TestPool.test_context`, `test_enter` -> `closed_or_terminated_pool_refuses_work`
//! * `_TestPool.test_traceback` -> `traceback_reaches_the_caller`
//! * `_TestPool.test_map_no_failfast` -> `map_waits_for_every_item`
//! * `_TestPoolWorkerErrors.test_async_error_callback` -> `async_error_callback`
//! * `_TestPoolWorkerErrors.test_unpickleable_result` -> `unencodable_results_lose_no_worker`
//! * `_TestPoolWorkerLifetime.test_pool_worker_lifetime` -> `worker_lifetime`
//! * `_TestPoolWorkerLifetime.test_pool_worker_lifetime_early_close` -> `worker_lifetime_early_close`
//! * `_TestPoolWorkerLifetime.test_pool_maxtasksperchild_invalid` -> `maxtasksperchild_invalid`
//! * `TestInitializers.test_pool_initializer` -> `initializer`
//! * `_TestPool` under `ThreadsMixin` (`multiprocessing.dummy`), `test_wrapped_exception` ->
//!   `dummy_pool_basics`
//!
//! Deliberate differences, tested as documented: `AsyncResult::get` hands the value out once;
//! a pool's input iterator runs on the caller's thread, so a panic in it unwinds there (the
//! Rust form of CPython's `SayWhenError` reaching the caller); after `close`, a call returns
//! `Error::Shutdown` (CPython's `ValueError: Pool not running`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};
use spindle::multiprocessing::{dummy, Pool, StartMethod};
use spindle::Error;

mod common;
use common::serial_watchdog;

#[path = "common/pool.rs"]
#[macro_use]
mod pool_common;
use pool_common::Scratch;

const LONG: Duration = Duration::from_secs(20);

fn pool(n: usize) -> Pool {
    Pool::builder()
        .processes(n)
        .start_method(StartMethod::Fork)
        .build()
        .unwrap()
}

fn sqr(x: i64) -> i64 {
    x * x
}

fn sqr_slowly(x: i64, ms: u64) -> i64 {
    std::thread::sleep(Duration::from_millis(ms));
    x * x
}

fn mul(a: i64, b: i64) -> i64 {
    a * b
}

fn to_int(s: String) -> i64 {
    s.parse().expect("ValueError: invalid literal for int()")
}

fn raising() -> u32 {
    panic!("KeyError: key")
}

#[test]
fn apply() {
    serial_watchdog(|| {
        let p = pool(4);
        assert_eq!(p.apply(sqr, (5,)).unwrap(), 25);
        assert_eq!(p.apply(sqr_slowly, (3, 0)).unwrap(), 9);
    });
}

#[test]
fn map_and_chunksize() {
    serial_watchdog(|| {
        let p = pool(4);
        assert_eq!(
            p.map(sqr, 0..10).unwrap(),
            (0..10).map(sqr).collect::<Vec<_>>()
        );
        assert_eq!(
            p.call().chunksize(20).map(sqr, 0..100).unwrap(),
            (0..100).map(sqr).collect::<Vec<_>>()
        );
        // An empty input with a chunk size does not stall.
        let mut r = p.call().chunksize(1).map_async(sqr, Vec::new()).unwrap();
        assert_eq!(r.get_timeout(LONG).unwrap(), Vec::<i64>::new());
        assert!(matches!(
            p.call().chunksize(0).map(sqr, 0..3),
            Err(Error::InvalidArgument(_))
        ));
    });
}

#[test]
fn starmap() {
    serial_watchdog(|| {
        let p = pool(4);
        let tuples: Vec<(i64, i64)> = (0..10).zip((0..10).rev()).collect();
        let want: Vec<i64> = tuples.iter().map(|&(a, b)| a * b).collect();
        assert_eq!(p.starmap(mul, tuples.clone()).unwrap(), want);
        let tuples: Vec<(i64, i64)> = (0..100).zip((0..100).rev()).collect();
        let want: Vec<i64> = tuples.iter().map(|&(a, b)| a * b).collect();
        assert_eq!(
            p.call().chunksize(20).starmap(mul, tuples.clone()).unwrap(),
            want
        );
        assert_eq!(p.starmap_async(mul, tuples).unwrap().get().unwrap(), want);
    });
}

#[test]
fn map_async_and_callbacks() {
    serial_watchdog(|| {
        let p = pool(4);
        assert_eq!(
            p.map_async(sqr, 0..10).unwrap().get().unwrap(),
            (0..10).map(sqr).collect::<Vec<_>>()
        );
        let calls = Arc::new(Mutex::new(Vec::new()));
        let r = p.map_async(to_int, vec!["1".to_string()]).unwrap();
        let (c1, c2) = (Arc::clone(&calls), Arc::clone(&calls));
        r.on_success(move |v| c1.lock().unwrap().push(format!("ok {v:?}")));
        r.on_error(move |e| c2.lock().unwrap().push(format!("err {e}")));
        r.wait();
        assert_eq!(*calls.lock().unwrap(), ["ok [1]"]);
        let r = p.map_async(to_int, vec!["a".to_string()]).unwrap();
        let (c1, c2) = (Arc::clone(&calls), Arc::clone(&calls));
        r.on_success(move |v| c1.lock().unwrap().push(format!("ok {v:?}")));
        r.on_error(move |e| {
            assert!(e.as_task().is_some_and(|t| t.is_panic()));
            c2.lock().unwrap().push("err".into())
        });
        r.wait();
        assert_eq!(*calls.lock().unwrap(), ["ok [1]", "err"]);
    });
}

/// CPython's `A` whose `__reduce__` raises.
#[derive(Clone, serde::Deserialize)]
struct CannotEncode;

impl Serialize for CannotEncode {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("cannot pickle"))
    }
}

fn takes(_: CannotEncode) -> i64 {
    0
}

#[test]
fn map_of_an_argument_that_does_not_encode() {
    serial_watchdog(|| {
        let p = pool(2);
        let e = p.map(takes, vec![CannotEncode; 10]).unwrap_err();
        assert!(e.to_string().contains("cannot be encoded"), "{e}");
        assert_eq!(
            p.map(sqr, 0..3).unwrap(),
            [0, 1, 4],
            "no hang, and the pool goes on"
        );
    });
}

/// CPython's `exception_throwing_generator`: yields `0..total`, panicking at `when`.
fn throwing(total: i64, when: i64) -> impl Iterator<Item = i64> + Send + 'static {
    (0..total).inspect(move |&i| {
        if i == when {
            panic!("SayWhenError");
        }
    })
}

fn unwinds<T>(f: impl FnOnce() -> T) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err()
}

#[test]
fn a_panicking_input_leaves_the_pool_usable() {
    serial_watchdog(|| {
        let p = pool(2);
        // Raised at the very first item, twice (reentrant), and later on.
        assert!(unwinds(|| p.call().chunksize(1).map(sqr, throwing(1, 0))));
        assert!(unwinds(|| p.call().chunksize(1).map(sqr, throwing(1, 0))));
        assert!(unwinds(|| p.call().chunksize(1).map(sqr, throwing(10, 3))));
        assert_eq!(p.map(sqr, 0..4).unwrap(), [0, 1, 4, 9]);

        // The input is pulled a window ahead, from `imap` itself on: the panic unwinds from
        // whichever call pulled the item (CPython raises it at that item's `next`). What came
        // before it is right.
        let mut got = Vec::new();
        assert!(unwinds(|| {
            let it = p.call().chunksize(1).imap(sqr, throwing(10, 3)).unwrap();
            for v in it {
                got.push(v.unwrap());
            }
        }));
        assert!(
            got.len() <= 3 && got.iter().zip([0, 1, 4]).all(|(a, b)| *a == b),
            "{got:?}"
        );
        assert!(unwinds(|| {
            let it = p
                .call()
                .chunksize(2)
                .imap_unordered(sqr, throwing(20, 7))
                .unwrap();
            it.for_each(drop);
        }));
        assert_eq!(
            p.map(sqr, 0..4).unwrap(),
            [0, 1, 4, 9],
            "the pool still serves"
        );
    });
}

#[test]
fn async_result_and_timeout() {
    serial_watchdog(|| {
        let p = pool(3);
        let t0 = Instant::now();
        let r = p.apply_async(sqr_slowly, (7, 50)).unwrap();
        assert!(
            matches!(r.successful(), Err(Error::InvalidState(_))),
            "not ready yet"
        );
        assert_eq!(r.get().unwrap(), 49);
        assert!(t0.elapsed() >= Duration::from_millis(50));

        let mut r = p.apply_async(sqr_slowly, (6, 500)).unwrap();
        let t0 = Instant::now();
        assert!(matches!(
            r.get_timeout(Duration::from_millis(50)),
            Err(Error::Timeout)
        ));
        assert!(t0.elapsed() >= Duration::from_millis(50));
        assert!(!r.ready());
        // Nothing is lost: the value is there later.
        assert!(r.wait_timeout(LONG));
        assert!(r.ready() && r.successful().unwrap());
        assert_eq!(r.get_timeout(LONG).unwrap(), 36);
        assert!(matches!(
            r.get_timeout(Duration::ZERO),
            Err(Error::InvalidState(_))
        ));
    });
}

#[test]
fn successful_after_get() {
    serial_watchdog(|| {
        let p = pool(1);
        let mut r = p.apply_async(sqr, (6,)).unwrap();
        assert_eq!(r.get_timeout(LONG).unwrap(), 36);
        // CPython's `successful()` stays True after `get()`.
        assert!(r.successful().unwrap());
    });
}

#[test]
fn imap() {
    serial_watchdog(|| {
        let p = pool(4);
        let all: Vec<i64> = p.imap(sqr, 0..10).unwrap().map(Result::unwrap).collect();
        assert_eq!(all, (0..10).map(sqr).collect::<Vec<_>>());
        let mut it = p.imap(sqr, 0..10).unwrap();
        for i in 0..10 {
            assert_eq!(it.next().unwrap().unwrap(), i * i);
        }
        assert!(it.next().is_none());
        let mut it = p.call().chunksize(100).imap(sqr, 0..1000).unwrap();
        for i in 0..1000 {
            assert_eq!(it.next().unwrap().unwrap(), i * i);
        }
        assert!(it.next().is_none());
    });
}

#[test]
fn imap_unordered() {
    serial_watchdog(|| {
        let p = pool(4);
        let mut got: Vec<i64> = p
            .imap_unordered(sqr, 0..10)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        got.sort();
        assert_eq!(got, (0..10).map(sqr).collect::<Vec<_>>());
        let mut got: Vec<i64> = p
            .call()
            .chunksize(100)
            .imap_unordered(sqr, 0..1000)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        got.sort();
        assert_eq!(got, (0..1000).map(sqr).collect::<Vec<_>>());
    });
}

#[test]
fn make_pool() {
    serial_watchdog(|| {
        assert!(matches!(Pool::new(0), Err(Error::InvalidArgument(_))));
        let p = pool(3);
        assert_eq!(p.processes(), 3);
        assert_eq!(p.pids().len(), 3);
        p.close();
        p.join().unwrap();
    });
}

#[test]
fn terminate_ends_pending_work() {
    serial_watchdog(|| {
        let p = pool(3);
        let r = p
            .call()
            .chunksize(1)
            .map_async(
                sqr_pair,
                (0..10_000).map(|i| (i, 60_000)).collect::<Vec<_>>(),
            )
            .map(|_| ());
        let pids = p.pids();
        p.terminate();
        p.join().unwrap();
        for pid in pids {
            assert!(!common::running(pid), "worker {pid} is gone");
        }
        drop(r);
    });
}

fn sqr_pair((x, ms): (i64, u64)) -> i64 {
    sqr_slowly(x, ms)
}

#[test]
fn empty_iterable() {
    serial_watchdog(|| {
        let p = pool(1);
        assert_eq!(p.map(sqr, Vec::new()).unwrap(), Vec::<i64>::new());
        assert_eq!(p.imap(sqr, Vec::new()).unwrap().count(), 0);
        assert_eq!(p.imap_unordered(sqr, Vec::new()).unwrap().count(), 0);
        assert_eq!(
            p.map_async(sqr, Vec::new()).unwrap().get().unwrap(),
            Vec::<i64>::new()
        );
        p.close();
        p.join().unwrap();
    });
}

#[test]
fn closed_or_terminated_pool_refuses_work() {
    serial_watchdog(|| {
        let p = pool(2);
        let r = p.map_async(sqr, 0..10).unwrap();
        assert_eq!(r.get().unwrap(), (0..10).map(sqr).collect::<Vec<_>>());
        p.close();
        assert!(matches!(p.map_async(sqr, 0..10), Err(Error::Shutdown)));
        p.join().unwrap();
        let p = pool(1);
        assert!(
            matches!(p.join(), Err(Error::InvalidState(_))),
            "join needs close first"
        );
        p.terminate();
        assert!(matches!(p.map(sqr, 0..1), Err(Error::Shutdown)));
        p.join().unwrap();
    });
}

#[test]
fn traceback_reaches_the_caller() {
    serial_watchdog(|| {
        let p = pool(1);
        let e = p.apply(raising, ()).unwrap_err();
        let t = e.as_task().expect("a task error");
        assert!(t.is_panic());
        assert_eq!(t.panic_message(), Some("KeyError: key"));
        assert!(t
            .panic()
            .and_then(|r| r.location())
            .is_some_and(|l| l.contains("cpython_mp_pool.rs")));
        assert!(t.pid().is_some_and(|pid| pid != std::process::id()));
    });
}

fn fail_fast_or_mark(i: i64, dir: String) -> i64 {
    if i == 0 {
        panic!("ValueError: large");
    }
    std::thread::sleep(Duration::from_millis(100));
    std::fs::write(format!("{dir}/done"), b"").unwrap();
    i
}

#[test]
fn map_waits_for_every_item() {
    serial_watchdog(|| {
        let dir = Scratch::new("failfast");
        let p = pool(2);
        let e = p
            .starmap(fail_fast_or_mark, [(0, dir.path()), (1, dir.path())])
            .unwrap_err();
        assert!(
            e.as_task()
                .is_some_and(|t| t.is_panic() && t.task() == Some(0)),
            "{e}"
        );
        assert_eq!(
            dir.count(),
            1,
            "the other item ran to its end before map returned"
        );
        p.close();
        p.join().unwrap();
    });
}

#[test]
fn async_error_callback() {
    serial_watchdog(|| {
        let p = pool(2);
        let seen = Arc::new(Mutex::new(None));
        let r = p.apply_async(raising, ()).unwrap();
        let s = Arc::clone(&seen);
        r.on_error(move |e| *s.lock().unwrap() = Some(e.to_string()));
        assert!(r.get().is_err());
        let seen = seen
            .lock()
            .unwrap()
            .clone()
            .expect("the error callback ran");
        assert!(seen.contains("KeyError: key"), "{seen}");
        p.close();
        p.join().unwrap();
    });
}

/// A value whose encoding fails (CPython's `lambda: 42` as a result).
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("cannot pickle a lambda"))
    }
}

impl<'de> serde::Deserialize<'de> for Unencodable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d).map(|()| Unencodable)
    }
}

fn unencodable_result() -> Unencodable {
    Unencodable
}

#[test]
fn unencodable_results_lose_no_worker() {
    serial_watchdog(|| {
        let p = pool(2);
        let pids = p.pids();
        for _ in 0..20 {
            let seen = Arc::new(Mutex::new(None));
            let r = p.apply_async(unencodable_result, ()).unwrap();
            let s = Arc::clone(&seen);
            r.on_error(move |e| *s.lock().unwrap() = Some(e.to_string()));
            let e = r.get().map(|_| ()).unwrap_err();
            assert!(e.to_string().contains("cannot be encoded"), "{e}");
            assert!(seen.lock().unwrap().is_some());
        }
        assert_eq!(p.pids(), pids, "no worker was lost to an encoding error");
        assert_eq!(p.worker_starts(), 2);
        p.close();
        p.join().unwrap();
    });
}

#[test]
fn worker_lifetime() {
    serial_watchdog(|| {
        let p = Pool::builder()
            .processes(3)
            .start_method(StartMethod::Fork)
            .maxtasksperchild(10)
            .build()
            .unwrap();
        let original = p.pids();
        assert_eq!(original.len(), 3);
        let results: Vec<_> = (0..100)
            .map(|i| p.apply_async(sqr, (i,)).unwrap())
            .collect();
        for (j, r) in results.into_iter().enumerate() {
            assert_eq!(r.get().unwrap(), sqr(j as i64));
        }
        assert!(p.worker_starts() > 3, "workers were replaced");
        let mut now = p.pids();
        let mut before = original.clone();
        now.sort();
        before.sort();
        assert_ne!(now, before);
        p.close();
        p.join().unwrap();
    });
}

#[test]
fn worker_lifetime_early_close() {
    serial_watchdog(|| {
        let p = Pool::builder()
            .processes(3)
            .start_method(StartMethod::Fork)
            .maxtasksperchild(1)
            .build()
            .unwrap();
        let results: Vec<_> = (0..6)
            .map(|i| p.apply_async(sqr_slowly, (i, 30)).unwrap())
            .collect();
        p.close();
        p.join().unwrap();
        for (j, r) in results.into_iter().enumerate() {
            assert_eq!(r.get().unwrap(), sqr(j as i64));
        }
    });
}

#[test]
fn maxtasksperchild_invalid() {
    let e = Pool::builder()
        .processes(3)
        .maxtasksperchild(0)
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
}

static NS_TEST: AtomicUsize = AtomicUsize::new(0);

fn init_ns(add: usize) {
    NS_TEST.fetch_add(add, Ordering::SeqCst);
}

fn read_ns(_: ()) -> usize {
    NS_TEST.load(Ordering::SeqCst)
}

#[test]
fn initializer() {
    serial_watchdog(|| {
        let p = Pool::builder()
            .processes(2)
            .start_method(StartMethod::Fork)
            .initializer(init_ns, (1,))
            .build()
            .unwrap();
        let seen = p.map(read_ns, vec![(); 8]).unwrap();
        assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
        assert_eq!(NS_TEST.load(Ordering::SeqCst), 0, "not in this process");
        p.close();
        p.join().unwrap();
    });
}

#[test]
fn dummy_pool_basics() {
    serial_watchdog(|| {
        let p = dummy::Pool::new(4).unwrap();
        assert_eq!(p.apply(|x: i64| x * x, (5,)).unwrap(), 25);
        assert_eq!(
            p.map(|x: i64| x * x, 0..10).unwrap(),
            (0..10).map(sqr).collect::<Vec<_>>()
        );
        let mut got: Vec<i64> = p
            .imap_unordered(|x: i64| x * x, 0..10)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        got.sort();
        assert_eq!(got, (0..10).map(sqr).collect::<Vec<_>>());
        let mut r = p
            .apply_async(
                || {
                    std::thread::sleep(Duration::from_millis(300));
                    6 * 6
                },
                (),
            )
            .unwrap();
        assert!(matches!(
            r.get_timeout(Duration::from_millis(20)),
            Err(Error::Timeout)
        ));
        assert_eq!(r.get_timeout(LONG).unwrap(), 36);
        // Issue #20980: the panic is not wrapped in a remote error.
        let e = p
            .apply(|| -> u8 { panic!("RuntimeError: foo") }, ())
            .unwrap_err();
        assert_eq!(
            e.as_task().and_then(|t| t.panic_message()),
            Some("RuntimeError: foo")
        );
        assert!(unwinds(|| p
            .call()
            .chunksize(1)
            .map(|x: i64| x, throwing(10, 3))));
        assert_eq!(p.map(|x: i64| x + 1, 0..3).unwrap(), [1, 2, 3]);
        p.close();
        assert!(matches!(p.map(|x: i64| x, 0..1), Err(Error::Shutdown)));
        p.join().unwrap();
        assert!(matches!(
            dummy::Pool::new(0),
            Err(Error::InvalidArgument(_))
        ));
    });
}
