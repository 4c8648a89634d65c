//! [`Barrier`]: a generation count under a robust mutex, a futex word to sleep on, and a table
//! of the processes that wait at it (pid and start time), so that a dead party breaks it.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::multiprocessing::shared_memory::Segment;
use crate::sys::futex::{self, process_start_time, Locked, RobustMutex};
use crate::sys::proc::getpid;

const MUTEX: usize = 0;
const PARTIES: usize = 64;
const COUNT: usize = 68;
const GEN: usize = 72;
const BROKEN: usize = 76;
const EPOCH: usize = 80;
/// `1 + g` when the waiters of generation `g` were released by a reset (they fail).
const RESET_GEN: usize = 84;
const SLOTS: usize = 128;
const SLOT: usize = 16;
/// The most parties a barrier takes (the slot table must fit a small segment).
const MAX_PARTIES: u32 = 4096;

/// A process-shared barrier: Python's `multiprocessing.Barrier`, which a dead party breaks.
///
/// Every process that waits at the barrier is recorded (pid and start time, so a reused pid
/// is not mistaken for it). A waiter that finds a recorded process dead without having arrived
/// in the current generation breaks the barrier: every waiter gets
/// [`Error::BrokenBarrier`] instead of waiting for a party that will never come. A process
/// is known from its first `wait` on; one that dies before it ever waited cannot be told from
/// a slow one (use [`wait_timeout`](Barrier::wait_timeout) for that case). A new process
/// arriving in place of a dead one takes its slot.
///
/// ```
/// use spindle::multiprocessing::synchronize::Barrier;
/// let b = Barrier::new(1)?;
/// assert_eq!(b.wait()?, 0);
/// b.abort();
/// assert!(b.broken());
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Barrier {
    seg: Segment,
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.broken())
            .finish()
    }
}

/// The internal mutex, held.
struct Held<'a>(RobustMutex<'a>);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl Barrier {
    /// A barrier for `parties` waiters (1 to 4096).
    pub fn new(parties: u32) -> Result<Barrier> {
        if parties == 0 || parties > MAX_PARTIES {
            return Err(Error::InvalidArgument(format!(
                "a barrier needs 1 to {MAX_PARTIES} parties, not {parties}"
            )));
        }
        let seg = Segment::new("spindle-barrier", SLOTS + SLOT * parties as usize)?;
        RobustMutex::at(seg.map(), MUTEX).init()?;
        seg.map()
            .atomic_u32(PARTIES)
            .store(parties, Ordering::Relaxed);
        Ok(Barrier { seg })
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        self.seg.map().atomic_u32(off)
    }

    fn slot(&self, i: usize) -> (&AtomicU32, &AtomicU32, &AtomicU64) {
        let base = SLOTS + i * SLOT;
        let m = self.seg.map();
        (
            m.atomic_u32(base),
            m.atomic_u32(base + 4),
            m.atomic_u64(base + 8),
        )
    }

    fn slots(&self) -> usize {
        let n = self.word(PARTIES).load(Ordering::Relaxed) as usize;
        n.min((self.seg.len() - SLOTS) / SLOT)
    }

