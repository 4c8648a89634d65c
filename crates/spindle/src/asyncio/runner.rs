//! [`run`] and [`Runner`]: the event loop (Python's `asyncio.run` and `asyncio.Runner`), a
//! tokio runtime underneath: current-thread by default, as Python's loop is single-threaded,
//! or multi-threaded on request.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use super::event_loop::EventLoop;
use super::unwind::{failed, CatchUnwind};
use crate::futures::ThreadPoolExecutor;
use crate::{Error, Result};

/// What a loop shares with its handles ([`EventLoop`]) and its threads.
pub(crate) struct LoopShared {
    /// The runtime's handle, set right after the runtime is built (its threads start first).
    pub(crate) handle: OnceLock<tokio::runtime::Handle>,
    /// Set when the runner is closed: no callback or coroutine is accepted afterwards.
    pub(crate) closed: AtomicBool,
    /// Python's default executor, started on first use ([`to_thread`](super::to_thread)).
    /// `None` for a runtime spindle did not build: the process-wide one serves it.
    default_executor: Option<OnceLock<ThreadPoolExecutor>>,
}

impl LoopShared {
    fn new(own_executor: bool) -> Self {
        LoopShared {
            handle: OnceLock::new(),
            closed: AtomicBool::new(false),
            default_executor: own_executor.then(OnceLock::new),
        }
    }

    /// The state of a tokio runtime that spindle did not build (`#[tokio::main]`, ...).
    pub(crate) fn foreign(handle: tokio::runtime::Handle) -> Arc<Self> {
        let shared = LoopShared::new(false);
        let _ = shared.handle.set(handle);
        Arc::new(shared)
    }

    /// The loop's default executor (Python's: a `ThreadPoolExecutor` of `min(32, cpus + 4)`
    /// threads, started lazily); one per [`Runner`], shut down with it.
    pub(crate) fn default_executor(&self) -> Result<&ThreadPoolExecutor> {
        static PROCESS_WIDE: OnceLock<ThreadPoolExecutor> = OnceLock::new();
        let cell = self.default_executor.as_ref().unwrap_or(&PROCESS_WIDE);
        if let Some(pool) = cell.get() {
            return Ok(pool);
        }
        let pool = ThreadPoolExecutor::builder()
            .thread_name_prefix("asyncio")
            .build()?;
        // Two first calls at once: one pool wins, the other (no thread started) is dropped.
        let _ = cell.set(pool);
        cell.get().ok_or(Error::InvalidState("default executor"))
    }
}

thread_local! {
    /// The loop this thread runs (the thread in `Runner::run`, a multi-threaded loop's
    /// workers).
    static CURRENT: RefCell<Option<Arc<LoopShared>>> = const { RefCell::new(None) };
}

/// The loop of this thread, when it runs one of spindle's.
pub(crate) fn current() -> Option<Arc<LoopShared>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Marks this thread as running `shared` until dropped (then restores what was there).
struct Enter(Option<Arc<LoopShared>>);

