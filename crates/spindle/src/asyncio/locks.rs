//! `asyncio.locks`: [`Lock`], [`Event`], [`Condition`], [`Semaphore`] and
//! [`BoundedSemaphore`] for coroutines of one loop; thin over `tokio::sync` where tokio has
//! the thing (the lock, the semaphore), written here where it has not (the event, the
//! condition).
//!
//! They suspend the coroutine, never the thread; they are not for threads or processes
//! (see [`threading`](crate::threading) and
//! [`multiprocessing::synchronize`](crate::multiprocessing::synchronize)).

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::latch::lock;
use crate::{Error, Result};

/// A mutual-exclusion lock for coroutines (Python's `asyncio.Lock`); fair (first come, first
/// served), as tokio's mutex.
///
/// | Python                        | spindle                               |
/// |-------------------------------|---------------------------------------|
/// | `async with lock:`            | `let _g = lock.acquire().await;`      |
/// | `await lock.acquire()` / `lock.release()` | `let g = lock.acquire().await;` / `drop(g)` |
/// | `lock.locked()`               | [`lock.locked()`](Lock::locked)       |
///
/// ```
/// use std::sync::Arc;
/// use spindle::asyncio::{self, create_task, Lock};
///
/// asyncio::run(async {
///     let lock = Arc::new(Lock::new());
///     let g = lock.acquire().await;
///     let other = Arc::clone(&lock);
///     let waiter = create_task(async move { let _g = other.acquire().await; "in" })?;
///     asyncio::sleep(std::time::Duration::from_millis(5)).await;
///     assert!(!waiter.done() && lock.locked());
///     drop(g); // release()
///     assert_eq!(waiter.await?, "in");
///     Ok::<_, spindle::Error>(())
/// })??;
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Lock {
    inner: tokio::sync::Mutex<()>,
}

/// A held [`Lock`]; dropping it releases the lock.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard<'a> {
    _inner: tokio::sync::MutexGuard<'a, ()>,
    lock: &'a Lock,
}

impl Lock {
    /// An unlocked lock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for the lock and takes it (Python's `await lock.acquire()`).
    pub async fn acquire(&self) -> LockGuard<'_> {
        LockGuard {
            _inner: self.inner.lock().await,
            lock: self,
        }
    }

    /// Takes the lock if it is free now.
    pub fn try_acquire(&self) -> Option<LockGuard<'_>> {
        self.inner.try_lock().ok().map(|g| LockGuard {
            _inner: g,
            lock: self,
        })
    }

    /// Whether the lock is held now (Python's `locked()`).
    pub fn locked(&self) -> bool {
        self.inner.try_lock().is_err()
    }
}

/// A flag coroutines can wait for (Python's `asyncio.Event`).
///
/// A `set()` wakes every coroutine waiting at that moment, even if `clear()` follows before
/// they run (as Python's, and as [`threading::Event`](crate::threading::Event)).
///
/// ```
/// use std::sync::Arc;
/// use spindle::asyncio::{self, create_task, Event};
///
/// asyncio::run(async {
///     let ev = Arc::new(Event::new());
///     let e = Arc::clone(&ev);
///     let waiter = create_task(async move { e.wait().await; "woken" })?;
///     ev.set();
///     assert_eq!(waiter.await?, "woken");
///     assert!(ev.is_set());
///     Ok::<_, spindle::Error>(())
/// })??;
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Event {
    /// The flag, and how many times `set` raised it.
    state: Mutex<(bool, u64)>,
    notify: tokio::sync::Notify,
}

impl Event {
    /// An event not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag and wakes every waiter (Python's `set()`).
    pub fn set(&self) {
        let mut s = lock(&self.state);
        if !s.0 {
            s.0 = true;
            s.1 = s.1.wrapping_add(1);
        }
        drop(s);
        self.notify.notify_waiters();
    }

    /// Lowers the flag (Python's `clear()`).
    pub fn clear(&self) {
        lock(&self.state).0 = false;
    }

    /// Whether the flag is set (Python's `is_set()`).
    pub fn is_set(&self) -> bool {
        lock(&self.state).0
    }

