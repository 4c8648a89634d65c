//! Process-shared synchronisation across fork children, with holders and waiters killed for
//! real (SIGKILL): the owner-died outcome, `notify_all` past a dead waiter, a barrier broken
//! by a dead party.
//!
//! Behaviours ported from CPython's `_test_multiprocessing` (`_TestLock`, `_TestSemaphore`,
//! `_TestCondition.test_notify_all`, `_TestEvent`, `_TestBarrier`), plus the faults CPython
//! hangs on.

use std::time::Duration;

use spindle::multiprocessing::sharedctypes::Value;
use spindle::multiprocessing::synchronize::{
    Barrier, BoundedSemaphore, Condition, ConditionLock, Event, Lock, LockError, RLock, Semaphore,
};
use spindle::multiprocessing::Builder;

mod common;

use common::serial_watchdog as watchdog;

#[test]
fn lock_excludes_other_processes() {
    watchdog(|| {
        let lock = Lock::new().unwrap();
        // A plain (non-atomic) read-modify-write, safe only under the lock.
        let counter = Value::new_raw(0u64).unwrap();
        let mut kids = Vec::new();
        for _ in 0..3 {
            let (lock, counter) = (lock.clone(), counter.clone());
            let p = Builder::new().fork_target(move || {
                for _ in 0..2000 {
                    let _g = lock.lock().unwrap();
                    let v = counter.get();
                    std::hint::spin_loop();
                    counter.set(v + 1);
                }
            });
            p.start().unwrap();
            kids.push(p);
        }
        for p in kids {
            p.join().unwrap();
        }
        assert_eq!(counter.get(), 6000);
    });
}

#[test]
fn a_holder_killed_with_the_lock_is_reported_then_the_lock_works() {
    watchdog(|| {
        let lock = Lock::new().unwrap();
        let held = Event::new().unwrap();
        let (l, h) = (lock.clone(), held.clone());
        let p = Builder::new().daemon(true).fork_target(move || {
            l.acquire().unwrap();
            h.set();
            std::thread::sleep(Duration::from_secs(60));
        });
        p.start().unwrap();
        assert!(held.wait_timeout(Duration::from_secs(10)));
        assert!(lock.locked());
        assert!(matches!(
            lock.acquire_timeout(Duration::from_millis(20)),
            Err(LockError::Timeout)
        ));
        p.kill().unwrap();
        let _ = p.join();
        // The next acquirer holds the lock and is told its owner died.
        match lock.lock() {
            Err(LockError::OwnerDied(guard)) => {
                // Until someone says the state is consistent, everyone is told.
                drop(guard);
                let again = lock.lock();
                assert!(again.as_ref().is_err_and(|e| e.is_owner_died()));
                again.unwrap_err().into_guard().unwrap().mark_consistent();
            }
            other => panic!("expected OwnerDied, got {other:?}"),
        }
        // Then it is an ordinary lock again.
        lock.acquire().unwrap();
        assert!(matches!(lock.try_acquire(), Err(LockError::WouldDeadlock)));
        lock.release().unwrap();
        assert!(matches!(lock.release(), Err(spindle::Error::NotOwner)));
    });
}

#[test]
fn rlock_is_reentrant_owned_and_robust() {
    watchdog(|| {
        let r = RLock::new().unwrap();
        r.acquire().unwrap();
        r.acquire().unwrap();
        assert!(r.is_owned() && r.locked());
        // Another process can neither take it nor release it.
        let r2 = r.clone();
        let p = Builder::new().fork_target(move || {
            let busy = matches!(
                r2.acquire_timeout(Duration::from_millis(20)),
                Err(LockError::Timeout)
            );
            let not_owner = matches!(r2.release(), Err(spindle::Error::NotOwner));
            (busy, not_owner)
        });
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), (true, true));
        r.release().unwrap();
        r.release().unwrap();
        assert!(!r.locked());
        // A holder killed at depth 2.
        let r3 = r.clone();
        let ready = Event::new().unwrap();
        let ready2 = ready.clone();
        let p = Builder::new().daemon(true).fork_target(move || {
            r3.acquire().unwrap();
            r3.acquire().unwrap();
            ready2.set();
            std::thread::sleep(Duration::from_secs(60));
        });
        p.start().unwrap();
        assert!(ready.wait_timeout(Duration::from_secs(10)));
        p.kill().unwrap();
        let _ = p.join();
        assert!(matches!(r.acquire(), Err(LockError::OwnerDied(()))));
        r.mark_consistent().unwrap();
        r.release().unwrap();
        r.acquire().unwrap();
        r.release().unwrap();
    });
}

#[test]
fn semaphores_count_across_processes() {
    watchdog(|| {
        let s = Semaphore::new(0).unwrap();
        assert!(!s.acquire_timeout(Duration::from_millis(10)));
        let s2 = s.clone();
        let p = Builder::new().fork_target(move || {
            for _ in 0..5 {
                s2.release().unwrap();
            }
        });
        p.start().unwrap();
        for _ in 0..5 {
            assert!(s.acquire_timeout(Duration::from_secs(10)));
        }
        p.join().unwrap();
        assert_eq!(s.get_value(), 0);
        assert!(!s.try_acquire());

        let b = BoundedSemaphore::new(2).unwrap();
        b.acquire();
        b.release().unwrap();
        assert!(matches!(b.release(), Err(spindle::Error::OverRelease)));
        assert!(BoundedSemaphore::new(0).is_err());
    });
}

