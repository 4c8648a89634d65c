//! The worker side: the loop a pool's worker process runs, and the trampolines that name a
//! task's function by its offset in the image (as `Process` targets are named).
//!
//! A worker reads `TASK` frames from its channel, runs each item inside `panic::catch`, and
//! writes `RESULTS` frames back on the same channel. It reports after every item when the
//! chunk has a time limit, otherwise after about a millisecond of work and at the end of each
//! chunk, always before it starts the next chunk (so the pool knows which chunk a dead worker
//! was running). It ignores `SIGINT`: Ctrl-C reaches the whole foreground group, and the
//! parent decides.

use std::any::Any;
use std::cell::RefCell;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::protocol::{self as wire, Reader, ResultsHeader};
use crate::error::{Error, Result};
use crate::multiprocessing::handles;
use crate::multiprocessing::Target;
use crate::sys::{self, image::EntryFn};

/// Report at least this often (in work time) while a chunk runs, so that a consumer sees the
/// first items of a long chunk early and a dead worker loses little finished work.
const FLUSH_AFTER: Duration = Duration::from_millis(1);

/// How long a worker watches for the next chunk after a tiny one before it sleeps.
const SPIN_FOR: Duration = Duration::from_micros(30);

/// A trampoline's outcome for a hook (initializer, state, exit): success, or a message.
const HOOK_OK: u8 = 0;
const HOOK_FAILED: u8 = 1;

thread_local! {
    /// The worker's state (`Pool::builder().worker_state(..)`), one per worker process (or per
    /// thread of a `dummy::Pool`).
    static STATE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Runs `f` with this worker's state of type `S`.
///
/// # Panics
///
/// When this worker has no state of type `S` (a task of another pool's type; the pool's
/// types prevent it) or when a task re-enters its own state (a task calling the pool it runs
/// in, on its own worker).
pub(crate) fn with_state<S: 'static, T>(f: impl FnOnce(&mut S) -> T) -> T {
    STATE.with(|slot| {
        let mut slot = slot.borrow_mut();
        let state = slot
            .as_mut()
            .and_then(|b| b.downcast_mut::<S>())
            .expect("this worker has no state of the task's type");
        f(state)
    })
}

/// Installs this worker's state.
pub(crate) fn set_state<S: 'static>(state: S) {
    STATE.with(|slot| *slot.borrow_mut() = Some(Box::new(state)));
}

/// Takes this worker's state out, if it has one of type `S`.
pub(crate) fn take_state<S: 'static>() -> Option<S> {
    STATE.with(|slot| {
        let b = slot.borrow_mut().take()?;
        b.downcast::<S>().ok().map(|b| *b)
    })
}

/// What an initializer may return: nothing, or a `Result` whose error says why it failed
/// (a panic fails it too). Python's initializer fails by raising.
pub trait InitResult {
    /// `Ok` or the failure's message.
    fn into_result(self) -> std::result::Result<(), String>;
}

impl InitResult for () {
    fn into_result(self) -> std::result::Result<(), String> {
        Ok(())
    }
}

impl<E: std::fmt::Display> InitResult for std::result::Result<(), E> {
    fn into_result(self) -> std::result::Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// One hook a worker runs: a named function with encoded arguments (any start method), or a
/// closure (fork only: it runs in a copy of this process's memory).
#[derive(Clone)]
pub(crate) enum Hook {
    Entry(EntryFn, Arc<Vec<u8>>),
    Closure(Arc<dyn Fn() -> std::result::Result<(), String> + Send + Sync>),
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hook::Entry(_, args) => write!(f, "Hook::Entry({} argument bytes)", args.len()),
            Hook::Closure(_) => f.write_str("Hook::Closure"),
        }
    }
}

