//! The bridge to the executors: [`to_thread`], [`run_in_executor`], [`wrap_future`], and the
//! handle they return, [`ExecutorFuture`], which cancels its task when dropped.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::event_loop::get_running_loop;
use crate::futures::{self, Executor, ProcessPoolExecutor, ThreadPoolExecutor};
use crate::{Error, Result};

/// An executor whose tasks [`run_in_executor`] can stop: what it does when the handle of a
/// task is dropped or cancelled.
///
/// The default stops only a task that has not started ([`futures::Future::cancel`]); a
/// thread cannot be stopped from outside, so that is all [`ThreadPoolExecutor`] does. The
/// [`ProcessPoolExecutor`] also stops a running task
/// ([`ProcessPoolExecutor::stop`]: its worker is ended and replaced). An executor of your
/// own opts in with one line, `impl StopTask for MyExecutor {}`, or overrides
/// [`stop_task`](StopTask::stop_task).
pub trait StopTask: Executor {
    /// Whether a tiny task's end usually follows its submission within microseconds (a
    /// thread pool): the first poll of its handle may then watch the future a moment before
    /// the loop goes to sleep, as a blocking `result()` spins before it sleeps, while this
    /// thread's recent calls came back within 50 µs. Off by default (a process pool's round
    /// trip is tens of microseconds, and on two cores a watching loop would take the CPU its
    /// worker needs).
    const QUICK: bool = false;

    /// Stops the task of `future` if it can; returns whether it did (or the future was
    /// cancelled already).
    fn stop_task<R>(&self, future: &futures::Future<R>) -> bool {
        future.cancel()
    }
}

impl StopTask for ThreadPoolExecutor {
    const QUICK: bool = true;
}

/// A task on an MPI rank cannot be stopped from here (MPI offers no per-task abort; killing a
/// rank ends the job): only one not handed to a rank yet is cancelled.
#[cfg(feature = "mpi")]
impl StopTask for crate::futures::MpiPoolExecutor {}

impl StopTask for ProcessPoolExecutor {
    fn stop_task<R>(&self, future: &futures::Future<R>) -> bool {
        self.stop(future)
    }
}

/// [`StopTask`] for one result type, so that a handle can hold the executor as a trait
/// object.
trait StopDyn<R> {
    fn stop(&self, future: &futures::Future<R>) -> bool;
}

impl<E: StopTask, R> StopDyn<R> for E {
    fn stop(&self, future: &futures::Future<R>) -> bool {
        self.stop_task(future)
    }
}

/// The awaitable of [`run_in_executor`], [`to_thread`] and [`wrap_future`]: the task's value,
/// and **dropping or [cancelling](ExecutorFuture::cancel) it cancels the task**, as Python
/// cancels the executor's future when the awaiting coroutine is cancelled:
///
/// * a task not started yet never starts;
/// * a task running in a [`ProcessPoolExecutor`] is stopped: `SIGTERM`, then `SIGKILL` after
///   [`STOP_GRACE`](crate::futures::STOP_GRACE); its worker is replaced and the pool goes on;
/// * a task running on a thread cannot be stopped (no thread can be, safely): it runs to
///   its end and its value is dropped.
///
/// To let the task run on after the handle is gone, take the plain future out with
/// [`detach`](ExecutorFuture::detach): dropping a [`futures::Future`] keeps meaning "detach".
///
/// The loop's thread is never blocked: the task's end wakes the awaiting coroutine through
/// the future's waker, from the thread (or the pool's supervisor) that completes it.
#[must_use = "dropping the handle cancels the task"]
pub struct ExecutorFuture<'e, R> {
    state: State<'e, R>,
    /// Who stops a running task; `None`: only a task not started can be stopped.
    stopper: Option<&'e (dyn StopDyn<R> + Sync)>,
    /// When a quick executor's call was submitted: its first poll watches the future
    /// briefly, and its end feeds the thread's average round trip ([`StopTask::QUICK`]).
    quick: Option<Instant>,
    /// Whether the first poll happened.
    polled: bool,
}

/// Submits the task when first polled ([`to_thread`]: Python's is a coroutine, so it may be
/// made outside the loop and handed to it).
type Submit<'e, R> = Box<dyn FnOnce() -> Result<futures::Future<R>> + Send + 'e>;

enum State<'e, R> {
    Lazy(Submit<'e, R>),
    Submitted(futures::Future<R>),
    Refused(Option<Error>),
    Ended,
}

