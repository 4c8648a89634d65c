//! Black-box tests of `spindle::threading`.
//!
//! Several cases follow CPython's `Lib/test/lock_tests.py` and `Lib/test/test_threading.py`
//! (rewritten, not copied). Concurrency is shown by what threads see of each other, never by
//! wall-clock bounds; every test body runs under a watchdog so that a hang fails the test.

mod common;

use common::watchdog;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spindle::threading::{
    active_count, current_thread, enumerate, get_ident, get_native_id, main_thread, Barrier,
    BarrierBuilder, BoundedSemaphore, Condition, ConditionGuard, Event, Lock, LockGuard, Permit,
    RLock, Semaphore, Thread, ThreadBuilder, ThreadInfo, Timer,
};
use spindle::Error;

/// Polls `done` until it holds; the watchdog bounds the wait.
fn eventually(mut done: impl FnMut() -> bool) {
    while !done() {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A started thread running `f`.
fn started<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Thread<R> {
    let mut t = Thread::new(f);
    t.start().unwrap();
    t
}

fn task_panic_message(e: &Error) -> Option<String> {
    e.as_task()
        .and_then(|t| t.panic_message())
        .map(str::to_owned)
}

// ---------------------------------------------------------------------------------- Thread

#[test]
fn threads_run_at_the_same_time() {
    watchdog(|| {
        const N: usize = 6;
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        // Nobody leaves before all N are inside: sequential threads would never get past it.
        let meet = Arc::new(std::sync::Barrier::new(N));
        let mut threads: Vec<Thread<usize>> = (0..N)
            .map(|i| {
                let (running, most, meet) = (running.clone(), most.clone(), meet.clone());
                Thread::new(move || {
                    let now = running.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    meet.wait();
                    running.fetch_sub(1, SeqCst);
                    i * 10
                })
            })
            .collect();
        for t in &mut threads {
            t.start().unwrap();
        }
        let values: Vec<usize> = threads.iter_mut().map(|t| t.join().unwrap()).collect();
        assert_eq!(values, (0..N).map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(most.load(SeqCst), N);
        assert_eq!(running.load(SeqCst), 0);
    });
}

#[test]
fn join_returns_the_targets_value() {
    watchdog(|| {
        let mut t = started(|| vec![1_u8, 2, 3]);
        assert_eq!(t.join().unwrap(), vec![1, 2, 3]);
        assert!(!t.is_alive());
    });
}

#[test]
fn join_of_a_panicking_thread_gives_the_panic_message() {
    watchdog(|| {
        let mut t: Thread<u32> = started(|| panic!("boom {}", 7));
        let err = t.join().unwrap_err();
        assert!(matches!(err, Error::Task(ref e) if e.is_panic()), "{err:?}");
        assert_eq!(task_panic_message(&err).as_deref(), Some("boom 7"));
        let location = err
            .as_task()
            .unwrap()
            .panic()
            .unwrap()
            .location()
            .unwrap()
            .to_owned();
        assert!(location.contains("threading.rs"), "{location}");
        assert!(matches!(t.join(), Err(Error::InvalidState(_))));
    });
}

#[test]
fn join_timeout_on_a_blocked_thread_times_out_and_join_works_later() {
    watchdog(|| {
        let gate = Arc::new(Event::new());
        let g = gate.clone();
        let mut t = started(move || {
            g.wait();
            5
        });
        assert!(matches!(
            t.join_timeout(Duration::from_millis(20)),
            Err(Error::Timeout)
        ));
        assert!(t.is_alive());
        assert!(matches!(
            t.join_timeout(Duration::ZERO),
            Err(Error::Timeout)
        ));
        gate.set();
        assert_eq!(t.join().unwrap(), 5);
        assert!(!t.is_alive());
    });
}

#[test]
fn join_timeout_returns_the_value_once_finished() {
    watchdog(|| {
        let mut t = started(|| "done");
        assert_eq!(t.join_timeout(Duration::from_secs(20)).unwrap(), "done");
        assert!(matches!(
            t.join_timeout(Duration::ZERO),
            Err(Error::InvalidState(_))
        ));
    });
}

#[test]
fn start_twice_and_join_before_start_are_invalid_state() {
    watchdog(|| {
        let mut t = Thread::new(|| 1);
        assert!(!t.is_alive());
        assert!(matches!(t.join(), Err(Error::InvalidState(_))));
        assert!(matches!(
            t.join_timeout(Duration::ZERO),
            Err(Error::InvalidState(_))
        ));
        t.start().unwrap();
        assert!(matches!(t.start(), Err(Error::InvalidState(_))));
        assert_eq!(
            t.join().unwrap(),
            1,
            "a refused start must not disturb the thread"
        );
        assert!(matches!(t.start(), Err(Error::InvalidState(_))));
        assert!(matches!(t.join(), Err(Error::InvalidState(_))));
    });
}

#[test]
fn a_thread_cannot_join_itself() {
    watchdog(|| {
        let slot: Arc<Mutex<Option<Thread<String>>>> = Arc::new(Mutex::new(None));
        let gate = Arc::new(Event::new());
        let (s, g) = (slot.clone(), gate.clone());
        *slot.lock().unwrap() = Some(Thread::new(move || {
            g.wait();
            let mut me = s.lock().unwrap();
            me.as_mut().unwrap().join().unwrap_err().to_string()
        }));
        let info = {
            let mut t = slot.lock().unwrap();
            t.as_mut().unwrap().start().unwrap();
            t.as_ref().unwrap().info()
        };
        gate.set();
        eventually(|| !info.is_alive());
        let mut t = slot.lock().unwrap().take().unwrap();
        let msg = t.join().unwrap();
        assert!(msg.contains("cannot join current thread"), "{msg}");
    });
}

#[test]
fn names_idents_and_native_ids() {
    watchdog(|| {
        let mut a = Thread::new(|| (current_thread(), get_ident(), get_native_id()));
        let b = Thread::new(|| ());
        let n = |t: &str| t.strip_prefix("Thread-").unwrap().parse::<u64>().unwrap();
        assert!(n(b.name()) > n(a.name()), "{} then {}", a.name(), b.name());
        assert_eq!(a.ident(), None);
        assert_eq!(a.native_id(), None);

        a.start().unwrap();
        let ident = a.ident().expect("ident after start");
        let (inside, inside_ident, inside_native) = a.join().unwrap();
        assert_eq!(inside_ident, ident);
        assert_eq!(inside.ident(), Some(ident));
        assert_eq!(inside.name(), a.name());
        assert_eq!(inside, a.info());
        assert_eq!(inside_native, a.native_id());
        assert_ne!(ident, get_ident());
        if cfg!(target_os = "linux") {
            assert!(a.native_id().is_some());
            assert_ne!(a.native_id(), get_native_id());
        }

        let mut named = Thread::builder()
            .name("worker-7")
            .target(current_thread)
            .unwrap();
        assert_eq!(named.name(), "worker-7");
        named.start().unwrap();
        assert_eq!(named.join().unwrap().name(), "worker-7");
    });
}

#[test]
fn builder_rejects_bad_arguments() {
    let nul = Thread::builder().name("a\0b").target(|| ());
    assert!(matches!(nul, Err(Error::InvalidArgument(_))), "{nul:?}");
    let zero = Thread::builder().stack_size(0).target(|| ());
    assert!(matches!(zero, Err(Error::InvalidArgument(_))), "{zero:?}");
    let ok = ThreadBuilder::new().stack_size(128 * 1024).target(|| 3);
    assert_eq!(
        watchdog(move || {
            let mut t = ok.unwrap();
            t.start().unwrap();
            t.join().unwrap()
        }),
        3
    );
}

#[test]
fn current_thread_on_main_spindle_and_foreign_threads() {
    watchdog(|| {
        let main = main_thread();
        assert_eq!(main.name(), "MainThread");
        assert_eq!(main.ident(), Some(1));
        assert!(main.is_alive());
        assert!(!main.is_daemon());
        assert_eq!(enumerate()[0], main);

        // The test body runs on a named `std` thread: a foreign thread.
        let me = current_thread();
        assert_ne!(me, main);
        assert_eq!(me.name(), "test-body");
        assert_eq!(me.ident(), Some(get_ident()));
        assert!(me.is_daemon());
        assert!(me.is_alive());
        assert_eq!(
            current_thread(),
            me,
            "the same thread gets the same identity"
        );

        let unnamed = std::thread::spawn(|| (current_thread(), get_ident()))
            .join()
            .unwrap();
        let (info, ident) = unnamed;
        assert!(info.name().starts_with("Dummy-"), "{}", info.name());
        assert_eq!(info.ident(), Some(ident));
        assert_ne!(ident, get_ident());
        assert!(!info.is_alive(), "a foreign thread is dead once it exits");
    });
}

#[test]
fn daemon_flag_defaults_and_inheritance() {
    watchdog(|| {
        assert!(
            !Thread::new(|| ()).is_daemon(),
            "foreign threads create non-daemon threads"
        );
        let mut daemon = Thread::builder()
            .daemon(true)
            .target(|| (Thread::new(|| ()).is_daemon(), current_thread().is_daemon()))
            .unwrap();
        daemon.start().unwrap();
        assert_eq!(daemon.join().unwrap(), (true, true));
        let mut plain = started(|| Thread::new(|| ()).is_daemon());
        assert!(!plain.join().unwrap());
    });
}

#[test]
fn dropping_a_non_daemon_thread_joins_it() {
    watchdog(|| {
        let gate = Arc::new(Event::new());
        let done = Arc::new(AtomicBool::new(false));
        let (g, d) = (gate.clone(), done.clone());
        let t = started(move || {
            g.wait();
            d.store(true, SeqCst);
        });
        let opener = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            gate.set();
        });
        drop(t);
        assert!(
            done.load(SeqCst),
            "drop returned before the thread finished"
        );
        opener.join().unwrap();
    });
}

#[test]
fn dropping_a_daemon_thread_detaches_it() {
    watchdog(|| {
        let gate = Arc::new(Event::new());
        let g = gate.clone();
        let mut t = Thread::builder()
            .daemon(true)
            .target(move || g.wait())
            .unwrap();
        t.start().unwrap();
        let info = t.info();
        drop(t); // would hang (and trip the watchdog) if it joined
        assert!(info.is_alive());
        gate.set();
        eventually(|| !info.is_alive());
    });
}

#[test]
fn active_count_and_enumerate_follow_live_threads() {
    watchdog(|| {
        let gate = Arc::new(Event::new());
        let mut threads: Vec<Thread> = (0..3)
            .map(|_| {
                let g = gate.clone();
                started(move || g.wait())
            })
            .collect();
        let infos: Vec<ThreadInfo> = threads.iter().map(Thread::info).collect();
        let listed = enumerate();
        assert!(infos.iter().all(|i| listed.contains(i)));
        assert!(infos.iter().all(ThreadInfo::is_alive));
        assert!(active_count() > infos.len());
        gate.set();
        for t in &mut threads {
            t.join().unwrap();
        }
        let listed = enumerate();
        assert!(infos.iter().all(|i| !listed.contains(i) && !i.is_alive()));
    });
}

// ------------------------------------------------------------------------------------ Lock

#[test]
fn lock_try_acquire_and_acquire_timeout() {
    watchdog(|| {
        let lock = Arc::new(Lock::new());
        assert!(lock.try_acquire());
        assert!(lock.locked());
        assert!(!lock.try_acquire());
        assert!(!lock.acquire_timeout(Duration::from_millis(10)));
        // Any thread may release a held Lock, as in Python.
        let l = lock.clone();
        started(move || l.release()).join().unwrap().unwrap();
        assert!(!lock.locked());
        assert!(lock.acquire_timeout(Duration::from_secs(10)));
        lock.release().unwrap();
        assert!(matches!(lock.release(), Err(Error::NotOwner)));
    });
}

#[test]
fn lock_excludes_other_threads_until_released() {
    watchdog(|| {
        let lock = Arc::new(Lock::new());
        let order = Arc::new(Mutex::new(Vec::new()));
        let about_to_acquire = Arc::new(Event::new());
        let guard = lock.lock();
        let (l, o, a) = (lock.clone(), order.clone(), about_to_acquire.clone());
        let mut t = started(move || {
            a.set();
            let _g = l.lock();
            o.lock().unwrap().push("thread");
        });
        about_to_acquire.wait();
        std::thread::sleep(Duration::from_millis(20)); // give a broken lock the chance to fail
        order.lock().unwrap().push("main");
        drop(guard);
        t.join().unwrap();
        assert_eq!(*order.lock().unwrap(), ["main", "thread"]);
        assert!(!lock.locked());
    });
}

#[test]
fn lock_guards() {
    let lock = Lock::new();
    {
        let _g = lock.lock();
        assert!(lock.try_lock().is_none());
        assert!(lock.lock_timeout(Duration::from_millis(1)).is_none());
    }
    let g = lock.try_lock().expect("free");
    drop(g);
    assert!(lock.lock_timeout(Duration::ZERO).is_some());
    assert!(!lock.locked());
}

// ----------------------------------------------------------------------------------- RLock

/// Whether another thread can take `rlock` right now (it gives it back at once).
fn other_thread_can_acquire(rlock: &Arc<RLock>) -> bool {
    let r = rlock.clone();
    started(move || {
        let got = r.try_acquire();
        if got {
            r.release().unwrap();
        }
        got
    })
    .join()
    .unwrap()
}

#[test]
fn rlock_release_by_non_owner_is_an_error() {
    watchdog(|| {
        let rlock = Arc::new(RLock::new());
        rlock.acquire();
        let r = rlock.clone();
        let (release, owned, locked) = started(move || (r.release(), r.is_owned(), r.locked()))
            .join()
            .unwrap();
        assert!(matches!(release, Err(Error::NotOwner)), "{release:?}");
        assert!(!owned);
        assert!(locked);
        assert!(rlock.is_owned());
        rlock.release().unwrap();
        assert!(matches!(rlock.release(), Err(Error::NotOwner)));
    });
}

#[test]
fn rlock_is_reentrant_to_any_depth() {
    watchdog(|| {
        let rlock = Arc::new(RLock::new());
        rlock.acquire();
        assert!(rlock.try_acquire());
        assert!(rlock.acquire_timeout(Duration::ZERO));
        let _guard = rlock.lock();
        // Held 4 deep: free for others only after the 4th release.
        for _ in 0..3 {
            assert!(!other_thread_can_acquire(&rlock));
            rlock.release().unwrap();
        }
        assert!(!other_thread_can_acquire(&rlock));
        drop(_guard);
        assert!(!rlock.locked());
        assert!(other_thread_can_acquire(&rlock));
        assert!(matches!(rlock.release(), Err(Error::NotOwner)));
    });
}

#[test]
fn rlock_timeout_and_guards_across_threads() {
    watchdog(|| {
        let rlock = Arc::new(RLock::new());
        let g = rlock.lock();
        let r = rlock.clone();
        let (timed, tried) = started(move || {
            (
                r.lock_timeout(Duration::from_millis(10)).is_some(),
                r.try_lock().is_some(),
            )
        })
        .join()
        .unwrap();
        assert!(!timed && !tried);
        drop(g);
        let r = rlock.clone();
        assert!(
            started(move || r.lock_timeout(Duration::from_secs(10)).is_some())
                .join()
                .unwrap()
        );
    });
}

// ------------------------------------------------------------------------------- Condition

#[test]
fn condition_producer_consumer_with_wait_for_and_notify() {
    watchdog(|| {
        const ITEMS: u64 = 200;
        const CONSUMERS: usize = 3;
        let cond = Arc::new(Condition::new());
        let queue: Arc<Mutex<VecDeque<Option<u64>>>> = Arc::new(Mutex::new(VecDeque::new()));
        let mut consumers: Vec<Thread<Vec<u64>>> = (0..CONSUMERS)
            .map(|_| {
                let (c, q) = (cond.clone(), queue.clone());
                started(move || {
                    let mut got = Vec::new();
                    loop {
                        let _held = c.lock();
                        c.wait_for(|| !q.lock().unwrap().is_empty()).unwrap();
                        match q.lock().unwrap().pop_front().unwrap() {
                            Some(item) => got.push(item),
                            None => return got,
                        }
                    }
                })
            })
            .collect();
        let (c, q) = (cond.clone(), queue.clone());
        let mut producer = started(move || {
            for item in (0..ITEMS).map(Some).chain((0..CONSUMERS).map(|_| None)) {
                let _held = c.lock();
                q.lock().unwrap().push_back(item);
                c.notify(1).unwrap();
            }
        });
        producer.join().unwrap();
        let mut all: Vec<u64> = consumers
            .iter_mut()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..ITEMS).collect::<Vec<_>>(),
            "every item consumed exactly once"
        );
    });
}

