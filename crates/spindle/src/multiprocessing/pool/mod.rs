//! `multiprocessing.pool`: [`Pool`], a pool of worker processes that never hangs, never
//! loses a task, and says why a worker died; [`AsyncResult`], [`IMap`], [`IMapUnordered`].
//!
//! ```
//! use spindle::multiprocessing::{Pool, StartMethod};
//!
//! fn square(n: u64) -> u64 {
//!     n * n
//! }
//!
//! // with Pool(processes=3) as pool: pool.map(square, [1, 2, 3, 4, 5])
//! let pool = Pool::builder().processes(3).start_method(StartMethod::Fork).build()?;
//! assert_eq!(pool.map(square, 1..=5)?, [1, 4, 9, 16, 25]);
//! # Ok::<(), spindle::Error>(())
//! ```
//!
//! | Python (`multiprocessing.pool`) | spindle |
//! |---|---|
//! | `Pool(processes, initializer, initargs, maxtasksperchild, context)` | [`Pool::builder`]`()`: [`processes`](PoolBuilder::processes), [`initializer`](PoolBuilder::initializer), [`maxtasksperchild`](PoolBuilder::maxtasksperchild), [`context`](PoolBuilder::context) / [`start_method`](PoolBuilder::start_method) |
//! | `pool.map(f, it, chunksize)`, `map_async` | [`Pool::map`], [`Pool::map_async`]; chunk size: [`Pool::call`]`().chunksize(n)` |
//! | `pool.imap(f, it, chunksize)`, `imap_unordered` | [`Pool::imap`] → [`IMap`], [`Pool::imap_unordered`] → [`IMapUnordered`] |
//! | `pool.starmap(f, it)`, `starmap_async` | [`Pool::starmap`], [`Pool::starmap_async`] |
//! | `pool.apply(f, args)`, `apply_async(f, args, callback, error_callback)` | [`Pool::apply`], [`Pool::apply_async`] → [`AsyncResult`] ([`on_success`](AsyncResult::on_success), [`on_error`](AsyncResult::on_error)) |
//! | `AsyncResult.get(timeout)`, `wait`, `ready`, `successful` | [`AsyncResult::get`] / [`get_timeout`](AsyncResult::get_timeout), [`wait`](AsyncResult::wait) / [`wait_timeout`](AsyncResult::wait_timeout), [`ready`](AsyncResult::ready), [`successful`](AsyncResult::successful) |
//! | `close()`, `terminate()`, `join()`, `with Pool() as p:` | [`Pool::close`], [`Pool::terminate`], [`Pool::join`], dropping the pool (terminates) |
//! | `multiprocessing.pool.ThreadPool`, `multiprocessing.dummy.Pool` | [`dummy::Pool`](crate::multiprocessing::dummy::Pool) |
//!
//! What a Python user gains:
//!
//! * **A dead worker ends its tasks, not the pool.** A worker killed mid-task (`SIGKILL`, a
//!   segfault, `abort`, `_exit`, the OOM killer) is seen at once through its pidfd: the
//!   items it held end with a [`TaskError`](crate::TaskError) for which
//!   [`is_worker_died`](crate::TaskError::is_worker_died) holds, naming the task
//!   ([`task`](crate::TaskError::task)), the signal or exit code, "likely the OOM killer"
//!   when the cgroup's OOM-kill count rose, and the last lines the worker wrote to stderr.
//!   Items queued behind them go to a fresh worker; every other item's value is delivered,
//!   and the pool serves the next call. CPython's `Pool` hangs forever there.
//! * **A panic is the item's error** ([`is_panic`](crate::TaskError::is_panic), with
//!   message, location, backtrace with `RUST_BACKTRACE=1`, and pid); the worker goes on.
//! * **Time limits per task** ([`PoolBuilder::task_timeout`], [`Call::timeout`]): the item
//!   ends with [`is_timeout`](crate::TaskError::is_timeout), its worker is killed and
//!   replaced.
//! * **An initializer that fails** ends every call with
//!   [`is_initializer_failed`](crate::TaskError::is_initializer_failed) and its message; no
//!   worker is restarted (CPython restarts them in a loop while `map` never returns).
//! * **`terminate()` and drop end every pending result at once** (cancelled), and reap every
//!   worker, thread and descriptor.
//! * **Lazy, bounded input**: `imap` pulls its input on the consumer's thread, a bounded
//!   window ahead, so an endless iterator works; dropping the iterator cancels the rest.
//! * **Adaptive chunks** by default ([`Chunking`]): slow items travel alone, tiny ones in
//!   chunks of thousands.
//! * **Worker state** ([`PoolBuilder::worker_state`]): each task gets `&mut` its worker's
//!   state, built once per worker, with an exit hook.
//!
//! Workers ignore `SIGINT`: Ctrl-C at a terminal reaches the whole foreground group, the
//! parent ends (by default) and every worker dies with it (`PR_SET_PDEATHSIG`); a parent that
//! catches it and drops the pool leaves nothing behind.
//!
//! **Workers' standard error** goes through a pipe per worker: the pool relays it to this
//! process's stderr whole line by whole line (so lines of different workers never mix), and
//! keeps the last lines of each worker for its death report. So a worker's stderr is not a
//! terminal (libraries that color their output only on a terminal print plain text), and a
//! line appears once it is complete. [`PoolBuilder::relay_stderr`]`(false)` lets workers
//! write to the inherited stderr directly instead.
//!
//! **Start methods.** Workers are [`Process`](crate::multiprocessing::Process)es. Under fork
//! a worker is built with `fork_target`, its channel captured directly; read-only data
//! captured when the pool is built (by [`PoolBuilder::fork_worker_state`] or
//! [`PoolBuilder::fork_initializer`]) is shared copy-on-write, never serialised. A worker
//! that replaces a dead one is forked while this process has other threads (the pool's own
//! supervisor at least): see docs/decisions.md, D84, for why that is safe for the pool's own
//! code (the worker touches no lock another thread may hold) and what it means for yours.
//! Under spawn and forkserver the channel travels as a descriptor in the worker's arguments.

