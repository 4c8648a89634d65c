//! [`ProcessPoolExecutor`]: `concurrent.futures.ProcessPoolExecutor`, on the process pool of
//! [`multiprocessing::Pool`](crate::multiprocessing::Pool) (one supervisor event loop, a
//! channel per worker), behind the same [`Executor`] trait as the thread pool.
//!
//! A worker that dies ends only the futures of the tasks it held, with
//! [`is_worker_died`](crate::TaskError::is_worker_died) (Python's executor breaks the whole
//! pool and loses every pending result: `BrokenProcessPool`); the others go on and the next
//! submit is served.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::map::{Feed, Part, Slice};
use super::{promise, Executor, Future, Map, Promise};
use crate::error::{Result, TaskError};
use crate::latch::{deadline, lock};
use crate::multiprocessing::pool::{
    self as mp, arg_error, decode_one, encode_item, ByteSink, Chunking, Command, InitResult,
    ProcJob, Sink, MAX_WINDOW,
};
use crate::multiprocessing::{Context, Pool, PoolBuilder, StartMethod, Target};

/// How long [`ProcessPoolExecutor::stop`] lets a task handle `SIGTERM` before `SIGKILL`,
/// unless told otherwise.
pub const STOP_GRACE: Duration = Duration::from_secs(1);

/// Settings of a [`ProcessPoolExecutor`] (Python's keyword arguments).
///
/// ```
/// use spindle::futures::ProcessPoolExecutor;
/// use spindle::multiprocessing::StartMethod;
/// let ex = ProcessPoolExecutor::builder()
///     .max_workers(2)
///     .start_method(StartMethod::Fork)
///     .max_tasks_per_child(100)
///     .build()?;
/// assert_eq!(ex.max_workers(), 2);
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ProcessPoolBuilder {
    pool: PoolBuilder<()>,
}

impl ProcessPoolBuilder {
    /// The number of worker processes (Python's `max_workers`; default
    /// [`cpu_count`](crate::multiprocessing::cpu_count)). Zero is an error at `build`.
    pub fn max_workers(mut self, n: usize) -> Self {
        self.pool = self.pool.processes(n);
        self
    }

    /// The workers' start method (Python's `mp_context`).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.pool = self.pool.start_method(method);
        self
    }

    /// The context whose start method the workers use (Python's `mp_context=`).
    pub fn mp_context(mut self, ctx: Context) -> Self {
        self.pool = self.pool.context(ctx);
        self
    }

    /// Runs `init(args...)` in every worker when it starts (Python's `initializer`,
    /// `initargs`); a failure fails every task with
    /// [`is_initializer_failed`](crate::TaskError::is_initializer_failed) and starts no
    /// worker again.
    pub fn initializer<F, Args>(mut self, init: F, args: Args) -> Self
    where
        F: Target<Args>,
        F::Output: InitResult,
        Args: Serialize + DeserializeOwned,
    {
        self.pool = self.pool.initializer(init, args);
        self
    }

    /// Replaces a worker after `n` tasks (Python's `max_tasks_per_child`).
    pub fn max_tasks_per_child(mut self, n: u64) -> Self {
        self.pool = self.pool.maxtasksperchild(n);
        self
    }

    /// A time limit for every task: past it, the task ends with
    /// [`is_timeout`](crate::TaskError::is_timeout) and its worker is replaced.
    pub fn task_timeout(mut self, limit: Duration) -> Self {
        self.pool = self.pool.task_timeout(limit);
        self
    }

    /// Starts the workers.
    ///
    /// # Errors
    ///
    /// Those of [`PoolBuilder::build`](crate::multiprocessing::pool::PoolBuilder::build).
    pub fn build(self) -> Result<ProcessPoolExecutor> {
        let pool = self.pool.build()?;
        Ok(ProcessPoolExecutor {
            pool,
            running: Mutex::new(HashMap::new()),
        })
    }
}

