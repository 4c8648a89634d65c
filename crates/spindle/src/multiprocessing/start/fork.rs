//! fork: `fork()`; the child runs the job on the copied memory, sends the outcome, flushes
//! stdio and `_exit`s.
//!
//! **The hazard.** Only the forking thread exists in the child. A lock that another thread
//! held at that moment (Rust's `stdout`, an allocator other than glibc's, an application
//! `Mutex`) stays locked in the child forever, and the child deadlocks if it takes it. So,
//! like CPython 3.12+, the first fork of a process that has other threads prints one warning
//! on stderr. Prefer [`StartMethod::Forkserver`](crate::multiprocessing::StartMethod) (the
//! default) or `Spawn` in threaded programs.
//!
//! **spindle's own locks are safe.** The forking thread takes every lock that spindle itself
//! may need in the child (stdout and stderr, the process identity and children, the launcher,
//! the thread registry) before `fork()` and releases them after it, in the parent and in the
//! child, as `pthread_atfork` handlers do for `malloc`. So a child never finds one of them
//! held by a thread that does not exist in it. The fork server's connection is the one
//! exception: a forked child that itself starts forkserver children while another thread of
//! the parent was mid-request would wait on it; such a child should use spawn. And one rule
//! for callers: do not hold `std::io::stdout().lock()` (or stderr's) while starting a fork
//! child from a thread other than the main thread. The fork then runs on the launcher thread,
//! which must take that lock and would wait for the caller, which waits for it.

