//! Who this process is: [`current_process`], [`parent_process`], [`active_children`].

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::start::ChildRef;
use super::StartMethod;
use crate::latch::lock;
use crate::sys::{self, fd::Tracked};

/// A snapshot of a process's identity: name, pid, daemon flag.
///
/// ```
/// let me = spindle::multiprocessing::current_process();
/// assert_eq!(me.name(), "MainProcess");
/// assert_eq!(me.pid(), std::process::id());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    name: String,
    pid: u32,
    daemon: bool,
}

impl ProcessInfo {
    /// The process's name: `"MainProcess"` for a program's first process, the `Process`'s
    /// name in a child (`"Process-1"` unless named).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The daemon flag the process was started with (`false` for the main process).
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }

    /// Whether the process is still running (it exists and is not a zombie).
    pub fn is_alive(&self) -> bool {
        sys::proc::is_running(self.pid)
    }
}

struct Identity {
    name: String,
    ident: Vec<u32>,
    daemon: bool,
    parent: Option<(u32, String)>,
}

static IDENTITY: Mutex<Option<Identity>> = Mutex::new(None);
/// The children started so far by this process (Python's `_children_counter`); a child starts
/// its own count at 0.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Who a new child is: what it records about itself before running its call.
#[derive(Debug, Clone)]
pub(crate) struct ChildIdentity {
    pub(crate) name: String,
    pub(crate) ident: Vec<u32>,
    pub(crate) daemon: bool,
    pub(crate) method: StartMethod,
    pub(crate) parent_pid: u32,
    pub(crate) parent_name: String,
}

/// The process this code runs in, as Python's `multiprocessing.current_process()`.
pub fn current_process() -> ProcessInfo {
    let g = lock(&IDENTITY);
    match &*g {
        Some(id) => ProcessInfo {
            name: id.name.clone(),
            pid: sys::proc::getpid(),
            daemon: id.daemon,
        },
        None => ProcessInfo {
            name: "MainProcess".into(),
            pid: sys::proc::getpid(),
            daemon: false,
        },
    }
}

/// The process that started this one, or `None` in the main process, as Python's
/// `multiprocessing.parent_process()`. For a forkserver child it is the process that asked
/// for it, not the fork server.
///
/// ```
/// assert!(spindle::multiprocessing::parent_process().is_none());
/// ```
pub fn parent_process() -> Option<ProcessInfo> {
    let g = lock(&IDENTITY);
    g.as_ref()
        .and_then(|id| id.parent.as_ref())
        .map(|(pid, name)| ProcessInfo {
            name: name.clone(),
            pid: *pid,
            daemon: false,
        })
}

/// Records this process as a child named `name`, started by `parent_pid` with `method`.
pub(crate) fn become_child(
    name: String,
    ident: Vec<u32>,
    daemon: bool,
    method: StartMethod,
    parent_pid: u32,
    parent_name: String,
) {
    lock_for_fork().become_child(ChildIdentity {
        name,
        ident,
        daemon,
        method,
        parent_pid,
        parent_name,
    });
}

/// This module's locks, held by the forking thread across `fork()`, so that a forked child
/// never finds them held by a thread that does not exist in it (see `start::fork`).
pub(crate) struct ForkGuard {
    identity: MutexGuard<'static, Option<Identity>>,
    _children: MutexGuard<'static, Children>,
}

/// Takes this module's locks, always in this order.
pub(crate) fn lock_for_fork() -> ForkGuard {
    let identity = lock(&IDENTITY);
    let children = lock(&CHILDREN);
    ForkGuard {
        identity,
        _children: children,
    }
}

impl ForkGuard {
    /// In the new child: records its identity, then releases the locks. The parent's
    /// children, inherited by a forked child, are forgotten lazily (`Children` is keyed by
    /// its owner's pid): clearing them here would write their pages right after the fork.
    pub(crate) fn become_child(mut self, who: ChildIdentity) {
        *self.identity = Some(Identity {
            name: who.name,
            ident: who.ident,
            daemon: who.daemon,
            parent: Some((who.parent_pid, who.parent_name)),
        });
        COUNTER.store(0, Ordering::Relaxed);
        // Python: a child reports the method that started it.
        super::context::set_start_method_force(who.method);
    }
}