/// Options of one [`ProcessPoolExecutor::map_with`] call (Python's `map(...)` keywords).
///
/// ```
/// use spindle::futures::MapOptions;
/// let o = MapOptions::new().chunksize(100).buffersize(4);
/// assert_eq!(o, MapOptions::new().buffersize(4).chunksize(100));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapOptions {
    pub(crate) chunksize: Option<usize>,
    pub(crate) buffersize: Option<usize>,
    pub(crate) timeout: Option<Duration>,
}

impl MapOptions {
    /// No options: adaptive chunks, a bounded window of input ahead, no deadline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Exactly `n` items per message to a worker (Python's `chunksize`; 0 is an error).
    pub fn chunksize(mut self, n: usize) -> Self {
        self.chunksize = Some(n);
        self
    }

    /// At most `n` chunks of input submitted and not yet consumed (Python 3.14's
    /// `buffersize`): the input is pulled lazily, in bounded memory.
    pub fn buffersize(mut self, n: usize) -> Self {
        self.buffersize = Some(n.max(1));
        self
    }

    /// A deadline `timeout` from the call for the whole iteration (Python's `timeout`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// `concurrent.futures.ProcessPoolExecutor`: tasks in worker processes, futures in this one.
///
/// Its futures are the same [`Future`] as the thread pool's: they mix in [`wait`](super::wait)
/// and [`as_completed`](super::as_completed). [`Future::cancel`] keeps Python's meaning (a task
/// not started is cancelled, a running one is not); stopping a *running* task is
/// [`stop`](ProcessPoolExecutor::stop).
///
/// ```
/// use spindle::futures::{as_completed, Executor, ProcessPoolExecutor};
/// use spindle::multiprocessing::StartMethod;
///
/// fn square(n: u64) -> u64 { n * n }
///
/// let ex = ProcessPoolExecutor::builder().max_workers(2).start_method(StartMethod::Fork).build()?;
/// let futures: Vec<_> = (1..=4).map(|n| ex.submit(square, n)).collect::<Result<_, _>>()?;
/// let mut got: Vec<u64> = as_completed(futures, None).map(|f| f.unwrap().result().unwrap()).collect();
/// got.sort();
/// assert_eq!(got, [1, 4, 9, 16]);
/// let squares: Vec<u64> = ex.map(square, 1..=3)?.collect::<Result<_, _>>()?;
/// assert_eq!(squares, [1, 4, 9]);
/// # Ok::<(), spindle::Error>(())
/// ```
///
/// # Dropping
///
/// Dropping it is `shutdown(wait=True)`, as Python's `with` block: the submitted tasks run to
/// their end, then the workers exit.
pub struct ProcessPoolExecutor {
    pool: Pool,
    /// The call of each submitted future not finished, by the future's address (for `stop`).
    running: Mutex<HashMap<usize, Weak<ProcJob>>>,
}

impl fmt::Debug for ProcessPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPoolExecutor")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

/// The key of a future in [`ProcessPoolExecutor::running`].
fn key_of<R>(f: &Future<R>) -> usize {
    std::ptr::from_ref(f.shared()) as *const () as usize
}

macro_rules! zst {
    ($f:ty) => {
        const {
            assert!(
                std::mem::size_of::<$f>() == 0,
                "a process task must capture nothing: use a fn item or a non-capturing closure"
            )
        }
    };
}

impl ProcessPoolExecutor {
    /// A [`ProcessPoolBuilder`] with Python's defaults.
    pub fn builder() -> ProcessPoolBuilder {
        ProcessPoolBuilder {
            pool: Pool::builder(),
        }
    }

    /// An executor with the defaults ([`cpu_count`](crate::multiprocessing::cpu_count)
    /// workers, the default start method).
    ///
    /// # Errors
    ///
    /// Those of [`ProcessPoolBuilder::build`].
    pub fn new() -> Result<Self> {
        Self::builder().build()
    }

    /// The number of worker processes.
    pub fn max_workers(&self) -> usize {
        self.pool.processes()
    }

    /// The pids of the workers now.
    pub fn pids(&self) -> Vec<u32> {
        self.pool.pids()
    }

