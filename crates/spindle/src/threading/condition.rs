//! `threading.Condition`: wait until notified, over an [`RLock`] (the default) or a [`Lock`].

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::sync::Mutex;
use std::time::{Duration, Instant};

use super::lock::{Lock, RLock};
use crate::error::{Error, Result};
use crate::latch::{deadline, Latch};
use crate::sync::lock;

/// A condition variable: Python's `threading.Condition`.
///
/// As in Python it is bound to a lock — a fresh [`RLock`] by default ([`Condition::new`]), or
/// one shared with other code ([`Condition::with_rlock`], [`Condition::with_lock`]). The
/// waiting thread must hold that lock; [`Condition::wait`] releases it completely (every level
/// of a recursively held `RLock`), blocks until notified, and takes it back as it was.
/// Notifications wake waiters in the order they started waiting and are never lost to a waiter
/// that timed out.
///
/// The data the condition is about lives elsewhere (in a `Mutex` or atomics), as in Python.
///
/// ```
/// use spindle::threading::{Condition, Thread};
/// use std::collections::VecDeque;
/// use std::sync::{Arc, Mutex};
///
/// let cond = Arc::new(Condition::new());
/// let items = Arc::new(Mutex::new(VecDeque::new()));
///
/// let (c, q) = (Arc::clone(&cond), Arc::clone(&items));
/// let mut consumer = Thread::new(move || -> spindle::Result<u32> {
///     let _held = c.lock(); // `with cond:`
///     c.wait_for(|| !q.lock().unwrap().is_empty())?;
///     Ok(q.lock().unwrap().pop_front().unwrap())
/// });
/// consumer.start()?;
///
/// {
///     let _held = cond.lock();
///     items.lock().unwrap().push_back(42);
///     cond.notify(1)?;
/// }
/// assert_eq!(consumer.join()??, 42);
/// # Ok::<(), spindle::Error>(())
/// ```
pub struct Condition {
    lock: Backing,
    waiters: Mutex<VecDeque<Arc<Latch>>>,
}

enum Backing {
    RLock(Arc<RLock>),
    Lock(Arc<Lock>),
}

impl Default for Condition {
    fn default() -> Self {
        Self::new()
    }
}

impl Condition {
    /// A condition over a fresh [`RLock`]: Python's `Condition()`.
    pub fn new() -> Self {
        Self::with_rlock(Arc::new(RLock::new()))
    }

    /// A condition over an existing [`RLock`]: Python's `Condition(rlock)`.
    pub fn with_rlock(lock: Arc<RLock>) -> Self {
        Condition {
            lock: Backing::RLock(lock),
            waiters: Mutex::new(VecDeque::new()),
        }
    }

    /// A condition over an existing [`Lock`]: Python's `Condition(lock)`.
    ///
    /// A `Lock` has no owner, so "holding" it means it is locked (by any thread), as in Python.
    pub fn with_lock(lock: Arc<Lock>) -> Self {
        Condition {
            lock: Backing::Lock(lock),
            waiters: Mutex::new(VecDeque::new()),
        }
    }

    /// Acquires the underlying lock (blocking).
    pub fn acquire(&self) {
        match &self.lock {
            Backing::RLock(l) => l.acquire(),
            Backing::Lock(l) => l.acquire(),
        }
    }

    /// Acquires the underlying lock without blocking; returns whether it was taken.
    pub fn try_acquire(&self) -> bool {
        match &self.lock {
            Backing::RLock(l) => l.try_acquire(),
            Backing::Lock(l) => l.try_acquire(),
        }
    }

