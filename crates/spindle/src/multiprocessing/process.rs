//! [`Process`]: a function running in another process, with Python's lifecycle
//! (`start`, `join`, `is_alive`, `exitcode`, `terminate`, `kill`, `close`) and, as
//! `std::thread::JoinHandle`, its return value back from `join`.

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::context::{get_start_method, StartMethod};
use super::reduction::{self, ChildFailure, FrameBuffer, Kind};
use super::start::{self, ChildRef, Job, Launch, Started};
use super::target::{self, Target};
use super::{handles, identity};
use crate::error::{Error, Result, TaskError};
use crate::latch::lock;
use crate::panic::PanicReport;
use crate::sys::{self, fd::Tracked};

// `Process::join_async`, for coroutines (feature `tokio`).
#[cfg(feature = "tokio")]
mod join_async;

type Sock = Arc<Tracked<std::os::unix::net::UnixStream>>;

/// How long `join` watches only for the child's exit before it also reads the child's value
/// while the child runs (see `join_until`).
const QUIET: Duration = Duration::from_millis(1);

/// Settings of a process before it has a target: name, daemon flag, start method.
///
/// ```
/// use spindle::multiprocessing::{Builder, StartMethod};
/// fn greet(name: String) -> String { format!("hello {name}") }
/// let p = Builder::new()
///     .name("greeter")
///     .start_method(StartMethod::Spawn)
///     .target(greet, ("bob".to_string(),));
/// assert_eq!(p.name(), "greeter");
/// p.start().unwrap();
/// assert_eq!(p.join().unwrap(), "hello bob");
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `target` is called"]
pub struct Builder {
    name: Option<String>,
    daemon: bool,
    method: Option<StartMethod>,
}

impl Builder {
    /// A builder with the defaults: name `Process-N`, not a daemon, the default start method
    /// ([`get_start_method`] at the time of `start`).
    pub fn new() -> Self {
        Self::default()
    }

    /// The process's name (Python's `name=`), seen by the child in
    /// [`current_process`](super::current_process).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The daemon flag (Python's `daemon=`). A daemon process is killed when its `Process`
    /// is dropped; a non-daemon one is waited for (Python joins non-daemonic children at
    /// exit).
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// The start method of this process, instead of the default.
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// The process that will call `f` with `args` (a tuple, as Python's `args=(...)`).
    ///
    /// `f` is a `fn` item or a closure that captures nothing; the arguments and the return
    /// value travel through serde. It runs under every start method.
    ///
    /// A capturing closure does not compile here (a spawned child could not rebuild what it
    /// captured); use [`Builder::fork_target`]. The check is a constant evaluated when the
    /// program is built: `cargo check` does not evaluate it and accepts such a closure, and
    /// `cargo build` (or `test`, `run`) refuses it. No stable trait bound can say
    /// "zero-sized" for `check` to see.
    ///
    /// ```compile_fail
    /// use spindle::multiprocessing::Builder;
    /// let offset = 5_u32;
    /// let p = Builder::new().target(move |x: u32| x + offset, (1,));
    /// ```
    pub fn target<F, Args>(self, f: F, args: Args) -> Process<F::Output>
    where
        F: Target<Args>,
        Args: Serialize + DeserializeOwned,
        F::Output: Serialize + DeserializeOwned,
    {
        const {
            assert!(
                std::mem::size_of::<F>() == 0,
                "a Process target must capture nothing: use a fn item, or Builder::fork_target"
            )
        };
        let _ = f;
        // Descriptors of IPC handles in `args` are collected into the job (see `handles`).
        let (encoded, fds) = handles::encode_scope(|| reduction::encode(&args));
        let job = encoded.map(|args| Job::Entry {
            entry: target::trampoline::<F, Args>,
            args,
            fds,
        });
        Process::from_job(self, job, false)
    }