    /// Schedules `f(arg)` in a worker and returns its future (Python's `submit`).
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`](crate::Error::Shutdown) after [`shutdown`](ProcessPoolExecutor::shutdown). An argument
    /// that does not encode fails its future.
    pub fn submit<F, A, R>(&self, f: F, arg: A) -> Result<Future<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        zst!(F);
        let _ = f;
        let (p, future) = promise::<R>();
        let sink = Arc::new(PromiseSink {
            promise: Mutex::new(Some(p)),
        });
        let mut encoded = Vec::new();
        let pushed = encode_item(&arg, &mut encoded);
        let job = self
            .pool
            .call()
            .job(mp::map_item::<F, A, R>, sink, Some(1), false)?;
        match pushed {
            Ok(()) => {
                let mut q = lock(&job.q);
                q.push_encoded(0, &encoded);
                q.input_done = true;
            }
            Err(e) => {
                job.sink.fail(0, 1, &arg_error::<A>(&e));
                return Ok(future);
            }
        }
        self.pool.shared().submit(&job)?;
        let mut running = lock(&self.running);
        if running.len() >= 1024 && running.len().is_power_of_two() {
            running.retain(|_, j| j.strong_count() > 0);
        }
        running.insert(key_of(&future), Arc::downgrade(&job));
        Ok(future)
    }

    /// Applies `f` to every item, results in input order (Python's `map`), with adaptive
    /// chunks and a bounded window of input pulled ahead.
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`](crate::Error::Shutdown) after `shutdown`.
    pub fn map<F, A, R, I>(&self, f: F, args: I) -> Result<Map<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        self.map_with(f, args, MapOptions::new())
    }

    /// [`map`](ProcessPoolExecutor::map) with Python's `chunksize`, 3.14's `buffersize` and
    /// `timeout` ([`MapOptions`]).
    ///
    /// ```
    /// use spindle::futures::{MapOptions, ProcessPoolExecutor};
    /// use spindle::multiprocessing::StartMethod;
    /// fn double(x: u64) -> u64 { 2 * x }
    /// let ex = ProcessPoolExecutor::builder().max_workers(2).start_method(StartMethod::Fork).build()?;
    /// // An endless input, pulled a few chunks ahead of what is consumed.
    /// let first: Vec<u64> = ex
    ///     .map_with(double, 0.., MapOptions::new().chunksize(10).buffersize(2))?
    ///     .take(25)
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(first[24], 48);
    /// # Ok::<(), spindle::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`](crate::Error::Shutdown) after `shutdown`; [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a chunk size of 0.
    pub fn map_with<F, A, R, I>(&self, f: F, args: I, options: MapOptions) -> Result<Map<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        zst!(F);
        let _ = f;
        let iter = args.into_iter();
        let until = options.timeout.and_then(deadline);
        let chunking = options
            .chunksize
            .map_or(Chunking::Adaptive, Chunking::Fixed);
        let sink = Arc::new(MapSink::<R> {
            promises: Mutex::new(HashMap::new()),
        });
        let job = self.pool.call().chunking(chunking).job(
            mp::map_item::<F, A, R>,
            Arc::clone(&sink) as Arc<dyn ByteSink>,
            None,
            true,
        )?;
        self.pool.shared().submit(&job)?;
        let mut feed = ExecFeed {
            iter,
            job,
            sink,
            shared: Arc::clone(self.pool.shared()),
            next: 0,
            chunks_ahead: options.buffersize,
            exhausted: false,
            scratch: Vec::new(),
            _a: PhantomData,
        };
        let first = feed.next_part();
        Ok(Map::fed(Box::new(feed), first, until))
    }

    /// Stops accepting tasks (Python's `shutdown(wait, cancel_futures)`): with
    /// `cancel_futures` the tasks not started are cancelled; with `wait`, returns once every
    /// task has ended and every worker has exited. Idempotent.
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        if cancel_futures {
            let jobs: Vec<Arc<ProcJob>> = lock(&self.pool.shared().sched)
                .jobs
                .iter()
                .cloned()
                .collect();
            for job in jobs {
                job.cancel_queued();
            }
        }
        self.pool.close();
        if wait {
            let _ = self.pool.join();
        }
    }

    /// Sends every worker `SIGTERM` and ends every pending future with a cancellation
    /// (Python 3.14's `terminate_workers()`); no task is accepted afterwards. Returns once
    /// the workers are reaped.
    pub fn terminate_workers(&self) {
        self.pool.shared().command(Command::Signal { kill: false });
        self.pool.close();
        let _ = self.pool.join();
    }

    /// As [`terminate_workers`](ProcessPoolExecutor::terminate_workers) with `SIGKILL`
    /// (Python 3.14's `kill_workers()`).
    pub fn kill_workers(&self) {
        self.pool.shared().command(Command::Signal { kill: true });
        self.pool.close();
        let _ = self.pool.join();
    }

    /// Stops the task of `future` even if it runs: a task not started is cancelled (as
    /// [`Future::cancel`]); a running one gets `SIGTERM`, then `SIGKILL` after
    /// [`STOP_GRACE`]; its future ends with a cancelled [`TaskError`] and its worker is
    /// replaced. Returns `false` when the future is done already (or not this executor's).
    ///
    /// A running task shares its worker's fate with the tasks sent to the same worker in the
    /// same message: tiny tasks are batched, and those of them that ran just before it
    /// (their values not yet sent) end with [`is_worker_died`](TaskError::is_worker_died).
    pub fn stop<R>(&self, future: &Future<R>) -> bool {
        self.stop_with_grace(future, STOP_GRACE)
    }

    /// [`stop`](ProcessPoolExecutor::stop) with another grace period before `SIGKILL`.
    pub fn stop_with_grace<R>(&self, future: &Future<R>, grace: Duration) -> bool {
        if future.done() {
            return false;
        }
        if future.cancel() {
            return true;
        }
        let Some(job) = lock(&self.running)
            .get(&key_of(future))
            .and_then(Weak::upgrade)
        else {
            return false;
        };
        self.pool.shared().command(Command::Stop {
            job: Arc::as_ptr(&job) as *const () as usize,
            grace,
        });
        true
    }
}

