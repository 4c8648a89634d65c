//! `threading.Thread` and the module functions about threads: [`current_thread`],
//! [`main_thread`], [`get_ident`], [`get_native_id`], [`active_count`], [`enumerate`].
//!
//! A [`Thread`] is created unstarted, then [`Thread::start`]ed, as in Python. Its target's return
//! value comes back from [`Thread::join`]; a panic in the target comes back as
//! [`Error::Task`] with the panic's message ([`TaskError::panic_message`]).
//!
//! Every thread that spindle knows about has a shared identity, seen through [`ThreadInfo`]:
//! threads started by spindle, the main thread, and any other thread ("foreign": started with
//! `std::thread::spawn`, by a runtime, ...) once it has asked for [`current_thread`].

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result, TaskError};
use crate::latch::{lock, Latch};
use crate::panic::{self, PanicReport};

/// The ident of the main thread; every other thread gets a larger one.
const MAIN_IDENT: u64 = 1;
static NEXT_IDENT: AtomicU64 = AtomicU64::new(MAIN_IDENT + 1);
/// The `N` of `Thread-N` and `Dummy-N` default names, shared as in CPython.
static NEXT_NAME: AtomicU64 = AtomicU64::new(1);
static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    threads: BTreeMap::new(),
    main: None,
    fork_main: 0,
});

/// The threads this process knows about; its lock is held across `fork()`.
struct Registry {
    /// Started spindle threads whose target has not returned yet, by ident.
    threads: BTreeMap<u64, Arc<Shared>>,
    /// The main thread's identity, made when first needed. In a forked child it is the thread
    /// that forked, the only one the child has (Python's `_after_fork`).
    main: Option<Arc<Shared>>,
    /// In a forked child whose forking thread had no identity yet: that thread's ident, the
    /// ident of the main thread made when first needed (0: [`MAIN_IDENT`]).
    fork_main: u64,
}

thread_local! {
    /// This thread's ident, 0 until first needed. No destructor, so always accessible.
    static IDENT: Cell<u64> = const { Cell::new(0) };
    /// This thread's `(process id, thread id)` as the OS numbers them, once looked up.
    static OS_IDS: Cell<Option<Option<(u64, u64)>>> = const { Cell::new(None) };
    /// This thread's shared identity, once known.
    static CURRENT: RefCell<Current> = const { RefCell::new(Current(None)) };
}

/// Holds the current thread's identity; marks a foreign thread dead when the thread exits.
struct Current(Option<Arc<Shared>>);