impl Hook {
    pub(crate) fn run(&self) -> std::result::Result<(), String> {
        match self {
            Hook::Entry(entry, args) => {
                let mut out = Vec::new();
                match entry(args, &mut out) {
                    HOOK_OK => Ok(()),
                    _ => Err(String::from_utf8_lossy(&out).into_owned()),
                }
            }
            Hook::Closure(f) => match crate::panic::catch(|| f()) {
                Ok(r) => r,
                Err(report) => Err(format!("panicked: {report}")),
            },
        }
    }
}

/// The hooks of a worker's life: initializer, state constructor, exit hook.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) init: Option<Hook>,
    pub(crate) state: Option<Hook>,
    pub(crate) exit: Option<Hook>,
}

/// The initializer trampoline of `F`: decodes `Args`, calls `F`, reports success or the
/// failure's message (a panic included).
pub(crate) fn init_entry<F, Args>(input: &[u8], out: &mut Vec<u8>) -> u8
where
    F: Target<Args>,
    F::Output: InitResult,
    Args: DeserializeOwned,
{
    hook(out, || {
        let args: Args =
            crate::multiprocessing::reduction::decode(input).map_err(|e| e.to_string())?;
        let f = sys::image::conjure::<F>();
        f.call(args).into_result()
    })
}

/// The state constructor trampoline of `F`: builds the worker's state.
pub(crate) fn state_entry<F, Args>(input: &[u8], out: &mut Vec<u8>) -> u8
where
    F: Target<Args>,
    F::Output: 'static,
    Args: DeserializeOwned,
{
    hook(out, || {
        let args: Args =
            crate::multiprocessing::reduction::decode(input).map_err(|e| e.to_string())?;
        let f = sys::image::conjure::<F>();
        set_state(f.call(args));
        Ok(())
    })
}

/// The exit hook trampoline of `F`: hands the worker's state to `F`.
pub(crate) fn exit_entry<F, S>(_input: &[u8], out: &mut Vec<u8>) -> u8
where
    F: Fn(S) + Copy + Send + 'static,
    S: 'static,
{
    hook(out, || {
        if let Some(state) = take_state::<S>() {
            let f = sys::image::conjure::<F>();
            f(state);
        }
        Ok(())
    })
}

fn hook(out: &mut Vec<u8>, f: impl FnOnce() -> std::result::Result<(), String>) -> u8 {
    let outcome = match crate::panic::catch(f) {
        Ok(r) => r,
        Err(report) => Err(format!("panicked: {report}")),
    };
    match outcome {
        Ok(()) => HOOK_OK,
        Err(message) => {
            out.clear();
            out.extend_from_slice(message.as_bytes());
            HOOK_FAILED
        }
    }
}

/// The item trampoline of `map`'s `F`: decodes one `A`, calls `F`, appends the tagged outcome.
pub(crate) fn map_item<F, A, R>(input: &[u8], out: &mut Vec<u8>) -> u8
where
    F: Fn(A) -> R + Copy + 'static,
    A: DeserializeOwned,
    R: Serialize,
{
    match crate::multiprocessing::reduction::decode::<A>(input) {
        Ok(a) => {
            let f = sys::image::conjure::<F>();
            run_item(move || f(a), out)
        }
        Err(e) => codec_failure(&e, out),
    }
}

/// The item trampoline of `starmap`'s and `apply`'s `F`: decodes an argument tuple.
pub(crate) fn star_item<F, Args>(input: &[u8], out: &mut Vec<u8>) -> u8
where
    F: Target<Args>,
    Args: DeserializeOwned,
    F::Output: Serialize,
{
    match crate::multiprocessing::reduction::decode::<Args>(input) {
        Ok(args) => {
            let f = sys::image::conjure::<F>();
            run_item(move || f.call(args), out)
        }
        Err(e) => codec_failure(&e, out),
    }
}

/// The item trampoline of a task that takes the worker's state: `F(&mut S, A)`.
pub(crate) fn state_item<F, S, A, R>(input: &[u8], out: &mut Vec<u8>) -> u8
where
    F: Fn(&mut S, A) -> R + Copy + 'static,
    S: 'static,
    A: DeserializeOwned,
    R: Serialize,
{
    match crate::multiprocessing::reduction::decode::<A>(input) {
        Ok(a) => {
            let f = sys::image::conjure::<F>();
            run_item(move || with_state(|s: &mut S| f(s, a)), out)
        }
        Err(e) => codec_failure(&e, out),
    }
}

