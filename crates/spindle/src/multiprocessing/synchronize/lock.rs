//! [`Lock`] and [`RLock`]: glibc's robust, process-shared mutexes, with an owner-died flag of
//! spindle's own beside them.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::LockError;
use crate::error::{Error, Result};
use crate::multiprocessing::shared_memory::Segment;
use crate::sys::futex::{ids, Locked, RobustMutex};

// Layout of a lock's segment: the mutex (40 bytes) and spindle's words share one cache line.
const MUTEX: usize = 0;
const DIRTY: usize = 40;
/// `RLock`: levels held by the owner (only the owner writes it).
const DEPTH: usize = 44;
/// `RLock`: the owner, `pid << 32 | tid`, 0 when free (only the owner writes it).
const OWNER: usize = 48;
const SIZE: usize = 64;
const _: () = assert!(crate::sys::futex::MUTEX_SIZE <= DIRTY);

/// The robust mutex and its words, shared by [`Lock`] and [`RLock`].
#[derive(Clone, Serialize, Deserialize)]
struct Core {
    seg: Segment,
}

impl Core {
    fn new(name: &str) -> Result<Core> {
        let seg = Segment::new(name, SIZE)?;
        RobustMutex::at(seg.map(), MUTEX).init()?;
        Ok(Core { seg })
    }

    fn mutex(&self) -> RobustMutex<'_> {
        RobustMutex::at(self.seg.map(), MUTEX)
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        self.seg.map().atomic_u32(offset)
    }

    fn owner(&self) -> &AtomicU64 {
        self.seg.map().atomic_u64(OWNER)
    }

    /// Locks the mutex; `Ok(true)` when the state is suspect (an owner died and nobody has
    /// marked it consistent since).
    fn lock(&self, deadline: Option<Instant>) -> std::result::Result<bool, LockError> {
        match self.mutex().lock(deadline) {
            Ok(Locked::Acquired) => Ok(self.word(DIRTY).load(Ordering::Acquire) != 0),
            Ok(Locked::OwnerDied) => {
                self.word(DIRTY).store(1, Ordering::Release);
                Ok(true)
            }
            Ok(Locked::Busy) => Err(LockError::Timeout),
            Ok(Locked::WouldDeadlock) => Err(LockError::WouldDeadlock),
            Err(e) => Err(LockError::Io(e)),
        }
    }

    fn unlock(&self) -> Result<()> {
        self.mutex().unlock().map_err(|_| Error::NotOwner)
    }

    /// Whether someone holds the mutex (a probe: try, and give back at once).
    fn locked(&self) -> bool {
        match self.mutex().lock(Some(Instant::now())) {
            Ok(Locked::Acquired) => {
                let _ = self.mutex().unlock();
                false
            }
            Ok(Locked::OwnerDied) => {
                self.word(DIRTY).store(1, Ordering::Release);
                let _ = self.mutex().unlock();
                false
            }
            _ => true,
        }
    }
}

/// This thread, as an RLock owner: `pid << 32 | tid` (never 0).
fn me() -> u64 {
    let (pid, tid) = ids();
    (pid as u64) << 32 | tid as u64
}

fn outcome<G>(suspect: bool, g: G) -> std::result::Result<G, LockError<G>> {
    if suspect {
        Err(LockError::OwnerDied(g))
    } else {
        Ok(g)
    }
}

fn deadline(timeout: Duration) -> Instant {
    Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365))
}

/// A process-shared, non-reentrant lock: Python's `multiprocessing.Lock`, robust to the death
/// of its holder.
///
/// The lock belongs to the thread that acquired it: releasing it from another thread or
/// process is [`Error::NotOwner`]; acquiring it again from the holding thread is
/// [`LockError::WouldDeadlock`] instead of a hang.
///
/// ```
/// use spindle::multiprocessing::synchronize::{Lock, LockError};
/// let lock = Lock::new()?;
/// lock.acquire().unwrap();
/// assert!(matches!(lock.try_acquire(), Err(LockError::WouldDeadlock)));
/// lock.release()?;
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Lock {
    core: Core,
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.locked())
            .finish()
    }
}

impl Lock {
    /// A new, unlocked lock.
    pub fn new() -> Result<Lock> {
        Ok(Lock {
            core: Core::new("spindle-lock")?,
        })
    }