mod async_result;
mod call;
mod chunk;
mod chunking;
mod flat;
mod imap;
mod job;
mod progress;
pub(crate) mod protocol;
mod reports;
mod result;
mod runs;
mod spawn;
mod stderr;
mod supervisor;
mod worker;

#[cfg(test)]
mod tests;

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use async_result::AsyncResult;
pub use call::Call;
pub use chunking::Chunking;
pub use imap::{IMap, IMapUnordered};
pub use worker::InitResult;

pub(crate) use runs::{map_run, Entries};
/// The MPI executor's trampolines are the pool's.
#[cfg(feature = "mpi")]
pub(crate) use worker::{init_entry, star_item};
pub(crate) use worker::{map_item, Hook};

/// The worker side's state slot, shared with the thread pool.
pub(crate) mod worker_state {
    pub(crate) use super::worker::{set_state, take_state, with_state};
}

pub(crate) use self::async_result::AsyncShared;
pub(crate) use self::call::{drain, single};
pub(crate) use self::chunking::Sizer;
pub(crate) use self::imap::Stream;
pub(crate) use self::job::{arg_error, Command, Encoded, ItemEncoder, ProcJob, Shared, MAX_WINDOW};
pub(crate) use self::progress::Bar;
pub(crate) use self::reports::Reports;
pub(crate) use self::result::{collect, Block, ByteSink, Order, Outcomes, Pull, Sink};
use self::spawn::Settings;
use self::supervisor::Supervisor;
use self::worker::Hooks;
/// The framed codec of one item and one outcome, for executors that run the pool's item
/// trampolines elsewhere (the MPI executor's ranks).
#[allow(unused_imports)]
pub(crate) use self::{job::encode_item, reports::decode_one};
use crate::error::{Error, Result};
use crate::latch::lock;
use crate::multiprocessing::{get_start_method, Context, StartMethod, Target};

