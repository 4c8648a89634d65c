//! [`Condition`]: a [`Lock`] or [`RLock`] plus a futex sequence word of spindle's own.
//!
//! `notify` bumps the word and wakes at most `n` sleepers of it; it never waits for anyone,
//! so a waiter that died (SIGKILL) cannot make `notify_all` hang — the kernel dropped it from
//! the futex's queue with its process. (glibc's process-shared `pthread_cond_t` keeps waiter
//! counts that a dead waiter never gives back.)

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Lock, LockError, RLock};
use crate::error::Result;
use crate::multiprocessing::shared_memory::Segment;
use crate::sys::futex;

/// The lock under a [`Condition`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ConditionLock {
    /// A non-reentrant [`Lock`].
    Lock(Lock),
    /// A reentrant [`RLock`] (Python's default).
    RLock(RLock),
}

impl ConditionLock {
    fn owned(&self) -> bool {
        match self {
            ConditionLock::Lock(l) => l.held_here(),
            ConditionLock::RLock(l) => l.is_owned(),
        }
    }
}

/// A process-shared condition variable: Python's `multiprocessing.Condition`.
///
/// Waits may return without a notify (as with every futex-based condition variable): check
/// the predicate, or use [`wait_for`](Condition::wait_for).
///
/// ```
/// use spindle::multiprocessing::synchronize::Condition;
/// use std::time::Duration;
/// let c = Condition::new()?;
/// c.acquire().unwrap();
/// assert_eq!(c.wait_for_timeout(|| false, Duration::from_millis(5)).unwrap(), false);
/// c.notify_all().unwrap();
/// c.release()?;
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Condition {
    lock: ConditionLock,
    seg: Segment,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("lock", &self.lock)
            .finish()
    }
}

impl Condition {
    /// A condition over a new [`RLock`] (Python's `Condition()`).
    pub fn new() -> Result<Condition> {
        Condition::with_lock(ConditionLock::RLock(RLock::new()?))
    }

    /// A condition over `lock` (Python's `Condition(lock)`).
    pub fn with_lock(lock: ConditionLock) -> Result<Condition> {
        Ok(Condition {
            lock,
            seg: Segment::new("spindle-condition", 64)?,
        })
    }

    /// The lock under the condition.
    pub fn lock(&self) -> &ConditionLock {
        &self.lock
    }

    fn seq(&self) -> &AtomicU32 {
        self.seg.map().atomic_u32(0)
    }

    /// Acquires the lock (see [`Lock::acquire`]).
    pub fn acquire(&self) -> std::result::Result<(), LockError> {
        match &self.lock {
            ConditionLock::Lock(l) => l.acquire(),
            ConditionLock::RLock(l) => l.acquire(),
        }
    }

    /// Acquires the lock for at most `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> std::result::Result<(), LockError> {
        match &self.lock {
            ConditionLock::Lock(l) => l.acquire_timeout(timeout),
            ConditionLock::RLock(l) => l.acquire_timeout(timeout),
        }
    }

    /// Releases the lock.
    pub fn release(&self) -> Result<()> {
        match &self.lock {
            ConditionLock::Lock(l) => l.release(),
            ConditionLock::RLock(l) => l.release(),
        }
    }

    fn wait_until(&self, deadline: Option<Instant>) -> std::result::Result<bool, LockError> {
        if !self.lock.owned() {
            return Err(LockError::NotOwner);
        }
        let seen = self.seq().load(Ordering::SeqCst);
        let depth = match &self.lock {
            ConditionLock::Lock(l) => l.release_all(),
            ConditionLock::RLock(l) => l.release_all(),
        }
        .map_err(|_| LockError::NotOwner)?;
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let woke = timeout.is_none_or(|t| !t.is_zero()) && futex::wait(self.seq(), seen, timeout);
        let notified = woke && self.seq().load(Ordering::SeqCst) != seen;
        match &self.lock {
            ConditionLock::Lock(l) => l.restore(depth),
            ConditionLock::RLock(l) => l.restore(depth),
        }?;
        Ok(notified || deadline.is_none_or(|d| Instant::now() < d))
    }

    /// Releases the lock, waits for a notify, and takes the lock back (Python's `wait()`).
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when the caller does not hold the lock;
    /// [`LockError::OwnerDied`] when the lock, taken back, had lost its holder meanwhile (the
    /// lock is held).
    pub fn wait(&self) -> std::result::Result<(), LockError> {
        self.wait_until(None).map(drop)
    }

    /// [`wait`](Condition::wait) for at most `timeout`; `Ok(false)` when it ran out. The lock
    /// is held again either way.
    pub fn wait_timeout(&self, timeout: Duration) -> std::result::Result<bool, LockError> {
        self.wait_until(Instant::now().checked_add(timeout))
    }

    /// Waits until `predicate` holds (checked first, and after every wake-up).
    pub fn wait_for(
        &self,
        mut predicate: impl FnMut() -> bool,
    ) -> std::result::Result<(), LockError> {
        while !predicate() {
            self.wait()?;
        }
        Ok(())
    }

    /// [`wait_for`](Condition::wait_for) for at most `timeout`; returns the predicate's last
    /// value.
    pub fn wait_for_timeout(
        &self,
        mut predicate: impl FnMut() -> bool,
        timeout: Duration,
    ) -> std::result::Result<bool, LockError> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if predicate() {
                return Ok(true);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            self.wait_until(deadline)?;
        }
    }

    /// Wakes at most `n` waiters (the caller must hold the lock).
    pub fn notify(&self, n: u32) -> std::result::Result<(), LockError> {
        if !self.lock.owned() {
            return Err(LockError::NotOwner);
        }
        self.seq().fetch_add(1, Ordering::SeqCst);
        futex::wake(self.seq(), n);
        Ok(())
    }

    /// Wakes every waiter (the caller must hold the lock). Never waits for a waiter, so a
    /// dead one cannot hold it up.
    pub fn notify_all(&self) -> std::result::Result<(), LockError> {
        self.notify(u32::MAX)
    }
}
