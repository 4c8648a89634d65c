//! Starting a pool worker: a [`Process`] whose target is the worker loop, with its channel
//! (and its stderr pipe's write end) as arguments — captured by a `fork_target` closure under
//! fork, sent as descriptors with the call under spawn and forkserver.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::stderr::Tap;
use super::supervisor::{Chunk, KillReason};
use super::worker::{self, Hooks, WorkerArgs};
use crate::error::Result;
use crate::multiprocessing::{Builder, Process, StartMethod};
use crate::sys;

/// What every worker of a pool is started with.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) processes: usize,
    pub(crate) method: StartMethod,
    pub(crate) hooks: Hooks,
    pub(crate) maxtasksperchild: Option<u64>,
    pub(crate) max_memory: Option<u64>,
    pub(crate) relay_stderr: bool,
    pub(crate) name: String,
}

/// One worker as the supervisor holds it.
pub(crate) struct Worker {
    pub(crate) id: u64,
    pub(crate) pid: u32,
    // Declared before `chan`: it leaves the fork-private table before the socket closes.
    _private: sys::fork_private::Registration,
    pub(crate) chan: UnixStream,
    pub(crate) tap: Option<Tap>,
    pub(crate) process: Process<u64>,
    pub(crate) inbuf: super::protocol::InBuf,
    pub(crate) out: Vec<u8>,
    pub(crate) out_pos: usize,
    pub(crate) want_write: bool,
    /// Chunks sent and not fully reported, the running one first.
    pub(crate) inflight: VecDeque<Chunk>,
    /// It said its initializer succeeded.
    pub(crate) ready: bool,
    pub(crate) items_sent: u64,
    pub(crate) items_done: u64,
    /// It gets no more work (maxtasksperchild, max_memory_per_child) and stops when empty.
    pub(crate) retiring: bool,
    pub(crate) stop_sent: bool,
    pub(crate) kill: Option<KillReason>,
    /// When a worker sent `SIGTERM` gets `SIGKILL`.
    pub(crate) kill_at: Option<Instant>,
    /// Items stopped while it was already being killed, or before they started: they end
    /// cancelled and are not sent again when it dies (by call address and index).
    pub(crate) also_stop: Vec<(usize, u64)>,
    /// When the item it runs now started (as seen from here).
    pub(crate) item_started: Instant,
    /// Its pidfd turned readable.
    pub(crate) exited: bool,
}

impl Worker {
    /// When the item it runs now must end, if it has a time limit: `(deadline, chunk seq,
    /// position in the chunk)`. Known exactly for chunks that report every item.
    pub(crate) fn deadline(&self) -> Option<(Instant, u64, u32)> {
        if !self.ready {
            return None;
        }
        let c = self.inflight.front()?;
        if !c.flush_each {
            return None;
        }
        let seg = c.segments.iter().try_fold(c.reported, |left, s| {
            if left < s.count {
                Err(s)
            } else {
                Ok(left - s.count)
            }
        });
        let seg = seg.err()?;
        let limit: Duration = seg.job.timeout?;
        Some((self.item_started + limit, c.seq, c.reported))
    }
}

/// Starts worker number `id`.
pub(crate) fn start_worker(settings: &Settings, id: u64) -> Result<Worker> {
    let _ = worker::take_handle_error();
    let (ours, theirs) = UnixStream::pair()?;
    // Registered before the fork, so that this worker and every later one close our end.
    let private = sys::fork_private::register(ours.as_fd());
    let (tap, err_w): (Option<Tap>, Option<OwnedFd>) = if settings.relay_stderr {
        let (r, w) = sys::stdio::stderr_pipe()?;
        (Some(Tap::new(r)?), Some(w))
    } else {
        (None, None)
    };
    let builder = Builder::new()
        .name(format!("{}-{}", settings.name, id + 1))
        .daemon(true)
        .start_method(settings.method);
    let process: Process<u64> = if settings.method == StartMethod::Fork {
        let hooks = settings.hooks.clone();
        builder.fork_target(move || worker::forked_main(theirs, err_w, &hooks))
    } else {
        let args = WorkerArgs::new(OwnedFd::from(theirs), err_w, &settings.hooks)?;
        builder.target(worker::spawned_main, (args,))
    };
    if let Err(e) = process.start() {
        // A channel that could not travel says why better than the codec does.
        return Err(worker::take_handle_error().unwrap_or(e));
    }
    ours.set_nonblocking(true)?;
    let pid = process.pid().unwrap_or(0);
    Ok(Worker {
        id,
        pid,
        _private: private,
        chan: ours,
        tap,
        process,
        inbuf: Default::default(),
        out: Vec::new(),
        out_pos: 0,
        want_write: false,
        inflight: VecDeque::new(),
        ready: false,
        items_sent: 0,
        items_done: 0,
        retiring: false,
        stop_sent: false,
        kill: None,
        kill_at: None,
        also_stop: Vec::new(),
        item_started: Instant::now(),
        exited: false,
    })
}