#[test]
fn event_wakes_waiters_in_other_processes() {
    watchdog(|| {
        let e = Event::new().unwrap();
        let mut kids = Vec::new();
        for _ in 0..3 {
            let e = e.clone();
            let p = Builder::new().fork_target(move || e.wait_timeout(Duration::from_secs(10)));
            p.start().unwrap();
            kids.push(p);
        }
        std::thread::sleep(Duration::from_millis(20));
        e.set();
        for p in kids {
            assert!(p.join().unwrap());
        }
        e.clear();
        assert!(!e.is_set());
    });
}

#[test]
fn condition_across_processes_and_notify_all_past_a_dead_waiter() {
    watchdog(|| {
        let c = Condition::new().unwrap();
        let flag = Value::new_raw(0u32).unwrap();
        // A waiter that is SIGKILLed while it waits, and two that live.
        let mut waiters = Vec::new();
        for _ in 0..3 {
            let (c, flag) = (c.clone(), flag.clone());
            let p = Builder::new().daemon(true).fork_target(move || {
                c.acquire().unwrap();
                let ok = c
                    .wait_for_timeout(|| flag.get() == 1, Duration::from_secs(20))
                    .unwrap();
                c.release().unwrap();
                ok
            });
            p.start().unwrap();
            waiters.push(p);
        }
        std::thread::sleep(Duration::from_millis(100));
        let dead = waiters.remove(0);
        dead.kill().unwrap();
        let _ = dead.join();
        c.acquire().unwrap();
        flag.set(1);
        c.notify_all().unwrap(); // returns: the dead waiter holds nothing up
        c.release().unwrap();
        for p in waiters {
            assert!(p.join().unwrap());
        }
        // Misuse is typed.
        assert!(matches!(c.notify(1), Err(LockError::NotOwner)));
        assert!(matches!(c.wait(), Err(LockError::NotOwner)));
        let with_lock = Condition::with_lock(ConditionLock::Lock(Lock::new().unwrap())).unwrap();
        with_lock.acquire().unwrap();
        assert!(!with_lock.wait_timeout(Duration::from_millis(10)).unwrap());
        with_lock.release().unwrap();
    });
}

#[test]
fn barrier_trips_for_its_parties() {
    watchdog(|| {
        let b = Barrier::new(3).unwrap();
        let mut kids = Vec::new();
        for _ in 0..2 {
            let b = b.clone();
            let p = Builder::new().fork_target(move || {
                let mut idx = Vec::new();
                for _ in 0..5 {
                    idx.push(b.wait_timeout(Duration::from_secs(10)).unwrap());
                }
                idx
            });
            p.start().unwrap();
            kids.push(p);
        }
        let mut all: Vec<usize> = Vec::new();
        for _ in 0..5 {
            all.push(b.wait_timeout(Duration::from_secs(10)).unwrap());
        }
        for p in kids {
            all.extend(p.join().unwrap());
        }
        all.sort();
        // Each of the 5 generations handed out the indices 0, 1 and 2 once.
        assert_eq!(all, [[0usize; 5], [1; 5], [2; 5]].concat());
        assert_eq!(b.parties(), 3);
        assert_eq!(b.n_waiting(), 0);
    });
}

#[test]
fn a_dead_party_breaks_the_barrier_instead_of_hanging_it() {
    watchdog(|| {
        let b = Barrier::new(2).unwrap();
        let b2 = b.clone();
        let p = Builder::new().daemon(true).fork_target(move || {
            b2.wait().unwrap();
            std::thread::sleep(Duration::from_secs(60));
        });
        p.start().unwrap();
        // Generation 1 passes: both parties are now known to the barrier.
        b.wait().unwrap();
        p.kill().unwrap();
        let _ = p.join();
        // Generation 2: the other party is dead: broken, not a wait for ever.
        assert!(matches!(b.wait(), Err(spindle::Error::BrokenBarrier)));
        assert!(b.broken());
        b.reset();
        assert!(!b.broken());
    });
}

#[test]
fn barrier_timeout_abort_and_reset_break_it() {
    watchdog(|| {
        let b = Barrier::new(2).unwrap();
        assert!(matches!(
            b.wait_timeout(Duration::from_millis(20)),
            Err(spindle::Error::BrokenBarrier)
        ));
        assert!(b.broken());
        b.reset();
        let b2 = b.clone();
        let p = Builder::new().fork_target(move || b2.wait().is_err());
        p.start().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        b.abort();
        assert!(p.join().unwrap());
        assert!(Barrier::new(0).is_err());
    });
}

#[test]
fn ipc_handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    use spindle::multiprocessing::connection::Connection;
    use spindle::multiprocessing::queues::{JoinableQueue, Queue, Receiver, Sender, SimpleQueue};
    use spindle::multiprocessing::shared_memory::{ShareableList, SharedMemory};
    use spindle::multiprocessing::sharedctypes::Array;
    send_sync::<Connection<String, Vec<u8>>>();
    send_sync::<Queue<String>>();
    send_sync::<Sender<String>>();
    send_sync::<Receiver<String>>();
    send_sync::<SimpleQueue<u8>>();
    send_sync::<JoinableQueue<u8>>();
    send_sync::<SharedMemory>();
    send_sync::<ShareableList<f64>>();
    send_sync::<Value<u64>>();
    send_sync::<Array<i32>>();
    send_sync::<Lock>();
    send_sync::<RLock>();
    send_sync::<Semaphore>();
    send_sync::<BoundedSemaphore>();
    send_sync::<Event>();
    send_sync::<Condition>();
    send_sync::<Barrier>();
}