/// Settings of a [`Pool`] before it starts (Python's `Pool(...)` keyword arguments).
///
/// ```
/// use std::time::Duration;
/// use spindle::multiprocessing::{Pool, StartMethod};
///
/// fn connect(url: String) -> Result<(), String> {
///     if url.is_empty() { Err("no url".into()) } else { Ok(()) }
/// }
///
/// let pool = Pool::builder()
///     .processes(2)
///     .start_method(StartMethod::Fork)
///     .initializer(connect, ("db://local".to_string(),))
///     .maxtasksperchild(1000)
///     .task_timeout(Duration::from_secs(30))
///     .build()?;
/// assert_eq!(pool.processes(), 2);
/// # Ok::<(), spindle::Error>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct PoolBuilder<S = ()> {
    processes: Option<usize>,
    method: Option<StartMethod>,
    hooks: Hooks,
    fork_only: bool,
    maxtasksperchild: Option<u64>,
    task_timeout: Option<Duration>,
    max_memory: Option<u64>,
    relay_stderr: bool,
    chunking: Chunking,
    _state: PhantomData<fn() -> S>,
}

impl<S> fmt::Debug for PoolBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("method", &self.method)
            .field("maxtasksperchild", &self.maxtasksperchild)
            .field("task_timeout", &self.task_timeout)
            .finish_non_exhaustive()
    }
}

impl PoolBuilder<()> {
    /// A builder with Python's defaults: [`cpu_count`](crate::multiprocessing::cpu_count)
    /// workers, the default start method, no initializer, no limits.
    pub fn new() -> Self {
        PoolBuilder {
            processes: None,
            method: None,
            hooks: Hooks::default(),
            fork_only: false,
            maxtasksperchild: None,
            task_timeout: None,
            max_memory: None,
            relay_stderr: true,
            chunking: Chunking::Adaptive,
            _state: PhantomData,
        }
    }

    /// Gives every worker a state built by `ctor(args...)` once, when the worker starts
    /// (after the initializer); tasks run with `*_with_state` get `&mut` it (mpire's worker
    /// state: a cache, a connection, a loaded model). `ctor` is a named function (any start
    /// method); see [`fork_worker_state`](PoolBuilder::fork_worker_state) for a closure.
    ///
    /// ```
    /// use spindle::multiprocessing::{Pool, StartMethod};
    /// fn fresh() -> Vec<u64> { Vec::new() }
    /// fn remember(seen: &mut Vec<u64>, x: u64) -> usize { seen.push(x); seen.len() }
    /// let pool = Pool::builder().processes(1).start_method(StartMethod::Fork)
    ///     .worker_state(fresh, ()).build()?;
    /// assert_eq!(pool.map_with_state(remember, [7, 8, 9])?, [1, 2, 3]);
    /// # Ok::<(), spindle::Error>(())
    /// ```
    pub fn worker_state<F, Args, S>(self, ctor: F, args: Args) -> PoolBuilder<S>
    where
        F: Target<Args, Output = S>,
        Args: Serialize + DeserializeOwned,
        S: 'static,
    {
        const {
            assert!(
                std::mem::size_of::<F>() == 0,
                "a state constructor must capture nothing: use fork_worker_state"
            )
        };
        let _ = ctor;
        let hook = entry_hook(worker::state_entry::<F, Args>, &args);
        self.with_state_hook(hook, false)
    }

    /// Like [`worker_state`](PoolBuilder::worker_state), with a closure that may capture
    /// anything: it runs in each forked worker, so what it captured when the pool was built
    /// is shared copy-on-write with every worker, never serialised. Fork only:
    /// [`build`](PoolBuilder::build) refuses another start method.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use spindle::multiprocessing::Pool;
    /// let table: Arc<Vec<u64>> = Arc::new((0..1000).map(|i| i * i).collect());
    /// fn look_up(t: &mut Arc<Vec<u64>>, i: usize) -> u64 { t[i] }
    /// let pool = Pool::builder().processes(2)
    ///     .fork_worker_state(move || Arc::clone(&table)).build()?;
    /// assert_eq!(pool.map_with_state(look_up, [3, 999])?, [9, 998_001]);
    /// # Ok::<(), spindle::Error>(())
    /// ```
    pub fn fork_worker_state<F, S>(self, ctor: F) -> PoolBuilder<S>
    where
        F: Fn() -> S + Send + Sync + 'static,
        S: 'static,
    {
        let hook = Hook::Closure(Arc::new(move || {
            worker::set_state(ctor());
            Ok(())
        }));
        self.with_state_hook(hook, true)
    }