impl Drop for ProcessPoolExecutor {
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}

impl Executor for ProcessPoolExecutor {
    fn submit<F, A, R>(&self, f: F, arg: A) -> Result<Future<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        ProcessPoolExecutor::submit(self, f, arg)
    }

    fn map<F, A, R, I>(&self, f: F, args: I) -> Result<Map<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        ProcessPoolExecutor::map(self, f, args)
    }

    fn map_timeout<F, A, R, I>(&self, f: F, args: I, timeout: Duration) -> Result<Map<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        self.map_with(f, args, MapOptions::new().timeout(timeout))
    }

    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        ProcessPoolExecutor::shutdown(self, wait, cancel_futures);
    }
}

/// The outcome of one submitted task goes to its promise.
struct PromiseSink<R> {
    promise: Mutex<Option<Promise<R>>>,
}

impl<R: Send> Sink for PromiseSink<R> {
    fn start(&self) -> bool {
        lock(&self.promise)
            .as_ref()
            .is_some_and(Promise::set_running_or_notify_cancel)
    }

    fn fail(&self, _first: u64, _len: u64, error: &TaskError) {
        if let Some(p) = lock(&self.promise).take() {
            if !(error.is_cancelled() && p.cancel()) {
                let _ = p.set_exception(error.clone());
            }
        }
    }

    fn terminate(&self, error: &TaskError) {
        self.fail(0, 1, error);
    }
}

impl<R: DeserializeOwned + Send> ByteSink for PromiseSink<R> {
    fn deliver_bytes(&self, _first: u64, _count: u32, bytes: &[u8]) -> Result<usize> {
        let (outcome, rest) = match decode_one::<R>(bytes) {
            Ok(x) => x,
            Err(e) => {
                self.fail(
                    0,
                    1,
                    &TaskError::failed(format!("the result could not be read: {e}")),
                );
                return Err(e);
            }
        };
        if let Some(p) = lock(&self.promise).take() {
            let _ = match outcome {
                Ok(v) => p.set_result(v),
                Err(e) => p.set_exception(e),
            };
        }
        Ok(bytes.len() - rest.len())
    }
}

