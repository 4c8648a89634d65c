//! [`Semaphore`] and [`BoundedSemaphore`] on one futex word.
//!
//! A process that dies holding a permit keeps it (as in Python: a semaphore has no owner).

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::multiprocessing::shared_memory::Segment;
use crate::sys::futex;

const VALUE: usize = 0;
const SLEEPERS: usize = 4;
const MAX: usize = 8;
const SIZE: usize = 64;

#[derive(Clone, Serialize, Deserialize)]
struct Core {
    seg: Segment,
}

impl Core {
    fn new(value: u32, max: u32) -> Result<Core> {
        let seg = Segment::new("spindle-semaphore", SIZE)?;
        seg.map().atomic_u32(VALUE).store(value, Ordering::Relaxed);
        seg.map().atomic_u32(MAX).store(max, Ordering::Relaxed);
        Ok(Core { seg })
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        self.seg.map().atomic_u32(off)
    }

    fn try_take(&self) -> bool {
        let v = self.word(VALUE);
        let mut cur = v.load(Ordering::Relaxed);
        while cur > 0 {
            match v.compare_exchange_weak(cur, cur - 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
        false
    }

    fn acquire(&self, deadline: Option<Instant>) -> bool {
        for _ in 0..64 {
            if self.try_take() {
                return true;
            }
            std::hint::spin_loop();
        }
        loop {
            if self.try_take() {
                return true;
            }
            let timeout = match deadline {
                None => None,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    Some(d - now)
                }
            };
            self.word(SLEEPERS).fetch_add(1, Ordering::SeqCst);
            if self.word(VALUE).load(Ordering::SeqCst) == 0 {
                futex::wait(self.word(VALUE), 0, timeout);
            }
            self.word(SLEEPERS).fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn release(&self, n: u32) -> Result<()> {
        let max = self.word(MAX).load(Ordering::Relaxed);
        let v = self.word(VALUE);
        let mut cur = v.load(Ordering::Relaxed);
        loop {
            let next = cur
                .checked_add(n)
                .filter(|next| max == 0 || *next <= max)
                .ok_or(Error::OverRelease)?;
            match v.compare_exchange_weak(cur, next, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        // A sleeper killed while waiting leaves this count one too high: it only costs a
        // wake-up call that finds nobody.
        if self.word(SLEEPERS).load(Ordering::SeqCst) > 0 {
            futex::wake(self.word(VALUE), n);
        }
        Ok(())
    }
}

fn deadline(t: Duration) -> Option<Instant> {
    Instant::now().checked_add(t)
}

macro_rules! semaphore_api {
    () => {
        /// Takes a permit, waiting while none is free (Python's `acquire()`).
        pub fn acquire(&self) {
            self.core.acquire(None);
        }

        /// Takes a permit if one frees up within `timeout`; returns whether it did.
        pub fn acquire_timeout(&self, timeout: Duration) -> bool {
            self.core.acquire(deadline(timeout))
        }

        /// Takes a permit if one is free now.
        pub fn try_acquire(&self) -> bool {
            self.core.try_take()
        }

        /// The number of free permits (Python's `get_value()`).
        pub fn get_value(&self) -> u32 {
            self.core.word(VALUE).load(Ordering::Relaxed)
        }
    };
}

/// A process-shared counting semaphore: Python's `multiprocessing.Semaphore`.
///
/// ```
/// use spindle::multiprocessing::synchronize::Semaphore;
/// let s = Semaphore::new(2)?;
/// s.acquire();
/// assert!(s.try_acquire());
/// assert!(!s.try_acquire());
/// s.release()?;
/// assert_eq!(s.get_value(), 1);
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Semaphore {
    core: Core,
}

impl Semaphore {
    /// A semaphore with `value` free permits.
    pub fn new(value: u32) -> Result<Semaphore> {
        Ok(Semaphore {
            core: Core::new(value, 0)?,
        })
    }

    semaphore_api!();

    /// Gives a permit back (Python's `release()`).
    ///
    /// # Errors
    ///
    /// [`Error::OverRelease`] only when the count would overflow `u32`.
    pub fn release(&self) -> Result<()> {
        self.core.release(1)
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.get_value())
            .finish()
    }
}

/// A process-shared semaphore that refuses to be released above its initial value: Python's
/// `multiprocessing.BoundedSemaphore`.
///
/// ```
/// use spindle::multiprocessing::synchronize::BoundedSemaphore;
/// use spindle::Error;
/// let s = BoundedSemaphore::new(1)?;
/// assert!(matches!(s.release(), Err(Error::OverRelease)));
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct BoundedSemaphore {
    core: Core,
}

impl BoundedSemaphore {
    /// A bounded semaphore with `value` free permits, at most `value`.
    pub fn new(value: u32) -> Result<BoundedSemaphore> {
        if value == 0 {
            return Err(Error::InvalidArgument(
                "a bounded semaphore needs at least one permit".into(),
            ));
        }
        Ok(BoundedSemaphore {
            core: Core::new(value, value)?,
        })
    }

    semaphore_api!();

    /// Gives a permit back.
    ///
    /// # Errors
    ///
    /// [`Error::OverRelease`] when that would exceed the initial value.
    pub fn release(&self) -> Result<()> {
        self.core.release(1)
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("value", &self.get_value())
            .finish()
    }
}