#[test]
fn condition_calls_without_the_lock_are_not_owner() {
    let cond = Condition::new();
    assert!(matches!(cond.wait(), Err(Error::NotOwner)));
    assert!(matches!(
        cond.wait_timeout(Duration::ZERO),
        Err(Error::NotOwner)
    ));
    assert!(matches!(cond.wait_for(|| true), Err(Error::NotOwner)));
    assert!(matches!(
        cond.wait_for_timeout(|| true, Duration::ZERO),
        Err(Error::NotOwner)
    ));
    assert!(matches!(cond.notify(1), Err(Error::NotOwner)));
    assert!(matches!(cond.notify_all(), Err(Error::NotOwner)));
    assert!(matches!(cond.release(), Err(Error::NotOwner)));

    let over_lock = Condition::with_lock(Arc::new(Lock::new()));
    assert!(matches!(over_lock.wait(), Err(Error::NotOwner)));
    assert!(matches!(over_lock.notify(1), Err(Error::NotOwner)));

    // Held by another thread is not held by us (RLock).
    let shared = Arc::new(Condition::new());
    let s = shared.clone();
    watchdog(move || {
        let _held = s.lock();
        let s2 = s.clone();
        let err = started(move || s2.wait_timeout(Duration::ZERO))
            .join()
            .unwrap();
        assert!(matches!(err, Err(Error::NotOwner)), "{err:?}");
    });
}

