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
use serde::Serialize;

use super::flat::FRAMED;
use super::protocol::{self as wire, Reader, ResultsHeader};
use super::runs::{open_run, set_run_shape, RUN_DONE};
use crate::error::{Error, Result};
use crate::multiprocessing::Target;
use crate::panic::PanicReport;
use crate::sys::{self, image::EntryFn};

/// Report at least this often (in work time) while a chunk runs, so that a consumer sees the
/// first items of a long chunk early and a dead worker loses little finished work.
const FLUSH_AFTER: Duration = Duration::from_millis(1);

/// How long a worker watches for the next chunk after a tiny one before it sleeps.
const SPIN_FOR: Duration = Duration::from_micros(30);

/// While it works, a worker looks at its channel for `SKIP`s at most this often (a read of
/// the clock it makes anyway, and one `poll`).
const LOOK_EVERY: Duration = Duration::from_micros(100);

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

pub(crate) fn codec_failure(e: &Error, out: &mut Vec<u8>) -> u8 {
    let message = match e {
        Error::Codec(m) => m.clone(),
        other => other.to_string(),
    };
    // A string always encodes.
    let _ = wire::append(&message, out);
    wire::TAG_CODEC
}

/// Appends a panicked item's outcome (the report, with this process's pid).
pub(crate) fn push_panic(report: PanicReport, out: &mut Vec<u8>) {
    let at = out.len();
    out.push(wire::TAG_PANIC);
    let report = report.with_pid(sys::proc::getpid());
    if wire::append(&report, out).is_err() {
        out.truncate(at);
        out.push(0);
        let tag = codec_failure(
            &Error::Codec("the panic report cannot be encoded".into()),
            out,
        );
        out[at] = tag;
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
        skips: Vec::new(),
        last_look: Instant::now(),
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
    /// Items the pool said not to run: `(chunk seq, position)`.
    skips: Vec<(u64, u32)>,
    /// When it last looked at its channel while working.
    last_look: Instant,
}

/// Notes a `SKIP` payload: `(chunk seq, position)` not to run.
fn note_skip(skips: &mut Vec<(u64, u32)>, payload: &[u8]) {
    let mut r = Reader::new(payload);
    if let (Ok(seq), Ok(pos)) = (r.u64(), r.u32()) {
        if !skips.contains(&(seq, pos)) {
            skips.push((seq, pos));
        }
    }
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
    /// The chunk, and the position in it of the next item.
    seq: u64,
    pos: u32,
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
                        // The pool may have said not to run some of its items: look first.
                        let now = Instant::now();
                        if now - self.last_look >= LOOK_EVERY {
                            self.look(now);
                        } else {
                            self.note_skips();
                        }
                        let inbuf = std::mem::take(&mut self.inbuf);
                        let r = self.run_chunk(&inbuf.data()[range.clone()]);
                        // What was read while the chunk ran follows what was there before.
                        let during = std::mem::replace(&mut self.inbuf, inbuf);
                        self.inbuf.consume(range.end);
                        self.inbuf.extend(during.data());
                        r?;
                        continue;
                    }
                    wire::SKIP => note_skip(&mut self.skips, &self.inbuf.data()[range.clone()]),
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

    /// Reads what the pool sent meanwhile, without waiting, and notes the `SKIP`s in it (they
    /// are handled again, harmlessly, when their turn comes).
    fn look(&mut self, now: Instant) {
        self.last_look = now;
        if sys::fd::poll_readable(&[self.chan.as_fd()], Some(Duration::ZERO)).is_ok_and(|r| r[0]) {
            let want = self.inbuf.wanted(64 * 1024).min(1 << 22);
            let _ = self.inbuf.fill(&mut self.chan, want);
        }
        self.note_skips();
    }

    /// Notes the `SKIP`s among the whole frames received and not handled yet.
    fn note_skips(&mut self) {
        let mut rest = self.inbuf.data();
        let mut found = Vec::new();
        while let Ok(Some((kind, range))) = wire::split_frame(rest) {
            if kind == wire::SKIP {
                found.push(rest[range.clone()].to_vec());
            }
            rest = &rest[range.end..];
        }
        for payload in found {
            note_skip(&mut self.skips, &payload);
        }
    }

    /// Whether the pool said not to run item `pos` of chunk `seq`.
    #[inline]
    fn skipped(&self, seq: u64, pos: u32) -> bool {
        !self.skips.is_empty() && self.skips.contains(&(seq, pos))
    }

    /// Reports the item at `st.pos` as not run (the pool said `SKIP`).
    fn skip_one(&mut self, st: &mut Step) -> Result<()> {
        self.out.push(wire::TAG_CANCELLED);
        self.after_items(1, st)
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
        self.skips.retain(|(s, _)| *s >= seq);
        // Items left in the chunk after the current one (the last one is reported by the
        // chunk's final report, not by a partial one).
        let mut left: u64 = 0;
        {
            let mut peek = Reader::new(r.rest_peek());
            for _ in 0..segments {
                let _ = peek.i64();
                left += u64::from(peek.u32().unwrap_or(0));
                let _ = peek.u32();
                let len = peek.u32().unwrap_or(0) as usize;
                let _ = peek.bytes(len);
            }
        }
        let mut st = Step {
            seq,
            pos: 0,
            last_clock: batch.began,
            batch,
            since_clock: 0,
            left,
            flush_each,
        };
        for _ in 0..segments {
            let offset = r.i64()?;
            let count = r.u32()?;
            let width = r.u32()?;
            let len = r.u32()? as usize;
            let items = r.bytes(len)?;
            let entry = self.entry(offset);
            if width != FRAMED {
                self.run_flat(&entry, items, count, width, &mut st)?;
                continue;
            }
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
                        push_panic(report, &mut self.out);
                        done += 1;
                        self.after_items(1, &mut st)?;
                    }
                }
            }
        }
        self.flush(st.batch, true)?;
        Ok(())
    }

    /// Runs a segment of flat items through the run trampoline, as many at a time as fit
    /// before the next look at the clock (one at a time when every item reports).
    fn run_flat(
        &mut self,
        entry: &std::result::Result<EntryFn, String>,
        items: &[u8],
        count: u32,
        width: u32,
        st: &mut Step,
    ) -> Result<()> {
        let w = width as usize;
        if (count as usize).checked_mul(w) != Some(items.len()) {
            return Err(Error::Protocol(
                "a segment's items do not fill its length".into(),
            ));
        }
        let mut done = 0u32;
        // The run this segment's last call left open: the next call extends it.
        let mut open = None;
        while done < count {
            let mut k = if st.flush_each {
                1
            } else {
                self.stride
                    .saturating_sub(st.since_clock)
                    .clamp(1, count - done)
            };
            if !self.skips.is_empty() {
                // Up to the next item the pool said not to run; that one is reported so.
                if let Some(q) = (st.pos..st.pos + k).find(|p| self.skipped(st.seq, *p)) {
                    if q == st.pos {
                        done += 1;
                        self.skip_one(st)?;
                        open = None;
                        continue;
                    }
                    k = q - st.pos;
                }
            }
            let part = &items[done as usize * w..(done + k) as usize * w];
            match entry {
                Ok(f) => {
                    set_run_shape(k, width, open);
                    if f(part, &mut self.out) != RUN_DONE {
                        return Err(Error::Protocol("a run trampoline refused its items".into()));
                    }
                    open = open_run();
                }
                Err(why) => {
                    for _ in 0..k {
                        let at = self.out.len();
                        self.out.push(0);
                        let tag = codec_failure(&Error::Codec(why.clone()), &mut self.out);
                        self.out[at] = tag;
                    }
                }
            }
            done += k;
            self.after_items(k, st)?;
            if st.batch.count == 0 {
                // A report was sent: the next values start a new one.
                open = None;
            }
        }
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
            if self.skipped(st.seq, st.pos) {
                *done += 1;
                self.skip_one(st)?;
                continue;
            }
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
            self.after_items(1, st)?;
        }
        Ok(())
    }

    /// After `k` items: count them, and report when due.
    fn after_items(&mut self, k: u32, st: &mut Step) -> Result<()> {
        st.batch.count += k;
        st.pos += k;
        self.ran += u64::from(k);
        st.left = st.left.saturating_sub(u64::from(k));
        if st.left == 0 {
            return Ok(());
        }
        if st.flush_each {
            let b = std::mem::replace(&mut st.batch, Batch::empty());
            st.batch = self.flush(b, false)?;
            let now = Instant::now();
            if now - self.last_look >= LOOK_EVERY {
                self.look(now);
            }
            return Ok(());
        }
        st.since_clock += k;
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
            if now - self.last_look >= LOOK_EVERY {
                self.look(now);
            }
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