/// Runs one item and appends its outcome (the tag is the return value). A panic unwinds to
/// the worker loop, which catches it for a run of items at a time.
fn run_item<R: Serialize>(f: impl FnOnce() -> R, out: &mut Vec<u8>) -> u8 {
    let value = f();
    match wire::append(&value, out) {
        Ok(()) => wire::TAG_VALUE,
        Err(e) => codec_failure(
            &Error::Codec(format!(
                "the value (a {}) cannot be encoded: {e}",
                std::any::type_name::<R>()
            )),
            out,
        ),
    }
}

fn codec_failure(e: &Error, out: &mut Vec<u8>) -> u8 {
    let message = match e {
        Error::Codec(m) => m.clone(),
        other => other.to_string(),
    };
    // A string always encodes.
    let _ = wire::append(&message, out);
    wire::TAG_CODEC
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
        Ok(hooks) => run(chan, &hooks),
        Err(e) => {
            let mut chan = chan;
            let mut out = Vec::new();
            let _ = wire::push_frame(&mut out, wire::INIT_FAILED, e.as_bytes());
            let _ = chan.write_all(&out);
            0
        }
    }
}

/// The target of a forked worker: drops the parent's private descriptors first.
pub(crate) fn forked_main(chan: UnixStream, stderr: Option<OwnedFd>, hooks: &Hooks) -> u64 {
    sys::fork_private::close_all_in_child();
    if let Some(fd) = stderr {
        let _ = sys::stdio::redirect_stderr(fd);
    }
    run(chan, hooks)
}

/// The worker loop; returns the number of items it ran.
pub(crate) fn run(chan: UnixStream, hooks: &Hooks) -> u64 {
    sys::signal::ignore_interrupt();
    sys::signal::ignore_sigpipe();
    let mut w = Worker {
        chan,
        inbuf: wire::InBuf::default(),
        out: Vec::with_capacity(64 * 1024),
        cached: None,
        stride: 1,
        ran: 0,
        last_chunk_short: false,
    };
    let init = hooks
        .init
        .as_ref()
        .map_or(Ok(()), Hook::run)
        .and_then(|()| hooks.state.as_ref().map_or(Ok(()), Hook::run));
    let mut hello = Vec::new();
    match init {
        Ok(()) => {
            let _ = wire::push_frame(&mut hello, wire::READY, b"");
        }
        Err(message) => {
            let _ = wire::push_frame(&mut hello, wire::INIT_FAILED, message.as_bytes());
            let _ = w.chan.write_all(&hello);
            return 0;
        }
    }
    if w.chan.write_all(&hello).is_err() {
        return 0;
    }
    // A failure here (the parent gone, a broken frame) ends the loop; the parent's pidfd
    // tells it the rest.
    let _ = w.serve();
    if let Some(exit) = &hooks.exit {
        if let Err(e) = exit.run() {
            eprintln!("spindle: a pool worker's exit hook failed: {e}");
        }
    }
    w.ran
}

struct Worker {
    chan: UnixStream,
    inbuf: wire::InBuf,
    out: Vec<u8>,
    cached: Option<(i64, EntryFn)>,
    /// Items between two clock reads (grows while items are tiny).
    stride: u32,
    ran: u64,
    /// The last chunk took less than `SPIN_FOR`.
    last_chunk_short: bool,
}

/// One `RESULTS` frame being filled.
struct Batch {
    seq: u64,
    offset: u32,
    count: u32,
    frame_at: usize,
    began: Instant,
}

impl Batch {
    /// A placeholder while the real one is being sent.
    fn empty() -> Batch {
        Batch {
            seq: 0,
            offset: 0,
            count: 0,
            frame_at: 0,
            began: Instant::now(),
        }
    }
}

