//! [`ThreadPoolExecutor`]: `concurrent.futures.ThreadPoolExecutor`.
//!
//! One unbounded crossbeam channel of boxed tasks, shared by up to `max_workers` threads that
//! are started lazily, as Python does: a submit that finds no idle worker starts a new one
//! until the limit is reached. A task costs two allocations (the future's shared state and
//! the boxed task) and one channel send. `map` batches inputs into chunks
//! ([`batch`](self::batch)). Whoever runs a task — a worker, or the thread iterating a `map`
//! — sits in one of the pool's `max_workers` [`seats`](self::seats) meanwhile, so that never
//! more than `max_workers` tasks run at once.

mod batch;
mod pending;
mod seats;

use std::cell::Cell;
use std::fmt;
use std::io;

use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use self::seats::{Seat, Seats};
use super::{promise, Executor, Future, Map, Promise};
use crate::latch::{deadline, wait_until};
use crate::panic::catch;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::{lock, Condvar, Mutex};
use crate::{Error, Result, TaskError};

/// A unit of work in the queue: it runs, or is cancelled or failed without running.
pub(crate) trait Task: Send {
    /// Runs the task (unless its future was cancelled) and completes its future.
    fn run(self: Box<Self>);
    /// Cancels the future of a task that never ran.
    fn cancel(self: Box<Self>);
    /// Fails the future of a task that never ran and never will.
    fn fail(self: Box<Self>, error: TaskError);
}

pub(crate) type Job = Box<dyn Task>;

/// `f(arg)` and the promise of its result.
struct Call<F, A, R> {
    f: F,
    arg: A,
    promise: Promise<R>,
}

impl<F, A, R> Task for Call<F, A, R>
where
    F: FnOnce(A) -> R + Send,
    A: Send,
    R: Send,
{
    fn run(self: Box<Self>) {
        let Call { f, arg, promise } = *self;
        if !promise.set_running_or_notify_cancel() {
            return;
        }
        let outcome = catch(move || f(arg)).map_err(TaskError::panicked);
        let _ = match outcome {
            Ok(v) => promise.set_result(v),
            Err(e) => promise.set_exception(e),
        };
    }

    fn cancel(self: Box<Self>) {
        self.promise.cancel();
    }

    fn fail(self: Box<Self>, error: TaskError) {
        let _ = self.promise.set_exception(error);
    }
}

/// Numbers the pools (a `std` atomic: loom's cannot be built in a static).
static POOLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

thread_local! {
    /// The id of the pool whose worker this thread is (0: none).
    static WORKER_OF: Cell<usize> = const { Cell::new(0) };
}

/// The state shared by the executor handle, its workers and its running maps.
pub(crate) struct Pool {
    id: usize,
    max_workers: usize,
    prefix: String,
    initializer: Option<Arc<dyn Fn() + Send + Sync>>,
    /// `None` once shut down (or broken): dropping the sender lets the workers drain the
    /// queue and leave.
    sender: Mutex<Option<Sender<Job>>>,
    receiver: Receiver<Job>,
    /// Workers waiting for work that no submit has claimed yet (Python's idle semaphore).
    idle: AtomicUsize,
    /// Who may run a task now: `max_workers` seats, shared by the workers and the threads
    /// that iterate a `map`.
    pub(crate) seats: Seats,
    spawned: AtomicUsize,
    handles: Mutex<Vec<JoinHandle<()>>>,
    live: Mutex<usize>,
    live_cv: Condvar,
    shutdown: AtomicBool,
    /// Set by `shutdown(cancel_futures=true)`: work not started is cancelled.
    cancelled: AtomicBool,
    broken: OnceLock<String>,
}

impl Pool {
    pub(crate) fn max_workers(&self) -> usize {
        self.max_workers
    }

