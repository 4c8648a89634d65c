//! CPython's `Lib/test/test_threading.py` (3.11), ported to `spindle::threading`: the
//! behaviour of `Thread`, the module functions and `Timer`. (The primitives' tests that
//! `test_threading.py` takes from `lock_tests.py` are in `cpython_lock_tests.rs`.)
//!
//! Ported (CPython test -> Rust test):
//!
//! * `ThreadTests.test_name` -> `thread_names`
//! * `ThreadTests.test_args_argument` -> `thread_arguments_are_captures`
//! * `ThreadTests.test_various_ops` (+ `_small_stack`, `_large_stack`) -> `various_ops`,
//!   `various_ops_small_stack`, `various_ops_large_stack`
//! * `ThreadTests.test_ident_of_no_threading_threads`, `test_foreign_thread` -> `foreign_thread_has_an_identity`
//! * `ThreadTests.test_enumerate_after_join` -> `enumerate_after_join`
//! * `ThreadTests.test_repr_daemon`, `test_daemon_param` -> `daemon_flag`
//! * `ThreadTests.test_main_thread` -> `main_thread_seen_from_another_thread`
//! * `ThreadTests.test_repr_stopped` -> `debug_says_started_then_stopped`
//! * `ThreadTests.test_BoundedSemaphore_limit` -> `bounded_semaphore_limit`
//! * `ThreadTests.test_leak_without_join` -> `dropping_an_unjoined_thread_leaks_nothing`
//! * `ThreadJoinOnShutdown` (a non-daemon thread is waited for) -> `dropping_a_non_daemon_handle_waits`
//! * `ThreadingExceptionTests.test_start_thread_again` -> `start_twice`
//! * `ThreadingExceptionTests.test_joining_current_thread` -> `join_current_thread`
//! * `ThreadingExceptionTests.test_joining_inactive_thread` -> `join_before_start`
//! * `ThreadingExceptionTests.test_releasing_unacquired_lock` -> `release_unacquired_lock`
//! * `ThreadingExceptionTests.test_print_exception` / `ExceptHookTests.test_excepthook`
//!   (an exception in a thread reaches whoever joins it) -> `panic_in_thread_reaches_join`
//! * `Thread.join(timeout)` + `is_alive()` (`test_various_ops`, `lock_tests`) -> `join_timeout_then_join`
//! * `TimerTests.test_init_immutable_default_args` -> `timers_fire_once_each`
//! * `Timer.cancel` (`threading` docs, `test_threading`'s `Timer` uses) -> `timer_cancel_before_and_after`
//!
//! Not ported: what needs the interpreter (`_PyThreadState_SetAsyncExc`, tracing, finalizers,
//! subinterpreters, fork-and-`os._exit` plumbing), `test_daemonize_active_thread` (the daemon
//! flag is a builder setting: setting it on a started thread does not compile), and
//! `test_recursion_limit` (Rust cannot recover from a stack overflow: see
//! `peer_rayon_crash.rs`). CPython names a default thread `Thread-N (target)`; spindle names
//! it `Thread-N`, since a closure has no name.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spindle::threading::{
    current_thread, enumerate, get_ident, get_native_id, main_thread, BoundedSemaphore, Event,
    Lock, RLock, Thread, Timer,
};
use spindle::Error;

mod common;
use common::{eventually, watchdog};

const LONG: Duration = Duration::from_secs(20);

#[test]
fn thread_names() {
    let t = Thread::builder().name("myname1").target(|| ()).unwrap();
    assert_eq!(t.name(), "myname1");
    let t = Thread::builder()
        .name(123.to_string())
        .target(|| ())
        .unwrap();
    assert_eq!(t.name(), "123");
    let a = Thread::new(|| ());
    let b = Thread::new(|| ());
    for t in [&a, &b] {
        let n = t.name().strip_prefix("Thread-").expect("Thread-N");
        assert!(n.parse::<u64>().is_ok(), "{}", t.name());
    }
    assert_ne!(a.name(), b.name());
    assert!(matches!(
        Thread::builder().name("a\0b").target(|| ()),
        Err(Error::InvalidArgument(_))
    ));
    // The name reaches the OS thread and current_thread().
    let mut t = Thread::builder()
        .name("named")
        .target(|| {
            (
                current_thread().name().to_owned(),
                std::thread::current().name().map(str::to_owned),
            )
        })
        .unwrap();
    t.start().unwrap();
    assert_eq!(t.join().unwrap(), ("named".into(), Some("named".into())));
}

