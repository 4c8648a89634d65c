//! `threading.Lock` and `threading.RLock`.
//!
//! Python's locks are free-standing: the data they guard lives elsewhere, and `release` is a
//! call of its own. Both are kept here, with typed errors for misuse, plus RAII guards
//! ([`Lock::lock`], [`RLock::lock`]) that release on drop, the Rust form of `with lock:`.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::thread::get_ident;
use crate::error::{Error, Result};
use crate::latch::{deadline, lock, wait_until_std as wait_until};

/// A primitive lock: Python's `threading.Lock`.
///
/// Not reentrant (a thread that acquires it twice waits for itself), and not owned: any thread
/// may release a held `Lock`, as in Python. Share it with `Arc` or a `static`.
///
/// ```
/// use spindle::threading::Lock;
/// use std::time::Duration;
///
/// let lock = Lock::new();
/// lock.acquire();
/// assert!(lock.locked());
/// assert!(!lock.try_acquire());
/// assert!(!lock.acquire_timeout(Duration::from_millis(1)));
/// lock.release()?;
/// {
///     let _guard = lock.lock(); // `with lock:`
///     assert!(lock.locked());
/// }
/// assert!(!lock.locked());
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Default)]
pub struct Lock {
    locked: Mutex<bool>,
    cv: Condvar,
}

impl Lock {
    /// An unlocked lock.
    pub const fn new() -> Self {
        Lock {
            locked: Mutex::new(false),
            cv: Condvar::new(),
        }
    }

    /// Blocks until the lock is free, then takes it: Python's `acquire()`.
    pub fn acquire(&self) {
        self.acquire_until(None);
    }

    /// Takes the lock if it is free, without blocking: Python's `acquire(blocking=False)`.
    pub fn try_acquire(&self) -> bool {
        let mut locked = lock(&self.locked);
        !std::mem::replace(&mut *locked, true)
    }

    /// Waits at most `timeout` for the lock: Python's `acquire(timeout=...)`. Returns whether
    /// the lock was taken.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.acquire_until(deadline(timeout))
    }

    fn acquire_until(&self, deadline: Option<Instant>) -> bool {
        let (mut locked, free) = wait_until(&self.cv, lock(&self.locked), deadline, |l| !*l);
        if free {
            *locked = true;
        }
        free
    }

    /// Releases the lock: Python's `release()`. Any thread may release a held lock.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the lock is not held (Python's `RuntimeError`).
    pub fn release(&self) -> Result<()> {
        let mut locked = lock(&self.locked);
        if !std::mem::replace(&mut *locked, false) {
            return Err(Error::NotOwner);
        }
        drop(locked);
        self.cv.notify_one();
        Ok(())
    }

    /// Whether the lock is held (by any thread): Python's `locked()`.
    pub fn locked(&self) -> bool {
        *lock(&self.locked)
    }

    /// Acquires the lock and returns a guard that releases it when dropped.
    pub fn lock(&self) -> LockGuard<'_> {
        self.acquire();
        LockGuard { lock: self }
    }

    /// Like [`Lock::lock`] without blocking: `None` when the lock is held.
    pub fn try_lock(&self) -> Option<LockGuard<'_>> {
        self.try_acquire().then(|| LockGuard { lock: self })
    }

    /// Like [`Lock::lock`], waiting at most `timeout`: `None` when it ran out.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<LockGuard<'_>> {
        self.acquire_timeout(timeout)
            .then(|| LockGuard { lock: self })
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.locked())
            .finish()
    }
}

/// Holds a [`Lock`]; releases it when dropped.
///
/// If another thread released the lock meanwhile (Python allows it), the drop finds it
/// unlocked and leaves it so.
#[must_use = "the lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // An error means another thread already released the lock: nothing left to undo.
        let _ = self.lock.release();
    }
}

/// A reentrant lock: Python's `threading.RLock`.
///
/// The thread that holds it may acquire it again; it is free once released as many times as
/// acquired. Only the owning thread may release it.
///
/// ```
/// use spindle::threading::RLock;
///
/// let rlock = RLock::new();
/// rlock.acquire();
/// rlock.acquire(); // reentrant
/// assert!(rlock.is_owned());
/// rlock.release()?;
/// rlock.release()?;
/// assert!(!rlock.locked());
/// assert!(matches!(rlock.release(), Err(spindle::Error::NotOwner)));
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Default)]
pub struct RLock {
    state: Mutex<Owner>,
    cv: Condvar,
}

