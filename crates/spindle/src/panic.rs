//! All panic plumbing in one place: catch a panic, record its message, location and backtrace
//! as plain data (so that a child process can send it to its parent), and resume it.
//!
//! A panic hook is installed once, the first time [`catch`] runs. While a thread is inside
//! [`catch`], the hook records the location and (when `RUST_BACKTRACE` or
//! `RUST_LIB_BACKTRACE` asks for it) the backtrace, and prints nothing: the panic becomes a
//! value that the caller reports. Outside [`catch`] the previous hook runs unchanged.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use serde::{Deserialize, Serialize};

/// What a panic left behind: its message, where it happened, the backtrace when captured, and
/// the process it happened in.
///
/// It is plain data (`Clone`, serde), so a panic in a child process reaches the parent intact.
///
/// ```
/// let report = spindle::panic::catch(|| panic!("boom {}", 7)).unwrap_err();
/// assert_eq!(report.message(), "boom 7");
/// assert!(report.location().is_some());
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanicReport {
    message: String,
    location: Option<String>,
    backtrace: Option<String>,
    pid: Option<u32>,
    /// The MPI rank and host the panic happened on (`MpiPoolExecutor`).
    rank: Option<(u32, String)>,
}

impl PanicReport {
    /// A report from its parts; the pid is left unset.
    pub fn new(message: String, location: Option<String>, backtrace: Option<String>) -> Self {
        PanicReport {
            message,
            location,
            backtrace,
            pid: None,
            rank: None,
        }
    }

    /// The same report, marked as coming from process `pid`.
    pub fn with_pid(mut self, pid: u32) -> Self {
        self.pid = Some(pid);
        self
    }

    /// The same report, marked as coming from MPI rank `rank` on `host`.
    pub fn with_rank(mut self, rank: u32, host: impl Into<String>) -> Self {
        self.rank = Some((rank, host.into()));
        self
    }

    /// The MPI rank the panic happened on, when it was a task of an MPI executor.
    pub fn rank(&self) -> Option<u32> {
        self.rank.as_ref().map(|(r, _)| *r)
    }

    /// The host (`MPI_Get_processor_name`) of that rank.
    pub fn host(&self) -> Option<&str> {
        self.rank.as_ref().map(|(_, h)| h.as_str())
    }

    /// The panic message (the payload when it was a `&str` or a `String`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// `file:line:column` of the panic, when known.
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// The rendered backtrace, when one was captured (`RUST_BACKTRACE=1`).
    pub fn backtrace(&self) -> Option<&str> {
        self.backtrace.as_deref()
    }

    /// The process the panic happened in, when it was another process.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }
}

impl fmt::Display for PanicReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(loc) = &self.location {
            write!(f, " at {loc}")?;
        }
        match (self.pid, &self.rank) {
            (Some(pid), Some((rank, host))) => write!(f, " (pid {pid}, rank {rank} on {host})")?,
            (None, Some((rank, host))) => write!(f, " (rank {rank} on {host})")?,
            (Some(pid), None) => write!(f, " (pid {pid})")?,
            (None, None) => {}
        }
        Ok(())
    }
}

impl fmt::Debug for PanicReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PanicReport")
            .field("message", &self.message)
            .field("location", &self.location)
            .field("pid", &self.pid)
            .field("rank", &self.rank)
            .field("backtrace", &self.backtrace.as_ref().map(|_| ".."))
            .finish()
    }
}

thread_local! {
    static CATCHING: Cell<u32> = const { Cell::new(0) };
    static LAST: RefCell<Option<(Option<String>, Option<String>)>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Installs the panic hook (once). A fork start calls it in the parent first: a forked child
/// must never take the hook lock, which another thread of the parent may have held at the
/// moment of the fork.
pub(crate) fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CATCHING.with(Cell::get) > 0 {
                let location = info.location().map(|l| l.to_string());
                let bt = std::backtrace::Backtrace::capture();
                let backtrace = match bt.status() {
                    std::backtrace::BacktraceStatus::Captured => Some(bt.to_string()),
                    _ => None,
                };
                LAST.with(|l| *l.borrow_mut() = Some((location, backtrace)));
            } else {
                previous(info);
            }
        }));
    });
}

/// The message of a panic payload: the `&str` or `String` it carries, or a placeholder.
pub fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}

/// Runs `f`, turning a panic into a [`PanicReport`] instead of unwinding further.
///
/// While `f` runs, a panic prints nothing: the report carries the message, the location and,
/// when `RUST_BACKTRACE=1`, the backtrace.
///
/// ```
/// assert_eq!(spindle::panic::catch(|| 2 + 2), Ok(4));
/// let err = spindle::panic::catch(|| -> u8 { panic!("nope") }).unwrap_err();
/// assert_eq!(err.message(), "nope");
/// ```
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, PanicReport> {
    install_hook();
    CATCHING.with(|c| c.set(c.get() + 1));
    let out = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(c.get() - 1));
    out.map_err(|payload| {
        let (location, backtrace) = LAST.with(|l| l.borrow_mut().take()).unwrap_or((None, None));
        PanicReport::new(payload_message(&*payload), location, backtrace)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_str_and_string_payloads() {
        assert_eq!(catch(|| panic!("a")).unwrap_err().message(), "a");
        let n = 3;
        assert_eq!(catch(|| panic!("b{n}")).unwrap_err().message(), "b3");
        let other = catch(|| std::panic::panic_any(5_u8)).unwrap_err();
        assert_eq!(other.message(), "Box<dyn Any>");
    }

    #[test]
    fn records_location_of_the_panic() {
        let r = catch(|| panic!("here")).unwrap_err();
        assert!(r.location().unwrap().contains("panic.rs"), "{r:?}");
    }

    #[test]
    fn nested_catch_is_fine() {
        let outer = catch(|| catch(|| panic!("inner")).unwrap_err().message().to_owned());
        assert_eq!(outer.unwrap(), "inner");
    }
}