/// The identity numbers of the next child (Python's `_identity`: this process's numbers and
/// one more) and its default name, `Process-N` in the main process, `Process-2:1` in the
/// first child's first child.
pub(crate) fn next_identity() -> (Vec<u32>, String) {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
    let mut ident = lock(&IDENTITY)
        .as_ref()
        .map(|id| id.ident.clone())
        .unwrap_or_default();
    ident.push(n);
    let name = ident
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(":");
    (ident, format!("Process-{name}"))
}

struct Entry {
    id: u64,
    info: ProcessInfo,
    child: Arc<ChildRef>,
    sock: Arc<Tracked<UnixStream>>,
}

/// The registry of started children, keyed by the pid of the process that started them: a
/// forked child inherits its parent's list, which is not its own.
struct Children {
    owner: u32,
    list: Vec<Entry>,
}

impl Children {
    /// This process's list, emptied first when it was inherited through a fork.
    fn mine(&mut self) -> &mut Vec<Entry> {
        let me = sys::proc::getpid();
        if self.owner != me {
            self.owner = me;
            self.list.clear();
        }
        &mut self.list
    }
}

static CHILDREN: Mutex<Children> = Mutex::new(Children {
    owner: 0,
    list: Vec::new(),
});
static IDS: AtomicU64 = AtomicU64::new(0);

/// Registers a started child and its control socket; returns the key to [`unregister`] it
/// with. The first registration also sets up [`at_exit`].
pub(crate) fn register(
    name: &str,
    daemon: bool,
    child: Arc<ChildRef>,
    sock: Arc<Tracked<UnixStream>>,
) -> u64 {
    sys::proc::at_exit(at_exit);
    let id = IDS.fetch_add(1, Ordering::Relaxed);
    let info = ProcessInfo {
        name: name.to_owned(),
        pid: child.pid,
        daemon,
    };
    lock(&CHILDREN).mine().push(Entry {
        id,
        info,
        child,
        sock,
    });
    id
}

/// What Python does at exit: kills the daemonic children still registered, then waits for
/// every one (a `Process` leaked or still running when `std::process::exit` is called). Their
/// control sockets are drained meanwhile, so that a child writing a large value ends. Nothing
/// happens for children inherited through a fork (the list is keyed by its owner's pid).
pub(crate) fn at_exit() {
    let entries: Vec<(bool, Arc<ChildRef>, Arc<Tracked<UnixStream>>)> = {
        let g = lock(&CHILDREN);
        if g.owner != sys::proc::getpid() {
            return;
        }
        g.list
            .iter()
            .map(|e| (e.info.daemon, Arc::clone(&e.child), Arc::clone(&e.sock)))
            .collect()
    };
    for (daemon, child, _) in &entries {
        if *daemon {
            let _ = child.signal(sys::proc::Signal::Kill);
        }
    }
    let mut sink = vec![0u8; 64 * 1024];
    for (_, child, sock) in &entries {
        let mut open = true;
        while child.is_running() {
            loop {
                match std::io::Read::read(&mut &***sock, &mut sink) {
                    Ok(0) => open = false,
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => open = false,
                }
                break;
            }
            let fds = [child.exit_fd(), sock.as_fd()];
            let _ = sys::fd::poll_readable(if open { &fds[..] } else { &fds[..1] }, None);
        }
    }
}

/// Forgets a child (joined, closed or dropped).
pub(crate) fn unregister(id: u64) {
    lock(&CHILDREN).mine().retain(|e| e.id != id);
}

/// The children of this process that are still running, as Python's
/// `multiprocessing.active_children()`.
///
/// Unlike Python, it does not reap finished children: each [`Process`](super::Process)
/// reaps its own in `join`, `is_alive`, `exitcode` or `Drop`.
///
/// ```
/// assert!(spindle::multiprocessing::active_children().is_empty());
/// ```
pub fn active_children() -> Vec<ProcessInfo> {
    lock(&CHILDREN)
        .mine()
        .iter()
        .filter(|e| e.child.is_running())
        .map(|e| e.info.clone())
        .collect()
}
