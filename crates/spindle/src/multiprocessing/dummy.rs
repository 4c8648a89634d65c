//! `multiprocessing.dummy`: [`Pool`], the process pool's API on threads (Python's
//! `multiprocessing.dummy.Pool` / `multiprocessing.pool.ThreadPool`).
//!
//! It shares the process pool's consumer side — [`AsyncResult`](super::pool::AsyncResult),
//! [`IMap`](super::pool::IMap), [`IMapUnordered`](super::pool::IMapUnordered), the chunk sizing
//! of [`Chunking`] and the lazy, bounded input of the
//! `imap`s — and runs chunks on exactly `processes` threads: never more items run at once
//! than it has threads (the caller's thread never runs one). Tasks are any closures; values
//! need not be serialisable.
//!
//! ```
//! use spindle::multiprocessing::dummy::Pool;
//!
//! let offset = 10; // a thread pool's tasks may capture anything
//! let pool = Pool::new(3)?;
//! assert_eq!(pool.map(move |n: u64| n * n + offset, 1..=5)?, [11, 14, 19, 26, 35]);
//! # Ok::<(), spindle::Error>(())
//! ```
//!
//! What differs from the process pool: there is no per-task time limit, no
//! `maxtasksperchild` or memory limit (a thread cannot be killed or replaced), and a panic in
//! a task is caught on its thread, as the process pool catches it in its worker.
//! [`terminate`](Pool::terminate) and dropping end every pending result at once; a thread
//! still inside a task finishes that chunk (its outcomes are dropped) and then exits.

use std::any::TypeId;
use std::collections::VecDeque;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::pool::{worker_state as worker, Block, Chunking, InitResult, Outcomes, Sink, Sizer};
use crate::error::{Error, Result, TaskError};
use crate::latch::{lock, wait_until_std as wait_until};

mod call;

pub use call::Apply;

type Hook = Arc<dyn Fn() -> std::result::Result<(), String> + Send + Sync>;

/// Settings of a thread [`Pool`] before it starts.
#[must_use = "a builder does nothing until `build` is called"]
pub struct PoolBuilder<S = ()> {
    processes: Option<usize>,
    init: Option<Hook>,
    state: Option<Hook>,
    exit: Option<Hook>,
    chunking: Chunking,
    _state: PhantomData<fn() -> S>,
}

impl<S> fmt::Debug for PoolBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .finish_non_exhaustive()
    }
}

impl PoolBuilder<()> {
    /// Python's defaults: [`cpu_count`](crate::multiprocessing::cpu_count) threads.
    pub fn new() -> Self {
        PoolBuilder {
            processes: None,
            init: None,
            state: None,
            exit: None,
            chunking: Chunking::Adaptive,
            _state: PhantomData,
        }
    }