#[test]
fn thread_arguments_are_captures() {
    watchdog(|| {
        let mut a = Thread::new({
            let v = vec![1];
            move || v
        });
        let mut b = Thread::new({
            let s = (String::from("str"),);
            move || s
        });
        let mut c = Thread::new({
            let v = vec![(1,)];
            move || v
        });
        a.start().unwrap();
        b.start().unwrap();
        c.start().unwrap();
        assert_eq!(a.join().unwrap(), [1]);
        assert_eq!(b.join().unwrap(), ("str".to_owned(),));
        assert_eq!(c.join().unwrap(), [(1,)]);
    });
}

/// `test_various_ops`: 10 threads, at most 3 inside a bounded semaphore at once, a running
/// count kept under an `RLock`.
fn run_various_ops(stack: Option<usize>) {
    let sema = Arc::new(BoundedSemaphore::new(3));
    let mutex = Arc::new(RLock::new());
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for i in 0..10 {
        let (sema, mutex, running, most) = (
            Arc::clone(&sema),
            Arc::clone(&mutex),
            Arc::clone(&running),
            Arc::clone(&most),
        );
        let mut b = Thread::builder().name(format!("<thread {i}>"));
        if let Some(bytes) = stack {
            b = b.stack_size(bytes);
        }
        let mut t = b
            .target(move || {
                let _p = sema.permit();
                {
                    let _g = mutex.lock();
                    let n = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    assert!(n <= 3);
                }
                std::thread::sleep(Duration::from_micros(100));
                let _g = mutex.lock();
                running.fetch_sub(1, Ordering::SeqCst);
            })
            .unwrap();
        assert_eq!(t.ident(), None);
        assert!(format!("{t:?}").contains("initial"), "{t:?}");
        t.start().unwrap();
        threads.push(t);
    }
    let mut native: HashSet<Option<u64>> = threads.iter().map(|t| t.native_id()).collect();
    native.insert(get_native_id());
    assert!(!native.contains(&None));
    assert_eq!(native.len(), 11, "every thread has its own native id");
    for t in &mut threads {
        t.join().unwrap();
        assert!(!t.is_alive());
        assert!(t.ident().is_some_and(|i| i != 0));
        assert!(format!("{t:?}").contains("joined"), "{t:?}");
    }
    assert_eq!(running.load(Ordering::SeqCst), 0);
    assert!(most.load(Ordering::SeqCst) <= 3);
}

#[test]
fn various_ops() {
    watchdog(|| run_various_ops(None));
}

#[test]
fn various_ops_small_stack() {
    watchdog(|| run_various_ops(Some(256 * 1024)));
}

#[test]
fn various_ops_large_stack() {
    watchdog(|| run_various_ops(Some(1024 * 1024)));
}

#[test]
fn foreign_thread_has_an_identity() {
    watchdog(|| {
        let (ident, me, name, daemon) = std::thread::spawn(|| {
            let info = current_thread();
            (
                info.ident(),
                get_ident(),
                info.name().to_owned(),
                info.is_daemon(),
            )
        })
        .join()
        .unwrap();
        assert_eq!(ident, Some(me));
        assert!(name.starts_with("Dummy-"), "{name}");
        assert!(
            daemon,
            "a foreign thread is a daemon, like Python's _DummyThread"
        );
        let named = std::thread::Builder::new()
            .name("foreign".into())
            .spawn(|| current_thread().name().to_owned())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(named, "foreign");
        assert!(current_thread().ident().is_some());
    });
}

#[test]
fn enumerate_after_join() {
    watchdog(|| {
        for _ in 0..100 {
            let mut t = Thread::new(|| ());
            t.start().unwrap();
            let info = t.info();
            t.join().unwrap();
            assert!(
                !enumerate().contains(&info),
                "a joined thread is not listed"
            );
            assert!(!info.is_alive());
        }
    });
}