#[derive(Debug, Default, Clone, Copy)]
struct Owner {
    /// The owner's ident, 0 when free.
    ident: u64,
    /// How many times the owner acquired it.
    count: usize,
}

impl RLock {
    /// An unlocked reentrant lock.
    pub const fn new() -> Self {
        RLock {
            state: Mutex::new(Owner { ident: 0, count: 0 }),
            cv: Condvar::new(),
        }
    }

    /// Blocks until the lock is free or owned by this thread, then takes it once more.
    pub fn acquire(&self) {
        self.acquire_until(None, 1);
    }

    /// Takes the lock if it is free or already ours, without blocking.
    pub fn try_acquire(&self) -> bool {
        let me = get_ident();
        let mut owner = lock(&self.state);
        take(&mut owner, me, 1)
    }

    /// Waits at most `timeout` for the lock; returns whether it was taken.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.acquire_until(deadline(timeout), 1)
    }

    fn acquire_until(&self, deadline: Option<Instant>, times: usize) -> bool {
        let me = get_ident();
        let owner = lock(&self.state);
        let (mut owner, free) =
            wait_until(&self.cv, owner, deadline, |o| o.ident == 0 || o.ident == me);
        free && take(&mut owner, me, times)
    }

    /// Releases the lock once: Python's `release()`.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the calling thread does not hold the lock.
    pub fn release(&self) -> Result<()> {
        let me = get_ident();
        let mut owner = lock(&self.state);
        if owner.ident != me || owner.count == 0 {
            return Err(Error::NotOwner);
        }
        owner.count -= 1;
        if owner.count == 0 {
            owner.ident = 0;
            drop(owner);
            self.cv.notify_one();
        }
        Ok(())
    }

    /// Whether any thread holds the lock: Python's `locked()`.
    pub fn locked(&self) -> bool {
        lock(&self.state).ident != 0
    }

    /// Whether the calling thread holds the lock (Python's private `_is_owned()`).
    pub fn is_owned(&self) -> bool {
        lock(&self.state).ident == get_ident()
    }

    /// Acquires the lock and returns a guard that releases it (once) when dropped.
    pub fn lock(&self) -> RLockGuard<'_> {
        self.acquire();
        RLockGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Like [`RLock::lock`] without blocking: `None` when another thread holds it.
    pub fn try_lock(&self) -> Option<RLockGuard<'_>> {
        self.try_acquire().then(|| RLockGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Like [`RLock::lock`], waiting at most `timeout`: `None` when it ran out.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<RLockGuard<'_>> {
        self.acquire_timeout(timeout).then(|| RLockGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Releases every level the calling thread holds; returns how many, for
    /// [`RLock::acquire_restore`] (Python's `_release_save`).
    pub(crate) fn release_save(&self) -> Result<usize> {
        let me = get_ident();
        let mut owner = lock(&self.state);
        if owner.ident != me || owner.count == 0 {
            return Err(Error::NotOwner);
        }
        let count = std::mem::take(&mut *owner).count;
        drop(owner);
        self.cv.notify_one();
        Ok(count)
    }

    /// Takes the lock back with `count` levels (Python's `_acquire_restore`).
    pub(crate) fn acquire_restore(&self, count: usize) {
        self.acquire_until(None, count);
    }
}

/// Makes `me` the owner (or adds `times` levels when it already is); false when another
/// thread owns the lock.
fn take(owner: &mut Owner, me: u64, times: usize) -> bool {
    if owner.ident == 0 {
        *owner = Owner {
            ident: me,
            count: times,
        };
        true
    } else if owner.ident == me {
        owner.count += times;
        true
    } else {
        false
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let owner = *lock(&self.state);
        f.debug_struct("RLock")
            .field("owner", &(owner.ident != 0).then_some(owner.ident))
            .field("count", &owner.count)
            .finish()
    }
}

/// Holds one level of an [`RLock`]; releases it when dropped.
///
/// It stays on the thread that took it (only the owner may release an `RLock`):
///
/// ```compile_fail,E0277
/// let rlock = std::sync::Arc::new(spindle::threading::RLock::new());
/// let guard = rlock.lock();
/// std::thread::scope(|s| {
///     s.spawn(move || drop(guard)); // error: `RLockGuard` cannot be sent between threads
/// });
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    _not_send: PhantomData<*const ()>,
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        // An error means the owner released this level by hand already.
        let _ = self.lock.release();
    }
}