    /// The process that will run the closure `f`, which may capture anything: it runs in a
    /// `fork()` of this process, so it sees this process's memory. Its return value comes
    /// back through serde.
    ///
    /// Only [`StartMethod::Fork`] can run it: the process forks whatever the default start
    /// method is, and `start` fails with [`Error::InvalidArgument`] when this builder was set
    /// to another method.
    ///
    /// ```
    /// use spindle::multiprocessing::Builder;
    /// let words = vec!["a", "bb", "ccc"];
    /// let p = Builder::new().fork_target(move || words.iter().map(|w| w.len()).sum::<usize>());
    /// p.start().unwrap();
    /// assert_eq!(p.join().unwrap(), 6);
    /// ```
    pub fn fork_target<F, R>(self, f: F) -> Process<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Serialize + DeserializeOwned,
    {
        let job = Job::Closure(Box::new(move |out: &mut Vec<u8>| {
            target::run_and_encode(f, out)
        }));
        Process::from_job(self, Ok(job), true)
    }
}

/// A function running in a child process: Python's `multiprocessing.Process`, with the
/// function's return value back from [`join`](Process::join).
///
/// Every method takes `&self`, so one thread may `join` while another calls `terminate`.
///
/// ```
/// use spindle::multiprocessing::Process;
/// fn square(n: u64) -> u64 { n * n }
/// let p = Process::new(square, (12,));
/// p.start().unwrap();
/// assert_eq!(p.join().unwrap(), 144);
/// assert_eq!(p.exitcode(), Some(0));
/// ```
///
/// # Panics
///
/// A panic in the child ends the child with exit code 1; `join` returns
/// [`Error::Task`] whose [`TaskError::panic_message`] is the message (and
/// [`TaskError::pid`] the child's pid). The parent never panics because of a child.
///
/// # Dropping
///
/// Dropping a started process that was not joined kills it if it is a daemon (or if the
/// dropping thread is panicking), then waits for it; a non-daemon process is waited for, as
/// Python joins non-daemonic children at exit. Either way no zombie is left. If the parent
/// process dies, every child dies with it (`PR_SET_PDEATHSIG`).
pub struct Process<R> {
    name: String,
    ident: Vec<u32>,
    daemon: bool,
    method: Option<StartMethod>,
    fork_only: bool,
    job: Mutex<Option<Result<Job>>>,
    child: OnceLock<Arc<ChildRef>>,
    waiter: Mutex<Waiter>,
    exit: OnceLock<i32>,
    /// Set by `close`; read without the waiter's lock, which a `join` holds while it waits.
    closed: AtomicBool,
    _result: PhantomData<fn() -> R>,
}

#[derive(Debug, Default)]
struct Waiter {
    started: Option<Sock>,
    registry: Option<u64>,
    frames: FrameBuffer,
    /// The frame that arrived, or why none will.
    outcome: Option<Result<(Kind, Vec<u8>)>>,
    sock_done: bool,
    taken: bool,
    closed: bool,
}

impl<R> fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.name)
            .field("daemon", &self.daemon)
            .field("pid", &self.child.get().map(|c| c.pid))
            .field("exitcode", &self.exit.get())
            .finish()
    }
}

impl Process<()> {
    /// A [`Builder`] for the name, the daemon flag and the start method (the same as
    /// [`Builder::new`]; the process's value type comes from the target).
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl<R: Serialize + DeserializeOwned> Process<R> {
    /// The process that will call `f` with `args`, with the default settings (see
    /// [`Builder::target`]).
    pub fn new<F, Args>(f: F, args: Args) -> Process<R>
    where
        F: Target<Args, Output = R>,
        Args: Serialize + DeserializeOwned,
    {
        Builder::new().target(f, args)
    }

    fn from_job(b: Builder, job: Result<Job>, fork_only: bool) -> Process<R> {
        let (ident, default_name) = identity::next_identity();
        Process {
            name: b.name.unwrap_or(default_name),
            ident,
            daemon: b.daemon,
            method: b.method,
            fork_only,
            job: Mutex::new(Some(job)),
            child: OnceLock::new(),
            waiter: Mutex::new(Waiter::default()),
            exit: OnceLock::new(),
            closed: AtomicBool::new(false),
            _result: PhantomData,
        }
    }

    /// A process around a child started by hand (protocol tests).
    #[cfg(test)]
    pub(crate) fn adopt(started: Started) -> Process<R> {
        let p = Process::from_job(Builder::new(), Err(Error::InvalidState("adopted")), false);
        started.sock.set_nonblocking(true).expect("nonblocking");
        let mut w = lock(&p.waiter);
        w.started = Some(Arc::new(started.sock));
        drop(w);
        let _ = p.child.set(Arc::new(started.child));
        p
    }

    /// The process's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The daemon flag.
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }

