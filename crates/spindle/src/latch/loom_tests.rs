//! Model checks of the completion latch (`--cfg loom`; `cargo test -p spindle --lib loom`).
//!
//! loom runs each model under every interleaving of its threads (up to
//! `LOOM_MAX_PREEMPTIONS` preemptions) and fails on a deadlock, so "this wait returns" is
//! checked for every schedule. Its `Condvar::wait_timeout` never times out, so a timed wait is
//! modelled as an untimed one: that covers the wake-up, not the clock (the stress tests in
//! `tests/threading_stress.rs` cover the clock).

use loom::sync::Arc;
use loom::thread;

use super::Latch;

/// Waits until `n` threads are inside a wait of `latch`.
fn until_waiting(latch: &Latch, n: usize) {
    while latch.waiting() < n {
        thread::yield_now();
    }
}

#[test]
fn loom_set_releases_a_waiter_whatever_the_order() {
    loom::model(|| {
        let latch = Arc::new(Latch::new());
        let l = Arc::clone(&latch);
        let waiter = thread::spawn(move || l.wait());
        latch.set();
        waiter.join().unwrap();
        assert!(latch.is_set());
    });
}

/// The lost wake-up of issue #11: a `set(); reset()` pulse must wake every thread waiting at
/// that moment, in `wait` and in `wait_timeout` alike, though the flag is down again by the
/// time they run. (Without the generation count this model deadlocks.)
#[test]
fn loom_a_set_reset_pulse_wakes_every_waiter() {
    loom::model(|| {
        let latch = Arc::new(Latch::new());
        let (a, b) = (Arc::clone(&latch), Arc::clone(&latch));
        let plain = thread::spawn(move || a.wait());
        let timed = thread::spawn(move || b.wait_timeout(std::time::Duration::from_secs(20)));
        until_waiting(&latch, 2);
        latch.set();
        latch.reset();
        plain.join().unwrap();
        assert!(
            timed.join().unwrap(),
            "a waiter of the pulse saw a time-out"
        );
        assert!(!latch.is_set());
    });
}

/// A reset racing a waiter that has not started waiting: it may or may not see the set, but
/// it never blocks once the latch is set again.
#[test]
fn loom_reset_racing_a_new_waiter_never_strands_it() {
    loom::model(|| {
        let latch = Arc::new(Latch::new());
        let l = Arc::clone(&latch);
        let waiter = thread::spawn(move || l.wait());
        latch.set();
        latch.reset();
        latch.set();
        waiter.join().unwrap();
    });
}