    fn with_state_hook<S>(self, hook: Hook, fork_only: bool) -> PoolBuilder<S> {
        PoolBuilder {
            processes: self.processes,
            method: self.method,
            hooks: Hooks {
                init: self.hooks.init,
                state: Some(hook),
                exit: None,
            },
            fork_only: self.fork_only || fork_only,
            maxtasksperchild: self.maxtasksperchild,
            task_timeout: self.task_timeout,
            max_memory: self.max_memory,
            relay_stderr: self.relay_stderr,
            chunking: self.chunking,
            _state: PhantomData,
        }
    }
}

impl Default for PoolBuilder<()> {
    fn default() -> Self {
        PoolBuilder::new()
    }
}

/// A hook that runs anywhere: a trampoline and its encoded arguments (encoded now; an
/// argument that does not encode fails `build`).
fn entry_hook<Args: Serialize>(entry: crate::sys::image::EntryFn, args: &Args) -> Hook {
    match crate::multiprocessing::reduction::encode(args) {
        Ok(bytes) => Hook::Entry(entry, Arc::new(bytes)),
        Err(e) => {
            let message = format!("the hook's arguments do not encode: {e}");
            Hook::Closure(Arc::new(move || Err(message.clone())))
        }
    }
}

impl<S: 'static> PoolBuilder<S> {
    /// The number of worker processes (Python's `processes=`; default
    /// [`cpu_count`](crate::multiprocessing::cpu_count)). Zero is an error at `build`.
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// The workers' start method, instead of the default
    /// ([`get_start_method`] at `build`).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// The context whose start method the workers use (Python's `context=`).
    pub fn context(self, ctx: Context) -> Self {
        self.start_method(ctx.get_start_method())
    }

    /// Runs `init(args...)` in every worker when it starts (Python's `initializer=`,
    /// `initargs=`). It may return `()` or a `Result<(), E: Display>`; an `Err` or a panic
    /// fails it, and then every call of the pool ends with
    /// [`is_initializer_failed`](crate::TaskError::is_initializer_failed) and the message,
    /// and no worker is started again. `init` is a named function (any start method).
    pub fn initializer<F, Args>(mut self, init: F, args: Args) -> Self
    where
        F: Target<Args>,
        F::Output: InitResult,
        Args: Serialize + DeserializeOwned,
    {
        const {
            assert!(
                std::mem::size_of::<F>() == 0,
                "an initializer must capture nothing: use fork_initializer"
            )
        };
        let _ = init;
        self.hooks.init = Some(entry_hook(worker::init_entry::<F, Args>, &args));
        self
    }

    /// Like [`initializer`](PoolBuilder::initializer), with a closure that may capture
    /// anything (fork only).
    pub fn fork_initializer<F, T>(mut self, init: F) -> Self
    where
        F: Fn() -> T + Send + Sync + 'static,
        T: InitResult,
    {
        self.hooks.init = Some(Hook::Closure(Arc::new(move || init().into_result())));
        self.fork_only = true;
        self
    }

    /// Replaces a worker after it has run `n` items (Python's `maxtasksperchild`, which
    /// counts chunks; here every item counts, so chunks are cut to fit). The worker finishes
    /// what it holds, runs its exit hook and exits; a new one takes its place. Zero is an
    /// error at `build`.
    pub fn maxtasksperchild(mut self, n: u64) -> Self {
        self.maxtasksperchild = Some(n);
        self
    }

    /// A time limit for every task (pebble's `schedule(timeout=)`, for every call): an item
    /// still running after `limit` ends with [`is_timeout`](crate::TaskError::is_timeout),
    /// and its worker is killed and replaced. [`Call::timeout`] sets one per call. Items
    /// under a time limit report one by one, so the limit is counted from each item's start.
    pub fn task_timeout(mut self, limit: Duration) -> Self {
        self.task_timeout = Some(limit);
        self
    }

    /// Replaces a worker whose resident memory (`/proc/PID/statm`) is above `bytes` after a
    /// chunk (billiard's `max_memory_per_child`): it gets no more work, and exits once
    /// empty.
    pub fn max_memory_per_child(mut self, bytes: u64) -> Self {
        self.max_memory = Some(bytes);
        self
    }

    /// Whether workers' stderr goes through the pool (default `true`: relayed line by line,
    /// the last lines kept for a dead worker's error) or straight to the inherited stderr.
    pub fn relay_stderr(mut self, relay: bool) -> Self {
        self.relay_stderr = relay;
        self
    }

    /// How calls cut their input by default ([`Chunking::Adaptive`] unless told).
    pub fn chunking(mut self, chunking: Chunking) -> Self {
        self.chunking = chunking;
        self
    }

    /// Runs `hook(state)` in every worker that ends in an orderly way (after `close` and
    /// `join`, or replaced by `maxtasksperchild` / `max_memory_per_child`), with its state.
    /// A killed worker (terminate, a crash, a timeout) runs nothing.
    pub fn on_worker_exit<F>(mut self, hook: F) -> Self
    where
        F: Fn(S) + Copy + Send + Sync + 'static,
    {
        const {
            assert!(
                std::mem::size_of::<F>() == 0,
                "an exit hook must capture nothing"
            )
        };
        let _ = hook;
        self.hooks.exit = Some(Hook::Entry(
            worker::exit_entry::<F, S>,
            Arc::new(Vec::new()),
        ));
        self
    }

    /// Starts the workers and the pool's supervisor thread.
    ///
    /// The workers are started here, on the calling thread (so that a program that starts
    /// its pool from its main thread forks them before any pool thread exists). A half-built
    /// pool (a worker that cannot start) is torn down before the error returns.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for zero processes or zero `maxtasksperchild`, or for a
    /// closure hook with a start method other than fork; [`Error::Io`] when a worker or the
    /// supervisor cannot start.
    pub fn build(self) -> Result<Pool<S>> {
        let processes = self
            .processes
            .unwrap_or_else(crate::multiprocessing::cpu_count);
        if processes == 0 {
            return Err(Error::InvalidArgument(
                "a pool needs at least one process".into(),
            ));
        }
        if self.maxtasksperchild == Some(0) {
            return Err(Error::InvalidArgument(
                "maxtasksperchild must be at least 1".into(),
            ));
        }
        let method = match (self.method, self.fork_only) {
            (Some(m), true) if m != StartMethod::Fork => {
                return Err(Error::InvalidArgument(format!(
                    "a closure hook (fork_initializer, fork_worker_state) can only run under \
                     StartMethod::Fork, not {m}"
                )))
            }
            (Some(m), _) => m,
            (None, true) => StartMethod::Fork,
            (None, false) => get_start_method(),
        };
        let settings = Arc::new(Settings {
            processes,
            method,
            hooks: self.hooks,
            maxtasksperchild: self.maxtasksperchild,
            max_memory: self.max_memory,
            relay_stderr: self.relay_stderr,
            name: "SpindlePoolWorker".into(),
        });
        // Computed once here, so that forked workers find it known instead of each reading
        // the program's headers before their first task.
        crate::sys::image::compute_checks();
        let shared = Shared::new(processes)?;
        let mut sup = Supervisor::new(Arc::clone(&shared), Arc::clone(&settings))?;
        // The workers first, the pool's thread after: a program that builds its pool from a
        // single-threaded main thread forks no process that has other threads. (The stderr
        // relay thread starts when a worker first writes a line.)
        for _ in 0..processes {
            sup.add_worker()?;
        }
        let thread = std::thread::Builder::new()
            .name("spindle-pool".into())
            .spawn(move || sup.run())?;
        Ok(Pool {
            shared,
            settings,
            chunking: self.chunking,
            task_timeout: self.task_timeout,
            thread: Mutex::new(Some(thread)),
            _state: PhantomData,
        })
    }
}