    /// Waits for the lock and takes it (Python's `acquire()`).
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`]: the lock **is** held now, and its previous holder died with
    /// it; [`LockError::WouldDeadlock`] when this thread holds it already.
    pub fn acquire(&self) -> std::result::Result<(), LockError> {
        outcome(self.core.lock(None)?, ())
    }

    /// [`acquire`](Lock::acquire) for at most `timeout` ([`LockError::Timeout`] then).
    pub fn acquire_timeout(&self, timeout: Duration) -> std::result::Result<(), LockError> {
        outcome(self.core.lock(Some(deadline(timeout)))?, ())
    }

    /// Takes the lock if it is free ([`LockError::Timeout`] when held).
    pub fn try_acquire(&self) -> std::result::Result<(), LockError> {
        outcome(self.core.lock(Some(Instant::now()))?, ())
    }

    /// Releases the lock (Python's `release()`).
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the calling thread does not hold it.
    pub fn release(&self) -> Result<()> {
        self.core.unlock()
    }

    /// Whether the lock is held by anyone.
    pub fn locked(&self) -> bool {
        self.core.locked()
    }

    /// Declares the state this lock protects consistent again after an
    /// [`OwnerDied`](LockError::OwnerDied): later acquirers are no longer warned. The caller
    /// must hold the lock ([`Error::NotOwner`] otherwise).
    pub fn mark_consistent(&self) -> Result<()> {
        match self.core.mutex().lock(Some(Instant::now())) {
            Ok(Locked::WouldDeadlock) => {
                self.core.word(DIRTY).store(0, Ordering::Release);
                Ok(())
            }
            Ok(Locked::Acquired | Locked::OwnerDied) => {
                let _ = self.core.mutex().unlock();
                Err(Error::NotOwner)
            }
            _ => Err(Error::NotOwner),
        }
    }

    /// Takes the lock and returns a guard that releases it when dropped.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Lock::acquire); an [`OwnerDied`](LockError::OwnerDied) error holds the
    /// guard.
    pub fn lock(&self) -> std::result::Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        self.guarded(None)
    }

    /// [`lock`](Lock::lock) for at most `timeout`.
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> std::result::Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        self.guarded(Some(deadline(timeout)))
    }

    /// [`lock`](Lock::lock) if the lock is free.
    pub fn try_lock(&self) -> std::result::Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        self.guarded(Some(Instant::now()))
    }

    fn guarded(
        &self,
        deadline: Option<Instant>,
    ) -> std::result::Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        let suspect = self.core.lock(deadline).map_err(regard)?;
        outcome(
            suspect,
            LockGuard {
                lock: self,
                _not_send: PhantomData,
            },
        )
    }
}

fn regard<G>(e: LockError) -> LockError<G> {
    match e {
        LockError::Timeout => LockError::Timeout,
        LockError::WouldDeadlock => LockError::WouldDeadlock,
        LockError::Io(e) => LockError::Io(e),
        LockError::NotOwner => LockError::NotOwner,
        LockError::OwnerDied(()) => unreachable!("core.lock reports a dead owner as Ok(true)"),
    }
}

/// Holds a [`Lock`]; releases it when dropped. Stays on the thread that took it (the mutex
/// belongs to a thread), so it is not `Send`:
///
/// ```compile_fail
/// fn elsewhere<T: Send>(_: T) {}
/// let lock = spindle::multiprocessing::Lock::new().unwrap();
/// elsewhere(lock.lock().unwrap());
/// ```
pub struct LockGuard<'a> {
    lock: &'a Lock,
    _not_send: PhantomData<*const ()>,
}

impl LockGuard<'_> {
    /// Declares the protected state consistent (see [`Lock::mark_consistent`]).
    pub fn mark_consistent(&self) {
        self.lock.core.word(DIRTY).store(0, Ordering::Release);
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockGuard")
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.lock.core.unlock();
    }
}

/// A process-shared reentrant lock: Python's `multiprocessing.RLock`, robust to the death of
/// its holder. The holding thread may acquire it again; it is free once released as many
/// times.
///
/// ```
/// use spindle::multiprocessing::synchronize::RLock;
/// let lock = RLock::new()?;
/// lock.acquire().unwrap();
/// lock.acquire().unwrap();
/// assert!(lock.is_owned());
/// lock.release()?;
/// lock.release()?;
/// assert!(!lock.is_owned());
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct RLock {
    core: Core,
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("owned", &self.is_owned())
            .finish()
    }
}

impl RLock {
    /// A new, unlocked reentrant lock.
    pub fn new() -> Result<RLock> {
        Ok(RLock {
            core: Core::new("spindle-rlock")?,
        })
    }

    /// Whether the calling thread holds it.
    pub fn is_owned(&self) -> bool {
        self.core.owner().load(Ordering::Relaxed) == me()
    }

