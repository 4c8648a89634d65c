//! The client side of the three start methods, and what they share: the job to run, the
//! handle on a started child, and the launcher thread.
//!
//! **The launcher thread.** `PR_SET_PDEATHSIG` fires when the *thread* that created a child
//! exits, not the process. A `Process` started from a short-lived thread would die with that
//! thread. So a child is created on the main thread when `start` is called there, and
//! otherwise on one long-lived internal thread (`spindle-launcher`, started lazily, never
//! ending) that runs the fork or spawn on the caller's behalf.

use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use crossbeam_channel::{bounded, Sender};

use super::bootstrap::Call;
use super::reduction::{self, Kind};
use super::StartMethod;
use crate::error::{Error, Result};
use crate::latch::lock;
use crate::sys::{self, fd::Tracked, image::EntryFn};

pub(crate) mod fork;
pub(crate) mod forkserver;
pub(crate) mod spawn;

/// A capturing closure that runs in a forked child and encodes its own outcome into the
/// buffer, returning the frame kind.
pub(crate) type ForkClosure = Box<dyn FnOnce(&mut Vec<u8>) -> u8 + Send>;

/// What a child runs.
pub(crate) enum Job {
    /// A [`Target`](super::Target)'s trampoline, its encoded arguments and the descriptors
    /// they refer to (`handles`): runs anywhere.
    Entry {
        entry: EntryFn,
        args: Vec<u8>,
        fds: Vec<OwnedFd>,
    },
    /// A capturing closure that encodes its own outcome: only a fork can run it.
    Closure(ForkClosure),
}

impl Job {
    /// The trampoline, its encoded arguments and descriptors: what a child that shares no
    /// memory with us (spawn, forkserver) can run. A capturing closure is refused.
    pub(crate) fn entry(&self) -> Result<(EntryFn, &[u8], &[OwnedFd])> {
        match self {
            Job::Entry { entry, args, fds } => Ok((*entry, args, fds)),
            Job::Closure(_) => Err(Error::InvalidArgument(
                "a capturing closure can only run under StartMethod::Fork".into(),
            )),
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Entry { args, fds, .. } => write!(
                f,
                "Job::Entry({} argument bytes, {} descriptors)",
                args.len(),
                fds.len()
            ),
            Job::Closure(_) => f.write_str("Job::Closure"),
        }
    }
}

/// Everything a start method needs.
#[derive(Debug)]
pub(crate) struct Launch {
    pub(crate) name: String,
    pub(crate) ident: Vec<u32>,
    pub(crate) daemon: bool,
    pub(crate) job: Job,
}

/// The signalling side of a started child: its pid and a pidfd, so that signals never reach
/// a recycled pid and liveness can be checked without reaping. Every child is our own (a fork
/// server's children too, see `forkserver`), reaped through its pidfd.
#[derive(Debug)]
pub(crate) struct ChildRef {
    pub(crate) pid: u32,
    pidfd: Tracked<OwnedFd>,
}

impl ChildRef {
    pub(crate) fn new(pid: u32, pidfd: Tracked<OwnedFd>) -> Self {
        ChildRef { pid, pidfd }
    }

    /// Sends a signal; a child that has already exited is not an error.
    pub(crate) fn signal(&self, sig: sys::proc::Signal) -> Result<()> {
        sys::proc::pidfd_send_signal(self.pidfd.as_fd(), sig)?;
        Ok(())
    }

    /// Whether the child has not exited yet (a zombie counts as exited). Does not reap.
    pub(crate) fn is_running(&self) -> bool {
        !matches!(
            sys::fd::poll_readable(&[self.pidfd.as_fd()], Some(std::time::Duration::ZERO))
                .as_deref(),
            Ok([true])
        )
    }

    /// The descriptor that becomes readable when the child exits.
    pub(crate) fn exit_fd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// The raw wait status when the child has exited (reaping it), without blocking.
    pub(crate) fn try_wait(&self) -> Result<Option<i32>> {
        Ok(sys::proc::wait_pidfd(self.pidfd.as_fd(), self.pid, true)?)
    }

    /// Kills the child and reaps it, waiting: for a child nobody will get a value from.
    pub(crate) fn kill_and_reap(&self) {
        let _ = self.signal(sys::proc::Signal::Kill);
        let _ = sys::proc::wait_pidfd(self.pidfd.as_fd(), self.pid, false);
    }
}