#[test]
fn condition_wait_timeout_false_and_lock_held_again() {
    watchdog(|| {
        let cond = Condition::new();
        cond.acquire();
        assert!(!cond.wait_timeout(Duration::from_millis(10)).unwrap());
        assert!(!cond
            .wait_for_timeout(|| false, Duration::from_millis(10))
            .unwrap());
        assert!(cond.wait_for_timeout(|| true, Duration::ZERO).unwrap());
        cond.release()
            .expect("the lock is held again after a timed-out wait");
        assert!(matches!(cond.release(), Err(Error::NotOwner)));
    });
}

#[test]
fn condition_wait_releases_every_level_of_a_recursive_rlock() {
    watchdog(|| {
        let rlock = Arc::new(RLock::new());
        let cond = Arc::new(Condition::with_rlock(rlock.clone()));
        let flag = Arc::new(AtomicBool::new(false));
        for _ in 0..3 {
            cond.acquire();
        }
        let (c, f) = (cond.clone(), flag.clone());
        let mut notifier = started(move || {
            // Only possible if the waiter released all three levels.
            let _held = c.lock();
            f.store(true, SeqCst);
            c.notify_all().unwrap();
        });
        cond.wait_for(|| flag.load(SeqCst)).unwrap();
        assert!(rlock.is_owned());
        notifier.join().unwrap();
        for _ in 0..3 {
            rlock.release().expect("all three levels restored");
        }
        assert!(matches!(rlock.release(), Err(Error::NotOwner)));
    });
}