/// The outcomes of an executor `map` go to one promise per item.
struct MapSink<R> {
    promises: Mutex<HashMap<u64, Promise<R>>>,
}

impl<R: Send> MapSink<R> {
    fn take(&self, index: u64) -> Option<Promise<R>> {
        lock(&self.promises).remove(&index)
    }
}

impl<R: Send> Sink for MapSink<R> {
    fn start(&self) -> bool {
        true
    }

    fn fail(&self, first: u64, len: u64, error: &TaskError) {
        for i in first..first + len {
            if let Some(p) = self.take(i) {
                let _ = p.set_exception(error.clone());
            }
        }
    }

    fn terminate(&self, error: &TaskError) {
        let all: Vec<Promise<R>> = lock(&self.promises).drain().map(|(_, p)| p).collect();
        for p in all {
            let _ = p.set_exception(error.clone());
        }
    }
}

impl<R: DeserializeOwned + Send> ByteSink for MapSink<R> {
    fn deliver_bytes(&self, first: u64, count: u32, bytes: &[u8]) -> Result<usize> {
        let mut rest = bytes;
        for i in first..first + u64::from(count) {
            match decode_one::<R>(rest) {
                Ok((outcome, tail)) => {
                    rest = tail;
                    if let Some(p) = self.take(i) {
                        let _ = match outcome {
                            Ok(v) => p.set_result(v),
                            Err(e) => p.set_exception(e),
                        };
                    }
                }
                Err(e) => {
                    let err = TaskError::failed(format!("the result could not be read: {e}"));
                    self.fail(i, first + u64::from(count) - i, &err);
                    return Err(e);
                }
            }
        }
        Ok(bytes.len() - rest.len())
    }
}

/// Pulls an executor `map`'s input one item (one future) at a time, as [`Map`] asks.
struct ExecFeed<A, R, I> {
    iter: I,
    job: Arc<ProcJob>,
    sink: Arc<MapSink<R>>,
    shared: Arc<mp::Shared>,
    next: u64,
    chunks_ahead: Option<usize>,
    exhausted: bool,
    scratch: Vec<u8>,
    _a: PhantomData<fn(A)>,
}

impl<A, R, I> Feed<R> for ExecFeed<A, R, I>
where
    A: Serialize,
    R: Send + 'static,
    I: Iterator<Item = A> + Send,
{
    fn next_part(&mut self) -> Option<Part<R>> {
        let Some(a) = self.iter.next() else {
            self.exhausted = true;
            lock(&self.job.q).input_done = true;
            self.shared.nudge();
            return None;
        };
        let index = self.next;
        self.next += 1;
        let (p, future) = promise::<R>();
        lock(&self.sink.promises).insert(index, p);
        let encoded = &mut self.scratch;
        encoded.clear();
        match encode_item(&a, encoded) {
            Ok(()) => {
                if let Err(e) = self.job.push(&self.shared, index, encoded) {
                    self.sink.take(index);
                    return Some(Part::Failed(e));
                }
            }
            Err(e) => self.sink.fail(index, 1, &arg_error::<A>(&e)),
        }
        Some(Part::One(future))
    }

    fn local(&self) -> bool {
        // Items run in worker processes, never on the caller's thread.
        false
    }

    fn run_slice(&mut self) -> Slice<R> {
        Slice::NotHere
    }

    fn observe(&mut self, _len: usize, _elapsed: Duration, _here: bool) {}

    fn recycle(&mut self, _values: Vec<R>) {}

    fn window(&self) -> usize {
        let chunk = lock(&self.job.q).sizer.next(None);
        match self.chunks_ahead {
            Some(n) => n.saturating_mul(chunk).clamp(1, MAX_WINDOW),
            None => (2 * self.shared.workers.max(1) * chunk).clamp(2, MAX_WINDOW),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }
}

impl<A, R, I> Drop for ExecFeed<A, R, I> {
    fn drop(&mut self) {
        if !self.exhausted {
            // The map was dropped or timed out: the items not started are not wanted.
            let mut q = lock(&self.job.q);
            q.clear();
            q.input_done = true;
        }
    }
}