/// A child made but not handed out yet: killed and reaped if the start fails from here on, so
/// that a failed start leaves no process.
#[derive(Debug)]
pub(crate) struct Unstarted(Option<ChildRef>);

impl Unstarted {
    /// Guards `child` until [`Unstarted::started`].
    pub(crate) fn new(child: ChildRef) -> Self {
        Unstarted(Some(child))
    }

    /// The start succeeded: the child is the caller's now.
    pub(crate) fn started(mut self) -> ChildRef {
        self.0.take().expect("taken once")
    }
}

impl Drop for Unstarted {
    fn drop(&mut self) {
        if let Some(child) = self.0.take() {
            child.kill_and_reap();
        }
    }
}

/// Opens a pidfd of our child `pid`, killing and reaping it by pid if that fails.
pub(crate) fn own_child(pid: u32) -> Result<Unstarted> {
    match Tracked::make(|| sys::proc::pidfd_open(pid)) {
        Ok(pidfd) => Ok(Unstarted::new(ChildRef::new(pid, pidfd))),
        Err(e) => {
            // Our own unreaped child: its pid cannot have been reused yet.
            sys::proc::kill_pid(pid);
            let _ = sys::proc::waitpid(pid, false);
            Err(e.into())
        }
    }
}

/// A started child: its handle and the control socket its outcome arrives on (non-blocking).
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) child: ChildRef,
    pub(crate) sock: Tracked<UnixStream>,
}

/// Starts `launch` with `method`.
pub(crate) fn start(method: StartMethod, launch: Launch) -> Result<Started> {
    match method {
        StartMethod::Spawn => spawn::start(launch),
        StartMethod::Fork => fork::start(launch),
        StartMethod::Forkserver => forkserver::start(launch),
    }
}

static EXECUTABLE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Sets the program that spawn and the fork server run (see `context::set_executable`).
pub(crate) fn set_executable(path: PathBuf) {
    *lock(&EXECUTABLE) = Some(path);
}

/// The program a spawned child or the fork server runs, and its `argv[0]`: the one set with
/// `set_executable`, or this very program. Refused in a secure-execution process and, without
/// `set_executable`, when spindle lives in a shared object another program loaded (spawning
/// `/proc/self/exe` would run that program).
pub(crate) fn program(method: StartMethod) -> Result<(PathBuf, OsString)> {
    if sys::trust::secure_execution() {
        return Err(Error::Unsupported(format!(
            "this process runs with privileges its launcher may not have (setuid, setgid or              file capabilities), and its {method} children would be refused: use              StartMethod::Fork"
        )));
    }
    if let Some(path) = lock(&EXECUTABLE).clone() {
        let argv0 = path.clone().into_os_string();
        return Ok((path, argv0));
    }
    if !sys::image::in_main_program() {
        return Err(Error::Unsupported(format!(
            "spindle runs inside a shared object ({}) loaded by another program, which {method}              would run: use StartMethod::Fork, or name a program that loads this same object              with set_executable",
            sys::image::shared_object_path()
                .map_or_else(|| "unnamed".into(), |p| p.display().to_string())
        )));
    }
    Ok((PathBuf::from("/proc/self/exe"), sys::proc::argv0()))
}

/// Arguments up to this size travel in the same write as the call.
const INLINE_ARGS: usize = 1 << 16;

/// The encoded `Call` frame and the `Args` header, followed by the arguments themselves when
/// they are small: what a spawned or forkserver child reads first (after a fork server's
/// hand-over header, when there is one).
#[derive(Debug)]
pub(crate) struct CallBytes {
    buf: Vec<u8>,
    args_inline: bool,
}

/// How a [`CallBytes::send`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Everything was written, or the child died while reading it (`join` reports that).
    Written,
    /// The very first write was refused: the reader was gone before it got a byte.
    Refused,
}