    /// Queues `job`, starting a worker when none is idle and the limit allows.
    pub(crate) fn execute(self: &Arc<Self>, job: Job) -> Result<()> {
        let sender = lock(&self.sender);
        let Some(tx) = sender.as_ref() else {
            return Err(self.closed());
        };
        // The pool keeps a receiver, so the channel cannot be disconnected here.
        tx.send(job).map_err(|_| Error::Shutdown)?;
        let claimed_idle = self
            .idle
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if claimed_idle.is_err() && self.spawned.load(Ordering::Acquire) < self.max_workers {
            if let Err(e) = self.spawn_worker() {
                if self.spawned.load(Ordering::Acquire) == 0 {
                    // No worker will ever run it: take it back (it is the only one queued,
                    // since every earlier submit did the same).
                    while let Ok(job) = self.receiver.try_recv() {
                        job.fail(TaskError::failed(format!("could not start a worker: {e}")));
                    }
                    return Err(Error::Io(e));
                }
            }
        }
        Ok(())
    }

    /// Whether the pool accepts work, without a lock (a hint: [`check_open`](Self::check_open)
    /// says for sure, with the error).
    pub(crate) fn is_open(&self) -> bool {
        !self.shutdown.load(Ordering::Acquire) && self.broken.get().is_none()
    }

    /// `Ok` while the pool accepts work, else the error a submit would get.
    pub(crate) fn check_open(&self) -> Result<()> {
        match lock(&self.sender).as_ref() {
            Some(_) => Ok(()),
            None => Err(self.closed()),
        }
    }

    fn closed(&self) -> Error {
        match self.broken.get() {
            Some(msg) => Error::Task(TaskError::failed(msg.clone())),
            None => Error::Shutdown,
        }
    }

    fn spawn_worker(self: &Arc<Self>) -> io::Result<()> {
        let index = self.spawned.load(Ordering::Acquire);
        let pool = Arc::clone(self);
        *lock(&self.live) += 1;
        let spawned = thread::Builder::new()
            .name(format!("{}_{index}", self.prefix))
            .spawn(move || pool.work());
        match spawned {
            Ok(handle) => {
                lock(&self.handles).push(handle);
                self.spawned.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
            Err(e) => {
                *lock(&self.live) -= 1;
                Err(e)
            }
        }
    }

    /// A worker thread's body.
    fn work(self: Arc<Self>) {
        WORKER_OF.with(|w| w.set(self.id));
        let initialized = match &self.initializer {
            Some(init) => catch(|| init()).map_err(|report| {
                self.break_pool(format!(
                    "thread pool is broken: initializer panicked: {report}"
                ));
            }),
            None => Ok(()),
        };
        if initialized.is_ok() {
            self.serve();
        }
        let mut live = lock(&self.live);
        *live -= 1;
        drop(live);
        self.live_cv.notify_all();
    }

    /// Runs tasks until the queue is closed and empty. The worker sits in a seat while it has
    /// work and gives it up before it blocks for more, so that an idle worker's seat is free
    /// for a caller to run a chunk in.
    fn serve(&self) {
        let mut seat = None;
        loop {
            let job = match self.receiver.try_recv() {
                Ok(job) => job,
                Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => {
                    seat = None;
                    self.idle.fetch_add(1, Ordering::AcqRel);
                    match self.receiver.recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    }
                }
            };
            if seat.is_none() {
                seat = Some(self.seats.seat());
            }
            job.run();
        }
    }

    /// An initializer failed: no more work is accepted and the queued work fails
    /// (Python's `BrokenThreadPool`).
    fn break_pool(&self, message: String) {
        let message = self.broken.get_or_init(|| message).clone();
        lock(&self.sender).take();
        while let Ok(job) = self.receiver.try_recv() {
            job.fail(TaskError::failed(message.clone()));
        }
    }

    pub(crate) fn shutdown(&self, wait: bool, cancel_futures: bool) {
        {
            let mut sender = lock(&self.sender);
            self.shutdown.store(true, Ordering::Release);
            sender.take();
        }
        if cancel_futures {
            self.cancelled.store(true, Ordering::Release);
            while let Ok(job) = self.receiver.try_recv() {
                job.cancel();
            }
        }
        if wait {
            self.join_all();
        }
    }