#[test]
fn condition_notify_n_wakes_n_waiters() {
    watchdog(|| {
        let cond = Arc::new(Condition::with_lock(Arc::new(Lock::new())));
        let waiting = Arc::new(AtomicUsize::new(0));
        let woken = Arc::new(AtomicUsize::new(0));
        let mut threads: Vec<Thread> = (0..3)
            .map(|_| {
                let (c, w, k) = (cond.clone(), waiting.clone(), woken.clone());
                started(move || {
                    let _held = c.lock();
                    w.fetch_add(1, SeqCst);
                    c.wait().unwrap();
                    k.fetch_add(1, SeqCst);
                })
            })
            .collect();
        eventually(|| waiting.load(SeqCst) == 3);
        {
            // Each waiter counted itself with the lock held; we hold it now, so all are in wait.
            let _held = cond.lock();
            cond.notify(2).unwrap();
        }
        eventually(|| woken.load(SeqCst) == 2);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(woken.load(SeqCst), 2, "notify(2) woke more than two");
        {
            let _held = cond.lock();
            cond.notify_all().unwrap();
        }
        for t in &mut threads {
            t.join().unwrap();
        }
        assert_eq!(woken.load(SeqCst), 3);
    });
}

#[test]
fn condition_guard_type_is_usable() {
    let cond = Condition::new();
    let guard: ConditionGuard<'_> = cond.lock();
    assert!(!cond.wait_timeout(Duration::ZERO).unwrap());
    drop(guard);
    assert!(matches!(cond.release(), Err(Error::NotOwner)));
    assert!(cond.try_acquire());
    assert!(cond.acquire_timeout(Duration::ZERO), "reentrant by default");
    cond.release().unwrap();
    cond.release().unwrap();
}