/// A pool of worker processes (Python's `multiprocessing.Pool`); see the
/// [module docs](self) for what it adds.
///
/// Every method takes `&self`: a pool can be shared by threads. Tasks are named functions
/// (`fn` items or closures that capture nothing, as [`Process`](crate::multiprocessing::Process)
/// targets), with serde arguments and values.
///
/// # Dropping
///
/// Dropping the pool is Python's `with Pool(...)` exit: it terminates — every pending result
/// ends at once with a cancelled [`TaskError`](crate::TaskError), every worker is killed and
/// reaped, the pool's threads end. Call [`close`](Pool::close) and [`join`](Pool::join) first
/// to let the work finish.
pub struct Pool<S = ()> {
    shared: Arc<Shared>,
    settings: Arc<Settings>,
    chunking: Chunking,
    task_timeout: Option<Duration>,
    thread: Mutex<Option<JoinHandle<()>>>,
    _state: PhantomData<fn() -> S>,
}

impl<S> fmt::Debug for Pool<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.settings.processes)
            .field("start_method", &self.settings.method)
            .finish_non_exhaustive()
    }
}

impl Pool<()> {
    /// A [`PoolBuilder`] with Python's defaults.
    pub fn builder() -> PoolBuilder<()> {
        PoolBuilder::new()
    }