impl CallBytes {
    /// Encodes the call after `prefix` (a fork server's hand-over header, or nothing); fails
    /// (before any process exists) when the arguments are over the frame limit or carry too
    /// many descriptors.
    pub(crate) fn new(
        launch: &Launch,
        method: StartMethod,
        entry: EntryFn,
        args: &[u8],
        fds: usize,
        prefix: &[u8],
    ) -> Result<Self> {
        if fds > super::handles::MAX_FDS {
            return Err(Error::InvalidArgument(format!(
                "the arguments carry {fds} descriptors; at most {} can travel with a call",
                super::handles::MAX_FDS
            )));
        }
        let me = super::current_process();
        let call = Call {
            build: sys::image::build_identity().to_vec(),
            entry: sys::image::entry_offset(entry),
            name: launch.name.clone(),
            ident: launch.ident.clone(),
            daemon: launch.daemon,
            method: method.as_str().to_owned(),
            parent_pid: me.pid(),
            parent_name: me.name().to_owned(),
            fds: fds as u32,
        };
        let call = reduction::encode(&call)?;
        let args_header = reduction::header(Kind::Args, args.len())?;
        let args_inline = args.len() <= INLINE_ARGS;
        let inline = if args_inline { args.len() } else { 0 };
        let mut buf =
            Vec::with_capacity(prefix.len() + 2 * reduction::HEADER + call.len() + inline);
        buf.extend_from_slice(prefix);
        buf.extend_from_slice(&reduction::header(Kind::Call, call.len())?);
        buf.extend_from_slice(&call);
        buf.extend_from_slice(&args_header);
        if args_inline {
            buf.extend_from_slice(args);
        }
        Ok(CallBytes { buf, args_inline })
    }

    /// Writes the message (`args` are the ones given to `new`), `fds` attached to its first
    /// byte (those of the call, after any the prefix announces). A child that died while
    /// reading is not an error here: `join` reports what became of it. With descriptors, a
    /// first write refused outright is [`Sent::Refused`]: nothing reached the reader.
    pub(crate) fn send(
        &self,
        sock: &mut UnixStream,
        args: &[u8],
        fds: &[BorrowedFd<'_>],
    ) -> Result<Sent> {
        let gone = |e: &std::io::Error| {
            matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            )
        };
        let mut head = &self.buf[..];
        if !fds.is_empty() {
            match sys::fd::send_some_with_fds(sock.as_fd(), head, fds) {
                Ok(n) => head = &head[n..],
                Err(e) if gone(&e) => return Ok(Sent::Refused),
                Err(e) => return Err(Error::Io(e)),
            }
        }
        let rest = (|| {
            std::io::Write::write_all(sock, head)?;
            if !self.args_inline {
                std::io::Write::write_all(sock, args)?;
            }
            Ok::<(), std::io::Error>(())
        })();
        match rest {
            Err(e) if !gone(&e) => Err(Error::Io(e)),
            _ => Ok(Sent::Written),
        }
    }
}

type Task = Box<dyn FnOnce() + Send>;

static LAUNCHER: Mutex<Option<(u32, Sender<Task>)>> = Mutex::new(None);

/// The launcher's lock, held by a forking thread across `fork()` (see `fork`).
pub(crate) struct LauncherForkGuard(MutexGuard<'static, Option<(u32, Sender<Task>)>>);

/// Takes the launcher's lock for a fork.
pub(crate) fn lock_launcher_for_fork() -> LauncherForkGuard {
    LauncherForkGuard(lock(&LAUNCHER))
}

impl LauncherForkGuard {
    /// In the new child, which has no launcher thread: forgets the parent's channel to it
    /// (dropping it could take the channel's internal locks), so the child starts its own.
    pub(crate) fn in_child(mut self) {
        if let Some(parents) = self.0.take() {
            std::mem::forget(parents);
        }
    }
}

/// Runs `f` on a thread that lives as long as the process: the calling thread when it is the
/// main thread, the launcher thread otherwise.
pub(crate) fn on_launcher<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    if sys::proc::is_main_thread() {
        return Ok(f());
    }
    let tx = {
        let mut g = lock(&LAUNCHER);
        let me = sys::proc::getpid();
        match &*g {
            // A forked child inherits the static but not the thread: start its own.
            Some((owner, tx)) if *owner == me => tx.clone(),
            _ => {
                let (tx, rx) = bounded::<Task>(0);
                std::thread::Builder::new()
                    .name("spindle-launcher".into())
                    .spawn(move || {
                        for task in rx {
                            task();
                        }
                    })?;
                *g = Some((me, tx.clone()));
                tx
            }
        }
    };
    let (done_tx, done_rx) = bounded(1);
    tx.send(Box::new(move || {
        let _ = done_tx.send(f());
    }))
    .map_err(|_| Error::InvalidState("the launcher thread is gone"))?;
    done_rx
        .recv()
        .map_err(|_| Error::InvalidState("the launcher thread is gone"))
}