    /// Gives every thread a state built by `ctor` when it starts; tasks run with
    /// `*_with_state` get `&mut` it.
    pub fn worker_state<F, S>(self, ctor: F) -> PoolBuilder<S>
    where
        F: Fn() -> S + Send + Sync + 'static,
        S: 'static,
    {
        PoolBuilder {
            processes: self.processes,
            init: self.init,
            state: Some(Arc::new(move || {
                worker::set_state(ctor());
                Ok(())
            })),
            exit: None,
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

impl<S: 'static> PoolBuilder<S> {
    /// The number of threads (Python's `processes=`); zero is an error at `build`.
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// Runs `init` on every thread when it starts (Python's `initializer`); a failure (an
    /// `Err` or a panic) ends every call with
    /// [`is_initializer_failed`](crate::TaskError::is_initializer_failed).
    pub fn initializer<F, T>(mut self, init: F) -> Self
    where
        F: Fn() -> T + Send + Sync + 'static,
        T: InitResult,
    {
        self.init = Some(Arc::new(move || init().into_result()));
        self
    }

    /// Runs `hook(state)` on every thread that ends in an orderly way (`close` and `join`).
    pub fn on_worker_exit<F>(mut self, hook: F) -> Self
    where
        F: Fn(S) + Send + Sync + 'static,
    {
        self.exit = Some(Arc::new(move || {
            if let Some(s) = worker::take_state::<S>() {
                hook(s);
            }
            Ok(())
        }));
        self
    }

    /// How calls cut their input by default.
    pub fn chunking(mut self, chunking: Chunking) -> Self {
        self.chunking = chunking;
        self
    }

    /// Starts the threads.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for zero threads; [`Error::Io`] when a thread cannot start
    /// (the ones started are stopped first).
    pub fn build(self) -> Result<Pool<S>> {
        let n = self
            .processes
            .unwrap_or_else(crate::multiprocessing::cpu_count);
        if n == 0 {
            return Err(Error::InvalidArgument(
                "a pool needs at least one thread".into(),
            ));
        }
        let core = Arc::new(Core {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            changed: Condvar::new(),
            workers: n,
            hooks: [self.init, self.state, self.exit],
            estimates: Mutex::new(std::collections::HashMap::new()),
        });
        let pool = Pool {
            core,
            threads: Mutex::new(Vec::new()),
            chunking: self.chunking,
            _state: PhantomData,
        };
        for i in 0..n {
            let core = Arc::clone(&pool.core);
            lock(&pool.core.state).alive += 1;
            let t = std::thread::Builder::new()
                .name(format!("spindle-threadpool-{}", i + 1))
                .spawn(move || work(&core));
            match t {
                Ok(t) => lock(&pool.threads).push(t),
                Err(e) => {
                    lock(&pool.core.state).alive -= 1;
                    // `pool` is dropped here: the threads started end.
                    return Err(Error::Io(e));
                }
            }
        }
        Ok(pool)
    }
}

struct Core {
    state: Mutex<State>,
    /// Threads wait here for work.
    work: Condvar,
    /// `join` and `Drop` wait here for threads to end or go idle.
    changed: Condvar,
    workers: usize,
    /// Initializer, state constructor, exit hook.
    hooks: [Option<Hook>; 3],
    estimates: Mutex<std::collections::HashMap<u64, f64>>,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Arc<dyn ThreadJob>>,
    live: Vec<Weak<dyn ThreadJob>>,
    closed: bool,
    terminated: bool,
    broken: Option<TaskError>,
    alive: usize,
    busy: usize,
}

/// A call as the threads see it.
trait ThreadJob: Send + Sync {
    /// Cuts the next chunk: the code that runs it, and whether items remain after it.
    fn take(self: Arc<Self>, core: &Arc<Core>) -> (Option<Box<dyn FnOnce() + Send>>, bool);
    /// Whether every item has been handed out and no more will come.
    fn input_done(&self) -> bool;
    /// Ends every item not delivered with `error`; no more items are accepted.
    fn terminate(&self, error: &TaskError);
}

struct Queue<A> {
    items: VecDeque<A>,
    /// The index of `items[0]`.
    first: u64,
    input_done: bool,
    closed: bool,
    /// Why, when it was the pool's failure (a failed initializer).
    why: Option<TaskError>,
    queued: bool,
    sizer: Sizer,
    total: Option<u64>,
}

struct Job<A, R> {
    q: Mutex<Queue<A>>,
    f: Arc<dyn Fn(A) -> R + Send + Sync>,
    out: Arc<Outcomes<R>>,
    key: u64,
}

impl<A: Send + 'static, R: Send + 'static> ThreadJob for Job<A, R> {
    fn take(self: Arc<Self>, core: &Arc<Core>) -> (Option<Box<dyn FnOnce() + Send>>, bool) {
        let mut q = lock(&self.q);
        if q.closed || q.items.is_empty() || !self.out.start() {
            q.items.clear();
            q.queued = false;
            return (None, false);
        }
        let remaining = q.total.map(|t| t.saturating_sub(q.first) as usize);
        let n = q.sizer.next(remaining).min(q.items.len());
        let first = q.first;
        let items: Vec<A> = q.items.drain(..n).collect();
        q.first += n as u64;
        let more = !q.items.is_empty();
        // Leaves the queue (the caller pops it, under the pool's lock) when nothing is left:
        // decided under this lock, so a concurrent pull sees it and puts the job back.
        q.queued = more;
        drop(q);
        let core = Arc::clone(core);
        let run = Box::new(move || {
            let began = Instant::now();
            let mut block = Block::new(first, items.len());
            for a in items {
                match crate::panic::catch(|| (self.f)(a)) {
                    Ok(v) => block.value(v),
                    Err(report) => block.error(TaskError::panicked(report)),
                }
            }
            let len = block.len as usize;
            self.out.deliver(block);
            let mut q = lock(&self.q);
            q.sizer.observe(len, began.elapsed());
            if let Some(t) = q.sizer.per_item() {
                lock(&core.estimates).insert(self.key, t);
            }
        });
        (Some(run), more)
    }

    fn input_done(&self) -> bool {
        let q = lock(&self.q);
        q.input_done && q.items.is_empty()
    }

    fn terminate(&self, error: &TaskError) {
        {
            let mut q = lock(&self.q);
            q.closed = true;
            q.items.clear();
            if !error.is_cancelled() {
                q.why = Some(error.clone());
            }
        }
        self.out.terminate(error);
    }
}

/// A thread's life: its hooks, then chunks until the pool ends.
fn work(core: &Arc<Core>) {
    let [init, state, exit] = &core.hooks;
    let started = init
        .as_ref()
        .map_or(Ok(()), run_hook)
        .and_then(|()| state.as_ref().map_or(Ok(()), run_hook));
    if let Err(message) = started {
        break_pool(core, TaskError::initializer_failed(message));
    }
    let mut orderly = false;
    let mut s = lock(&core.state);
    loop {
        if s.terminated || s.broken.is_some() {
            break;
        }
        if let Some(job) = s.jobs.front().cloned() {
            let (run, more) = Arc::clone(&job).take(core);
            if !more {
                s.jobs.pop_front();
            }
            if let Some(run) = run {
                s.busy += 1;
                drop(s);
                run();
                s = lock(&core.state);
                s.busy -= 1;
                core.changed.notify_all();
            }
            continue;
        }
        if s.closed
            && s.live
                .iter()
                .filter_map(Weak::upgrade)
                .all(|j| j.input_done())
        {
            orderly = true;
            break;
        }
        s = core
            .work
            .wait(s)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
    s.alive -= 1;
    drop(s);
    core.changed.notify_all();
    // Idle threads are woken to see the end too.
    core.work.notify_all();
    if orderly {
        if let Some(h) = exit {
            if let Err(e) = run_hook(h) {
                eprintln!("spindle: a thread pool's exit hook failed: {e}");
            }
        }
    }
}

fn run_hook(h: &Hook) -> std::result::Result<(), String> {
    match crate::panic::catch(|| h()) {
        Ok(r) => r,
        Err(report) => Err(format!("panicked: {report}")),
    }
}

fn break_pool(core: &Core, error: TaskError) {
    let live = {
        let mut s = lock(&core.state);
        if s.broken.is_some() {
            return;
        }
        s.broken = Some(error.clone());
        let live: Vec<_> = s.live.iter().filter_map(Weak::upgrade).collect();
        s.jobs.clear();
        live
    };
    for job in live {
        job.terminate(&error);
    }
    core.work.notify_all();
}

/// A pool of threads with the process pool's API (Python's `multiprocessing.dummy.Pool`):
/// see the [module docs](self).
///
/// # Dropping
///
/// Dropping it terminates, as the process pool: every pending result ends at once with a
/// cancelled [`TaskError`]; idle threads end at once and are joined, a
/// thread inside a task ends after it (never waited for: dropping never hangs).
pub struct Pool<S = ()> {
    core: Arc<Core>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    chunking: Chunking,
    _state: PhantomData<fn() -> S>,
}

impl<S> fmt::Debug for Pool<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("dummy::Pool")
            .field("processes", &self.core.workers)
            .finish_non_exhaustive()
    }
}

impl Pool<()> {
    /// A [`PoolBuilder`] with Python's defaults.
    pub fn builder() -> PoolBuilder<()> {
        PoolBuilder::new()
    }