    /// Waits until the flag is set, or was set since this wait began (Python's
    /// `await event.wait()`).
    pub async fn wait(&self) {
        let start = lock(&self.state).1;
        loop {
            let mut woken = pin!(self.notify.notified());
            woken.as_mut().enable();
            let (set, generation) = *lock(&self.state);
            if set || generation != start {
                return;
            }
            woken.await;
        }
    }
}

/// A condition variable for coroutines (Python's `asyncio.Condition`), with its own
/// [`Lock`].
///
/// | Python                                  | spindle                                    |
/// |-----------------------------------------|--------------------------------------------|
/// | `async with cond:`                      | `let g = cond.acquire().await;`            |
/// | `await cond.wait()`                     | `let g = cond.wait(g).await?;`             |
/// | `await cond.wait_for(pred)`             | `let g = cond.wait_for(g, pred).await?;`   |
/// | `cond.notify(n)` / `cond.notify_all()`  | [`notify`](Condition::notify) / [`notify_all`](Condition::notify_all) |
///
/// `wait` takes the guard (the lock is released while waiting and held again when it
/// returns), so a wait without the lock does not compile rather than raising at run time.
/// A `notify` wakes the coroutines waiting at that moment; a waiter cancelled meanwhile is
/// skipped, the notification going to the next.
///
/// ```
/// use std::sync::Arc;
/// use spindle::asyncio::{self, create_task, Condition};
///
/// asyncio::run(async {
///     let cond = Arc::new(Condition::new());
///     let c = Arc::clone(&cond);
///     let waiter = create_task(async move {
///         let g = c.acquire().await;
///         let _g = c.wait(g).await?;
///         Ok::<_, spindle::Error>("notified")
///     })?;
///     while cond.waiting() == 0 {
///         asyncio::sleep(std::time::Duration::from_millis(1)).await;
///     }
///     let _g = cond.acquire().await;
///     cond.notify(1);
///     drop(_g);
///     assert_eq!(waiter.await??, "notified");
///     Ok::<_, spindle::Error>(())
/// })??;
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Condition {
    lock: Lock,
    waiters: Mutex<VecDeque<oneshot::Sender<()>>>,
}

/// A held [`Condition`]'s lock.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct ConditionGuard<'a> {
    guard: LockGuard<'a>,
}

impl Condition {
    /// A condition with a new lock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the condition's lock (Python's `async with cond`).
    pub async fn acquire(&self) -> ConditionGuard<'_> {
        ConditionGuard {
            guard: self.lock.acquire().await,
        }
    }

    /// Whether the lock is held now.
    pub fn locked(&self) -> bool {
        self.lock.locked()
    }

    /// Releases the lock, waits for a [`notify`](Condition::notify), takes the lock again
    /// (Python's `await cond.wait()`).
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when `guard` holds another condition's lock.
    pub async fn wait<'a>(&'a self, guard: ConditionGuard<'a>) -> Result<ConditionGuard<'a>> {
        if !std::ptr::eq(guard.guard.lock, &self.lock) {
            return Err(Error::NotOwner);
        }
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).push_back(tx);
        drop(guard);
        let _ = rx.await;
        Ok(self.acquire().await)
    }

    /// Waits until `predicate()` holds, checking it with the lock held (Python's
    /// `await cond.wait_for(predicate)`).
    ///
    /// # Errors
    ///
    /// Those of [`wait`](Condition::wait).
    pub async fn wait_for<'a>(
        &'a self,
        mut guard: ConditionGuard<'a>,
        mut predicate: impl FnMut() -> bool,
    ) -> Result<ConditionGuard<'a>> {
        while !predicate() {
            guard = self.wait(guard).await?;
        }
        Ok(guard)
    }

    /// Wakes up to `n` waiting coroutines (Python's `notify(n)`).
    pub fn notify(&self, n: usize) {
        let mut woken = 0;
        let mut waiters = lock(&self.waiters);
        while woken < n {
            let Some(w) = waiters.pop_front() else {
                break;
            };
            // A waiter cancelled meanwhile has dropped its receiver: skip it.
            if w.send(()).is_ok() {
                woken += 1;
            }
        }
    }

    /// Wakes every waiting coroutine (Python's `notify_all()`).
    pub fn notify_all(&self) {
        let all = std::mem::take(&mut *lock(&self.waiters));
        for w in all {
            let _ = w.send(());
        }
    }

    /// How many coroutines wait now (cancelled ones count until the next notify).
    pub fn waiting(&self) -> usize {
        lock(&self.waiters).len()
    }
}

