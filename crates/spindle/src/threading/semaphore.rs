//! `threading.Semaphore` and `threading.BoundedSemaphore`.

use std::fmt;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::latch::{deadline, lock, wait_until_std as wait_until};

/// A counting semaphore: Python's `threading.Semaphore(value)`.
///
/// [`Semaphore::acquire`] takes one unit, blocking while the counter is zero;
/// [`Semaphore::release`] gives one back (or more with [`Semaphore::release_n`]). Any thread
/// may release, and releases are not checked against acquisitions: use [`BoundedSemaphore`]
/// for that. [`Semaphore::permit`] is the RAII form (`with sem:`).
///
/// ```
/// use spindle::threading::Semaphore;
///
/// let sem = Semaphore::new(2);
/// sem.acquire();
/// let permit = sem.permit();
/// assert!(!sem.try_acquire()); // both units are taken
/// drop(permit);
/// assert!(sem.try_acquire());
/// sem.release_n(2)?;
/// # Ok::<(), spindle::Error>(())
/// ```
pub struct Semaphore {
    value: Mutex<usize>,
    cv: Condvar,
    /// The most `value` may reach (a [`BoundedSemaphore`]'s initial value).
    bound: usize,
}

impl Semaphore {
    /// A semaphore whose counter starts at `value`.
    pub const fn new(value: usize) -> Self {
        Semaphore {
            value: Mutex::new(value),
            cv: Condvar::new(),
            bound: usize::MAX,
        }
    }

    /// Takes one unit, blocking while none is available: Python's `acquire()`.
    pub fn acquire(&self) {
        self.acquire_until(None);
    }

    /// Takes one unit if available, without blocking: Python's `acquire(blocking=False)`.
    pub fn try_acquire(&self) -> bool {
        let mut value = lock(&self.value);
        if *value == 0 {
            return false;
        }
        *value -= 1;
        true
    }

    /// Waits at most `timeout` for a unit: Python's `acquire(timeout=...)`. Returns whether
    /// one was taken.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.acquire_until(deadline(timeout))
    }

    fn acquire_until(&self, deadline: Option<Instant>) -> bool {
        let (mut value, ok) = wait_until(&self.cv, lock(&self.value), deadline, |v| *v > 0);
        if ok {
            *value -= 1;
        }
        ok
    }

    /// Gives one unit back and wakes one waiter: Python's `release()`.
    ///
    /// # Errors
    ///
    /// [`Error::OverRelease`] when the counter would pass its bound (`usize::MAX` for a plain
    /// semaphore).
    pub fn release(&self) -> Result<()> {
        self.release_n(1)
    }

    /// Gives `n` units back and wakes up to `n` waiters: Python's `release(n)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `n` is 0 (Python's `ValueError`);
    /// [`Error::OverRelease`] when the counter would pass its bound. On error nothing changes.
    pub fn release_n(&self, n: usize) -> Result<()> {
        if n == 0 {
            return Err(Error::InvalidArgument("n must be one or more".to_owned()));
        }
        let mut value = lock(&self.value);
        match value.checked_add(n) {
            Some(v) if v <= self.bound => *value = v,
            _ => return Err(Error::OverRelease),
        }
        drop(value);
        for _ in 0..n {
            self.cv.notify_one();
        }
        Ok(())
    }

    /// Takes one unit and returns a permit that gives it back when dropped.
    pub fn permit(&self) -> Permit<'_> {
        self.acquire();
        Permit { sem: self }
    }

    /// Like [`Semaphore::permit`] without blocking: `None` when no unit is available.
    pub fn try_permit(&self) -> Option<Permit<'_>> {
        self.try_acquire().then(|| Permit { sem: self })
    }

    /// Like [`Semaphore::permit`], waiting at most `timeout`: `None` when it ran out.
    pub fn permit_timeout(&self, timeout: Duration) -> Option<Permit<'_>> {
        self.acquire_timeout(timeout).then(|| Permit { sem: self })
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &*lock(&self.value))
            .finish()
    }
}

/// One unit of a [`Semaphore`] or [`BoundedSemaphore`]; given back when dropped.
///
/// Dropping it never fails: if a bounded semaphore is already full (someone released without
/// acquiring), the unit is not added again.
#[must_use = "the unit is given back as soon as the permit is dropped"]
#[derive(Debug)]
pub struct Permit<'a> {
    sem: &'a Semaphore,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        // OverRelease here means the semaphore is full already: nothing to give back.
        let _ = self.sem.release();
    }
}

/// A semaphore that refuses to be released above its initial value: Python's
/// `threading.BoundedSemaphore(value)`.
///
/// ```
/// use spindle::threading::BoundedSemaphore;
///
/// let sem = BoundedSemaphore::new(1);
/// assert!(matches!(sem.release(), Err(spindle::Error::OverRelease)));
/// sem.acquire();
/// sem.release()?;
/// # Ok::<(), spindle::Error>(())
/// ```
pub struct BoundedSemaphore {
    inner: Semaphore,
}

impl BoundedSemaphore {
    /// A semaphore whose counter starts, and is capped, at `value`.
    pub const fn new(value: usize) -> Self {
        BoundedSemaphore {
            inner: Semaphore {
                value: Mutex::new(value),
                cv: Condvar::new(),
                bound: value,
            },
        }
    }

    /// Takes one unit, blocking while none is available.
    pub fn acquire(&self) {
        self.inner.acquire();
    }

    /// Takes one unit if available, without blocking.
    pub fn try_acquire(&self) -> bool {
        self.inner.try_acquire()
    }

    /// Waits at most `timeout` for a unit; returns whether one was taken.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.inner.acquire_timeout(timeout)
    }

    /// Gives one unit back.
    ///
    /// # Errors
    ///
    /// [`Error::OverRelease`] when that would raise the counter above the initial value
    /// (Python's `ValueError("Semaphore released too many times")`).
    pub fn release(&self) -> Result<()> {
        self.inner.release()
    }

    /// Gives `n` units back, all or none.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `n` is 0; [`Error::OverRelease`] when that would raise
    /// the counter above the initial value (then nothing is released).
    pub fn release_n(&self, n: usize) -> Result<()> {
        self.inner.release_n(n)
    }

    /// Takes one unit and returns a permit that gives it back when dropped.
    pub fn permit(&self) -> Permit<'_> {
        self.inner.permit()
    }

    /// Like [`BoundedSemaphore::permit`] without blocking.
    pub fn try_permit(&self) -> Option<Permit<'_>> {
        self.inner.try_permit()
    }

    /// Like [`BoundedSemaphore::permit`], waiting at most `timeout`.
    pub fn permit_timeout(&self, timeout: Duration) -> Option<Permit<'_>> {
        self.inner.permit_timeout(timeout)
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("value", &*lock(&self.inner.value))
            .field("bound", &self.inner.bound)
            .finish()
    }
}