    fn take(&self, deadline: Option<Instant>) -> std::result::Result<bool, LockError> {
        // The mutex first: glibc tells a re-entry by the futex word's owner (EDEADLK), without
        // this thread reading the shared line before its own lock attempt does (a contended
        // line costs a transfer per read).
        match self.core.lock(deadline) {
            Err(LockError::WouldDeadlock) if self.is_owned() => {
                // Only the owner writes the depth: no read-modify-write needed.
                let depth = self.core.word(DEPTH);
                depth.store(
                    depth.load(Ordering::Relaxed).saturating_add(1),
                    Ordering::Relaxed,
                );
                Ok(false)
            }
            Err(e) => Err(e),
            Ok(suspect) => {
                self.core.word(DEPTH).store(1, Ordering::Relaxed);
                self.core.owner().store(me(), Ordering::Relaxed);
                Ok(suspect)
            }
        }
    }

    /// Acquires (again, if this thread holds it already).
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`] as for [`Lock::acquire`] (the lock is held).
    pub fn acquire(&self) -> std::result::Result<(), LockError> {
        outcome(self.take(None)?, ())
    }

    /// [`acquire`](RLock::acquire) for at most `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> std::result::Result<(), LockError> {
        outcome(self.take(Some(deadline(timeout)))?, ())
    }

    /// Acquires if free or already held by this thread.
    pub fn try_acquire(&self) -> std::result::Result<(), LockError> {
        outcome(self.take(Some(Instant::now()))?, ())
    }

    /// Releases one level.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the calling thread does not hold it.
    pub fn release(&self) -> Result<()> {
        if !self.is_owned() {
            return Err(Error::NotOwner);
        }
        let depth = self.core.word(DEPTH);
        let left = depth.load(Ordering::Relaxed).saturating_sub(1);
        depth.store(left, Ordering::Relaxed);
        if left == 0 {
            self.core.owner().store(0, Ordering::Relaxed);
            self.core.unlock()?;
        }
        Ok(())
    }

    /// Whether anyone holds it.
    pub fn locked(&self) -> bool {
        self.is_owned() || self.core.locked()
    }

    /// See [`Lock::mark_consistent`].
    pub fn mark_consistent(&self) -> Result<()> {
        if !self.is_owned() {
            return Err(Error::NotOwner);
        }
        self.core.word(DIRTY).store(0, Ordering::Release);
        Ok(())
    }

    /// Acquires and returns a guard that releases one level when dropped.
    pub fn lock(&self) -> std::result::Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
        self.guarded(None)
    }

    /// [`lock`](RLock::lock) for at most `timeout`.
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> std::result::Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
        self.guarded(Some(deadline(timeout)))
    }

    fn guarded(
        &self,
        deadline: Option<Instant>,
    ) -> std::result::Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
        let suspect = self.take(deadline).map_err(regard)?;
        outcome(
            suspect,
            RLockGuard {
                lock: self,
                _not_send: PhantomData,
            },
        )
    }

    /// Releases every level this thread holds; returns how many (for a condition's wait).
    pub(crate) fn release_all(&self) -> Result<u32> {
        if !self.is_owned() {
            return Err(Error::NotOwner);
        }
        let depth = self.core.word(DEPTH).swap(0, Ordering::Relaxed);
        self.core.owner().store(0, Ordering::Relaxed);
        self.core.unlock()?;
        Ok(depth)
    }

    /// Takes the lock back at `depth` levels (after [`release_all`](RLock::release_all)).
    pub(crate) fn restore(&self, depth: u32) -> std::result::Result<(), LockError> {
        let suspect = self.take(None)?;
        self.core.word(DEPTH).store(depth.max(1), Ordering::Relaxed);
        outcome(suspect, ())
    }
}

/// Holds one level of an [`RLock`]; releases it when dropped.
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    _not_send: PhantomData<*const ()>,
}

impl RLockGuard<'_> {
    /// Declares the protected state consistent (see [`Lock::mark_consistent`]).
    pub fn mark_consistent(&self) {
        self.lock.core.word(DIRTY).store(0, Ordering::Release);
    }
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RLockGuard")
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.lock.release();
    }
}

impl Lock {
    /// Releases for a condition's wait (the same as [`release`](Lock::release)).
    pub(crate) fn release_all(&self) -> Result<u32> {
        self.release().map(|()| 1)
    }

    /// Takes the lock back after a condition's wait.
    pub(crate) fn restore(&self, _depth: u32) -> std::result::Result<(), LockError> {
        self.acquire()
    }

    /// Whether the calling thread holds it (a probe).
    pub(crate) fn held_here(&self) -> bool {
        match self.core.mutex().lock(Some(Instant::now())) {
            Ok(Locked::WouldDeadlock) => true,
            Ok(Locked::Acquired) => {
                let _ = self.core.mutex().unlock();
                false
            }
            Ok(Locked::OwnerDied) => {
                self.core.word(DIRTY).store(1, Ordering::Release);
                let _ = self.core.mutex().unlock();
                false
            }
            _ => false,
        }
    }
}