    /// The start method this process uses (or will use: the default, if none was chosen).
    pub fn start_method(&self) -> StartMethod {
        match (self.fork_only, self.method) {
            (_, Some(m)) => m,
            (true, None) => StartMethod::Fork,
            (false, None) => get_start_method(),
        }
    }

    /// Starts the child (Python's `start()`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] if it was started before or closed; [`Error::InvalidArgument`]
    /// for a [`fork_target`](Builder::fork_target) with another start method, or arguments
    /// carrying more than 64 descriptors; [`Error::Codec`] if the arguments do not encode
    /// (with the message of the type's own `Serialize` error) or exceed the 1 GiB frame
    /// limit; [`Error::Unsupported`] for spawn and forkserver in a setuid program, or inside a
    /// shared object loaded by another program without
    /// [`set_executable`](super::set_executable); [`Error::Io`] if the system refuses. A
    /// failed start leaves no process behind.
    pub fn start(&self) -> Result<()> {
        let job = lock(&self.job)
            .take()
            .ok_or(Error::InvalidState("a process can be started only once"))??;
        let method = self.start_method();
        if self.fork_only && method != StartMethod::Fork {
            return Err(Error::InvalidArgument(format!(
                "a capturing closure can only run under StartMethod::Fork, not {method}"
            )));
        }
        if let Job::Entry { fds, .. } = &job {
            // The same arguments must start under every method: the bound of spawn and
            // forkserver (`SCM_RIGHTS`) holds for fork too.
            if fds.len() > handles::MAX_FDS {
                return Err(Error::InvalidArgument(format!(
                    "the arguments carry {} descriptors; at most {} can travel with a call",
                    fds.len(),
                    handles::MAX_FDS
                )));
            }
        }
        let launch = Launch {
            name: self.name.clone(),
            ident: self.ident.clone(),
            daemon: self.daemon,
            job,
        };
        let Started { child, sock } = start::start(method, launch)?;
        let child = Arc::new(child);
        let sock = Arc::new(sock);
        let mut w = lock(&self.waiter);
        w.registry = Some(identity::register(
            &self.name,
            self.daemon,
            Arc::clone(&child),
            Arc::clone(&sock),
        ));
        w.started = Some(sock);
        let _ = self.child.set(child);
        Ok(())
    }

    /// The child's pid once started (Python's `pid` / `ident`).
    pub fn pid(&self) -> Option<u32> {
        self.child.get().map(|c| c.pid)
    }

    /// Python's `sentinel`: a descriptor that becomes readable when the child has exited
    /// (its pidfd), to wait on together with others
    /// ([`connection::wait`](super::connection::wait)). `None` before `start`.
    pub fn sentinel(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.child.get().map(|c| c.exit_fd())
    }

    /// Python's `exitcode`: `None` while the child runs (or before it starts); then its exit
    /// code — 0 after a normal return, 1 after a panic — or minus the number of the signal
    /// that killed it (`-9` for `SIGKILL`).
    pub fn exitcode(&self) -> Option<i32> {
        if let Some(code) = self.exit.get() {
            return Some(*code);
        }
        if let Ok(mut w) = self.waiter.try_lock() {
            let _ = self.poll_exit(&mut w);
        }
        self.exit.get().copied()
    }

    /// Whether the child has been started and has not exited yet.
    pub fn is_alive(&self) -> bool {
        match self.child.get() {
            Some(c) => self.exit.get().is_none() && c.is_running(),
            None => false,
        }
    }

    /// Waits for the child to end and returns its function's value (Python's `join()`, plus
    /// the value).
    ///
    /// The value is read while the child runs, so a result larger than a pipe's buffer never
    /// deadlocks (the trap CPython documents for queues).
    ///
    /// # Errors
    ///
    /// [`Error::Task`] when the child panicked ([`TaskError::is_panic`], with message and pid)
    /// or died without a value ([`TaskError::is_worker_died`], with its exit code — minus
    /// the signal when killed); [`Error::Codec`] / [`Error::Protocol`] when what came back
    /// does not decode or the child refused its call; [`Error::InvalidState`] before `start`,
    /// after `close`, or when an earlier `join` already took the value.
    pub fn join(&self) -> Result<R> {
        self.join_until(None)
    }