// ------------------------------------------------------------------------------- Semaphore

#[test]
fn semaphore_bounds_concurrency_to_its_value() {
    watchdog(|| {
        const VALUE: usize = 3;
        const THREADS: usize = 10;
        let sem = Arc::new(Semaphore::new(VALUE));
        let holding = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tickets = Arc::new(AtomicUsize::new(0));
        // The first VALUE holders meet the main thread here, so the full value is reached.
        let full = Arc::new(std::sync::Barrier::new(VALUE + 1));
        let mut threads: Vec<Thread> = (0..THREADS)
            .map(|_| {
                let (s, h, m, t, f) = (
                    sem.clone(),
                    holding.clone(),
                    most.clone(),
                    tickets.clone(),
                    full.clone(),
                );
                started(move || {
                    let _permit = s.permit();
                    let now = h.fetch_add(1, SeqCst) + 1;
                    m.fetch_max(now, SeqCst);
                    if t.fetch_add(1, SeqCst) < VALUE {
                        f.wait(); // all VALUE units are held now
                        f.wait(); // until the main thread has looked
                    } else {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    h.fetch_sub(1, SeqCst);
                })
            })
            .collect();
        full.wait();
        assert!(!sem.try_acquire(), "all units are held");
        assert!(!sem.acquire_timeout(Duration::from_millis(5)));
        full.wait();
        for t in &mut threads {
            t.join().unwrap();
        }
        assert_eq!(most.load(SeqCst), VALUE);
        for _ in 0..VALUE {
            assert!(sem.try_acquire(), "every permit came back");
        }
        assert!(!sem.try_acquire());
    });
}

#[test]
fn semaphore_release_n_wakes_n_waiters() {
    watchdog(|| {
        let sem = Arc::new(Semaphore::new(0));
        let mut threads: Vec<Thread> = (0..3)
            .map(|_| {
                let s = sem.clone();
                started(move || s.acquire())
            })
            .collect();
        sem.release_n(3).unwrap();
        for t in &mut threads {
            t.join().unwrap();
        }
        assert!(!sem.try_acquire());
        assert!(matches!(sem.release_n(0), Err(Error::InvalidArgument(_))));
        sem.release().unwrap();
        assert!(sem.try_permit().is_some());
        assert!(
            sem.permit_timeout(Duration::ZERO).is_some(),
            "the permit gave its unit back"
        );
    });
}

#[test]
fn bounded_semaphore_refuses_over_release() {
    let sem = BoundedSemaphore::new(2);
    assert!(matches!(sem.release(), Err(Error::OverRelease)));
    sem.acquire();
    assert!(
        matches!(sem.release_n(2), Err(Error::OverRelease)),
        "all or nothing"
    );
    sem.release().unwrap();
    assert!(matches!(sem.release(), Err(Error::OverRelease)));
    assert!(sem.try_acquire() && sem.acquire_timeout(Duration::ZERO));
    assert!(!sem.try_acquire());
    sem.release_n(2).unwrap();
    assert!(matches!(sem.release_n(0), Err(Error::InvalidArgument(_))));
    {
        let _a = sem.permit();
        let _b = sem.try_permit().unwrap();
        assert!(sem.permit_timeout(Duration::ZERO).is_none());
    }
    assert!(
        matches!(sem.release(), Err(Error::OverRelease)),
        "permits gave back exactly 2"
    );
}

// ----------------------------------------------------------------------------------- Event

#[test]
fn event_wait_timeout_is_false_then_true_after_set() {
    watchdog(|| {
        let event = Arc::new(Event::new());
        assert!(!event.is_set());
        assert!(!event.wait_timeout(Duration::from_millis(10)));
        let e = event.clone();
        let mut setter = started(move || e.set());
        assert!(event.wait_timeout(Duration::from_secs(20)));
        setter.join().unwrap();
        assert!(event.is_set());
        event.wait();
        event.clear();
        assert!(!event.is_set());
        assert!(!event.wait_timeout(Duration::from_millis(1)));
    });
}

#[test]
fn event_set_wakes_every_waiter() {
    watchdog(|| {
        let event = Arc::new(Event::new());
        let mut waiters: Vec<Thread<bool>> = (0..4)
            .map(|_| {
                let e = event.clone();
                started(move || {
                    e.wait();
                    e.is_set()
                })
            })
            .collect();
        event.set();
        assert!(waiters.iter_mut().all(|t| t.join().unwrap()));
    });
}

// --------------------------------------------------------------------------------- Barrier

#[test]
fn barrier_indices_and_one_action_per_round() {
    watchdog(|| {
        const PARTIES: usize = 4;
        const ROUNDS: usize = 3;
        let actions = Arc::new(AtomicUsize::new(0));
        let a = actions.clone();
        let barrier = Arc::new(
            Barrier::builder(PARTIES)
                .action(move || {
                    a.fetch_add(1, SeqCst);
                })
                .build()
                .unwrap(),
        );
        assert_eq!(barrier.parties(), PARTIES);
        let mut threads: Vec<Thread<Vec<(usize, usize)>>> = (0..PARTIES)
            .map(|_| {
                let (b, a) = (barrier.clone(), actions.clone());
                started(move || {
                    (0..ROUNDS)
                        .map(|round| {
                            let index = b.wait().unwrap();
                            // The action of this round ran before anyone was released.
                            assert!(a.load(SeqCst) > round);
                            index
                        })
                        .enumerate()
                        .collect()
                })
            })
            .collect();
        let mut seen: Vec<(usize, usize)> =
            threads.iter_mut().flat_map(|t| t.join().unwrap()).collect();
        seen.sort_unstable();
        let expected: Vec<(usize, usize)> = (0..ROUNDS)
            .flat_map(|r| (0..PARTIES).map(move |i| (r, i)))
            .collect();
        assert_eq!(
            seen, expected,
            "each round hands out the indices 0..parties once"
        );
        assert_eq!(actions.load(SeqCst), ROUNDS);
        assert_eq!(barrier.n_waiting(), 0);
        assert!(!barrier.broken());
    });
}

#[test]
fn barrier_abort_breaks_it_until_reset() {
    watchdog(|| {
        let barrier = Arc::new(Barrier::new(2).unwrap());
        let b = barrier.clone();
        let mut waiter = started(move || b.wait());
        eventually(|| barrier.n_waiting() == 1);
        barrier.abort();
        assert!(matches!(waiter.join().unwrap(), Err(Error::BrokenBarrier)));
        assert!(barrier.broken());
        assert!(matches!(barrier.wait(), Err(Error::BrokenBarrier)));
        barrier.reset();
        assert!(!barrier.broken());
        let b = barrier.clone();
        let mut other = started(move || b.wait());
        let mine = barrier.wait().unwrap();
        let theirs = other.join().unwrap().unwrap();
        assert_eq!(mine + theirs, 1, "indices 0 and 1 after reset");
    });
}

#[test]
fn barrier_reset_while_waiting_breaks_the_waiters_only() {
    watchdog(|| {
        let barrier = Arc::new(Barrier::new(3).unwrap());
        let mut waiters: Vec<Thread<spindle::Result<usize>>> = (0..2)
            .map(|_| {
                let b = barrier.clone();
                started(move || b.wait())
            })
            .collect();
        eventually(|| barrier.n_waiting() == 2);
        barrier.reset();
        for t in &mut waiters {
            assert!(matches!(t.join().unwrap(), Err(Error::BrokenBarrier)));
        }
        assert!(!barrier.broken());
        assert_eq!(barrier.n_waiting(), 0);
        let mut again: Vec<Thread<spindle::Result<usize>>> = (0..2)
            .map(|_| {
                let b = barrier.clone();
                started(move || b.wait())
            })
            .collect();
        barrier.wait().unwrap();
        for t in &mut again {
            t.join().unwrap().unwrap();
        }
    });
}

#[test]
fn barrier_timeout_breaks_it_for_everyone() {
    watchdog(|| {
        let barrier = Arc::new(Barrier::new(3).unwrap());
        let b = barrier.clone();
        let mut patient = started(move || b.wait());
        eventually(|| barrier.n_waiting() == 1);
        assert!(matches!(
            barrier.wait_timeout(Duration::from_millis(10)),
            Err(Error::BrokenBarrier)
        ));
        assert!(barrier.broken());
        assert!(matches!(patient.join().unwrap(), Err(Error::BrokenBarrier)));

        let with_default = Barrier::builder(2)
            .timeout(Duration::from_millis(10))
            .build()
            .unwrap();
        assert!(matches!(with_default.wait(), Err(Error::BrokenBarrier)));
        assert!(with_default.broken());
    });
}

#[test]
fn barrier_action_panic_reaches_the_last_thread_and_breaks_the_barrier() {
    watchdog(|| {
        let barrier = Arc::new(
            Barrier::builder(2)
                .action(|| panic!("action failed"))
                .build()
                .unwrap(),
        );
        let b = barrier.clone();
        let mut first = started(move || b.wait());
        eventually(|| barrier.n_waiting() == 1);
        let last = barrier.wait().unwrap_err();
        assert_eq!(task_panic_message(&last).as_deref(), Some("action failed"));
        assert!(matches!(first.join().unwrap(), Err(Error::BrokenBarrier)));
        assert!(barrier.broken());
    });
}

#[test]
fn barrier_of_zero_parties_is_invalid() {
    assert!(matches!(Barrier::new(0), Err(Error::InvalidArgument(_))));
    let one = Barrier::new(1).unwrap();
    assert_eq!(one.wait().unwrap(), 0);
    assert_eq!(one.wait_timeout(Duration::ZERO).unwrap(), 0);
}

// ----------------------------------------------------------------------------------- Timer

#[test]
fn timer_fires_and_returns_the_value() {
    watchdog(|| {
        let mut timer = Timer::new(Duration::from_millis(5), || {
            current_thread().name().to_owned()
        });
        assert!(!timer.finished());
        assert_eq!(timer.interval(), Duration::from_millis(5));
        timer.start().unwrap();
        assert!(matches!(timer.start(), Err(Error::InvalidState(_))));
        let name = timer.join().unwrap().expect("fired");
        assert_eq!(name, timer.name());
        assert!(timer.finished());
        assert!(!timer.is_alive());
        assert!(!timer.cancel(), "too late to cancel");
    });
}

#[test]
fn timer_cancelled_before_firing_never_runs() {
    watchdog(|| {
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        // An hour: the join below returns only because cancel woke the timer thread.
        let mut timer = Timer::new(Duration::from_secs(3600), move || r.store(true, SeqCst));
        timer.start().unwrap();
        assert!(timer.is_alive());
        assert!(timer.cancel());
        assert!(!timer.cancel(), "already cancelled");
        assert!(timer.finished());
        assert_eq!(timer.join().unwrap(), None);
        assert!(!ran.load(SeqCst), "the function ran although cancelled");
    });
}

#[test]
fn timer_cancelled_before_start_never_runs() {
    watchdog(|| {
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let mut timer = Timer::new(Duration::ZERO, move || r.store(true, SeqCst));
        assert!(timer.cancel());
        timer.start().unwrap();
        assert_eq!(timer.join().unwrap(), None);
        assert!(!ran.load(SeqCst));
    });
}

#[test]
fn timer_panic_comes_back_from_join() {
    watchdog(|| {
        let mut timer: Timer<()> = Timer::new(Duration::ZERO, || panic!("timer boom"));
        timer.start().unwrap();
        let err = timer.join().unwrap_err();
        assert_eq!(task_panic_message(&err).as_deref(), Some("timer boom"));
        assert!(timer.finished());
    });
}

#[test]
fn timer_join_timeout_while_pending() {
    watchdog(|| {
        let mut timer = Timer::new(Duration::from_secs(3600), || 1);
        timer.start().unwrap();
        assert!(matches!(
            timer.join_timeout(Duration::from_millis(5)),
            Err(Error::Timeout)
        ));
        assert!(timer.info().is_alive());
        assert!(timer.ident().is_some());
        timer.cancel();
        assert_eq!(timer.join_timeout(Duration::from_secs(20)).unwrap(), None);
    });
}

// ------------------------------------------------------------------------------- Send/Sync

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Thread>();
    send_sync::<Thread<String>>();
    send_sync::<ThreadBuilder>();
    send_sync::<ThreadInfo>();
    send_sync::<Lock>();
    send_sync::<LockGuard<'static>>();
    send_sync::<RLock>();
    send_sync::<Condition>();
    send_sync::<Semaphore>();
    send_sync::<BoundedSemaphore>();
    send_sync::<Permit<'static>>();
    send_sync::<Event>();
    send_sync::<Barrier>();
    send::<BarrierBuilder>();
    send_sync::<Timer>();
    send_sync::<Timer<Vec<u8>>>();
    send_sync::<Error>();
    // RLockGuard and ConditionGuard stay on their thread: see their compile_fail doctests.
}