#[test]
fn daemon_flag() {
    watchdog(|| {
        let t = Thread::new(|| ());
        assert!(!t.is_daemon());
        assert!(!format!("{t:?}").contains("daemon: true"));
        let t = Thread::builder().daemon(false).target(|| ()).unwrap();
        assert!(!t.is_daemon());
        let t = Thread::builder().daemon(true).target(|| ()).unwrap();
        assert!(t.is_daemon());
        assert!(format!("{t:?}").contains("daemon: true"));
        // By default a thread inherits its creator's flag.
        let mut parent = Thread::builder()
            .daemon(true)
            .target(|| Thread::new(|| ()).is_daemon())
            .unwrap();
        parent.start().unwrap();
        assert!(parent.join().unwrap());
    });
}

#[test]
fn main_thread_seen_from_another_thread() {
    watchdog(|| {
        let main = main_thread();
        assert_eq!(main.name(), "MainThread");
        assert!(main.is_alive());
        let mut t = Thread::new(|| (main_thread().ident(), current_thread().ident()));
        t.start().unwrap();
        let (main_ident, mine) = t.join().unwrap();
        assert_eq!(main_ident, main.ident());
        assert_ne!(main_ident, mine);
        assert_eq!(enumerate()[0], main);
    });
}

#[test]
fn debug_says_started_then_stopped() {
    watchdog(|| {
        let finish = Arc::new(Event::new());
        let f = Arc::clone(&finish);
        let mut t = Thread::new(move || f.wait());
        t.start().unwrap();
        assert!(format!("{t:?}").contains("\"started\""), "{t:?}");
        finish.set();
        // "stopped" shows up on its own, before any join.
        assert!(eventually(LONG, || format!("{t:?}").contains("\"stopped\"")));
        t.join().unwrap();
    });
}

#[test]
fn bounded_semaphore_limit() {
    watchdog(|| {
        for limit in 1..10 {
            let bs = Arc::new(BoundedSemaphore::new(limit));
            let mut threads: Vec<Thread> = (0..limit)
                .map(|_| {
                    let b = Arc::clone(&bs);
                    Thread::new(move || b.acquire())
                })
                .collect();
            threads.iter_mut().for_each(|t| t.start().unwrap());
            threads.iter_mut().for_each(|t| t.join().unwrap());
            let mut threads: Vec<Thread<spindle::Result<()>>> = (0..limit)
                .map(|_| {
                    let b = Arc::clone(&bs);
                    Thread::new(move || b.release())
                })
                .collect();
            threads.iter_mut().for_each(|t| t.start().unwrap());
            for t in &mut threads {
                t.join().unwrap().unwrap();
            }
            assert!(matches!(bs.release(), Err(Error::OverRelease)));
        }
    });
}

#[test]
fn dropping_an_unjoined_thread_leaks_nothing() {
    watchdog(|| {
        let mut t = Thread::new(|| ());
        t.start().unwrap();
        let info = t.info();
        drop(t);
        assert!(!info.is_alive());
        assert!(!enumerate().contains(&info));
    });
}

#[test]
fn dropping_a_non_daemon_handle_waits() {
    watchdog(|| {
        let done = Arc::new(AtomicUsize::new(0));
        let d = Arc::clone(&done);
        let mut t = Thread::new(move || {
            std::thread::sleep(Duration::from_millis(50));
            d.store(1, Ordering::SeqCst);
        });
        t.start().unwrap();
        drop(t);
        assert_eq!(
            done.load(Ordering::SeqCst),
            1,
            "the drop waited for the work"
        );
        // A daemon's handle detaches instead.
        let gate = Arc::new(Event::new());
        let g = Arc::clone(&gate);
        let mut d = Thread::builder()
            .daemon(true)
            .target(move || g.wait())
            .unwrap();
        d.start().unwrap();
        let info = d.info();
        drop(d);
        assert!(info.is_alive());
        gate.set();
        assert!(eventually(LONG, || !info.is_alive()));
    });
}

#[test]
fn start_twice() {
    let mut t = Thread::new(|| ());
    t.start().unwrap();
    assert!(matches!(t.start(), Err(Error::InvalidState(_))));
    t.join().unwrap();
    assert!(matches!(t.start(), Err(Error::InvalidState(_))));
}

