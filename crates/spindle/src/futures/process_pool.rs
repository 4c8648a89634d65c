//! [`ProcessPoolExecutor`]: `concurrent.futures.ProcessPoolExecutor`, on the process pool of
//! [`multiprocessing::Pool`](crate::multiprocessing::Pool) (one supervisor event loop, a
//! channel per worker), behind the same [`Executor`] trait as the thread pool.
//!
//! A worker that dies ends only the futures of the tasks it held, with
//! [`is_worker_died`](crate::TaskError::is_worker_died) (Python's executor breaks the whole
//! pool and loses every pending result: `BrokenProcessPool`); the others go on and the next
//! submit is served.

use std::any::Any;
use std::collections::hash_map::{Entry, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::map::{Feed, Part, Slice};
use super::{promise, Executor, Future, Map};
use crate::error::{Error, Result};
use crate::latch::{deadline, lock};
use crate::multiprocessing::pool::{
    self as mp, arg_error, ByteSink, Chunking, Command, Encoded, Entries, InitResult, ItemEncoder,
    ProcJob, MAX_WINDOW,
};
use crate::multiprocessing::{Context, Pool, PoolBuilder, StartMethod, Target};

mod promises;

use promises::Promises;

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
            singles: Mutex::new(Singles::default()),
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
/// their end, then the workers exit. A [`map`](ProcessPoolExecutor::map) pulls its input as it
/// is consumed, so a map still being consumed then is cut where it is: the items already
/// pulled run to their end and come out in order, then one [`Error::Shutdown`](crate::Error::Shutdown)
/// ends it (waiting for the rest would wait for a consumer that may be the thread dropping).
pub struct ProcessPoolExecutor {
    pool: Pool,
    /// The pool call that the single submits of each function share.
    singles: Mutex<Singles>,
}

/// Every function's shared call for single submits (D162): one queue, so that thousands of
/// submits travel in a few messages, and one table of promises.
#[derive(Default)]
struct Singles {
    /// `shutdown` was called: no more submits.
    closed: bool,
    /// By the offset of the function's item trampoline.
    calls: HashMap<i64, Single>,
    /// The calls of the maps, whose input `shutdown(wait=True)` cuts.
    maps: Vec<Weak<ProcJob>>,
}

struct Single {
    job: Arc<ProcJob>,
    /// The call's `Promises<R>`, typed and for lookups.
    typed: Arc<dyn Any + Send + Sync>,
    find: Arc<dyn FindKey>,
    /// The index of the next item.
    next: u64,
}

/// Looks up a future's task in a [`Promises`] of any type.
trait FindKey: Send + Sync {
    fn find(&self, key: usize) -> Option<u64>;
}

impl<R: Send + 'static> FindKey for Promises<R> {
    fn find(&self, key: usize) -> Option<u64> {
        Promises::find(self, key)
    }
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
    /// The submits of one function share one queue: once the function's time per task is
    /// known, the tasks queued together travel to a worker in one message (about 2 ms of
    /// work each), and their values come back together. Plain data (numbers, tuples and
    /// structs of them) travels flat, without a length or a varint per value.
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
        let key = key_of(&future);
        // Encoded before any lock is taken: an argument's `Serialize` is the user's code.
        let mut batch = Encoded::default();
        ItemEncoder::default().push(&arg, &mut batch);
        let entries = Entries {
            item: mp::map_item::<F, A, R>,
            run: mp::map_run::<F, A, R>,
        };
        let mut singles = lock(&self.singles);
        if singles.closed {
            return Err(Error::Shutdown);
        }
        let offset = crate::sys::image::entry_offset(entries.item);
        let single = match singles.calls.entry(offset) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                let table = Arc::new(Promises::<R>::new());
                let job = self.pool.call().job(
                    entries,
                    Arc::clone(&table) as Arc<dyn ByteSink>,
                    None,
                    false,
                )?;
                self.pool.shared().submit(&job)?;
                let find: Arc<dyn FindKey> = Arc::clone(&table) as _;
                v.insert(Single {
                    job,
                    typed: table,
                    find,
                    next: 0,
                })
            }
        };
        let Some(table) = single.typed.downcast_ref::<Promises<R>>() else {
            return Err(Error::InvalidState("a function's submits changed type"));
        };
        let index = single.next;
        single.next += 1;
        if let Some((_, e)) = batch.failed.pop() {
            drop(singles);
            let _ = p.set_exception(arg_error::<A>(&e));
            return Ok(future);
        }
        table.insert(index, key, p);
        match single.job.push_batch(self.pool.shared(), index, &mut batch) {
            Ok(()) => Ok(future),
            Err(e) => {
                let p = table.remove(index);
                drop(singles);
                match (e, p) {
                    // A broken pool ends the task with its failure (as a call it accepts).
                    (Error::Task(why), Some(p)) => {
                        let _ = p.set_exception(why);
                        Ok(future)
                    }
                    (e, _) => Err(e),
                }
            }
        }
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
        let sink = Arc::new(Promises::<R>::new());
        let job = self.pool.call().chunking(chunking).job(
            Entries {
                item: mp::map_item::<F, A, R>,
                run: mp::map_run::<F, A, R>,
            },
            Arc::clone(&sink) as Arc<dyn ByteSink>,
            None,
            true,
        )?;
        self.pool.shared().submit(&job)?;
        {
            let mut singles = lock(&self.singles);
            singles.maps.retain(|m| m.strong_count() > 0);
            singles.maps.push(Arc::downgrade(&job));
        }
        let mut feed = ExecFeed {
            iter,
            job,
            sink,
            shared: Arc::clone(self.pool.shared()),
            next: 0,
            chunks_ahead: options.buffersize,
            exhausted: false,
            encoder: ItemEncoder::default(),
            batch: Encoded::default(),
            _a: PhantomData,
        };
        let first = feed.next_part();
        Ok(Map::fed(Box::new(feed), first, until))
    }

    /// Stops accepting tasks (Python's `shutdown(wait, cancel_futures)`): with
    /// `cancel_futures` the tasks not started are cancelled; with `wait`, returns once every
    /// task has ended and every worker has exited. Idempotent.
    ///
    /// A [`map`](ProcessPoolExecutor::map) still being consumed goes on pulling its input
    /// without `wait`; with `wait` it is cut where it is (its items already pulled finish,
    /// then it yields one [`Error::Shutdown`](crate::Error::Shutdown)), since the thread that
    /// would pull the rest may be the one waiting here.
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.close_singles();
        if wait {
            self.cut_maps();
        }
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

    /// No more submits: the shared calls take no more items, so the pool can finish them.
    fn close_singles(&self) {
        let mut singles = lock(&self.singles);
        singles.closed = true;
        for single in singles.calls.values() {
            lock(&single.job.q).input_done = true;
        }
        drop(singles);
        self.pool.shared().nudge();
    }

    /// Takes no more input into the maps still being consumed.
    fn cut_maps(&self) {
        let maps = std::mem::take(&mut lock(&self.singles).maps);
        for job in maps.iter().filter_map(Weak::upgrade) {
            lock(&job.q).input_done = true;
        }
        self.pool.shared().nudge();
    }

    /// Sends every worker `SIGTERM` and ends every pending future with a cancellation
    /// (Python 3.14's `terminate_workers()`); no task is accepted afterwards. Returns once
    /// the workers are reaped.
    pub fn terminate_workers(&self) {
        self.close_singles();
        self.cut_maps();
        self.pool.shared().command(Command::Signal { kill: false });
        self.pool.close();
        let _ = self.pool.join();
    }

    /// As [`terminate_workers`](ProcessPoolExecutor::terminate_workers) with `SIGKILL`
    /// (Python 3.14's `kill_workers()`).
    pub fn kill_workers(&self) {
        self.close_singles();
        self.cut_maps();
        self.pool.shared().command(Command::Signal { kill: true });
        self.pool.close();
        let _ = self.pool.join();
    }

    /// Stops the task of `future` even if it runs: a task not started is cancelled (as
    /// [`Future::cancel`]); a running one gets `SIGTERM`, then `SIGKILL` after
    /// [`STOP_GRACE`]; its future ends with a cancelled [`TaskError`](crate::TaskError) and its worker is
    /// replaced. Returns `false` when the future is done already (or not this executor's).
    ///
    /// A running task shares its worker's fate with the tasks sent to the same worker in the
    /// same message: tiny tasks are batched, and those of them that ran just before it
    /// (their values not yet sent) end with [`is_worker_died`](crate::TaskError::is_worker_died).
    /// A task already handed to a worker but not started there (queued behind the running
    /// message) is cancelled and the worker is told not to run it; it looks before each
    /// message and every 100 µs while it works, so one that would start within that time
    /// may still run, its value dropped.
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
        let key = key_of(future);
        let found = lock(&self.singles).calls.values().find_map(|s| {
            s.find
                .find(key)
                .map(|index| (Arc::as_ptr(&s.job) as *const () as usize, index))
        });
        let Some((job, index)) = found else {
            return false;
        };
        self.pool
            .shared()
            .command(Command::Stop { job, index, grace });
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

/// Pulls an executor `map`'s input one item (one future) at a time, as [`Map`] asks.
struct ExecFeed<A, R, I> {
    iter: I,
    job: Arc<ProcJob>,
    sink: Arc<Promises<R>>,
    shared: Arc<mp::Shared>,
    next: u64,
    chunks_ahead: Option<usize>,
    exhausted: bool,
    encoder: ItemEncoder,
    batch: Encoded,
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
        self.batch.clear();
        self.encoder.push(&a, &mut self.batch);
        if let Some((_, e)) = self.batch.failed.pop() {
            let _ = p.set_exception(arg_error::<A>(&e));
            return Some(Part::One(future));
        }
        self.sink.insert(index, key_of(&future), p);
        if let Err(e) = self.job.push_batch(&self.shared, index, &mut self.batch) {
            self.sink.remove(index);
            return Some(Part::Failed(e));
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
