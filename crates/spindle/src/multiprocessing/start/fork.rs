//! fork: `fork()`; the child runs the job on the copied memory, sends the outcome, flushes
//! stdio and `_exit`s.
//!
//! **The hazard.** Only the forking thread exists in the child. A lock that another thread
//! held at that moment (Rust's `stdout`, an allocator other than glibc's, an application
//! `Mutex`) stays locked in the child forever, and the child deadlocks if it takes it. So,
//! like CPython 3.12+, the first fork of a process that has other threads prints one warning
//! on stderr. Prefer [`StartMethod::Forkserver`](crate::multiprocessing::StartMethod) (the
//! default) or `Spawn` in threaded programs.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Once;

use super::{on_launcher, ChildRef, Job, Launch, Started, Status};
use crate::error::Result;
use crate::multiprocessing::{bootstrap, identity, reduction::Kind};
use crate::sys;

static WARNED: Once = Once::new();

fn warn_if_threaded() {
    if WARNED.is_completed() {
        return;
    }
    let threads = sys::proc::thread_count();
    if threads > 1 {
        WARNED.call_once(|| {
            eprintln!(
                "spindle: warning: forking a process that has {threads} threads; the child may \
                 deadlock on a lock another thread held (use StartMethod::Forkserver or Spawn)"
            );
        });
    }
}

pub(crate) fn start(launch: Launch) -> Result<Started> {
    let (sock, theirs) = UnixStream::pair()?;
    warn_if_threaded();
    // The child catches its job's panic; the hook must already be in place, so that the child
    // never takes the hook lock another thread of this process may hold during the fork.
    crate::panic::install_hook();
    // Flush in the parent, so that the child does not print the parent's buffered text again.
    // (Rust's stderr has no buffer: nothing to flush there.)
    let _ = std::io::stdout().flush();
    // Everything the child needs is made here, before the fork: after it, every page the
    // child writes (an allocation, a string) is a copy-on-write fault, and so is every page
    // the parent writes while the child shares it.
    let me = identity::current_process();
    let (parent_pid, parent_name) = (me.pid(), me.name().to_owned());
    let Launch { name, daemon, job } = launch;
    let (pid, sock) = on_launcher(move || {
        // The launcher is a thread of this process: the child's parent is `parent_pid` either way.
        let ppid = parent_pid;
        let pid = sys::proc::fork_run(&[sock.as_fd()], move || {
            // `theirs` is a blocking socket (`UnixStream::pair`); only the parent's end is
            // made non-blocking, after the fork.
            let mut theirs = theirs;
            if !sys::proc::die_with_parent(ppid).unwrap_or(false) {
                return bootstrap::EXIT_REFUSED;
            }
            identity::become_child(name, daemon, parent_pid, parent_name);
            let mut out = Vec::new();
            let kind = match job {
                Job::Entry { entry, args } => entry(&args, &mut out),
                Job::Closure(f) => f(&mut out),
            };
            let kind = Kind::from_u8(kind).unwrap_or(Kind::Failure);
            bootstrap::finish(&mut theirs, Ok((kind, out)))
        });
        (pid, sock)
    })?;
    let pid = pid?;
    let pidfd = sys::proc::pidfd_open(pid)?;
    Ok(Started {
        child: ChildRef::new(pid, pidfd),
        sock,
        status: Status::Own,
    })
}
