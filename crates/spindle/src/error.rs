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
}

#[derive(Clone, PartialEq, Eq)]
enum Kind {
    Panicked(Box<PanicReport>),
    Cancelled,
    TimedOut,
    WorkerDied {
        pid: Option<u32>,
        exitcode: Option<i32>,
    },
    Failed(String),
}

impl TaskError {
    /// A task that was cancelled before it ran.
    pub fn cancelled() -> Self {
        TaskError {
            kind: Kind::Cancelled,
        }
    }

    /// A task that ran past its time limit and was stopped.
    pub fn timed_out() -> Self {
        TaskError {
            kind: Kind::TimedOut,
        }
    }

    /// A task whose worker died under it (killed, crashed, exited).
    ///
    /// `exitcode` follows Python's convention: the exit status, or minus the signal number.
    pub fn worker_died(pid: Option<u32>, exitcode: Option<i32>) -> Self {
        TaskError {
            kind: Kind::WorkerDied { pid, exitcode },
        }
    }

    /// A task that failed with a message (a returned error, a decode failure of its result).
    pub fn failed(message: impl Into<String>) -> Self {
        TaskError {
            kind: Kind::Failed(message.into()),
        }
    }

    /// A task that panicked.
    pub fn panicked(report: PanicReport) -> Self {
        TaskError {
            kind: Kind::Panicked(Box::new(report)),
        }
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
            Kind::WorkerDied { pid, exitcode } => {
                f.write_str("worker died")?;
                if let Some(pid) = pid {
                    write!(f, " (pid {pid}")?;
                    if let Some(code) = exitcode {
                        write!(f, ", exit code {code}")?;
                    }
                    f.write_str(")")?;
                }
                Ok(())
            }
            Kind::Failed(m) => write!(f, "task failed: {m}"),
        }
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Panicked(r) => f.debug_tuple("TaskError::Panicked").field(r).finish(),
            Kind::Cancelled => f.write_str("TaskError::Cancelled"),
            Kind::TimedOut => f.write_str("TaskError::TimedOut"),
            Kind::WorkerDied { pid, exitcode } => f
                .debug_struct("TaskError::WorkerDied")
                .field("pid", pid)
                .field("exitcode", exitcode)
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
        assert_eq!(all[2].to_string(), "worker died (pid 7, exit code -9)");
        assert_eq!(all[4].panic_message(), Some("boom"));
    }

    #[test]
    fn error_timeout_sees_through_tasks() {
        assert!(Error::Task(TaskError::timed_out()).is_timeout());
        assert!(!Error::Shutdown.is_timeout());
    }
}