    fn hold(&self) -> Result<Held<'_>> {
        let m = RobustMutex::at(self.seg.map(), MUTEX);
        match m.lock(None)? {
            Locked::Acquired => {}
            // A party died inside the barrier's own bookkeeping: trust nothing, break it.
            Locked::OwnerDied => self.break_now(),
            Locked::Busy | Locked::WouldDeadlock => {
                return Err(Error::InvalidState("barrier mutex in an impossible state"))
            }
        }
        Ok(Held(m))
    }

    fn break_now(&self) {
        self.word(BROKEN).store(1, Ordering::SeqCst);
        self.word(EPOCH).fetch_add(1, Ordering::SeqCst);
        futex::wake(self.word(EPOCH), u32::MAX);
    }

    /// Records this process as a party that arrived in generation `gen` (mutex held).
    fn register(&self, gen: u32) {
        let me = getpid();
        let start = process_start_time(me).unwrap_or(0);
        let mut free = None;
        let mut dead = None;
        for i in 0..self.slots() {
            let (pid, arrived, st) = self.slot(i);
            let p = pid.load(Ordering::Relaxed);
            if p == me && st.load(Ordering::Relaxed) == start {
                arrived.store(gen.wrapping_add(1), Ordering::Relaxed);
                return;
            }
            if p == 0 && free.is_none() {
                free = Some(i);
            } else if p != 0
                && dead.is_none()
                && process_start_time(p) != Some(st.load(Ordering::Relaxed))
            {
                dead = Some(i);
            }
        }
        if let Some(i) = free.or(dead) {
            let (pid, arrived, st) = self.slot(i);
            pid.store(me, Ordering::Relaxed);
            st.store(start, Ordering::Relaxed);
            arrived.store(gen.wrapping_add(1), Ordering::Relaxed);
        }
    }

    /// Whether a recorded party is dead without having arrived in generation `gen`.
    fn party_lost(&self, gen: u32) -> bool {
        (0..self.slots()).any(|i| {
            let (pid, arrived, st) = self.slot(i);
            let p = pid.load(Ordering::Relaxed);
            p != 0
                && arrived.load(Ordering::Relaxed) != gen.wrapping_add(1)
                && process_start_time(p) != Some(st.load(Ordering::Relaxed))
        })
    }

    /// Waits until `parties` waiters have arrived; returns this waiter's arrival index
    /// (0 to parties − 1), as Python does.
    ///
    /// # Errors
    ///
    /// [`Error::BrokenBarrier`] when the barrier is or becomes broken: aborted, reset while
    /// waiting, or a party died.
    pub fn wait(&self) -> Result<usize> {
        self.wait_until(None)
    }

    /// [`wait`](Barrier::wait) for at most `timeout`; running out breaks the barrier (as in
    /// Python) and is [`Error::BrokenBarrier`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize> {
        self.wait_until(Instant::now().checked_add(timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<usize> {
        let (my_gen, idx) = {
            let _held = self.hold()?;
            if self.word(BROKEN).load(Ordering::SeqCst) != 0 {
                return Err(Error::BrokenBarrier);
            }
            let gen = self.word(GEN).load(Ordering::SeqCst);
            self.register(gen);
            let idx = self.word(COUNT).fetch_add(1, Ordering::SeqCst);
            if idx + 1 >= self.word(PARTIES).load(Ordering::Relaxed) {
                self.word(COUNT).store(0, Ordering::SeqCst);
                self.word(GEN).store(gen.wrapping_add(1), Ordering::SeqCst);
                self.word(EPOCH).fetch_add(1, Ordering::SeqCst);
                futex::wake(self.word(EPOCH), u32::MAX);
                return Ok(idx as usize);
            }
            (gen, idx as usize)
        };
        let began = Instant::now();
        loop {
            let epoch = self.word(EPOCH).load(Ordering::SeqCst);
            {
                let _held = self.hold()?;
                if self.word(GEN).load(Ordering::SeqCst) != my_gen {
                    if self.word(RESET_GEN).load(Ordering::SeqCst) == my_gen.wrapping_add(1) {
                        return Err(Error::BrokenBarrier);
                    }
                    return Ok(idx);
                }
                if self.word(BROKEN).load(Ordering::SeqCst) != 0 {
                    return Err(Error::BrokenBarrier);
                }
                if self.party_lost(my_gen) || deadline.is_some_and(|d| Instant::now() >= d) {
                    self.break_now();
                    return Err(Error::BrokenBarrier);
                }
            }
            let slice = super::slice(began.elapsed(), deadline);
            futex::wait(self.word(EPOCH), epoch, slice);
        }
    }

    /// Breaks the barrier: current and later waiters get [`Error::BrokenBarrier`] until
    /// [`reset`](Barrier::reset).
    pub fn abort(&self) {
        let _held = self.hold();
        self.break_now();
    }

    /// Returns the barrier to its initial state; current waiters get
    /// [`Error::BrokenBarrier`].
    pub fn reset(&self) {
        let _held = self.hold();
        let gen = self.word(GEN).load(Ordering::SeqCst);
        if self.word(COUNT).load(Ordering::SeqCst) > 0 {
            self.word(RESET_GEN)
                .store(gen.wrapping_add(1), Ordering::SeqCst);
        }
        self.word(COUNT).store(0, Ordering::SeqCst);
        self.word(GEN).store(gen.wrapping_add(1), Ordering::SeqCst);
        self.word(BROKEN).store(0, Ordering::SeqCst);
        self.word(EPOCH).fetch_add(1, Ordering::SeqCst);
        futex::wake(self.word(EPOCH), u32::MAX);
    }

    /// The number of parties.
    pub fn parties(&self) -> usize {
        self.word(PARTIES).load(Ordering::Relaxed) as usize
    }

    /// How many waiters are waiting now.
    pub fn n_waiting(&self) -> usize {
        self.word(COUNT).load(Ordering::Relaxed) as usize
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> bool {
        self.word(BROKEN).load(Ordering::SeqCst) != 0
    }
}