/// Where a chunk's run stands: the report being filled, the clock, the items left.
struct Step {
    batch: Batch,
    since_clock: u32,
    last_clock: Instant,
    left: u64,
    flush_each: bool,
}

impl Worker {
    fn serve(&mut self) -> Result<()> {
        loop {
            // Every whole frame already received, then one read.
            while let Some((kind, range)) = wire::split_frame(self.inbuf.data())? {
                match kind {
                    wire::TASK => {
                        let inbuf = std::mem::take(&mut self.inbuf);
                        let r = self.run_chunk(&inbuf.data()[range.clone()]);
                        self.inbuf = inbuf;
                        r?;
                    }
                    wire::STOP => return Ok(()),
                    other => {
                        return Err(Error::Protocol(format!(
                            "unexpected message kind {other} from the pool"
                        )))
                    }
                }
                self.inbuf.consume(range.end);
            }
            let want = self.inbuf.wanted(64 * 1024).min(1 << 22);
            if self.last_chunk_short && self.inbuf.data().is_empty() {
                // After a tiny chunk the next one often follows at once (an `apply` loop):
                // watch for it a few microseconds instead of sleeping and paying a wake-up.
                let until = Instant::now() + SPIN_FOR;
                while Instant::now() < until {
                    if sys::fd::poll_readable(&[self.chan.as_fd()], Some(Duration::ZERO))
                        .is_ok_and(|r| r[0])
                    {
                        break;
                    }
                    std::thread::yield_now();
                }
            }
            let n = loop {
                match self.inbuf.fill(&mut self.chan, want) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::Io(e)),
                }
            };
            if n == 0 {
                // The pool closed the channel: as a STOP.
                return Ok(());
            }
        }
    }

    fn entry(&mut self, offset: i64) -> std::result::Result<EntryFn, String> {
        if let Some((o, f)) = self.cached {
            if o == offset {
                return Ok(f);
            }
        }
        let f = sys::image::entry_at(offset, sys::image::build_identity())?;
        self.cached = Some((offset, f));
        Ok(f)
    }

    fn run_chunk(&mut self, payload: &[u8]) -> Result<()> {
        let began = Instant::now();
        let r = self.run_chunk_inner(payload);
        self.last_chunk_short = began.elapsed() < SPIN_FOR;
        r
    }

    fn run_chunk_inner(&mut self, payload: &[u8]) -> Result<()> {
        let mut r = Reader::new(payload);
        let seq = r.u64()?;
        let flags = r.u8()?;
        let segments = r.u32()?;
        let flush_each = flags & wire::FLUSH_EACH != 0;
        let batch = self.begin(seq, 0);
        // Items left in the chunk after the current one (the last one is reported by the
        // chunk's final report, not by a partial one).
        let mut left: u64 = 0;
        {
            let mut peek = Reader::new(r.rest_peek());
            for _ in 0..segments {
                let _ = peek.i64();
                left += u64::from(peek.u32().unwrap_or(0));
                let len = peek.u32().unwrap_or(0) as usize;
                let _ = peek.bytes(len);
            }
        }
        let mut st = Step {
            last_clock: batch.began,
            batch,
            since_clock: 0,
            left,
            flush_each,
        };
        for _ in 0..segments {
            let offset = r.i64()?;
            let count = r.u32()?;
            let len = r.u32()? as usize;
            let items = r.bytes(len)?;
            let entry = self.entry(offset);
            let (mut at, mut done) = (0usize, 0u32);
            while done < count {
                // One catch for a run of items: a panic ends the run at its item, which is
                // reported as panicked, and the next run starts after it.
                let mut tag_at = self.out.len();
                let run = crate::panic::catch(|| {
                    self.run_items(
                        &entry,
                        items,
                        count,
                        &mut at,
                        &mut done,
                        &mut tag_at,
                        &mut st,
                    )
                });
                match run {
                    Ok(r) => r?,
                    Err(report) => {
                        self.out.truncate(tag_at);
                        let report = report.with_pid(sys::proc::getpid());
                        if wire::append(&report, &mut self.out).is_ok() {
                            self.out.insert(tag_at, wire::TAG_PANIC);
                        } else {
                            self.out.push(0);
                            let tag = codec_failure(
                                &Error::Codec("the panic report cannot be encoded".into()),
                                &mut self.out,
                            );
                            self.out[tag_at] = tag;
                        }
                        done += 1;
                        self.after_item(&mut st)?;
                    }
                }
            }
        }
        self.flush(st.batch, true)?;
        Ok(())
    }

    /// Runs items `done..count` of a segment; a panic unwinds out of it with `done` and `at`
    /// still naming the item that panicked (and the one after it).
    #[allow(clippy::too_many_arguments)]
    fn run_items(
        &mut self,
        entry: &std::result::Result<EntryFn, String>,
        items: &[u8],
        count: u32,
        at: &mut usize,
        done: &mut u32,
        tag_at: &mut usize,
        st: &mut Step,
    ) -> Result<()> {
        while *done < count {
            let (len, used) = wire::read_varint(&items[*at..])?;
            let item = items
                .get(*at + used..*at + used + len as usize)
                .ok_or_else(|| Error::Protocol("an item runs past its segment".into()))?;
            *at += used + len as usize;
            *tag_at = self.out.len();
            self.out.push(0);
            let tag = match entry {
                Ok(f) => f(item, &mut self.out),
                Err(why) => {
                    let _ = wire::append(why, &mut self.out);
                    wire::TAG_CODEC
                }
            };
            self.out[*tag_at] = tag;
            *done += 1;
            self.after_item(st)?;
        }
        Ok(())
    }

    /// After an item: count it, and report when due.
    fn after_item(&mut self, st: &mut Step) -> Result<()> {
        st.batch.count += 1;
        self.ran += 1;
        st.left = st.left.saturating_sub(1);
        if st.left == 0 {
            return Ok(());
        }
        if st.flush_each {
            let b = std::mem::replace(&mut st.batch, Batch::empty());
            st.batch = self.flush(b, false)?;
            return Ok(());
        }
        st.since_clock += 1;
        if st.since_clock >= self.stride {
            let now = Instant::now();
            let took = now - st.last_clock;
            if took < Duration::from_micros(20) {
                self.stride = (self.stride * 2).min(1024);
            } else if took > Duration::from_micros(200) {
                self.stride = (self.stride / 2).max(1);
            }
            st.since_clock = 0;
            st.last_clock = now;
            if now - st.batch.began >= FLUSH_AFTER {
                let b = std::mem::replace(&mut st.batch, Batch::empty());
                st.batch = self.flush(b, false)?;
            }
        }
        Ok(())
    }

    fn begin(&mut self, seq: u64, offset: u32) -> Batch {
        self.out.clear();
        let frame_at = wire::begin_frame(&mut self.out, wire::RESULTS);
        self.out.extend_from_slice(&[0u8; wire::RESULTS_HEADER]);
        Batch {
            seq,
            offset,
            count: 0,
            frame_at,
            began: Instant::now(),
        }
    }

    /// Sends the batch (unless empty and not the last), then begins the next one.
    fn flush(&mut self, batch: Batch, last: bool) -> Result<Batch> {
        if batch.count == 0 && !last {
            return Ok(batch);
        }
        let header = ResultsHeader {
            seq: batch.seq,
            offset: batch.offset,
            count: batch.count,
            last,
            elapsed_ns: batch.began.elapsed().as_nanos().min(u64::MAX as u128) as u64,
        };
        let h = batch.frame_at + wire::HEADER;
        header.write(&mut self.out[h..h + wire::RESULTS_HEADER]);
        wire::end_frame(&mut self.out, batch.frame_at)?;
        self.chan.write_all(&self.out)?;
        Ok(self.begin(batch.seq, batch.offset + batch.count))
    }
}