    /// Joins every worker; a worker of this pool that shuts it down skips itself.
    fn join(&self) {
        let handles = std::mem::take(&mut *lock(&self.handles));
        let me = thread::current().id();
        for handle in handles {
            if handle.thread().id() != me {
                let _ = handle.join();
            }
        }
        // Workers whose handles another caller took: wait until they have left.
        let inside = usize::from(WORKER_OF.with(Cell::get) == self.id);
        let live = lock(&self.live);
        let _ = wait_until(&self.live_cv, live, None, |n| *n <= inside);
    }

    /// Joins every worker (see [`join`](Self::join)). A thread that sits in one of this pool's
    /// seats without being its worker — the caller of a `map` running a chunk whose item shuts
    /// the pool down — gives the seat up meanwhile: a worker holding queued work may need it.
    fn join_all(&self) {
        if WORKER_OF.with(Cell::get) == self.id {
            self.join();
        } else {
            Seat::give_up_while(&self.seats, || self.join());
        }
    }
}

/// The default number of workers, as Python: `min(32, cpus + 4)`.
fn default_workers() -> usize {
    let cpus = thread::available_parallelism().map_or(1, usize::from);
    32.min(cpus + 4)
}

/// A pool of threads that runs tasks and returns [`Future`]s
/// (`concurrent.futures.ThreadPoolExecutor`).
///
/// | Python                                          | spindle                                    |
/// |-------------------------------------------------|--------------------------------------------|
/// | `ThreadPoolExecutor()`                          | [`ThreadPoolExecutor::new`]                |
/// | `ThreadPoolExecutor(max_workers, thread_name_prefix, initializer)` | [`ThreadPoolExecutor::builder`] |
/// | `ex.submit(fn, *args)`                          | [`submit`](Self::submit) / [`spawn`](Self::spawn) |
/// | `ex.map(fn, iterable, timeout=...)`             | [`map`](Self::map) / [`map_timeout`](Self::map_timeout) |
/// | `ex.shutdown(wait, cancel_futures=...)`         | [`shutdown`](Self::shutdown)               |
/// | `with ThreadPoolExecutor() as ex:`              | drop (shuts down and joins every thread)   |
///
/// Threads are started lazily: a submit that finds no idle worker starts one, up to
/// [`max_workers`](Self::max_workers); idle workers are reused. `max_workers` also bounds
/// what runs at once, whoever runs it (see [`map`](Self::map)): a pool of 3 never runs a
/// fourth task. A task that panics ends its
/// future with a [`TaskError`] carrying the panic message; the worker survives. Dropping the
/// executor waits for the queued and running tasks and joins every thread.
///
/// The inherent methods accept any closure; the [`Executor`] trait methods (same names) accept
/// the nameable, serde functions that every executor can run. Inherent methods win in method
/// calls, so `pool.map(|x| x * 2, v)` uses the closure form.
///
/// ```
/// use spindle::futures::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::builder().max_workers(2).thread_name_prefix("dl").build()?;
/// let name = pool.spawn(|| std::thread::current().name().unwrap().to_owned())?;
/// assert!(name.result()?.starts_with("dl_"));
/// let total: u64 = pool.map(|x: u64| x * x, 0..100)?.sum::<spindle::Result<u64>>()?;
/// assert_eq!(total, 328_350);
/// # Ok::<(), spindle::Error>(())
/// ```
pub struct ThreadPoolExecutor {
    pool: Arc<Pool>,
}

