//! Starting a pool worker: a [`Process`] whose target is the worker loop, with its channel
//! (and its stderr pipe's write end) as arguments — captured by a `fork_target` closure under
//! fork, sent as descriptors with the call under spawn and forkserver (`WorkerArgs`, with the
//! hooks by offset) — and what the supervisor keeps of each worker.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::protocol as wire;
use super::stderr::Tap;
use super::supervisor::{Chunk, KillReason};
use super::worker::{self, Hook, Hooks};
use crate::error::{Error, Result};
use crate::multiprocessing::handles;
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
    let _ = take_handle_error();
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
        builder.target(spawned_main, (args,))
    };
    if let Err(e) = process.start() {
        // A channel that could not travel says why better than the codec does.
        return Err(take_handle_error().unwrap_or(e));
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

/// A descriptor in a worker's arguments: it travels with `SCM_RIGHTS` beside a spawned or
/// forkserver child's call (`handles::stash_fd` / `take_fd`).
#[derive(Debug)]
pub(crate) struct FdHandle(pub(crate) OwnedFd);

thread_local! {
    /// Why the last handle could not be encoded (the codec keeps only "serialization error").
    static HANDLE_ERROR: RefCell<Option<Error>> = const { RefCell::new(None) };
}

/// The error of the last handle this thread failed to encode, if any.
pub(crate) fn take_handle_error() -> Option<Error> {
    HANDLE_ERROR.with(|e| e.borrow_mut().take())
}

impl Serialize for FdHandle {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match handles::stash_fd(self.0.as_fd()) {
            Ok(index) => s.serialize_u32(index),
            Err(e) => {
                let message = e.to_string();
                HANDLE_ERROR.with(|slot| *slot.borrow_mut() = Some(e));
                Err(serde::ser::Error::custom(message))
            }
        }
    }
}

impl<'de> Deserialize<'de> for FdHandle {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let index = u32::deserialize(d)?;
        handles::take_fd(index)
            .map(FdHandle)
            .map_err(serde::de::Error::custom)
    }
}

/// A named hook as it travels to a spawned or forkserver child.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HookBytes {
    entry: i64,
    args: Vec<u8>,
}

/// What a spawned or forkserver worker receives: its channel, the write end of its standard
/// error pipe, and its hooks by offset.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WorkerArgs {
    pub(crate) chan: FdHandle,
    pub(crate) stderr: Option<FdHandle>,
    init: Option<HookBytes>,
    state: Option<HookBytes>,
    exit: Option<HookBytes>,
}

impl WorkerArgs {
    /// The arguments of a worker whose hooks are all named functions.
    pub(crate) fn new(chan: OwnedFd, stderr: Option<OwnedFd>, hooks: &Hooks) -> Result<Self> {
        let bytes = |h: &Option<Hook>| -> Result<Option<HookBytes>> {
            match h {
                None => Ok(None),
                Some(Hook::Entry(entry, args)) => Ok(Some(HookBytes {
                    entry: sys::image::entry_offset(*entry),
                    args: args.to_vec(),
                })),
                Some(Hook::Closure(_)) => Err(Error::InvalidArgument(
                    "a closure hook (fork_initializer, fork_worker_state) can only run under \
                     StartMethod::Fork"
                        .into(),
                )),
            }
        };
        Ok(WorkerArgs {
            chan: FdHandle(chan),
            stderr: stderr.map(FdHandle),
            init: bytes(&hooks.init)?,
            state: bytes(&hooks.state)?,
            exit: bytes(&hooks.exit)?,
        })
    }
}

/// The target of a spawned or forkserver worker.
pub(crate) fn spawned_main(args: WorkerArgs) -> u64 {
    let hook = |h: Option<HookBytes>| -> std::result::Result<Option<Hook>, String> {
        match h {
            None => Ok(None),
            Some(h) => sys::image::entry_at(h.entry, sys::image::build_identity())
                .map(|e| Some(Hook::Entry(e, Arc::new(h.args)))),
        }
    };
    let hooks = (|| {
        Ok::<_, String>(Hooks {
            init: hook(args.init)?,
            state: hook(args.state)?,
            exit: hook(args.exit)?,
        })
    })();
    let chan = UnixStream::from(args.chan.0);
    if let Some(fd) = args.stderr {
        let _ = sys::stdio::redirect_stderr(fd.0);
    }
    match hooks {
        Ok(hooks) => worker::run(chan, &hooks),
        Err(e) => {
            let mut chan = chan;
            let mut out = Vec::new();
            let _ = wire::push_frame(&mut out, wire::INIT_FAILED, e.as_bytes());
            let _ = chan.write_all(&out);
            0
        }
    }
}
