//! The error family.
//!
//! Two layers, following tokio and procspawn:
//!
//! * [`Error`] is what a blocking call returns: a timeout, a closed executor, a broken barrier,
//!   a misuse of a lock, an I/O or codec failure, or a task's own failure.
//! * [`TaskError`] is the opaque failure of *one task* (a panic, a cancellation, a timeout, a
//!   dead worker). It is matched through predicates ([`TaskError::is_panic`],
//!   [`TaskError::is_cancelled`], ...) so that new kinds can be added without breaking users.
//!
//! Python's exceptions map as follows: `TimeoutError` → [`Error::Timeout`] (and
//! [`Error::Unfinished`] for `as_completed`'s, which counts the futures left),
//! `concurrent.futures.CancelledError` → a [`TaskError`] with [`TaskError::is_cancelled`],
//! `RuntimeError("cannot schedule new futures after shutdown")` → [`Error::Shutdown`],
//! `threading.BrokenBarrierError` → [`Error::BrokenBarrier`],
//! `RuntimeError("cannot release un-acquired lock")` → [`Error::NotOwner`],
//! `ValueError("Semaphore released too many times")` → [`Error::OverRelease`].

use std::fmt;
use std::io;

use crate::panic::PanicReport;

/// The result type of every fallible spindle call.
///
/// ```
/// fn run() -> spindle::Result<u32> {
///     Ok(7)
/// }
/// assert_eq!(run().unwrap(), 7);
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error a spindle call can return.
///
/// The enum is `#[non_exhaustive]`: match the variants you handle and keep a catch-all arm.
///
/// ```
/// use spindle::Error;
/// let e = Error::Timeout;
/// assert!(e.is_timeout());
/// assert_eq!(e.to_string(), "operation timed out");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `*_timeout` call ran out of time before the thing it waited for happened.
    #[error("operation timed out")]
    Timeout,
    /// [`as_completed`](crate::futures::as_completed)'s timeout passed with `unfinished` of
    /// its `total` futures not done (Python's `TimeoutError("2 (of 4) futures unfinished")`).
    /// [`Error::is_timeout`] holds for it.
    ///
    /// ```
    /// let e = spindle::Error::Unfinished { unfinished: 2, total: 4 };
    /// assert!(e.is_timeout());
    /// assert_eq!(e.to_string(), "2 (of 4) futures unfinished");
    /// ```
    #[error("{unfinished} (of {total}) futures unfinished")]
    Unfinished {
        /// How many futures were not done when the time ran out.
        unfinished: usize,
        /// How many futures were given.
        total: usize,
    },
    /// A task failed: it panicked, was cancelled, timed out or lost its worker.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// The executor (or pool, or queue) was shut down; no new work is accepted.
    #[error("cannot schedule new work after shutdown")]
    Shutdown,
    /// A [`Barrier`](crate::threading::Barrier) was aborted, reset or timed out while in use.
    #[error("barrier is broken")]
    BrokenBarrier,
    /// A lock was released by a thread that does not hold it (or was not held at all).
    #[error("cannot release a lock that this thread does not hold")]
    NotOwner,
    /// A bounded semaphore was released more times than it was acquired.
    #[error("semaphore released too many times")]
    OverRelease,
    /// A thread or process was started twice, joined before it started, or similar misuse.
    #[error("invalid state: {0}")]
    InvalidState(&'static str),
    /// An argument was out of range (for example zero workers).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An operating-system call failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// Bytes on a channel could not be decoded (or a value could not be encoded).
    #[error("codec error: {0}")]
    Codec(String),
    /// A peer broke the protocol: wrong magic, wrong build, truncated or unexpected message.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The operation cannot run in this process: for instance a start method that would run
    /// another program (spindle inside a shared object) or whose children would be refused (a
    /// setuid program). The message names what to use instead.
    #[error("not supported here: {0}")]
    Unsupported(String),
}

impl Error {
    /// Whether this is [`Error::Timeout`], [`Error::Unfinished`], or a task that timed out.
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout | Error::Unfinished { .. } => true,
            Error::Task(t) => t.is_timeout(),
            _ => false,
        }
    }

    /// The task error inside, if this error is a task's failure.
    pub fn as_task(&self) -> Option<&TaskError> {
        match self {
            Error::Task(t) => Some(t),
            _ => None,
        }
    }
}

/// The failure of one task: opaque, inspected through predicates.
///
/// ```
/// use spindle::TaskError;
/// let e = TaskError::cancelled();
/// assert!(e.is_cancelled());
/// assert!(!e.is_panic());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TaskError {
    kind: Kind,
    /// The task's position in its call (the item of a pool's `map`), when known.
    task: Option<u64>,
}

#[derive(Clone, PartialEq, Eq)]
enum Kind {
    Panicked(Box<PanicReport>),
    Cancelled,
    TimedOut,
    WorkerDied {
        pid: Option<u32>,
        exitcode: Option<i32>,
        death: Option<Box<Death>>,
    },
    InitializerFailed(String),
    Failed(String),
}

