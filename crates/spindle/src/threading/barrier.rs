//! `threading.Barrier`, with CPython's state machine: filling, draining, resetting, broken.

use crate::sync::{Condvar, Mutex, MutexGuard};
use std::fmt;
use std::time::{Duration, Instant};

use crate::error::{Error, Result, TaskError};
use crate::latch::{deadline, wait_until};
use crate::panic;
use crate::sync::lock;

type Action = Box<dyn FnMut() + Send>;

/// A meeting point for a fixed number of threads: Python's `threading.Barrier`.
///
/// Each of `parties` threads calls [`Barrier::wait`]; all of them block until the last one
/// arrives, then all go on, and the barrier is ready for the next round. `wait` returns the
/// thread's arrival index, `0..parties` (the last to arrive gets `parties - 1`). An optional
/// action ([`BarrierBuilder::action`]) runs once per round, on the last thread to arrive,
/// before the others are released.
///
/// A barrier breaks when [`Barrier::abort`] is called, when a wait times out, or when the
/// action panics: every thread waiting then, and every later `wait`, gets
/// [`Error::BrokenBarrier`] until [`Barrier::reset`] (Python's `BrokenBarrierError`).
///
/// ```
/// use spindle::threading::{Barrier, Thread};
/// use std::sync::Arc;
///
/// let barrier = Arc::new(Barrier::new(3)?);
/// let mut threads: Vec<_> = (0..3)
///     .map(|_| {
///         let b = Arc::clone(&barrier);
///         Thread::new(move || b.wait())
///     })
///     .collect();
/// for t in &mut threads {
///     t.start()?;
/// }
/// let mut indices = threads.iter_mut().map(|t| t.join()?).collect::<spindle::Result<Vec<_>>>()?;
/// indices.sort();
/// assert_eq!(indices, [0, 1, 2]);
/// # Ok::<(), spindle::Error>(())
/// ```
pub struct Barrier {
    parties: usize,
    timeout: Option<Duration>,
    action: Option<Mutex<Action>>,
    state: Mutex<State>,
    cv: Condvar,
}

#[derive(Debug, Clone, Copy)]
struct State {
    /// Threads inside `wait`.
    count: usize,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Threads are arriving.
    Filling,
    /// The last thread is running the action; nobody may enter or leave yet.
    Releasing,
    /// The round is complete; the waiters are leaving.
    Draining,
    /// `reset` was called with threads inside; they leave with an error.
    Resetting,
    /// Aborted, timed out or the action panicked.
    Broken,
}

impl Barrier {
    /// A barrier for `parties` threads, with no action and no default timeout.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `parties` is 0 (Python's `ValueError`).
    pub fn new(parties: usize) -> Result<Barrier> {
        Barrier::builder(parties).build()
    }

    /// A builder for a barrier with an action or a default timeout.
    ///
    /// ```
    /// use spindle::threading::Barrier;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let rounds = Arc::new(AtomicUsize::new(0));
    /// let r = Arc::clone(&rounds);
    /// let barrier = Barrier::builder(1)
    ///     .action(move || {
    ///         r.fetch_add(1, Ordering::SeqCst);
    ///     })
    ///     .timeout(Duration::from_secs(5))
    ///     .build()?;
    /// assert_eq!(barrier.wait()?, 0);
    /// assert_eq!(rounds.load(Ordering::SeqCst), 1);
    /// # Ok::<(), spindle::Error>(())
    /// ```
    pub fn builder(parties: usize) -> BarrierBuilder {
        BarrierBuilder {
            parties,
            action: None,
            timeout: None,
        }
    }

    /// Waits for the other parties: Python's `wait()`. Uses the builder's default timeout, if
    /// any. Returns this thread's arrival index.
    ///
    /// # Errors
    ///
    /// [`Error::BrokenBarrier`] when the barrier is broken or reset while waiting, or breaks
    /// because the wait timed out; [`Error::Task`] for the thread whose action panicked.
    pub fn wait(&self) -> Result<usize> {
        self.wait_until(self.timeout.and_then(deadline))
    }