    /// A pool of `processes` workers with the default start method (Python's
    /// `Pool(processes)`).
    ///
    /// # Errors
    ///
    /// Those of [`PoolBuilder::build`].
    pub fn new(processes: usize) -> Result<Pool<()>> {
        PoolBuilder::new().processes(processes).build()
    }
}

impl<S: 'static> Pool<S> {
    /// The number of workers the pool keeps.
    pub fn processes(&self) -> usize {
        self.settings.processes
    }

    /// The workers' start method.
    pub fn start_method(&self) -> StartMethod {
        self.settings.method
    }

    /// The pids of the workers now (they change as workers are replaced).
    pub fn pids(&self) -> Vec<u32> {
        lock(&self.shared.sched).pids.clone()
    }

    /// How many workers this pool has started so far, replacements included.
    pub fn worker_starts(&self) -> u64 {
        lock(&self.shared.sched).starts
    }

    /// Options for one call: chunk size, time limit, input window; then the same methods as
    /// the pool's (`pool.call().chunksize(100).map(f, items)`).
    pub fn call(&self) -> Call<'_, S> {
        Call::new(self)
    }

    /// Accepts no more calls (Python's `close()`); the calls already made run to the end,
    /// then the workers exit (running their exit hooks). Idempotent.
    pub fn close(&self) {
        let mut s = lock(&self.shared.sched);
        s.closed = true;
        drop(s);
        self.shared
            .idle
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.shared.wake.notify();
    }

    /// Stops everything now (Python's `terminate()`): every pending result ends at once
    /// with a cancelled [`TaskError`](crate::TaskError), every worker is killed. Idempotent;
    /// [`join`](Pool::join) then reaps them.
    pub fn terminate(&self) {
        let mut s = lock(&self.shared.sched);
        s.closed = true;
        s.terminated = true;
        drop(s);
        self.shared
            .idle
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.shared.wake.notify();
    }

    /// Waits for the workers to exit (Python's `join()`), after [`close`](Pool::close) or
    /// [`terminate`](Pool::terminate). After `close` it waits for the calls already made,
    /// including the rest of the input of an `imap` still being consumed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] when the pool is neither closed nor terminated (Python raises
    /// `ValueError`).
    pub fn join(&self) -> Result<()> {
        if !lock(&self.shared.sched).closed {
            return Err(Error::InvalidState(
                "join() needs close() or terminate() first",
            ));
        }
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
        Ok(())
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl<S> Drop for Pool<S> {
    fn drop(&mut self) {
        {
            let mut s = lock(&self.shared.sched);
            s.closed = true;
            s.terminated = true;
        }
        self.shared
            .idle
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.shared.wake.notify();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}