    /// [`join`](Process::join) for at most `timeout`: [`Error::Timeout`] if the child is
    /// still running then. Nothing is lost: a later `join` gets the value.
    pub fn join_timeout(&self, timeout: Duration) -> Result<R> {
        self.join_until(Some(Instant::now() + timeout))
    }

    /// Sends `SIGTERM` (Python's `terminate()`). Nothing happens if the child has exited.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] before `start` and after [`close`](Process::close) (Python's
    /// `ValueError`).
    pub fn terminate(&self) -> Result<()> {
        self.signal(sys::proc::Signal::Term)
    }

    /// Sends `SIGKILL` (Python's `kill()`). Nothing happens if the child has exited.
    ///
    /// # Errors
    ///
    /// As [`terminate`](Process::terminate).
    pub fn kill(&self) -> Result<()> {
        self.signal(sys::proc::Signal::Kill)
    }

    fn signal(&self, sig: sys::proc::Signal) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::InvalidState("the process has been closed"));
        }
        let child = self
            .child
            .get()
            .ok_or(Error::InvalidState("the process has not been started"))?;
        if self.exit.get().is_some() {
            return Ok(());
        }
        child.signal(sig)
    }

    /// Releases the process's resources (Python's `close()`); later calls fail with
    /// [`Error::InvalidState`]. A value not joined yet is discarded.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] while the child is still running.
    pub fn close(&self) -> Result<()> {
        let mut w = lock(&self.waiter);
        if self.child.get().is_some() && self.exit.get().is_none() {
            let _ = self.poll_exit(&mut w);
            if self.exit.get().is_none() {
                return Err(Error::InvalidState(
                    "cannot close a process while it is still running",
                ));
            }
        }
        self.release(&mut w);
        w.closed = true;
        self.closed.store(true, Ordering::Release);
        lock(&self.job).take();
        Ok(())
    }

    fn release(&self, w: &mut Waiter) {
        w.started = None;
        w.frames = FrameBuffer::default();
        if let Some(id) = w.registry.take() {
            identity::unregister(id);
        }
    }

    /// Reaps the child if it has exited (non-blocking).
    fn poll_exit(&self, _w: &mut Waiter) -> Result<bool> {
        if self.exit.get().is_some() {
            return Ok(true);
        }
        let Some(child) = self.child.get() else {
            return Ok(false);
        };
        match child.try_wait()? {
            Some(raw) => {
                let _ = self.exit.set(sys::proc::exitcode(raw));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Reads whatever the child has sent so far (non-blocking).
    fn read_outcome(w: &mut Waiter) {
        if w.outcome.is_some() || w.sock_done {
            return;
        }
        let Some(sock) = w.started.clone() else {
            return;
        };
        loop {
            match w.frames.fill(&mut &**sock.as_ref()) {
                Ok(true) => {}
                Ok(false) => {
                    w.sock_done = true;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // A child that died with our call still unread resets the connection: that is
                // the end of its stream, and its exit status tells the rest.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    w.sock_done = true;
                    break;
                }
                Err(e) => {
                    w.outcome = Some(Err(Error::Io(e)));
                    return;
                }
            }
            match w.frames.take() {
                Ok(Some(frame)) => {
                    w.outcome = Some(Ok(frame));
                    return;
                }
                Ok(None) => {}
                Err(e) => {
                    w.outcome = Some(Err(e));
                    return;
                }
            }
        }
        if let Err(e) = w.frames.wanted() {
            w.outcome = Some(Err(e));
        }
    }

    fn join_until(&self, deadline: Option<Instant>) -> Result<R> {
        let mut w = lock(&self.waiter);
        if w.closed {
            return Err(Error::InvalidState("the process has been closed"));
        }
        if w.taken {
            return Err(Error::InvalidState("the process was already joined"));
        }
        let child = Arc::clone(self.child.get().ok_or(Error::InvalidState(
            "cannot join a process that was not started",
        ))?);
        // For a short while the socket is not watched, only the exit: a child whose value fits
        // in the socket's buffer writes it and exits without waiting for us, and the value is
        // read after the exit, with one wake-up instead of two. A child with more to say blocks
        // until we read; from the end of this window on (or at once, if the socket already
        // holds something when we look) we read while it runs, so a large value never
        // deadlocks: it waits at most this long.
        let quiet_until = Instant::now() + QUIET;
        let mut quiet = true;
        loop {
            Self::read_outcome(&mut w);
            let exited = self.poll_exit(&mut w)?;
            if exited {
                // Everything the child wrote before it ended is in the socket now.
                Self::read_outcome(&mut w);
                let outcome = w.outcome.take();
                w.taken = true;
                self.release(&mut w);
                return self.finish(&child, outcome);
            }
            let sock = w
                .started
                .clone()
                .ok_or(Error::InvalidState("the process has been closed"))?;
            let now = Instant::now();
            quiet = quiet && now < quiet_until && w.frames.is_empty();
            let watch_sock = !quiet && w.outcome.is_none() && !w.sock_done;
            // The exit, seen on the pidfd.
            let fds = [child.exit_fd(), sock.as_fd()];
            let fds = if watch_sock { &fds[..] } else { &fds[..1] };
            let mut timeout = match deadline {
                None => None,
                Some(d) => {
                    if now >= d {
                        return Err(Error::Timeout);
                    }
                    Some(d - now)
                }
            };
            if quiet {
                timeout = Some(timeout.map_or(quiet_until - now, |t| t.min(quiet_until - now)));
            }
            let ready = sys::fd::poll_readable(fds, timeout)?;
            if !ready.iter().any(|r| *r) && deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::Timeout);
            }
        }
    }

    fn finish(&self, child: &ChildRef, outcome: Option<Result<(Kind, Vec<u8>)>>) -> Result<R> {
        let pid = child.pid;
        match outcome {
            Some(Ok((Kind::Value, payload))) => reduction::decode::<R>(&payload),
            Some(Ok((Kind::Panic, payload))) => {
                let report: PanicReport = reduction::decode(&payload)?;
                Err(Error::Task(TaskError::panicked(report.with_pid(pid))))
            }
            Some(Ok((Kind::Failure, payload))) => {
                match reduction::decode::<ChildFailure>(&payload)? {
                    // A fatal signal after a report (a stack overflow): the task's failure.
                    ChildFailure::Fatal(what) => Err(Error::Task(TaskError::failed(format!(
                        "{what} in child process {pid} (exit code {})",
                        self.exit.get().map_or("unknown".into(), |c| c.to_string())
                    )))),
                    other => Err(other.into()),
                }
            }
            Some(Ok((kind, _))) => Err(Error::Protocol(format!(
                "the child sent an unexpected {kind:?} message"
            ))),
            Some(Err(e)) => Err(e),
            None => Err(Error::Task(TaskError::worker_died(
                Some(pid),
                self.exit.get().copied(),
            ))),
        }
    }
}

