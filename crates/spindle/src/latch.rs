//! One completion primitive, reused by `join_timeout`, `Future`-style waits, `Event`,
//! `Condition` and `Timer`.
//!
//! A [`Latch`] starts unset; [`Latch::set`] releases every thread waiting at that moment, and
//! every later waiter until [`Latch::reset`]. Waits have blocking, non-blocking and timeout
//! forms.
//!
//! A wait ends when the flag is set *or when a `set` happened since the wait began*: each
//! `set` that raises the flag counts one generation, and a waiter remembers the generation it
//! started in. So a `set(); reset()` pulse wakes every thread that was waiting, even though
//! the flag is down again by the time they run (Python's `Event.wait` returns `True` for
//! them); without the count they would re-check the flag, find it down and sleep on.

use std::sync::PoisonError;
use std::time::{Duration, Instant};

use crate::sync::{self, Condvar, Mutex, MutexGuard};

/// A settable, resettable flag that threads can wait on.
#[derive(Debug)]
pub(crate) struct Latch {
    state: Mutex<State>,
    cv: Condvar,
}

#[derive(Debug, Default, Clone, Copy)]
struct State {
    set: bool,
    /// How many times `set` raised the flag (wrapping).
    generation: u64,
    /// Threads inside a wait (for the model tests, which must know that a waiter sleeps
    /// before they pulse).
    waiting: usize,
}

impl Default for Latch {
    fn default() -> Self {
        Latch {
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
        }
    }
}

/// Locks a `std` mutex (a static one, or one of the process side), ignoring poisoning: every
/// critical section in spindle leaves its data valid even when a user callback panics inside
/// it, so a poisoned lock carries no broken invariant. The thread side's own mutexes, which
/// loom swaps, are locked with [`crate::sync::lock`].
pub(crate) fn lock<T: ?Sized>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Defines a `wait_until` over one family of `Condvar`/`MutexGuard` types.
macro_rules! wait_until_fn {
    ($(#[$doc:meta])* $name:ident, $cv:ty, $guard:ident) => {
        $(#[$doc])*
        pub(crate) fn $name<'a, T>(
            cv: &$cv,
            mut guard: $guard<'a, T>,
            deadline: Option<Instant>,
            mut done: impl FnMut(&mut T) -> bool,
        ) -> ($guard<'a, T>, bool) {
            loop {
                if done(&mut guard) {
                    return (guard, true);
                }
                match deadline {
                    None => guard = cv.wait(guard).unwrap_or_else(PoisonError::into_inner),
                    Some(d) => {
                        let now = Instant::now();
                        if now >= d {
                            return (guard, false);
                        }
                        guard = cv
                            .wait_timeout(guard, d - now)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                }
            }
        }
    };
}

wait_until_fn!(
    /// Waits on `cv` until `done(&guard)` or `deadline` passes. Returns the guard and whether
    /// `done` became true. `None` as deadline waits forever.
    wait_until,
    Condvar,
    MutexGuard
);

#[cfg(loom)]
use std::sync::MutexGuard as StdGuard;
#[cfg(loom)]
wait_until_fn!(
    /// [`wait_until`] over `std` types, for the primitives that keep them under loom because
    /// their constructors are `const` ([`Lock`](crate::threading::Lock),
    /// [`Semaphore`](crate::threading::Semaphore)).
    wait_until_std,
    std::sync::Condvar,
    StdGuard
);
/// [`wait_until`] over `std` types (the same types outside loom builds).
#[cfg(not(loom))]
pub(crate) use wait_until as wait_until_std;

/// `Instant::now() + timeout`, or `None` (wait forever) when that overflows.
pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

impl Latch {
    /// A latch that is not set.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Sets the latch and wakes every waiter.
    pub(crate) fn set(&self) {
        let mut s = sync::lock(&self.state);
        if !s.set {
            s.set = true;
            s.generation = s.generation.wrapping_add(1);
        }
        drop(s);
        self.cv.notify_all();
    }

    /// Unsets the latch; later waits block again. Threads that were waiting when the last
    /// [`set`](Latch::set) happened still return (they are woken, whatever the flag is now).
    pub(crate) fn reset(&self) {
        sync::lock(&self.state).set = false;
    }

    /// Whether the latch is set.
    pub(crate) fn is_set(&self) -> bool {
        sync::lock(&self.state).set
    }

    /// Blocks until the latch is set (or was set since this call began).
    pub(crate) fn wait(&self) {
        self.wait_deadline(None);
    }

    /// Blocks until the latch is set (or was set since this call began) or `timeout`
    /// passes; returns whether it was set.
    pub(crate) fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_deadline(deadline(timeout))
    }

    fn wait_deadline(&self, deadline: Option<Instant>) -> bool {
        let mut state = sync::lock(&self.state);
        let began = state.generation;
        state.waiting += 1;
        let (mut state, set) = wait_until(&self.cv, state, deadline, |s| {
            s.set || s.generation != began
        });
        state.waiting -= 1;
        set
    }

    /// How many threads are inside a wait now (they sleep, or are about to re-check).
    #[cfg(all(test, loom))]
    pub(crate) fn waiting(&self) -> usize {
        sync::lock(&self.state).waiting
    }
}

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn set_releases_waiters_and_reset_blocks_again() {
        let l = Arc::new(Latch::new());
        assert!(!l.wait_timeout(Duration::from_millis(1)));
        let l2 = Arc::clone(&l);
        let t = std::thread::spawn(move || l2.wait());
        l.set();
        t.join().unwrap();
        assert!(l.is_set());
        assert!(l.wait_timeout(Duration::ZERO));
        l.reset();
        assert!(!l.wait_timeout(Duration::from_millis(1)));
    }

    #[test]
    fn huge_timeout_does_not_overflow() {
        let l = Latch::new();
        l.set();
        assert!(l.wait_timeout(Duration::MAX));
    }
}