/// What a pool knows about a worker's death beyond its exit code.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub(crate) struct Death {
    /// The cgroup's OOM-kill count rose while the worker died.
    pub(crate) likely_oom: bool,
    /// The last lines the worker wrote to its standard error.
    pub(crate) stderr: Vec<String>,
}

impl TaskError {
    /// A task that was cancelled before it ran.
    pub fn cancelled() -> Self {
        TaskError::of(Kind::Cancelled)
    }

    fn of(kind: Kind) -> Self {
        TaskError { kind, task: None }
    }

    /// A task that ran past its time limit and was stopped.
    pub fn timed_out() -> Self {
        TaskError::of(Kind::TimedOut)
    }

    /// A task whose worker died under it (killed, crashed, exited).
    ///
    /// `exitcode` follows Python's convention: the exit status, or minus the signal number.
    pub fn worker_died(pid: Option<u32>, exitcode: Option<i32>) -> Self {
        TaskError::of(Kind::WorkerDied {
            pid,
            exitcode,
            death: None,
        })
    }

    /// A task whose worker died, with what the pool saw of the death.
    pub(crate) fn worker_died_with(pid: Option<u32>, exitcode: Option<i32>, death: Death) -> Self {
        TaskError::of(Kind::WorkerDied {
            pid,
            exitcode,
            death: Some(Box::new(death)),
        })
    }

    /// A task that could not run because the worker's initializer failed (Python's
    /// `BrokenProcessPool` after an initializer raised); `message` says why.
    pub fn initializer_failed(message: impl Into<String>) -> Self {
        TaskError::of(Kind::InitializerFailed(message.into()))
    }

    /// The same error, naming the task's position in its call.
    pub(crate) fn with_task(mut self, task: u64) -> Self {
        self.task = Some(task);
        self
    }

    /// A task that failed with a message (a returned error, a decode failure of its result).
    pub fn failed(message: impl Into<String>) -> Self {
        TaskError::of(Kind::Failed(message.into()))
    }

    /// A task that panicked.
    pub fn panicked(report: PanicReport) -> Self {
        TaskError::of(Kind::Panicked(Box::new(report)))
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.kind, Kind::Panicked(_))
    }

    /// Whether the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.kind, Kind::Cancelled)
    }

    /// Whether the task ran out of time and was stopped.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, Kind::TimedOut)
    }

    /// Whether the worker running the task died.
    pub fn is_worker_died(&self) -> bool {
        matches!(self.kind, Kind::WorkerDied { .. })
    }

    /// Whether the task could not run because a worker's initializer failed.
    pub fn is_initializer_failed(&self) -> bool {
        matches!(self.kind, Kind::InitializerFailed(_))
    }

    /// The task's position in its call, when known: the index of the item in a pool's
    /// `map`, `imap` or `starmap` (0 for `apply`).
    pub fn task(&self) -> Option<u64> {
        self.task
    }

    /// The signal that killed the task's worker (9 for `SIGKILL`), when it died by one.
    pub fn signal(&self) -> Option<i32> {
        self.exitcode().filter(|c| *c < 0).map(|c| -c)
    }

    /// Whether the worker's death is likely the kernel's OOM killer's doing: it was killed
    /// by `SIGKILL` while the OOM-kill count of this process's memory cgroup rose (where
    /// that count is readable).
    pub fn likely_oom(&self) -> bool {
        matches!(&self.kind, Kind::WorkerDied { death: Some(d), .. } if d.likely_oom)
    }

    /// The last lines the dead worker wrote to its standard error (a pool relays and keeps
    /// them); empty when unknown.
    pub fn stderr_tail(&self) -> &[String] {
        match &self.kind {
            Kind::WorkerDied { death: Some(d), .. } => &d.stderr,
            _ => &[],
        }
    }

    /// The panic report, when the task panicked.
    pub fn panic(&self) -> Option<&PanicReport> {
        match &self.kind {
            Kind::Panicked(r) => Some(r),
            _ => None,
        }
    }

    /// The panic message, when the task panicked.
    pub fn panic_message(&self) -> Option<&str> {
        self.panic().map(PanicReport::message)
    }

    /// The process id the failure happened in, when known.
    pub fn pid(&self) -> Option<u32> {
        match &self.kind {
            Kind::Panicked(r) => r.pid(),
            Kind::WorkerDied { pid, .. } => *pid,
            _ => None,
        }
    }

    /// The MPI rank the task failed on, when known (a panic in an
    /// [`MpiPoolExecutor`](crate::futures)'s task).
    pub fn rank(&self) -> Option<u32> {
        self.panic().and_then(PanicReport::rank)
    }

    /// The host of that rank (`MPI_Get_processor_name`), when known.
    pub fn host(&self) -> Option<&str> {
        self.panic().and_then(PanicReport::host)
    }

    /// The dead worker's exit code (minus the signal number when killed by a signal).
    pub fn exitcode(&self) -> Option<i32> {
        match &self.kind {
            Kind::WorkerDied { exitcode, .. } => *exitcode,
            _ => None,
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Panicked(r) => write!(f, "task panicked: {r}"),
            Kind::Cancelled => f.write_str("task was cancelled"),
            Kind::TimedOut => f.write_str("task timed out"),
            Kind::WorkerDied {
                pid,
                exitcode,
                death,
            } => {
                f.write_str("worker died")?;
                if let Some(pid) = pid {
                    write!(f, " (pid {pid}")?;
                    match exitcode {
                        Some(code) if *code < 0 => match signal_name(-code) {
                            Some(name) => write!(f, ", killed by signal {} {name}", -code)?,
                            None => write!(f, ", killed by signal {}", -code)?,
                        },
                        Some(code) => write!(f, ", exit code {code}")?,
                        None => {}
                    }
                    f.write_str(")")?;
                }
                if let Some(task) = self.task {
                    write!(f, " holding task {task}")?;
                }
                if let Some(d) = death {
                    if d.likely_oom {
                        f.write_str("; likely the OOM killer")?;
                    }
                    if !d.stderr.is_empty() {
                        f.write_str("; its last stderr lines:")?;
                        for line in &d.stderr {
                            write!(f, "\n  | {line}")?;
                        }
                    }
                }
                return Ok(());
            }
            Kind::InitializerFailed(m) => write!(f, "the worker's initializer failed: {m}"),
            Kind::Failed(m) => write!(f, "task failed: {m}"),
        }?;
        if let Some(task) = self.task {
            write!(f, " (task {task})")?;
        }
        Ok(())
    }
}