impl<'e, R> ExecutorFuture<'e, R> {
    fn new(
        submitted: Result<futures::Future<R>>,
        stopper: Option<&'e (dyn StopDyn<R> + Sync)>,
    ) -> Self {
        ExecutorFuture {
            state: match submitted {
                Ok(f) => State::Submitted(f),
                Err(e) => State::Refused(Some(e)),
            },
            stopper,
            quick: None,
            polled: false,
        }
    }

    fn lazy(submit: Submit<'e, R>) -> Self {
        ExecutorFuture {
            state: State::Lazy(submit),
            stopper: None,
            quick: None,
            polled: false,
        }
    }

    /// Cancels the task as dropping the handle would (see [`ExecutorFuture`]); awaiting it
    /// then gives a cancelled [`TaskError`](crate::TaskError). Returns `false` when the task
    /// could not be stopped (it runs on a thread, or it has ended).
    pub fn cancel(&self) -> bool {
        match &self.state {
            State::Submitted(f) if !f.done() => match self.stopper {
                Some(s) => s.stop(f),
                None => f.cancel(),
            },
            _ => false,
        }
    }

    /// Whether the task has ended (Python's `done()`).
    pub fn done(&self) -> bool {
        match &self.state {
            State::Lazy(_) => false,
            State::Submitted(f) => f.done(),
            State::Refused(_) | State::Ended => true,
        }
    }

    /// Whether the task is running now.
    pub fn running(&self) -> bool {
        matches!(&self.state, State::Submitted(f) if f.running())
    }

    /// The plain [`futures::Future`] of the task, whose drop does not cancel it.
    ///
    /// # Errors
    ///
    /// The submission's error when the executor refused the task;
    /// [`Error::InvalidState`] when the value was already awaited.
    pub fn detach(mut self) -> Result<futures::Future<R>> {
        match std::mem::replace(&mut self.state, State::Ended) {
            State::Lazy(submit) => submit(),
            State::Submitted(f) => Ok(f),
            State::Refused(e) => Err(e.unwrap_or(Error::InvalidState("result already taken"))),
            State::Ended => Err(Error::InvalidState("result already taken")),
        }
    }
}

impl<R> Future for ExecutorFuture<'_, R> {
    type Output = Result<R>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<R>> {
        let this = &mut *self;
        if let State::Lazy(_) = this.state {
            if let State::Lazy(submit) = std::mem::replace(&mut this.state, State::Ended) {
                this.state = match submit() {
                    Ok(f) => State::Submitted(f),
                    Err(e) => State::Refused(Some(e)),
                };
            }
        }
        match &mut this.state {
            State::Submitted(f) => {
                if let (Some(submitted), false) = (this.quick, this.polled) {
                    watch_briefly(f, submitted);
                }
                this.polled = true;
                let out = std::task::ready!(Pin::new(f).poll(cx));
                this.state = State::Ended;
                if let Some(submitted) = this.quick {
                    record_round_trip(submitted.elapsed());
                }
                Poll::Ready(out)
            }
            State::Refused(e) => Poll::Ready(Err(e
                .take()
                .unwrap_or(Error::InvalidState("result already taken")))),
            State::Lazy(_) | State::Ended => {
                Poll::Ready(Err(Error::InvalidState("result already taken")))
            }
        }
    }
}

thread_local! {
    /// The recent round trip of quick executors' calls awaited on this thread, in
    /// nanoseconds (a moving average, a quarter of each new call); `u64::MAX` before any.
    static QUICK_ROUND_TRIP: Cell<u64> = const { Cell::new(u64::MAX) };
}

/// Calls whose round trips average above this are not watched at all.
const WATCH_LIMIT: Duration = Duration::from_micros(50);

/// Watches `f` before the loop goes to sleep, when this thread's recent calls to a quick
/// executor came back within [`WATCH_LIMIT`] (D128): for up to twice their average round
/// trip plus 2 µs, spinning a little (63 hints in all, as a blocking `result()` does, D9),
/// then `sched_yield`s (which hand the core to the worker when the two share it). A task that
/// ends meanwhile is taken without a sleep and a wake-up through the kernel (5-20 µs here); a
/// loop whose calls are long never watches. Before any call, the watch lasts 2 µs.
fn watch_briefly<R>(f: &futures::Future<R>, submitted: Instant) {
    let average = QUICK_ROUND_TRIP.with(Cell::get);
    let budget = match average {
        u64::MAX => Duration::from_micros(2),
        ns if ns <= WATCH_LIMIT.as_nanos() as u64 => {
            (Duration::from_nanos(2 * ns) + Duration::from_micros(2)).min(WATCH_LIMIT)
        }
        _ => return,
    };
    for step in 0u32.. {
        if f.done() {
            return;
        }
        if step < 6 {
            for _ in 0..(1u32 << step) {
                std::hint::spin_loop();
            }
        } else {
            if submitted.elapsed() >= budget {
                return;
            }
            std::thread::yield_now();
        }
    }
}