    /// A pool of `processes` threads (Python's `ThreadPool(processes)`).
    ///
    /// # Errors
    ///
    /// Those of [`PoolBuilder::build`].
    pub fn new(processes: usize) -> Result<Pool<()>> {
        PoolBuilder::new().processes(processes).build()
    }
}

/// A stable key for a task type (for the per-function time estimates).
fn key_of<F: 'static>() -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    TypeId::of::<F>().hash(&mut h);
    h.finish()
}

/// The options of one call of a thread [`Pool`]: `pool.call().chunksize(10).map(f, items)`.
#[derive(Debug)]
#[must_use = "a call does nothing until one of its methods runs"]
pub struct Call<'a, S = ()> {
    pool: &'a Pool<S>,
    chunking: Chunking,
    buffersize: Option<usize>,
    progress: bool,
}

impl<S: 'static> Pool<S> {
    /// The number of threads.
    pub fn processes(&self) -> usize {
        self.core.workers
    }

    /// Options for one call.
    pub fn call(&self) -> Call<'_, S> {
        Call {
            pool: self,
            chunking: self.chunking,
            buffersize: None,
            progress: false,
        }
    }

    /// Accepts no more calls (Python's `close()`); the calls made run to their end, then
    /// the threads exit.
    pub fn close(&self) {
        lock(&self.core.state).closed = true;
        self.core.work.notify_all();
    }

    /// Ends every pending result now with a cancelled [`TaskError`]
    /// (Python's `terminate()`).
    pub fn terminate(&self) {
        let live = {
            let mut s = lock(&self.core.state);
            s.closed = true;
            if s.terminated {
                return;
            }
            s.terminated = true;
            // Hold every call before the queue lets go of it.
            let live = s.live.iter().filter_map(Weak::upgrade).collect::<Vec<_>>();
            s.jobs.clear();
            live
        };
        for job in live {
            job.terminate(&TaskError::cancelled());
        }
        self.core.work.notify_all();
    }

    /// Waits for the threads to exit, after [`close`](Pool::close) or
    /// [`terminate`](Pool::terminate) (Python's `join()`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] when neither was called.
    pub fn join(&self) -> Result<()> {
        if !lock(&self.core.state).closed {
            return Err(Error::InvalidState(
                "join() needs close() or terminate() first",
            ));
        }
        for t in lock(&self.threads).drain(..) {
            let _ = t.join();
        }
        Ok(())
    }

    fn submit(&self, job: Arc<dyn ThreadJob>) -> Result<()> {
        let mut s = lock(&self.core.state);
        if s.closed {
            return Err(Error::Shutdown);
        }
        if let Some(e) = s.broken.clone() {
            drop(s);
            job.terminate(&e);
            return Ok(());
        }
        if s.live.len() > 64 && s.live.len().is_power_of_two() {
            s.live.retain(|w| w.strong_count() > 0);
        }
        s.live.push(Arc::downgrade(&job));
        s.jobs.push_back(job);
        drop(s);
        self.core.work.notify_all();
        Ok(())
    }
}

impl<S> Drop for Pool<S> {
    fn drop(&mut self) {
        let live = {
            let mut s = lock(&self.core.state);
            s.closed = true;
            s.terminated = true;
            // Hold every call before the queue lets go of it.
            let live = s.live.iter().filter_map(Weak::upgrade).collect::<Vec<_>>();
            s.jobs.clear();
            live
        };
        for job in live {
            job.terminate(&TaskError::cancelled());
        }
        self.core.work.notify_all();
        // Idle threads end at once; a thread inside a task is left to finish it alone.
        let s = lock(&self.core.state);
        let _ = wait_until(
            &self.core.changed,
            s,
            Instant::now().checked_add(Duration::from_secs(5)),
            |s| s.alive <= s.busy,
        );
        for t in lock(&self.threads).drain(..) {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}