impl<R> Drop for Process<R> {
    fn drop(&mut self) {
        let Some(child) = self.child.get() else {
            return;
        };
        let w = self
            .waiter
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.closed || w.taken {
            return;
        }
        if self.daemon || std::thread::panicking() {
            let _ = child.signal(sys::proc::Signal::Kill);
        }
        // Wait for the exit (reaping our own child), discarding any value.
        if let Some(sock) = w.started.as_ref() {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) => {
                        // Drain the socket so that a child blocked writing a large value ends.
                        discard_available(sock);
                        let fds = [child.exit_fd(), sock.as_fd()];
                        let _ = sys::fd::poll_readable(&fds, Some(Duration::from_millis(100)));
                    }
                }
            }
        }
        if let Some(id) = w.registry.take() {
            identity::unregister(id);
        }
    }
}

/// Reads and discards whatever a non-blocking socket holds now.
///
/// Its own function, and its buffer on the heap: a 64 KiB array in `Drop::drop`'s frame would
/// be probed page by page on *every* drop (stack probes), which after a fork means sixteen
/// copy-on-write faults per `Process`, whether or not anything is drained.
#[cold]
#[inline(never)]
fn discard_available(sock: &Tracked<std::os::unix::net::UnixStream>) {
    let mut sink = vec![0u8; 64 * 1024];
    while matches!(std::io::Read::read(&mut &**sock, &mut sink), Ok(n) if n > 0) {}
}