/// Adds a quick executor call's round trip to this thread's average.
fn record_round_trip(took: Duration) {
    let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX / 2);
    QUICK_ROUND_TRIP.with(|avg| {
        let new = match avg.get() {
            u64::MAX => ns,
            old => old - old / 4 + ns / 4,
        };
        avg.set(new);
    });
}

impl<R> Drop for ExecutorFuture<'_, R> {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl<R> fmt::Debug for ExecutorFuture<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorFuture")
            .field("done", &self.done())
            .field("can_stop_running", &self.stopper.is_some())
            .finish()
    }
}

/// Runs `f()` on the loop's default executor, a thread pool of `min(32, cpus + 4)` threads
/// started as needed (Python's `await asyncio.to_thread(f)`), and gives its value without
/// blocking the loop. The call is submitted when the handle is first polled, on the loop
/// that polls it.
///
/// The pool belongs to the [`Runner`](super::Runner) (shut down with it, waiting for its
/// threads, as `asyncio.run` does); in a runtime spindle did not build, one process-wide
/// pool serves. Dropping the handle cancels a call not started; a running call runs on (see
/// [`ExecutorFuture`]).
///
/// ```
/// use spindle::asyncio;
///
/// let v = asyncio::run(async {
///     // A blocking call, off the loop's thread.
///     asyncio::to_thread(|| std::fs::read_to_string("/proc/self/stat").map(|s| s.len())).await
/// })???;
/// assert!(v > 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A panic in `f` is the error of the await ([`TaskError::is_panic`](crate::TaskError::is_panic)).
pub fn to_thread<F, R>(f: F) -> ExecutorFuture<'static, R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    ExecutorFuture::lazy(Box::new(move || {
        get_running_loop().and_then(|l| l.shared().default_executor()?.spawn(f))
    }))
}

/// Runs `f(arg)` on `executor` and gives its value without blocking the loop (Python's
/// `await loop.run_in_executor(executor, f, arg)`), for a [`ThreadPoolExecutor`], a
/// [`ProcessPoolExecutor`] or any [`StopTask`] executor.
///
/// As with [`Executor::submit`], `f` is a nameable function (a `fn` item or a closure that
/// captures nothing) and `arg` and the value are serde types: what runs in another process
/// too. Dropping the handle cancels the task, and stops it if it runs in a process (see
/// [`ExecutorFuture`]). The handle borrows the executor; to move it into a task, move the
/// executor (an `Arc` of it) into the task and call this inside.
///
/// ```
/// use spindle::asyncio::{self, run_in_executor};
/// use spindle::futures::ProcessPoolExecutor;
/// use spindle::multiprocessing::StartMethod;
///
/// fn square(n: u64) -> u64 { n * n }
///
/// let pool = ProcessPoolExecutor::builder().max_workers(2).start_method(StartMethod::Fork).build()?;
/// let v = asyncio::run(async {
///     let (a, b) = (run_in_executor(&pool, square, 3), run_in_executor(&pool, square, 4));
///     Ok::<_, spindle::Error>(a.await? + b.await?)
/// })??;
/// assert_eq!(v, 25);
/// # Ok::<(), spindle::Error>(())
/// ```
pub fn run_in_executor<'e, E, F, A, R>(executor: &'e E, f: F, arg: A) -> ExecutorFuture<'e, R>
where
    E: StopTask + Sync,
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    let stopper: &'e (dyn StopDyn<R> + Sync) = executor;
    let submitted = E::QUICK.then(Instant::now);
    let mut handle = ExecutorFuture::new(executor.submit(f, arg), Some(stopper));
    handle.quick = submitted;
    handle
}

/// An awaitable for a [`futures::Future`] made elsewhere (Python's
/// `asyncio.wrap_future(future)`): its value, and, as in Python, dropping (cancelling) the
/// awaitable cancels the future if its task has not started.
///
/// A [`futures::Future`] is itself awaitable (`future.await`), and then dropping it only
/// detaches; `wrap_future` is for Python's cancellation chain.
///
/// ```
/// use spindle::asyncio::{self, wrap_future};
/// use spindle::futures::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::new()?;
/// let f = pool.submit(|x: u32| x + 1, 41)?;
/// assert_eq!(asyncio::run(wrap_future(f))??, 42);
/// # Ok::<(), spindle::Error>(())
/// ```
pub fn wrap_future<R>(future: futures::Future<R>) -> ExecutorFuture<'static, R> {
    ExecutorFuture::new(Ok(future), None)
}
