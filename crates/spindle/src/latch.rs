//! One completion primitive, reused by `join_timeout`, `Future` and `Event`.
//!
//! A [`Latch`] starts open-for-waiting (unset); [`Latch::set`] releases every waiter, present
//! and future, until [`Latch::reset`]. Waits have blocking, non-blocking and timeout forms.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// A settable, resettable flag that threads can wait on.
#[derive(Debug, Default)]
pub(crate) struct Latch {
    set: Mutex<bool>,
    cv: Condvar,
}

/// Locks a mutex, ignoring poisoning: every critical section in spindle leaves its data valid
/// even when a user callback panics inside it, so a poisoned lock carries no broken invariant.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `cv` until `done(&guard)` or `deadline` passes. Returns the guard and whether
/// `done` became true. `None` as deadline waits forever.
pub(crate) fn wait_until<'a, T>(
    cv: &Condvar,
    mut guard: MutexGuard<'a, T>,
    deadline: Option<Instant>,
    mut done: impl FnMut(&mut T) -> bool,
) -> (MutexGuard<'a, T>, bool) {
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
        *lock(&self.set) = true;
        self.cv.notify_all();
    }

    /// Unsets the latch; later waits block again.
    pub(crate) fn reset(&self) {
        *lock(&self.set) = false;
    }

    /// Whether the latch is set.
    pub(crate) fn is_set(&self) -> bool {
        *lock(&self.set)
    }

    /// Blocks until the latch is set.
    pub(crate) fn wait(&self) {
        let _ = wait_until(&self.cv, lock(&self.set), None, |s| *s);
    }

    /// Blocks until the latch is set or `timeout` passes; returns whether it is set.
    pub(crate) fn wait_timeout(&self, timeout: Duration) -> bool {
        wait_until(&self.cv, lock(&self.set), deadline(timeout), |s| *s).1
    }
}

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