#[test]
fn join_current_thread() {
    watchdog(|| {
        let slot: Arc<Mutex<Option<Thread<()>>>> = Arc::new(Mutex::new(None));
        let go = Arc::new(Event::new());
        let out = Arc::new(Mutex::new(None));
        let (s, g, o) = (Arc::clone(&slot), Arc::clone(&go), Arc::clone(&out));
        let mut t = Thread::new(move || {
            g.wait();
            let mut me = s.lock().unwrap();
            let joined = me.as_mut().expect("handle is there").join();
            *o.lock().unwrap() = Some(matches!(joined, Err(Error::InvalidState(_))));
        });
        t.start().unwrap();
        let info = t.info();
        *slot.lock().unwrap() = Some(t);
        go.set();
        assert!(eventually(LONG, || !info.is_alive()));
        assert_eq!(*out.lock().unwrap(), Some(true));
        slot.lock().unwrap().take().unwrap().join().unwrap();
    });
}

#[test]
fn join_before_start() {
    let mut t = Thread::new(|| ());
    assert!(matches!(t.join(), Err(Error::InvalidState(_))));
    assert!(matches!(
        t.join_timeout(Duration::ZERO),
        Err(Error::InvalidState(_))
    ));
}

#[test]
fn release_unacquired_lock() {
    assert!(matches!(Lock::new().release(), Err(Error::NotOwner)));
}

#[test]
fn panic_in_thread_reaches_join() {
    watchdog(|| {
        let mut t = Thread::builder()
            .name("ThreadRunFail")
            .target(|| -> u32 { panic!("run failed") })
            .unwrap();
        t.start().unwrap();
        let e = t.join().unwrap_err();
        let task = e.as_task().expect("a task error");
        assert!(task.is_panic());
        assert_eq!(task.panic_message(), Some("run failed"));
        assert!(!t.is_alive());
    });
}

#[test]
fn join_timeout_then_join() {
    watchdog(|| {
        let gate = Arc::new(Event::new());
        let g = Arc::clone(&gate);
        let mut t = Thread::new(move || {
            g.wait();
            7
        });
        t.start().unwrap();
        assert!(matches!(
            t.join_timeout(Duration::from_millis(10)),
            Err(Error::Timeout)
        ));
        assert!(t.is_alive());
        gate.set();
        assert_eq!(t.join_timeout(LONG).unwrap(), 7);
        assert!(matches!(t.join(), Err(Error::InvalidState(_))));
    });
}

#[test]
fn timers_fire_once_each() {
    watchdog(|| {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c = Arc::clone(&calls);
        let mut t1 = Timer::new(Duration::from_millis(10), move || {
            c.lock().unwrap().push("timer1");
            1
        });
        let c = Arc::clone(&calls);
        let mut t2 = Timer::new(Duration::from_millis(10), move || {
            c.lock().unwrap().push("timer2");
            2
        });
        assert_eq!(t1.interval(), Duration::from_millis(10));
        t1.start().unwrap();
        assert!(matches!(t1.start(), Err(Error::InvalidState(_))));
        assert_eq!(t1.join().unwrap(), Some(1));
        t2.start().unwrap();
        assert_eq!(t2.join().unwrap(), Some(2));
        assert_eq!(*calls.lock().unwrap(), ["timer1", "timer2"]);
        assert!(t1.finished() && t2.finished());
        assert!(!t1.cancel(), "cancelling a timer that fired does nothing");
    });
}

#[test]
fn timer_cancel_before_and_after() {
    watchdog(|| {
        let ran = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&ran);
        let mut t = Timer::new(Duration::from_secs(3600), move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        t.start().unwrap();
        assert!(!t.finished());
        assert!(t.cancel());
        assert!(!t.cancel(), "a second cancel changes nothing");
        assert!(t.finished());
        assert_eq!(t.join().unwrap(), None);
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        // Cancelled before start: the thread ends at once.
        let r = Arc::clone(&ran);
        let mut never = Timer::new(Duration::from_secs(3600), move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        assert!(never.cancel());
        never.start().unwrap();
        assert_eq!(never.join().unwrap(), None);
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        // A panicking function reaches join, and the timer is finished.
        let mut bad = Timer::new(Duration::ZERO, || -> u8 { panic!("timer boom") });
        bad.start().unwrap();
        let e = bad.join().unwrap_err();
        assert_eq!(
            e.as_task().and_then(|t| t.panic_message()),
            Some("timer boom")
        );
        assert!(bad.finished());
    });
}