impl Enter {
    fn new(shared: Arc<LoopShared>) -> Enter {
        Enter(CURRENT.with(|c| c.borrow_mut().replace(shared)))
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// Runs `main` to its end on a new event loop and returns its value (Python's
/// `asyncio.run(main())`).
///
/// The loop is current-thread, as Python's: every coroutine runs on this thread, taking
/// turns at its `await`s. When `main` returns, the tasks still running are cancelled
/// (dropped) and the loop's default executor is shut down, waiting for its threads, as
/// Python's `asyncio.run` does. For a loop on several threads, see [`Runner::builder`].
///
/// ```
/// use std::time::Duration;
/// use spindle::asyncio;
///
/// // asyncio.run(main())
/// let v = asyncio::run(async {
///     asyncio::sleep(Duration::from_millis(1)).await;
///     "done"
/// })?;
/// assert_eq!(v, "done");
/// # Ok::<(), spindle::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Task`] with [`is_panic`](crate::TaskError::is_panic) when `main` panics (the
/// message and location are in the error); [`Error::InvalidState`] when called from inside
/// a running loop (Python's `RuntimeError`); [`Error::Io`] when the loop cannot be built.
pub fn run<F: Future>(main: F) -> Result<F::Output> {
    Runner::new()?.run(main)
}

/// A loop that runs several coroutines one after another (Python 3.11's `asyncio.Runner`).
///
/// ```
/// use spindle::asyncio::Runner;
///
/// // with asyncio.Runner() as runner: runner.run(a()); runner.run(b())
/// let runner = Runner::builder().multi_thread(2).build()?;
/// assert_eq!(runner.run(async { 1 })?, 1);
/// assert_eq!(runner.run(async { 2 })?, 2);
/// # Ok::<(), spindle::Error>(())
/// ```
///
/// # Dropping
///
/// Dropping it (or [`close`](Runner::close)) cancels the tasks still running, shuts down the
/// default executor (waiting for its threads), and refuses later
/// [`call_soon_threadsafe`](EventLoop::call_soon_threadsafe) and
/// [`run_coroutine_threadsafe`](super::run_coroutine_threadsafe) calls with
/// [`Error::Shutdown`].
pub struct Runner {
    rt: Option<tokio::runtime::Runtime>,
    shared: Arc<LoopShared>,
    threads: usize,
}

/// Settings of a [`Runner`].
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct RunnerBuilder {
    workers: Option<usize>,
}

impl RunnerBuilder {
    /// Runs the coroutines on `workers` threads (tokio's multi-threaded scheduler) instead of
    /// the calling thread alone. Zero is an error at [`build`](RunnerBuilder::build).
    pub fn multi_thread(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Builds the loop.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for zero workers; [`Error::Io`] when the runtime (its
    /// epoll instance, its threads) cannot be created.
    pub fn build(self) -> Result<Runner> {
        let shared = Arc::new(LoopShared::new(true));
        let rt = match self.workers {
            None => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            Some(0) => {
                return Err(Error::InvalidArgument(
                    "a multi-threaded loop needs at least one worker thread".into(),
                ))
            }
            Some(n) => {
                let weak: Weak<LoopShared> = Arc::downgrade(&shared);
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(n)
                    .thread_name("spindle-asyncio")
                    .enable_all()
                    .on_thread_start(move || {
                        if let Some(s) = weak.upgrade() {
                            CURRENT.with(|c| *c.borrow_mut() = Some(s));
                        }
                    })
                    .on_thread_stop(|| CURRENT.with(|c| *c.borrow_mut() = None))
                    .build()?
            }
        };
        let _ = shared.handle.set(rt.handle().clone());
        Ok(Runner {
            rt: Some(rt),
            shared,
            threads: self.workers.unwrap_or(1),
        })
    }
}

impl Runner {
    /// A current-thread loop (the same as `Runner::builder().build()`).
    ///
    /// # Errors
    ///
    /// Those of [`RunnerBuilder::build`].
    pub fn new() -> Result<Runner> {
        RunnerBuilder::default().build()
    }

    /// A builder: current-thread by default, [`multi_thread`](RunnerBuilder::multi_thread) on
    /// request.
    pub fn builder() -> RunnerBuilder {
        RunnerBuilder::default()
    }

    /// Runs `main` to its end on this loop and returns its value (Python's `Runner.run`).
    /// Tasks it created and left running go on at the next `run`.
    ///
    /// # Errors
    ///
    /// Those of [`run`].
    pub fn run<F: Future>(&self, main: F) -> Result<F::Output> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::InvalidState(
                "asyncio::run() cannot be called from a running event loop",
            ));
        }
        let rt = self
            .rt
            .as_ref()
            .ok_or(Error::InvalidState("the runner is closed"))?;
        let _enter = Enter::new(Arc::clone(&self.shared));
        rt.block_on(CatchUnwind::new(main)).map_err(failed)
    }

    /// A handle on this loop, for other threads
    /// ([`run_coroutine_threadsafe`](super::run_coroutine_threadsafe),
    /// [`call_soon_threadsafe`](EventLoop::call_soon_threadsafe)); Python's
    /// `Runner.get_loop()`.
    pub fn get_loop(&self) -> EventLoop {
        EventLoop::from_shared(Arc::clone(&self.shared))
    }

    /// Closes the loop now (what dropping it does).
    pub fn close(self) {}

    fn shut_down(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        // Dropping the runtime cancels (drops) every task left and joins its threads; from
        // inside another loop (where blocking is not allowed) it is left to end on its own.
        if let Some(rt) = self.rt.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                rt.shutdown_background();
            } else {
                drop(rt);
            }
        }
        if let Some(Some(pool)) = self.shared.default_executor.as_ref().map(OnceLock::get) {
            pool.shutdown(true, false);
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.shut_down();
    }
}

impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("threads", &self.threads)
            .field("closed", &self.rt.is_none())
            .finish()
    }
}