/// Settings of a [`ThreadPoolExecutor`], Python's keyword arguments
/// (`max_workers`, `thread_name_prefix`, `initializer`).
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use spindle::futures::ThreadPoolExecutor;
///
/// static STARTED: AtomicUsize = AtomicUsize::new(0);
/// let pool = ThreadPoolExecutor::builder()
///     .max_workers(1)
///     .initializer(|| {
///         STARTED.fetch_add(1, Ordering::SeqCst);
///     })
///     .build()?;
/// pool.spawn(|| ())?.result()?;
/// assert_eq!(STARTED.load(Ordering::SeqCst), 1);
/// # Ok::<(), spindle::Error>(())
/// ```
pub struct ThreadPoolBuilder {
    max_workers: Option<usize>,
    prefix: Option<String>,
    initializer: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl ThreadPoolBuilder {
    /// The most threads the pool runs (default `min(32, cpus + 4)`, as Python).
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = Some(n);
        self
    }

    /// Names the threads `{prefix}_{n}` (default `ThreadPoolExecutor-{pool}`).
    pub fn thread_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Runs `f` once at the start of every worker thread.
    ///
    /// If it panics, the pool is broken, as in Python: the queued tasks and every later
    /// submit fail with a [`TaskError`] saying so (carrying the panic message).
    pub fn initializer(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.initializer = Some(Arc::new(f));
        self
    }

    /// Creates the executor (no thread starts before the first task).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `max_workers` is 0.
    pub fn build(self) -> Result<ThreadPoolExecutor> {
        let max_workers = self.max_workers.unwrap_or_else(default_workers);
        if max_workers == 0 {
            return Err(Error::InvalidArgument(
                "max_workers must be greater than 0".into(),
            ));
        }
        let id = POOLS.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = crossbeam_channel::unbounded();
        let pool = Pool {
            id,
            max_workers,
            prefix: self
                .prefix
                .unwrap_or_else(|| format!("ThreadPoolExecutor-{id}")),
            initializer: self.initializer,
            sender: Mutex::new(Some(tx)),
            receiver: rx,
            idle: AtomicUsize::new(0),
            seats: Seats::new(id, max_workers),
            spawned: AtomicUsize::new(0),
            handles: Mutex::new(Vec::new()),
            live: Mutex::new(0),
            live_cv: Condvar::new(),
            shutdown: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            broken: OnceLock::new(),
        };
        Ok(ThreadPoolExecutor {
            pool: Arc::new(pool),
        })
    }
}

impl fmt::Debug for ThreadPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolBuilder")
            .field("max_workers", &self.max_workers)
            .field("thread_name_prefix", &self.prefix)
            .field("initializer", &self.initializer.is_some())
            .finish()
    }
}

impl ThreadPoolExecutor {
    /// An executor with the default settings (`min(32, cpus + 4)` workers).
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for settings read from the environment.
    pub fn new() -> Result<Self> {
        Self::builder().build()
    }

