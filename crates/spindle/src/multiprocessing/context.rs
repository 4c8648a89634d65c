//! Start methods and contexts: [`StartMethod`], [`set_start_method`], [`get_context`].

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

use super::process::Builder;
use crate::error::{Error, Result};

/// How a child process is created, as Python's start methods.
///
/// | method | start-up | inherits the parent's memory | runs capturing closures |
/// |---|---|---|---|
/// | [`Spawn`](StartMethod::Spawn) | a fresh exec of the program (~1 ms) | no | no |
/// | [`Fork`](StartMethod::Fork) | `fork()` of the caller (~0.2 ms) | yes | yes |
/// | [`Forkserver`](StartMethod::Forkserver) | `fork()` of a clean server (fork + one round trip) | no | no |
///
/// The default is **`Forkserver`**, CPython 3.14's choice on Linux and for the same reason:
/// forking a program that runs threads can deadlock the child (a lock held by another thread
/// stays held forever), while the fork server is a single-threaded fresh copy of the program,
/// so its forks are safe and still nearly as fast as a plain fork.
///
/// ```
/// use spindle::multiprocessing::StartMethod;
/// let m: StartMethod = "spawn".parse().unwrap();
/// assert_eq!(m, StartMethod::Spawn);
/// assert_eq!(StartMethod::Forkserver.to_string(), "forkserver");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StartMethod {
    /// A fresh `posix_spawn` of the running program (`/proc/self/exe`).
    Spawn,
    /// `fork()` of the calling process.
    Fork,
    /// `fork()` of a single-threaded server process, started once and reused.
    Forkserver,
}

impl StartMethod {
    /// Every start method available on this platform.
    pub const ALL: [StartMethod; 3] = [
        StartMethod::Spawn,
        StartMethod::Fork,
        StartMethod::Forkserver,
    ];

    /// Python's name of the method: `"spawn"`, `"fork"` or `"forkserver"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StartMethod::Spawn => "spawn",
            StartMethod::Fork => "fork",
            StartMethod::Forkserver => "forkserver",
        }
    }

    fn code(self) -> u8 {
        match self {
            StartMethod::Spawn => 1,
            StartMethod::Fork => 2,
            StartMethod::Forkserver => 3,
        }
    }

    fn from_code(c: u8) -> Option<StartMethod> {
        StartMethod::ALL.into_iter().find(|m| m.code() == c)
    }
}

impl fmt::Display for StartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StartMethod {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        StartMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| Error::InvalidArgument(format!("unknown start method {s:?}")))
    }
}

/// 0: not set (the default applies).
static DEFAULT: AtomicU8 = AtomicU8::new(0);

/// The start method used by processes that do not choose one: the one set with
/// [`set_start_method`], or [`StartMethod::Forkserver`]. In a child, as in Python, it is the
/// method that started that child.
///
/// ```
/// use spindle::multiprocessing::{get_start_method, StartMethod};
/// assert_eq!(get_start_method(), StartMethod::Forkserver);
/// ```
pub fn get_start_method() -> StartMethod {
    StartMethod::from_code(DEFAULT.load(Ordering::Acquire)).unwrap_or(StartMethod::Forkserver)
}

/// Sets the process-wide default start method, once, as Python's `set_start_method`.
///
/// # Errors
///
/// [`Error::InvalidState`] when a default was already set (Python's `RuntimeError`); use
/// [`set_start_method_force`] to change it anyway.
///
/// ```
/// use spindle::multiprocessing::{get_start_method, set_start_method, StartMethod};
/// set_start_method(StartMethod::Spawn).unwrap();
/// assert_eq!(get_start_method(), StartMethod::Spawn);
/// assert!(set_start_method(StartMethod::Fork).is_err());
/// ```
pub fn set_start_method(method: StartMethod) -> Result<()> {
    DEFAULT
        .compare_exchange(0, method.code(), Ordering::AcqRel, Ordering::Acquire)
        .map(drop)
        .map_err(|_| Error::InvalidState("the start method has already been set"))
}

/// Sets the default start method even if one was set before (Python's `force=True`).
pub fn set_start_method_force(method: StartMethod) {
    DEFAULT.store(method.code(), Ordering::Release);
}

/// Every start method available here, the default first (Python's
/// `get_all_start_methods`).
pub fn get_all_start_methods() -> Vec<StartMethod> {
    let d = get_start_method();
    std::iter::once(d)
        .chain(StartMethod::ALL.into_iter().filter(|m| *m != d))
        .collect()
}

/// A context: an object that carries its own start method and builds processes with it, as
/// Python's `multiprocessing.get_context(method)`.
///
/// ```
/// use spindle::multiprocessing::{get_context, StartMethod};
/// fn double(x: u32) -> u32 { x * 2 }
/// let ctx = get_context(StartMethod::Spawn);
/// let p = ctx.process().target(double, (21,));
/// p.start().unwrap();
/// assert_eq!(p.join().unwrap(), 42);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    method: StartMethod,
}

/// The context of `method`.
pub fn get_context(method: StartMethod) -> Context {
    Context { method }
}

impl Context {
    /// The context's start method.
    pub fn get_start_method(&self) -> StartMethod {
        self.method
    }

    /// A process builder that uses this context's start method.
    pub fn process(&self) -> Builder {
        Builder::new().start_method(self.method)
    }
}

/// Names the program that spawn and the fork server run instead of this one (Python's
/// `multiprocessing.set_executable`).
///
/// Needed only where spindle lives in a shared object loaded by another program (a Python
/// extension, a plugin): there, re-running `/proc/self/exe` would run the host, so spawn and
/// forkserver refuse with [`Error::Unsupported`] until a program is named. The program must
/// load the very same shared object (for instance a small executable linked against it); the
/// child checks that it runs spindle from the same file and the same build as its parent and
/// refuses otherwise.
///
/// # Errors
///
/// [`Error::InvalidArgument`] when `path` is not an existing regular file.
///
/// ```
/// use spindle::multiprocessing::set_executable;
/// assert!(set_executable("/no/such/helper").is_err());
/// ```
pub fn set_executable(path: impl AsRef<std::path::Path>) -> Result<()> {
    let path = path.as_ref();
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {
            let path = std::fs::canonicalize(path)?;
            super::start::set_executable(path);
            Ok(())
        }
        _ => Err(Error::InvalidArgument(format!(
            "{} is not an existing program file",
            path.display()
        ))),
    }
}

/// The number of processors online, as Python's `multiprocessing.cpu_count()` (which
/// counts the machine's CPUs, not the ones this process may use; see
/// [`std::thread::available_parallelism`] for that).
///
/// ```
/// assert!(spindle::multiprocessing::cpu_count() >= 1);
/// ```
pub fn cpu_count() -> usize {
    crate::sys::proc::cpu_count()
}