impl Drop for Current {
    fn drop(&mut self) {
        if let Some(shared) = &self.0 {
            if shared.kind == Kind::Foreign {
                shared.finished.set();
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Started by [`Thread::start`].
    Spindle,
    /// The process's main thread.
    Main,
    /// Any other thread that asked for [`current_thread`].
    Foreign,
}

/// The identity of one thread, shared by its [`Thread`], its [`ThreadInfo`]s and the registry.
#[derive(Debug)]
struct Shared {
    name: String,
    daemon: bool,
    kind: Kind,
    /// 0 until the thread is started.
    ident: AtomicU64,
    /// 0 until the started thread has looked it up (or when the OS gives none).
    native_id: AtomicU64,
    started: AtomicBool,
    /// Set by a spindle thread once it runs (the handshake of `start`).
    ready: Latch,
    /// Set once the target has returned or panicked (or a foreign thread exited).
    finished: Latch,
    /// Set when a running thread's handle was dropped without joining it.
    detached: Mutex<bool>,
}

impl Shared {
    fn new(name: String, daemon: bool, kind: Kind) -> Self {
        Shared {
            name,
            daemon,
            kind,
            ident: AtomicU64::new(0),
            native_id: AtomicU64::new(0),
            started: AtomicBool::new(kind != Kind::Spindle),
            ready: Latch::new(),
            finished: Latch::new(),
            detached: Mutex::new(false),
        }
    }

    fn ident(&self) -> Option<u64> {
        nonzero(self.ident.load(Ordering::Acquire))
    }

    fn native_id(&self) -> Option<u64> {
        if self.kind == Kind::Main && cfg!(target_os = "linux") {
            // The main thread's OS id is the process id (read afresh: a forked child's main
            // thread is not its parent's).
            return Some(u64::from(crate::sys::proc::getpid()));
        }
        nonzero(self.native_id.load(Ordering::Acquire))
    }

    fn is_alive(&self) -> bool {
        self.started.load(Ordering::Acquire) && !self.finished.is_set()
    }
}

fn nonzero(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

fn next_name(prefix: &str) -> String {
    format!("{prefix}-{}", NEXT_NAME.fetch_add(1, Ordering::Relaxed))
}

/// `(process id, thread id)` of the calling thread (two system calls; a fork child asks this
/// first thing, so no `/proc` lookup).
#[cfg(target_os = "linux")]
fn lookup_os_ids() -> Option<(u64, u64)> {
    Some((
        u64::from(crate::sys::proc::getpid()),
        u64::from(crate::sys::proc::gettid()),
    ))
}

#[cfg(not(target_os = "linux"))]
fn lookup_os_ids() -> Option<(u64, u64)> {
    None
}

fn os_ids() -> Option<(u64, u64)> {
    OS_IDS.with(|c| match c.get() {
        Some(ids) => ids,
        None => {
            let ids = lookup_os_ids();
            c.set(Some(ids));
            ids
        }
    })
}

fn is_main_thread() -> bool {
    match os_ids() {
        Some((pid, tid)) => pid == tid,
        None => std::thread::current().name() == Some("main"),
    }
}

fn main_shared() -> Arc<Shared> {
    let mut registry = lock(&REGISTRY);
    let ident = match registry.fork_main {
        0 => MAIN_IDENT,
        forked => forked,
    };
    let main = registry.main.get_or_insert_with(|| {
        let shared = Shared::new("MainThread".to_owned(), false, Kind::Main);
        shared.ident.store(ident, Ordering::Release);
        Arc::new(shared)
    });
    Arc::clone(main)
}

/// Whether `ident` is the main thread's (ident 1, or in a forked child the forking thread's).
fn is_main_ident(ident: u64) -> bool {
    ident == MAIN_IDENT || ident == lock(&REGISTRY).fork_main
}

/// The identity of the calling thread, creating it for a foreign thread.
fn current_shared() -> Arc<Shared> {
    let known = CURRENT.try_with(|c| c.borrow().0.clone());
    match known {
        Ok(Some(shared)) => shared,
        Ok(None) => {
            let shared = adopt(true);
            // Cannot fail: the slot was just accessible.
            let _ = CURRENT.try_with(|c| c.borrow_mut().0 = Some(Arc::clone(&shared)));
            shared
        }
        // The thread is tearing down its thread-locals: describe it without caching.
        Err(_) => adopt(false),
    }
}

/// A fresh identity for the calling (main or foreign) thread.
fn adopt(may_ask_std: bool) -> Arc<Shared> {
    let ident = get_ident();
    if is_main_ident(ident) {
        return main_shared();
    }
    let std_name = if may_ask_std {
        std::thread::current().name().map(str::to_owned)
    } else {
        None
    };
    let name = std_name.unwrap_or_else(|| next_name("Dummy"));
    let shared = Shared::new(name, true, Kind::Foreign);
    shared.ident.store(ident, Ordering::Release);
    shared
        .native_id
        .store(get_native_id().unwrap_or(0), Ordering::Release);
    Arc::new(shared)
}

/// The calling thread's identifier: a nonzero integer, unique in the process for its lifetime.
///
/// Python's `threading.get_ident()`. Unlike Python's, idents are never reused: the main thread
/// has ident 1 and every other thread gets the next number the first time it needs one.
///
/// ```
/// use spindle::threading::{current_thread, get_ident};
/// assert_eq!(current_thread().ident(), Some(get_ident()));
/// ```
pub fn get_ident() -> u64 {
    IDENT.with(|c| {
        let known = c.get();
        if known != 0 {
            return known;
        }
        let ident = if is_main_thread() {
            MAIN_IDENT
        } else {
            NEXT_IDENT.fetch_add(1, Ordering::Relaxed)
        };
        c.set(ident);
        ident
    })
}

/// The calling thread's id as the operating system numbers it (the Linux TID), when known.
///
/// Python's `threading.get_native_id()`. `None` where the OS gives no such number.
///
/// ```
/// # #[cfg(target_os = "linux")]
/// assert!(spindle::threading::get_native_id().is_some());
/// ```
pub fn get_native_id() -> Option<u64> {
    os_ids().map(|(_, tid)| tid)
}

/// The calling thread's identity: Python's `threading.current_thread()`.
///
/// Works on every thread. On a thread started by spindle it has the [`Thread`]'s name; on the
/// main thread it is [`main_thread`] (named `MainThread`); on any other thread it is a daemon
/// identity named after the `std` thread name, or `Dummy-N` when the thread has none (Python's
/// `_DummyThread`).
///
/// ```
/// use spindle::threading::{current_thread, Thread};
/// let mut t = Thread::builder().name("worker").target(|| current_thread().name().to_owned())?;
/// t.start()?;
/// assert_eq!(t.join()?, "worker");
/// # Ok::<(), spindle::Error>(())
/// ```
pub fn current_thread() -> ThreadInfo {
    ThreadInfo {
        shared: current_shared(),
    }
}

/// The main thread's identity: Python's `threading.main_thread()`.
///
/// ```
/// let main = spindle::threading::main_thread();
/// assert_eq!(main.name(), "MainThread");
/// assert_eq!(main.ident(), Some(1));
/// ```
pub fn main_thread() -> ThreadInfo {
    ThreadInfo {
        shared: main_shared(),
    }
}

/// How many threads are alive that spindle counts: Python's `threading.active_count()`.
///
/// Precisely: the main thread, plus every [`Thread`] (and [`Timer`](super::Timer)) that has
/// been started and whose target has not yet returned. It equals `enumerate().len()`. Unlike
/// Python, threads that spindle did not start are not counted, even when they have called
/// [`current_thread`] (Python counts those "dummy" threads).
///
/// ```
/// use spindle::threading::{active_count, Event, Thread};
/// use std::sync::Arc;
/// let gate = Arc::new(Event::new());
/// let g = Arc::clone(&gate);
/// let mut t = Thread::new(move || g.wait());
/// t.start()?;
/// assert!(active_count() >= 2); // the main thread and `t`, at least
/// gate.set();
/// t.join()?;
/// # Ok::<(), spindle::Error>(())
/// ```
pub fn active_count() -> usize {
    1 + lock(&REGISTRY).threads.len()
}

/// The threads [`active_count`] counts: the main thread first, then started spindle threads
/// whose target has not returned, in order of ident. Python's `threading.enumerate()`.
///
/// ```
/// let all = spindle::threading::enumerate();
/// assert_eq!(all[0], spindle::threading::main_thread());
/// ```
pub fn enumerate() -> Vec<ThreadInfo> {
    let mut all = vec![main_thread()];
    all.extend(lock(&REGISTRY).threads.values().map(|s| ThreadInfo {
        shared: Arc::clone(s),
    }));
    all
}

/// A shared view of one thread's identity and liveness.
///
/// Returned by [`current_thread`], [`main_thread`], [`enumerate`] and [`Thread::info`]. Cheap to
/// clone; two infos are equal when they describe the same thread.
#[derive(Clone)]
pub struct ThreadInfo {
    shared: Arc<Shared>,
}

impl ThreadInfo {
    /// The thread's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The thread's [`get_ident`] value; `None` for a spindle thread not started yet.
    pub fn ident(&self) -> Option<u64> {
        self.shared.ident()
    }

    /// The thread's OS id ([`get_native_id`]); `None` before start or where the OS gives none.
    pub fn native_id(&self) -> Option<u64> {
        self.shared.native_id()
    }

    /// Whether the thread is a daemon thread (see [`ThreadBuilder::daemon`]).
    pub fn is_daemon(&self) -> bool {
        self.shared.daemon
    }

    /// Whether the thread is alive: started and not yet finished.
    ///
    /// The main thread is always alive; a foreign thread until its thread-locals are torn down.
    pub fn is_alive(&self) -> bool {
        self.shared.is_alive()
    }
}

impl PartialEq for ThreadInfo {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Eq for ThreadInfo {}

impl fmt::Debug for ThreadInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadInfo")
            .field("name", &self.shared.name)
            .field("ident", &self.ident())
            .field("native_id", &self.native_id())
            .field("daemon", &self.shared.daemon)
            .field("alive", &self.is_alive())
            .finish()
    }
}

/// A thread of control: Python's `threading.Thread`.
///
/// Created unstarted with a target closure ([`Thread::new`], or [`Thread::builder`] for a
/// name, the daemon flag or the stack size), then started once with [`Thread::start`]. Python's
/// `args=` are the closure's captures. [`Thread::join`] returns the target's value.
///
/// ```
/// use spindle::threading::Thread;
///
/// fn worker(name: &str) -> String {
///     format!("thread {name} finished")
/// }
///
/// let mut t1 = Thread::new(|| worker("A"));
/// let mut t2 = Thread::new(|| worker("B"));
/// t1.start()?;
/// t2.start()?;
/// assert_eq!(t1.join()?, "thread A finished");
/// assert_eq!(t2.join()?, "thread B finished");
/// # Ok::<(), spindle::Error>(())
/// ```
///
/// # Panics
///
/// A panic in the target does not unwind into the caller: it ends the thread, and
/// [`Thread::join`] returns it as [`Error::Task`] (with [`TaskError::panic_message`]). A
/// thread's panic that nobody ever joins is printed to stderr when its handle is dropped (or,
/// for a detached daemon thread, when it happens), like Python's `threading.excepthook`.
///
/// # Dropping a handle
///
/// Python waits for every non-daemon thread before the interpreter exits; Rust ends the
/// process, and every thread, when `main` returns. So spindle waits at the handle: dropping
/// the `Thread` of a running **non-daemon** thread joins it (the work is never cut short
/// silently), while dropping a **daemon** thread's handle detaches it. Keep the handles (in a
/// `Vec`, say) when threads should run side by side.
#[must_use = "a Thread does nothing until it is started"]
pub struct Thread<R = ()> {
    shared: Arc<Shared>,
    stack_size: Option<usize>,
    state: State<R>,
}

enum State<R> {
    /// Not started. The mutex only makes the handle `Sync`; it is reached through `&mut self`.
    Ready(Mutex<Box<dyn FnOnce() -> R + Send>>),
    Running(JoinHandle<std::result::Result<R, PanicReport>>),
    Joined,
    FailedToStart,
}

impl Thread<()> {
    /// A builder for a thread with a name, a daemon flag or a stack size.
    ///
    /// ```
    /// use spindle::threading::Thread;
    /// let mut t = Thread::builder().name("A").daemon(false).target(|| 6 * 7)?;
    /// assert_eq!(t.name(), "A");
    /// t.start()?;
    /// assert_eq!(t.join()?, 42);
    /// # Ok::<(), spindle::Error>(())
    /// ```
    pub fn builder() -> ThreadBuilder {
        ThreadBuilder::new()
    }
}

impl<R: Send + 'static> Thread<R> {
    /// An unstarted thread that will run `target`: Python's `Thread(target=...)`.
    ///
    /// It is named `Thread-N`; it is a daemon when the calling thread is a spindle daemon
    /// thread (as Python inherits the flag), and not otherwise.
    pub fn new<F>(target: F) -> Thread<R>
    where
        F: FnOnce() -> R + Send + 'static,
    {
        Thread::from_parts(None, None, None, Box::new(target))
    }

    fn from_parts(
        name: Option<String>,
        daemon: Option<bool>,
        stack_size: Option<usize>,
        target: Box<dyn FnOnce() -> R + Send>,
    ) -> Thread<R> {
        let name = name.unwrap_or_else(|| next_name("Thread"));
        let daemon = daemon.unwrap_or_else(inherited_daemon);
        Thread {
            shared: Arc::new(Shared::new(name, daemon, Kind::Spindle)),
            stack_size,
            state: State::Ready(Mutex::new(target)),
        }
    }

    /// Starts the thread: Python's `start()`.
    ///
    /// Returns once the new thread runs, so [`Thread::ident`] and [`Thread::native_id`] are
    /// known and [`Thread::is_alive`] is true.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] when the thread was started before; [`Error::Io`] when the OS
    /// refuses a new thread (the thread then cannot be started again).
    pub fn start(&mut self) -> Result<()> {
        let target = match mem::replace(&mut self.state, State::FailedToStart) {
            State::Ready(target) => target.into_inner().unwrap_or_else(PoisonError::into_inner),
            other => {
                self.state = other;
                return Err(Error::InvalidState("threads can only be started once"));
            }
        };
        let ident = NEXT_IDENT.fetch_add(1, Ordering::Relaxed);
        self.shared.ident.store(ident, Ordering::Release);
        self.shared.started.store(true, Ordering::Release);
        lock(&REGISTRY)
            .threads
            .insert(ident, Arc::clone(&self.shared));

        let mut builder = std::thread::Builder::new().name(self.shared.name.clone());
        if let Some(bytes) = self.stack_size {
            builder = builder.stack_size(bytes);
        }
        let shared = Arc::clone(&self.shared);
        match builder.spawn(move || run(shared, ident, target)) {
            Ok(handle) => {
                self.shared.ready.wait();
                self.state = State::Running(handle);
                Ok(())
            }
            Err(e) => {
                lock(&REGISTRY).threads.remove(&ident);
                self.shared.finished.set();
                Err(Error::Io(e))
            }
        }
    }

    /// Waits for the thread to finish and returns its target's value: Python's `join()`.
    ///
    /// # Errors
    ///
    /// [`Error::Task`] when the target panicked (the report carries the message and location);
    /// [`Error::InvalidState`] when the thread was not started, was already joined, or is the
    /// calling thread.
    pub fn join(&mut self) -> Result<R> {
        let handle = self.take_handle()?;
        outcome(handle.join())
    }

    /// Waits at most `timeout` for the thread to finish: Python's `join(timeout)`.
    ///
    /// On time-out the thread keeps running and stays joinable: call `join` or `join_timeout`
    /// again later to get its value.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the thread is still running after `timeout`; otherwise as
    /// [`Thread::join`].
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<R> {
        self.check_joinable()?;
        if !self.shared.finished.wait_timeout(timeout) {
            return Err(Error::Timeout);
        }
        self.join()
    }

    fn check_joinable(&self) -> Result<()> {
        match self.state {
            State::Running(_) if self.shared.ident() == Some(get_ident()) => {
                Err(Error::InvalidState("cannot join current thread"))
            }
            State::Running(_) => Ok(()),
            State::Ready(_) => Err(Error::InvalidState(
                "cannot join thread before it is started",
            )),
            State::Joined => Err(Error::InvalidState("thread already joined")),
            State::FailedToStart => Err(Error::InvalidState("thread failed to start")),
        }
    }

    fn take_handle(&mut self) -> Result<JoinHandle<std::result::Result<R, PanicReport>>> {
        self.check_joinable()?;
        match mem::replace(&mut self.state, State::Joined) {
            State::Running(handle) => Ok(handle),
            other => {
                self.state = other;
                Err(Error::InvalidState("thread is not running"))
            }
        }
    }
}

impl<R> Thread<R> {
    /// The thread's name (`Thread-N` unless the builder set one).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The thread's [`get_ident`] value, `None` before [`Thread::start`].
    pub fn ident(&self) -> Option<u64> {
        self.shared.ident()
    }

    /// The thread's OS id ([`get_native_id`]), `None` before [`Thread::start`].
    pub fn native_id(&self) -> Option<u64> {
        self.shared.native_id()
    }

    /// Whether this is a daemon thread (see [`ThreadBuilder::daemon`]).
    pub fn is_daemon(&self) -> bool {
        self.shared.daemon
    }

    /// Whether the thread has started and its target has not yet returned.
    pub fn is_alive(&self) -> bool {
        self.shared.is_alive()
    }

    /// A shared view of this thread, usable from other threads.
    pub fn info(&self) -> ThreadInfo {
        ThreadInfo {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The thread registry's lock, held by a forking thread across `fork()` so that the child
/// never finds it held by a thread that does not exist in it (see
/// `multiprocessing::start::fork`).
pub(crate) struct RegistryForkGuard(MutexGuard<'static, Registry>);

/// Takes the registry's lock for a fork.
pub(crate) fn lock_registry_for_fork() -> RegistryForkGuard {
    RegistryForkGuard(lock(&REGISTRY))
}

impl RegistryForkGuard {
    /// In the new child, where only the forking thread exists: forgets every other thread,
    /// and makes the forking thread the main thread, as Python's `_after_fork` does. The
    /// others' shared state is leaked rather than dropped, since a thread of the parent may
    /// have been using it at the moment of the fork. Nothing is allocated here: a main
    /// identity the child lacks is made when first asked for.
    pub(crate) fn in_child(mut self) {
        // This thread's cached OS ids are the parent's. (Written only when set: every page
        // the child writes is a copy-on-write fault, docs/decisions.md D104.)
        let _ = OS_IDS.try_with(|c| {
            if c.get().is_some() {
                c.set(None);
            }
        });
        let me = get_ident();
        let mut own = None;
        for (ident, shared) in std::mem::take(&mut self.0.threads) {
            if ident == me {
                own = Some(shared);
            } else {
                std::mem::forget(shared);
            }
        }
        if me == MAIN_IDENT {
            // The main thread forked: it stays the main thread (its OS id is read afresh).
            return;
        }
        if self.0.main.is_some() {
            std::mem::forget(self.0.main.take());
        }
        let known = CURRENT.try_with(|c| c.borrow().0.clone()).ok().flatten();
        match known.or(own) {
            Some(shared) => {
                if let Some((_, tid)) = os_ids() {
                    shared.native_id.store(tid, Ordering::Release);
                }
                self.0.main = Some(shared);
            }
            None if self.0.fork_main != me => self.0.fork_main = me,
            None => {}
        }
    }
}

/// The default daemon flag: the calling spindle thread's, `false` elsewhere.
fn inherited_daemon() -> bool {
    CURRENT
        .try_with(|c| {
            c.borrow()
                .0
                .as_ref()
                .is_some_and(|s| s.kind == Kind::Spindle && s.daemon)
        })
        .unwrap_or(false)
}

/// The body of every spindle thread.
fn run<R>(
    shared: Arc<Shared>,
    ident: u64,
    target: Box<dyn FnOnce() -> R + Send>,
) -> std::result::Result<R, PanicReport> {
    IDENT.with(|c| c.set(ident));
    shared
        .native_id
        .store(get_native_id().unwrap_or(0), Ordering::Release);
    let _ = CURRENT.try_with(|c| c.borrow_mut().0 = Some(Arc::clone(&shared)));
    shared.ready.set();

    let out = panic::catch(target);

    lock(&REGISTRY).threads.remove(&ident);
    let detached = lock(&shared.detached);
    if *detached {
        if let Err(report) = &out {
            report_unobserved(&shared.name, report);
        }
    }
    shared.finished.set();
    drop(detached);
    out
}

fn outcome<R>(joined: std::thread::Result<std::result::Result<R, PanicReport>>) -> Result<R> {
    match joined {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(report)) => Err(Error::Task(TaskError::panicked(report))),
        // Only reachable if spindle's own bookkeeping panicked around the target.
        Err(payload) => Err(Error::Task(TaskError::panicked(PanicReport::new(
            panic::payload_message(&*payload),
            None,
            None,
        )))),
    }
}

fn report_unobserved(name: &str, report: &PanicReport) {
    eprintln!("spindle: thread '{name}' panicked and was never joined: {report}");
}

impl<R> Drop for Thread<R> {
    fn drop(&mut self) {
        let State::Running(handle) = mem::replace(&mut self.state, State::Joined) else {
            return;
        };
        let own = self.shared.ident() == Some(get_ident());
        if self.shared.daemon || own {
            let mut detached = lock(&self.shared.detached);
            if !self.shared.finished.is_set() {
                // The thread reports its own panic, if any, when it ends.
                *detached = true;
                return;
            }
        }
        if let Ok(Err(report)) = handle.join() {
            report_unobserved(&self.shared.name, &report);
        }
    }
}

impl<R> fmt::Debug for Thread<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Ready(_) => "initial",
            State::Running(_) if self.is_alive() => "started",
            State::Running(_) => "stopped",
            State::Joined => "joined",
            State::FailedToStart => "failed to start",
        };
        f.debug_struct("Thread")
            .field("name", &self.shared.name)
            .field("state", &state)
            .field("ident", &self.ident())
            .field("daemon", &self.shared.daemon)
            .finish()
    }
}

/// Builds a [`Thread`] with Python's keyword arguments: `name=`, `daemon=`, and a stack size
/// (Python's `threading.stack_size()`, per thread here). Ends in [`ThreadBuilder::target`].
///
/// ```
/// use spindle::threading::Thread;
/// let mut t = Thread::builder().name("bg").daemon(true).stack_size(256 * 1024).target(|| 1)?;
/// assert!(t.is_daemon());
/// t.start()?;
/// assert_eq!(t.join()?, 1);
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ThreadBuilder {
    name: Option<String>,
    daemon: Option<bool>,
    stack_size: Option<usize>,
}

impl ThreadBuilder {
    /// A builder with Python's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The thread's name (default `Thread-N`). It also names the OS thread, so panics and
    /// debuggers show it (the OS may shorten it).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Whether the thread is a daemon thread (default: the creating spindle thread's flag,
    /// `false` on other threads).
    ///
    /// Dropping the handle of a running daemon thread detaches it; dropping a non-daemon
    /// thread's handle joins it (see [`Thread`]).
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = Some(daemon);
        self
    }

    /// The new thread's stack size in bytes (the OS may round it up).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// The unstarted thread that will run `target`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the name contains a NUL byte or the stack size is 0.
    pub fn target<F, R>(self, target: F) -> Result<Thread<R>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        if let Some(name) = &self.name {
            if name.contains('\0') {
                return Err(Error::InvalidArgument(format!(
                    "thread name {name:?} contains a NUL byte"
                )));
            }
        }
        if self.stack_size == Some(0) {
            return Err(Error::InvalidArgument(
                "stack size must be positive".to_owned(),
            ));
        }
        Ok(Thread::from_parts(
            self.name,
            self.daemon,
            self.stack_size,
            Box::new(target),
        ))
    }
}
