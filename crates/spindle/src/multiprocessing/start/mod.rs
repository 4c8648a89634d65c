//! The client side of the three start methods, and what they share: the job to run, the
//! handle on a started child, and the launcher thread.
//!
//! **The launcher thread.** `PR_SET_PDEATHSIG` fires when the *thread* that created a child
//! exits, not the process. A `Process` started from a short-lived thread would die with that
//! thread. So a child is created on the main thread when `start` is called there, and
//! otherwise on one long-lived internal thread (`spindle-launcher`, started lazily, never
//! ending) that runs the fork or spawn on the caller's behalf.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard};

use crossbeam_channel::{bounded, Sender};

use super::bootstrap::Call;
use super::reduction::{self, Kind};
use crate::error::{Error, Result};
use crate::latch::lock;
use crate::sys::{self, image::EntryFn};

pub(crate) mod fork;
pub(crate) mod forkserver;
pub(crate) mod spawn;

/// A capturing closure that runs in a forked child and encodes its own outcome into the
/// buffer, returning the frame kind.
pub(crate) type ForkClosure = Box<dyn FnOnce(&mut Vec<u8>) -> u8 + Send>;

/// What a child runs.
pub(crate) enum Job {
    /// A [`Target`](super::Target)'s trampoline and its encoded arguments: runs anywhere.
    Entry { entry: EntryFn, args: Vec<u8> },
    /// A capturing closure that encodes its own outcome: only a fork can run it.
    Closure(ForkClosure),
}

impl Job {
    /// The trampoline and its encoded arguments: what a child that shares no memory with us
    /// (spawn, forkserver) can run. A capturing closure is refused.
    pub(crate) fn entry(&self) -> Result<(EntryFn, &[u8])> {
        match self {
            Job::Entry { entry, args } => Ok((*entry, args)),
            Job::Closure(_) => Err(Error::InvalidArgument(
                "a capturing closure can only run under StartMethod::Fork".into(),
            )),
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Entry { args, .. } => write!(f, "Job::Entry({} argument bytes)", args.len()),
            Job::Closure(_) => f.write_str("Job::Closure"),
        }
    }
}

/// Everything a start method needs.
#[derive(Debug)]
pub(crate) struct Launch {
    pub(crate) name: String,
    pub(crate) daemon: bool,
    pub(crate) job: Job,
}

/// The signalling side of a started child: its pid and a pidfd, so that signals never reach
/// a recycled pid and liveness can be checked without reaping.
#[derive(Debug)]
pub(crate) struct ChildRef {
    pub(crate) pid: u32,
    pidfd: OwnedFd,
}

impl ChildRef {
    pub(crate) fn new(pid: u32, pidfd: OwnedFd) -> Self {
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
}

/// How the exit status of a started child is learnt.
#[derive(Debug)]
pub(crate) enum Status {
    /// Our own child: `waitpid`.
    Own,
    /// A fork server's child: the server writes the raw status (4 bytes) into this pipe after
    /// reaping it.
    Server(File),
}

impl Status {
    /// The raw wait status when the child has exited, without blocking. `Err` when the fork
    /// server died before reporting it.
    pub(crate) fn try_wait(&mut self, child: &ChildRef) -> Result<Option<i32>> {
        match self {
            Status::Own => Ok(sys::proc::waitpid(child.pid, true)?),
            Status::Server(pipe) => {
                let ready =
                    sys::fd::poll_readable(&[pipe.as_fd()], Some(std::time::Duration::ZERO))?;
                if !ready[0] {
                    return Ok(None);
                }
                let mut b = [0u8; 4];
                match pipe.read_exact(&mut b) {
                    Ok(()) => Ok(Some(i32::from_le_bytes(b))),
                    Err(_) => Err(Error::Protocol(format!(
                        "the fork server died before reporting the exit status of pid {}",
                        child.pid
                    ))),
                }
            }
        }
    }

    /// Waits for the raw wait status of a child known to have exited. `Err` when the fork
    /// server died before reporting it.
    pub(crate) fn wait(&mut self, child: &ChildRef) -> Result<i32> {
        loop {
            if let Some(raw) = self.try_wait(child)? {
                return Ok(raw);
            }
            sys::fd::poll_readable(&[self.fd(child)], None)?;
        }
    }

    /// The descriptor that becomes readable when the exit status is available.
    pub(crate) fn fd<'a>(&'a self, child: &'a ChildRef) -> BorrowedFd<'a> {
        match self {
            Status::Own => child.exit_fd(),
            Status::Server(pipe) => pipe.as_fd(),
        }
    }
}

/// A started child: its handle, the control socket its outcome arrives on, and how to learn
/// its exit status.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) child: ChildRef,
    pub(crate) sock: UnixStream,
    pub(crate) status: Status,
}

/// Starts `launch` with `method`.
pub(crate) fn start(method: super::StartMethod, launch: Launch) -> Result<Started> {
    match method {
        super::StartMethod::Spawn => spawn::start(launch),
        super::StartMethod::Fork => fork::start(launch),
        super::StartMethod::Forkserver => forkserver::start(launch),
    }
}

/// Sends the call and its arguments to a spawned or forkserver child. A child that died
/// already is not an error here: `join` reports what became of it.
pub(crate) fn send_call(
    sock: &mut UnixStream,
    launch: &Launch,
    entry: EntryFn,
    args: &[u8],
) -> Result<()> {
    let call = CallBytes::new(launch, entry, args)?;
    call.send(sock, args)
}

/// Arguments up to this size travel in the same write as the call.
const INLINE_ARGS: usize = 1 << 16;

/// The encoded `Call` frame and the `Args` header, followed by the arguments themselves when
/// they are small: what a spawned or forkserver child reads first.
#[derive(Debug)]
pub(crate) struct CallBytes {
    buf: Vec<u8>,
    args_inline: bool,
}

impl CallBytes {
    pub(crate) fn new(launch: &Launch, entry: EntryFn, args: &[u8]) -> Result<Self> {
        let me = super::current_process();
        let call = Call {
            fingerprint: sys::image::fingerprint(),
            entry: sys::image::entry_offset(entry),
            name: launch.name.clone(),
            daemon: launch.daemon,
            parent_pid: me.pid(),
            parent_name: me.name().to_owned(),
        };
        let call = reduction::encode(&call)?;
        let args_inline = args.len() <= INLINE_ARGS;
        let inline = if args_inline { args.len() } else { 0 };
        let mut buf = Vec::with_capacity(2 * reduction::HEADER + call.len() + inline);
        buf.extend_from_slice(&reduction::header(Kind::Call, call.len())?);
        buf.extend_from_slice(&call);
        buf.extend_from_slice(&reduction::header(Kind::Args, args.len())?);
        if args_inline {
            buf.extend_from_slice(args);
        }
        Ok(CallBytes { buf, args_inline })
    }

    /// Whether the whole message is in one buffer of at most `limit` bytes: then it can be
    /// written into a fresh socket before anyone reads it (its buffer holds it).
    pub(crate) fn fits(&self, limit: usize) -> bool {
        self.args_inline && self.buf.len() <= limit
    }

    /// Writes the message (`args` are the same arguments given to `new`).
    pub(crate) fn send(&self, sock: &mut UnixStream, args: &[u8]) -> Result<()> {
        let result = std::io::Write::write_all(sock, &self.buf).and_then(|()| {
            if self.args_inline {
                Ok(())
            } else {
                std::io::Write::write_all(sock, args)
            }
        });
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) if e.raw_os_error() == Some(104) => Ok(()), // ECONNRESET
            other => other.map_err(Error::Io),
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