    /// A builder for the settings Python takes as keyword arguments.
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder {
            max_workers: None,
            prefix: None,
            initializer: None,
        }
    }

    /// The most threads this executor runs.
    pub fn max_workers(&self) -> usize {
        self.pool.max_workers
    }

    /// Schedules `f(arg)` (Python's `submit(fn, arg)`); `f` may be any closure.
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] after [`shutdown`](Self::shutdown); [`Error::Io`] when no worker
    /// thread could be started at all; a [`TaskError`] when an initializer broke the pool.
    pub fn submit<F, A, R>(&self, f: F, arg: A) -> Result<Future<R>>
    where
        F: FnOnce(A) -> R + Send + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        let (promise, future) = promise();
        self.pool.execute(Box::new(Call { f, arg, promise }))?;
        Ok(future)
    }

    /// Schedules the closure `f` (Python's `submit(fn)` with no argument).
    ///
    /// The closure and its result cross threads, so they must be `Send`:
    ///
    /// ```compile_fail
    /// let pool = spindle::futures::ThreadPoolExecutor::new().unwrap();
    /// let shared = std::rc::Rc::new(1);
    /// let f = pool.spawn(move || *shared);
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`submit`](Self::submit).
    pub fn spawn<F, R>(&self, f: F) -> Result<Future<R>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit(move |()| f(), ())
    }

    /// Applies `f` to every item of `args`, in parallel, with results in input order
    /// (Python's `map`).
    ///
    /// Items are batched: each task computes a chunk of inputs, sized adaptively (it starts
    /// at one item and grows while the items are quick), and a few chunks per worker are kept
    /// in flight. The input iterator is consumed lazily, on the thread that iterates the
    /// [`Map`]. A panic in one call makes that item `Err(Error::Task(..))`; the others go on.
    ///
    /// Never more than [`max_workers`](Self::max_workers) items run at once. When the pool
    /// has no initializer, the thread that iterates may run chunks itself, as rayon's caller
    /// does, but only in the seat of a worker that is idle (or not started) at that moment,
    /// never as an extra runner: the chunk it needs next if no worker has started it yet
    /// (rather than sleep until one does), and, while the items are so quick (a couple of
    /// nanoseconds) that sending them to another core would cost more than running them,
    /// every item, a slice at a time, read straight from the input. `map_timeout` never does
    /// (a chunk run by the caller could overrun the deadline). Workers start chunks in input
    /// order.
    /// If the executor is shut down before the inputs are all submitted, the [`Map`] yields
    /// `Err(Error::Shutdown)` where the first unsubmitted item would be, then ends.
    ///
    /// For items of a nanosecond or two, build with `codegen-units = 1` (or `lto = "thin"`)
    /// in the release profile: with Cargo's default of 16 the slice loop's input position
    /// goes through memory on every item, about 1.6× slower (docs/decisions.md, D47).
    ///
    /// # Errors
    ///
    /// Those of [`submit`](Self::submit), for the first chunk.
    pub fn map<F, A, R, I>(&self, f: F, args: I) -> Result<Map<R>>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        batch::map(&self.pool, f, args.into_iter(), None)
    }

    /// Like [`map`](Self::map), with a deadline `timeout` from now for the whole iteration:
    /// a result not ready in time yields `Err(Error::Timeout)` once, the queued work is
    /// cancelled and the iterator ends.
    ///
    /// # Errors
    ///
    /// Those of [`map`](Self::map).
    pub fn map_timeout<F, A, R, I>(&self, f: F, args: I, timeout: Duration) -> Result<Map<R>>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        batch::map(&self.pool, f, args.into_iter(), deadline(timeout))
    }

    /// Stops accepting tasks (Python's `shutdown(wait, cancel_futures=...)`).
    ///
    /// With `cancel_futures`, the tasks still queued are cancelled (their futures report
    /// [`TaskError::is_cancelled`]); running tasks always finish, and without it queued tasks
    /// run too. With `wait`, returns when every task has ended and every thread is joined
    /// (from inside one of its own tasks, the calling worker is not waited for). Idempotent;
    /// a later submit returns [`Error::Shutdown`]. Dropping the executor calls
    /// `shutdown(true, false)`.
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.pool.shutdown(wait, cancel_futures);
    }
}

impl Executor for ThreadPoolExecutor {
    fn submit<F, A, R>(&self, f: F, arg: A) -> Result<Future<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        ThreadPoolExecutor::submit(self, f, arg)
    }

    fn map<F, A, R, I>(&self, f: F, args: I) -> Result<Map<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        ThreadPoolExecutor::map(self, f, args)
    }

    fn map_timeout<F, A, R, I>(&self, f: F, args: I, timeout: Duration) -> Result<Map<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        ThreadPoolExecutor::map_timeout(self, f, args, timeout)
    }

    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        ThreadPoolExecutor::shutdown(self, wait, cancel_futures);
    }
}

impl Drop for ThreadPoolExecutor {
    fn drop(&mut self) {
        self.pool.shutdown(true, false);
    }
}

impl fmt::Debug for ThreadPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolExecutor")
            .field("max_workers", &self.pool.max_workers)
            .field("threads", &self.pool.spawned.load(Ordering::Relaxed))
            .field("shutdown", &self.pool.shutdown.load(Ordering::Relaxed))
            .finish()
    }
}