/// The name of a common signal.
fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        1 => "(SIGHUP)",
        2 => "(SIGINT)",
        4 => "(SIGILL)",
        6 => "(SIGABRT)",
        7 => "(SIGBUS)",
        8 => "(SIGFPE)",
        9 => "(SIGKILL)",
        11 => "(SIGSEGV)",
        13 => "(SIGPIPE)",
        15 => "(SIGTERM)",
        _ => return None,
    })
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Panicked(r) => f.debug_tuple("TaskError::Panicked").field(r).finish(),
            Kind::Cancelled => f.write_str("TaskError::Cancelled"),
            Kind::TimedOut => f.write_str("TaskError::TimedOut"),
            Kind::WorkerDied {
                pid,
                exitcode,
                death,
            } => f
                .debug_struct("TaskError::WorkerDied")
                .field("pid", pid)
                .field("exitcode", exitcode)
                .field("task", &self.task)
                .field("death", death)
                .finish(),
            Kind::InitializerFailed(m) => f
                .debug_tuple("TaskError::InitializerFailed")
                .field(m)
                .finish(),
            Kind::Failed(m) => f.debug_tuple("TaskError::Failed").field(m).finish(),
        }
    }
}

impl std::error::Error for TaskError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_are_exclusive() {
        let all = [
            TaskError::cancelled(),
            TaskError::timed_out(),
            TaskError::worker_died(Some(7), Some(-9)),
            TaskError::failed("x"),
            TaskError::panicked(PanicReport::new("boom".into(), None, None)),
        ];
        for (i, e) in all.iter().enumerate() {
            let flags = [
                e.is_cancelled(),
                e.is_timeout(),
                e.is_worker_died(),
                e.is_panic(),
            ];
            assert!(flags.iter().filter(|f| **f).count() <= 1, "{i}: {e:?}");
        }
        assert_eq!(all[2].pid(), Some(7));
        assert_eq!(all[2].exitcode(), Some(-9));
        assert_eq!(
            all[2].to_string(),
            "worker died (pid 7, killed by signal 9 (SIGKILL))"
        );
        assert_eq!(all[2].signal(), Some(9));
        assert_eq!(all[4].panic_message(), Some("boom"));
    }

    #[test]
    fn a_dead_worker_says_which_task_how_and_what_it_last_wrote() {
        let death = Death {
            likely_oom: true,
            stderr: vec!["allocating 8 GiB".into()],
        };
        let e = TaskError::worker_died_with(Some(42), Some(-9), death).with_task(3);
        assert!(e.is_worker_died() && e.likely_oom());
        assert_eq!(
            (e.task(), e.signal(), e.pid()),
            (Some(3), Some(9), Some(42))
        );
        assert_eq!(e.stderr_tail(), ["allocating 8 GiB"]);
        let text = e.to_string();
        assert!(text.contains("holding task 3"), "{text}");
        assert!(text.contains("likely the OOM killer"), "{text}");
        assert!(text.contains("| allocating 8 GiB"), "{text}");
        let exited = TaskError::worker_died(Some(1), Some(3));
        assert_eq!((exited.signal(), exited.likely_oom()), (None, false));
        assert!(exited.stderr_tail().is_empty());
        let init = TaskError::initializer_failed("no database").with_task(0);
        assert!(init.is_initializer_failed() && !init.is_worker_died());
        assert_eq!(
            init.to_string(),
            "the worker's initializer failed: no database (task 0)"
        );
    }

    #[test]
    fn error_timeout_sees_through_tasks() {
        assert!(Error::Task(TaskError::timed_out()).is_timeout());
        assert!(!Error::Shutdown.is_timeout());
    }
}