    /// Waits at most `timeout` for the other parties: Python's `wait(timeout)`.
    ///
    /// On time-out the barrier breaks, as in Python: this thread and every other waiter get
    /// [`Error::BrokenBarrier`].
    ///
    /// # Errors
    ///
    /// As [`Barrier::wait`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize> {
        self.wait_until(deadline(timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<usize> {
        // Wait out the previous round's departure (or a reset) before entering.
        let (mut state, _) = wait_until(&self.cv, lock(&self.state), None, |s| {
            !matches!(
                s.phase,
                Phase::Releasing | Phase::Draining | Phase::Resetting
            )
        });
        if state.phase == Phase::Broken {
            return Err(Error::BrokenBarrier);
        }
        let index = state.count;
        state.count += 1;

        let result;
        (state, result) = if index + 1 == self.parties {
            self.release(state, index)
        } else {
            let (mut state, released) = wait_until(&self.cv, state, deadline, |s| {
                !matches!(s.phase, Phase::Filling | Phase::Releasing)
            });
            let result = if !released {
                self.break_barrier(&mut state);
                Err(Error::BrokenBarrier)
            } else if state.phase == Phase::Draining {
                Ok(index)
            } else {
                Err(Error::BrokenBarrier)
            };
            (state, result)
        };

        state.count -= 1;
        if state.count == 0 && matches!(state.phase, Phase::Draining | Phase::Resetting) {
            state.phase = Phase::Filling;
            self.cv.notify_all();
        }
        result
    }

    /// The last thread's part: run the action (outside the state lock), then release all.
    fn release<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        index: usize,
    ) -> (MutexGuard<'a, State>, Result<usize>) {
        if let Some(action) = &self.action {
            state.phase = Phase::Releasing;
            drop(state);
            let ran = panic::catch(|| (lock(action))());
            state = lock(&self.state);
            if let Err(report) = ran {
                self.break_barrier(&mut state);
                return (state, Err(Error::Task(TaskError::panicked(report))));
            }
            if state.phase != Phase::Releasing {
                // Aborted or reset while the action ran.
                return (state, Err(Error::BrokenBarrier));
            }
        }
        state.phase = Phase::Draining;
        self.cv.notify_all();
        (state, Ok(index))
    }

    fn break_barrier(&self, state: &mut State) {
        state.phase = Phase::Broken;
        self.cv.notify_all();
    }

    /// Breaks the barrier: every thread waiting now, and every later [`Barrier::wait`], gets
    /// [`Error::BrokenBarrier`] until [`Barrier::reset`]. Python's `abort()`.
    pub fn abort(&self) {
        self.break_barrier(&mut lock(&self.state));
    }

    /// Returns the barrier to its empty state: Python's `reset()`. Threads waiting now get
    /// [`Error::BrokenBarrier`]; a broken barrier becomes usable again.
    pub fn reset(&self) {
        let mut state = lock(&self.state);
        if state.count > 0 {
            if matches!(
                state.phase,
                Phase::Filling | Phase::Releasing | Phase::Broken
            ) {
                // Cleared by the last thread to leave.
                state.phase = Phase::Resetting;
            }
        } else {
            state.phase = Phase::Filling;
        }
        self.cv.notify_all();
    }

    /// How many threads must call `wait` to pass the barrier.
    pub fn parties(&self) -> usize {
        self.parties
    }

    /// How many threads are waiting for the current round to fill: Python's `n_waiting`.
    pub fn n_waiting(&self) -> usize {
        let state = lock(&self.state);
        if state.phase == Phase::Filling {
            state.count
        } else {
            0
        }
    }

    /// Whether the barrier is broken: Python's `broken`.
    pub fn broken(&self) -> bool {
        lock(&self.state).phase == Phase::Broken
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = *lock(&self.state);
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("count", &state.count)
            .field("phase", &state.phase)
            .field("timeout", &self.timeout)
            .field("action", &self.action.is_some())
            .finish()
    }
}

/// Builds a [`Barrier`] with Python's keyword arguments `action=` and `timeout=`; ends in
/// [`BarrierBuilder::build`].
pub struct BarrierBuilder {
    parties: usize,
    action: Option<Action>,
    timeout: Option<Duration>,
}

impl BarrierBuilder {
    /// Runs `action` once per round, on the last thread to arrive, before any thread is
    /// released. If it panics, that thread's `wait` returns [`Error::Task`] with the panic and
    /// the barrier breaks.
    pub fn action(mut self, action: impl FnMut() + Send + 'static) -> Self {
        self.action = Some(Box::new(action));
        self
    }

    /// The timeout [`Barrier::wait`] uses (default: wait forever).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The barrier.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `parties` is 0.
    pub fn build(self) -> Result<Barrier> {
        if self.parties == 0 {
            return Err(Error::InvalidArgument(
                "a barrier needs at least one party".to_owned(),
            ));
        }
        Ok(Barrier {
            parties: self.parties,
            timeout: self.timeout,
            action: self.action.map(Mutex::new),
            state: Mutex::new(State {
                count: 0,
                phase: Phase::Filling,
            }),
            cv: Condvar::new(),
        })
    }
}

impl fmt::Debug for BarrierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierBuilder")
            .field("parties", &self.parties)
            .field("action", &self.action.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}