/// A counter of permits for coroutines (Python's `asyncio.Semaphore`), tokio's semaphore.
///
/// | Python                         | spindle                                  |
/// |--------------------------------|------------------------------------------|
/// | `async with sem:`              | `let _p = sem.acquire().await;`          |
/// | `await sem.acquire()` ... `sem.release()` | `sem.acquire().await.forget();` ... `sem.release()` |
/// | `sem.locked()`                 | [`sem.locked()`](Semaphore::locked)      |
///
/// ```
/// use spindle::asyncio::{self, Semaphore};
/// asyncio::run(async {
///     let sem = Semaphore::new(2);
///     let a = sem.acquire().await;
///     let _b = sem.acquire().await;
///     assert!(sem.locked());
///     drop(a);
///     assert!(!sem.locked());
/// })?;
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Debug)]
pub struct Semaphore {
    inner: tokio::sync::Semaphore,
}

/// A permit of a [`Semaphore`] or [`BoundedSemaphore`], given back when dropped.
#[derive(Debug)]
#[must_use = "the permit is given back when the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    permit: tokio::sync::SemaphorePermit<'a>,
}

impl SemaphoreGuard<'_> {
    /// Keeps the permit taken: a later `release()` gives it back (Python's manual
    /// `acquire()` / `release()`).
    pub fn forget(self) {
        self.permit.forget();
    }
}

impl Semaphore {
    /// A semaphore with `value` permits.
    pub fn new(value: usize) -> Self {
        Semaphore {
            inner: tokio::sync::Semaphore::new(value.min(tokio::sync::Semaphore::MAX_PERMITS)),
        }
    }

    /// Waits for a permit (Python's `await sem.acquire()`).
    pub async fn acquire(&self) -> SemaphoreGuard<'_> {
        // The semaphore is never closed, so acquiring cannot fail.
        loop {
            if let Ok(permit) = self.inner.acquire().await {
                return SemaphoreGuard { permit };
            }
        }
    }

    /// Adds a permit (Python's `release()`).
    pub fn release(&self) {
        if self.inner.available_permits() < tokio::sync::Semaphore::MAX_PERMITS {
            self.inner.add_permits(1);
        }
    }

    /// Whether no permit is free now (Python's `locked()`).
    pub fn locked(&self) -> bool {
        self.inner.available_permits() == 0
    }
}

/// A [`Semaphore`] that refuses to grow past its initial value (Python's
/// `asyncio.BoundedSemaphore`).
///
/// ```
/// use spindle::asyncio::{self, BoundedSemaphore};
/// asyncio::run(async {
///     let sem = BoundedSemaphore::new(1);
///     sem.acquire().await.forget();
///     assert!(sem.release().is_ok());
///     assert!(sem.release().unwrap_err().to_string().contains("too many"));
/// })?;
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Debug)]
pub struct BoundedSemaphore {
    inner: tokio::sync::Semaphore,
    bound: usize,
    /// Serialises `release`'s check and add.
    releasing: Mutex<()>,
}

impl BoundedSemaphore {
    /// A semaphore with `value` permits, never more.
    pub fn new(value: usize) -> Self {
        let value = value.min(tokio::sync::Semaphore::MAX_PERMITS);
        BoundedSemaphore {
            inner: tokio::sync::Semaphore::new(value),
            bound: value,
            releasing: Mutex::new(()),
        }
    }

    /// Waits for a permit.
    pub async fn acquire(&self) -> SemaphoreGuard<'_> {
        loop {
            if let Ok(permit) = self.inner.acquire().await {
                return SemaphoreGuard { permit };
            }
        }
    }

    /// Adds a permit back.
    ///
    /// # Errors
    ///
    /// [`Error::OverRelease`] when every permit is already there (Python's `ValueError`).
    pub fn release(&self) -> Result<()> {
        let _one = lock(&self.releasing);
        if self.inner.available_permits() >= self.bound {
            return Err(Error::OverRelease);
        }
        self.inner.add_permits(1);
        Ok(())
    }

    /// Whether no permit is free now.
    pub fn locked(&self) -> bool {
        self.inner.available_permits() == 0
    }
}