use std::io::{Read, StderrLock, StdoutLock, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Once;

use super::{lock_launcher_for_fork, on_launcher, own_child, Job, Launch, Started};
use crate::error::Result;
use crate::multiprocessing::bench::ForkRung as Rung;
use crate::multiprocessing::{bootstrap, handles, identity, reduction::Kind, StartMethod};
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

/// Every lock of spindle's that a forked child may need, held across `fork()`. Taken in one
/// fixed order: stdout and stderr first (a user's `Display` may call spindle while printing;
/// spindle never prints while holding its own locks), then spindle's.
struct HeldAcrossFork {
    stdout: StdoutLock<'static>,
    stderr: StderrLock<'static>,
    identity: identity::ForkGuard,
    launcher: super::LauncherForkGuard,
    threads: crate::threading::RegistryForkGuard,
    tracked: sys::fd::TrackedForkGuard,
}

impl HeldAcrossFork {
    fn acquire() -> Self {
        let mut stdout = std::io::stdout().lock();
        let mut stderr = std::io::stderr().lock();
        // Flush in the parent, so that the child does not print the parent's buffered text
        // again.
        let _ = stdout.flush();
        let _ = stderr.flush();
        HeldAcrossFork {
            stdout,
            stderr,
            identity: identity::lock_for_fork(),
            launcher: lock_launcher_for_fork(),
            threads: crate::threading::lock_registry_for_fork(),
            tracked: sys::fd::lock_tracked_for_fork(),
        }
    }

    /// In the child: closes spindle's descriptors but `keep` (when `close`), fixes up what only
    /// the parent's threads owned, records the child's identity (when given), then releases
    /// every lock.
    fn release_in_child(self, close: bool, keep: RawFd, who: Option<identity::ChildIdentity>) {
        let HeldAcrossFork {
            stdout,
            stderr,
            identity,
            launcher,
            threads,
            tracked,
        } = self;
        if close {
            tracked.close_in_child(keep);
        } else {
            drop(tracked);
        }
        threads.in_child();
        launcher.in_child();
        match who {
            Some(who) => identity.become_child(who),
            None => drop(identity),
        }
        drop(stderr);
        drop(stdout);
    }
}

/// What is prepared before every fork, on the forking thread: the child must find it done.
fn prepare(on_this_thread: bool) {
    // The child catches its job's panic; the hook must already be in place, so that the child
    // never takes the hook lock another thread of this process may hold during the fork.
    crate::panic::install_hook();
    if on_this_thread {
        // Where this thread's stack ends (for the overflow report), computed once per thread.
        sys::signal::prepare_overflow_report();
        // The first use of a thread-local with a destructor registers it (a lazily bound
        // lookup of the loader's, and a few pages written): once here, not in every child.
        handles::begin_decode(Vec::new());
        handles::end_decode();
    }
}

pub(crate) fn start(launch: Launch) -> Result<Started> {
    let (sock, theirs) = sys::fd::stream_pair()?;
    warn_if_threaded();
    prepare(false);
    // Everything the child needs is made here, before the fork: after it, every page the
    // child writes (an allocation, a string) is a copy-on-write fault, and so is every page
    // the parent writes while the child shares it.
    let me = identity::current_process();
    let Launch {
        name,
        ident,
        daemon,
        job,
    } = launch;
    let who = identity::ChildIdentity {
        name,
        ident,
        daemon,
        method: StartMethod::Fork,
        parent_pid: me.pid(),
        parent_name: me.name().to_owned(),
    };
    let frame = bootstrap::overflow_frame();
    let pid = on_launcher(move || {
        // The launcher is a thread of this process: the child's parent is this process.
        let ppid = who.parent_pid;
        prepare(true);
        let held = HeldAcrossFork::acquire();
        let keep = theirs.as_raw_fd();
        // In the parent, `fork_run` drops the closure, and with it `held` and `theirs`, once
        // forked.
        sys::proc::fork_run(&[], move || {
            held.release_in_child(true, keep, Some(who));
            sys::signal::apply_exec_rule();
            // `theirs` is a blocking socket (`UnixStream::pair`); only the parent's end is
            // made non-blocking, after the fork.
            let mut theirs = theirs;
            if !sys::proc::die_with_parent(ppid).unwrap_or(false) {
                return bootstrap::EXIT_REFUSED;
            }
            sys::signal::install_overflow_report(theirs.as_fd(), frame);
            let mut out = Vec::new();
            let kind = match job {
                Job::Entry { entry, args, fds } => {
                    handles::begin_decode(fds);
                    let kind = entry(&args, &mut out);
                    handles::end_decode();
                    kind
                }
                Job::Closure(f) => f(&mut out),
            };
            let kind = Kind::from_u8(kind).unwrap_or(Kind::Failure);
            let code = bootstrap::finish(&mut theirs, Ok((kind, out)));
            identity::at_exit();
            // The exit closes it; dropping it would take the registry's lock (and write its
            // page) for nothing.
            std::mem::forget(theirs);
            code
        })
    })?;
    let child = own_child(pid?)?;
    sock.set_nonblocking(true)?;
    Ok(Started {
        child: child.started(),
        sock,
    })
}

/// One fork and wait with every guarantee up to `upto` (see [`Rung`], the public
/// `bench::ForkRung`): the scoreboard's ladder
/// from a bare fork to spindle's fork start, built from the same calls as [`start`]. Run on
/// the calling thread.
pub(crate) fn ladder(upto: Rung) -> Result<()> {
    let has = |r: Rung| upto >= r;
    prepare(true);
    let pair = if has(Rung::Channel) {
        Some(sys::fd::stream_pair()?)
    } else {
        None
    };
    let (mut ours, theirs) = pair.unzip();
    let frame = bootstrap::overflow_frame();
    let ppid = sys::proc::getpid();
    let held = has(Rung::Locks).then(HeldAcrossFork::acquire);
    let keep = theirs.as_ref().map_or(-1, |t| t.as_raw_fd());
    let pid = sys::proc::fork_run(&[], move || {
        if let Some(held) = held {
            held.release_in_child(has(Rung::CloseDescriptors), keep, None);
        }
        if has(Rung::SignalRule) {
            sys::signal::apply_exec_rule();
        }
        if has(Rung::DeathSignal) {
            let _ = sys::proc::set_death_signal();
        }
        if has(Rung::Liveness) && sys::proc::getppid() != ppid {
            return bootstrap::EXIT_REFUSED;
        }
        if let Some(mut theirs) = theirs {
            if has(Rung::OverflowReport) {
                sys::signal::install_overflow_report(theirs.as_fd(), frame);
            }
            let _ = theirs.write_all(&[1]);
            std::mem::forget(theirs);
        }
        0
    })?;
    if has(Rung::Pidfd) {
        let child = own_child(pid)?.started();
        sys::fd::poll_readable(&[child.exit_fd()], None)?;
        child.try_wait()?;
    } else {
        sys::proc::waitpid(pid, false)?;
    }
    if let Some(ours) = ours.as_mut() {
        let mut byte = [0u8; 1];
        ours.read_exact(&mut byte)?;
    }
    Ok(())
}