    /// Waits at most `timeout` for the underlying lock; returns whether it was taken.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        match &self.lock {
            Backing::RLock(l) => l.acquire_timeout(timeout),
            Backing::Lock(l) => l.acquire_timeout(timeout),
        }
    }

    /// Releases the underlying lock (once).
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when it is not held (by this thread, for an `RLock`).
    pub fn release(&self) -> Result<()> {
        match &self.lock {
            Backing::RLock(l) => l.release(),
            Backing::Lock(l) => l.release(),
        }
    }

    /// Acquires the underlying lock and returns a guard that releases it when dropped: the
    /// Rust form of `with cond:`.
    pub fn lock(&self) -> ConditionGuard<'_> {
        self.acquire();
        ConditionGuard {
            cond: self,
            _not_send: PhantomData,
        }
    }

    /// Blocks until notified: Python's `wait()`.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the calling thread does not hold the lock.
    pub fn wait(&self) -> Result<()> {
        self.wait_until(None).map(|_| ())
    }

    /// Blocks until notified or `timeout` passes: Python's `wait(timeout)`. Returns `false` on
    /// time-out. Either way the lock is held again on return.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the calling thread does not hold the lock.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.wait_until(deadline(timeout))
    }

    /// Waits until `predicate()` is true: Python's `wait_for(predicate)`. The predicate is
    /// evaluated with the lock held, first before any wait.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the calling thread does not hold the lock.
    pub fn wait_for(&self, predicate: impl FnMut() -> bool) -> Result<()> {
        self.wait_for_until(predicate, None).map(|_| ())
    }

    /// Waits until `predicate()` is true or `timeout` passes: Python's
    /// `wait_for(predicate, timeout)`. Returns the predicate's last value.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the calling thread does not hold the lock.
    pub fn wait_for_timeout(
        &self,
        predicate: impl FnMut() -> bool,
        timeout: Duration,
    ) -> Result<bool> {
        self.wait_for_until(predicate, deadline(timeout))
    }

    fn wait_for_until(
        &self,
        mut predicate: impl FnMut() -> bool,
        deadline: Option<Instant>,
    ) -> Result<bool> {
        self.check_owned()?;
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

    /// Wakes up to `n` threads waiting on this condition: Python's `notify(n)`.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the calling thread does not hold the lock (Python's
    /// `RuntimeError`).
    pub fn notify(&self, n: usize) -> Result<()> {
        self.check_owned()?;
        let mut waiters = lock(&self.waiters);
        let n = n.min(waiters.len());
        for waiter in waiters.drain(..n) {
            waiter.set();
        }
        Ok(())
    }

    /// Wakes every waiting thread: Python's `notify_all()`.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the calling thread does not hold the lock.
    pub fn notify_all(&self) -> Result<()> {
        self.notify(usize::MAX)
    }

    fn check_owned(&self) -> Result<()> {
        let owned = match &self.lock {
            Backing::RLock(l) => l.is_owned(),
            Backing::Lock(l) => l.locked(),
        };
        if owned {
            Ok(())
        } else {
            Err(Error::NotOwner)
        }
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<bool> {
        self.check_owned()?;
        let waiter = Arc::new(Latch::new());
        lock(&self.waiters).push_back(Arc::clone(&waiter));

        let saved = match &self.lock {
            Backing::RLock(l) => l.release_save(),
            Backing::Lock(l) => l.release().map(|()| 1),
        };
        let saved = match saved {
            Ok(saved) => saved,
            Err(e) => {
                // Lost the lock between the check and here (another thread released a Lock).
                self.forget(&waiter);
                return Err(e);
            }
        };

        let notified = match deadline {
            None => {
                waiter.wait();
                true
            }
            Some(d) => {
                waiter.wait_timeout(d.saturating_duration_since(Instant::now()))
                    // Notified just as the time ran out: the notification counts.
                    || !self.forget(&waiter)
            }
        };

        match &self.lock {
            Backing::RLock(l) => l.acquire_restore(saved),
            Backing::Lock(l) => l.acquire(),
        }
        Ok(notified)
    }

    /// Takes `waiter` off the queue; returns whether it was still there (not notified).
    fn forget(&self, waiter: &Arc<Latch>) -> bool {
        let mut waiters = lock(&self.waiters);
        match waiters.iter().position(|w| Arc::ptr_eq(w, waiter)) {
            Some(i) => {
                waiters.remove(i);
                true
            }
            None => false,
        }
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Condition");
        match &self.lock {
            Backing::RLock(l) => d.field("lock", l),
            Backing::Lock(l) => d.field("lock", l),
        };
        d.field("waiters", &lock(&self.waiters).len()).finish()
    }
}

/// Holds a [`Condition`]'s lock; releases it (once) when dropped. Made by [`Condition::lock`].
///
/// It stays on the thread that took it (an `RLock` may only be released by its owner):
///
/// ```compile_fail,E0277
/// let cond = spindle::threading::Condition::new();
/// let guard = cond.lock();
/// std::thread::scope(|s| {
///     s.spawn(move || drop(guard)); // error: `ConditionGuard` cannot be sent between threads
/// });
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct ConditionGuard<'a> {
    cond: &'a Condition,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ConditionGuard<'_> {
    fn drop(&mut self) {
        // An error means the lock was released by hand already.
        let _ = self.cond.release();
    }
}
