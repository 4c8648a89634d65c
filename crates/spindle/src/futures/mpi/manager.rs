//! Rank 0's manager: the one thread that talks MPI while an executor lives.
//!
//! Callers of `submit` and `map` push [`Work`] (a function offset, encoded items and where
//! their outcomes go) onto [`Shared`]; the manager takes it, packs it into `TASKS` messages
//! (several single submits or `map` chunks per message, sized by the time an item takes), keeps
//! at most [`DEPTH`] messages in flight per worker, reads the `RESULTS` that come back in the
//! order the worker got its messages, and hands each segment's bytes to its sink, which
//! decodes them and completes the futures.
//!
//! **No deadlock with blocking MPI calls.** A worker reads a message only between two
//! messages, and answers with a blocking send; the manager never blocks on a worker that
//! may be sending: its sends are buffered (`MPI_Bsend`, with the bytes outstanding kept
//! under the attached buffer's size), except a message too large for the buffer, which goes
//! by a blocking send only to a worker with nothing in flight (so receiving is all it does).
//! It looks for results without blocking (`MPI_Improbe`).
//!
//! **Waiting.** MPI offers no descriptor to sleep on: the manager looks again at once for
//! [`SPIN`] after the last event (yielding its core in between); then, with work in flight,
//! it naps from 50 µs up to [`NAP_MAX`] (woken early by new work), and with nothing in flight
//! it sleeps until a caller pushes work.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::comm::{self, Comm, Lost};
use super::wire::{self, Hello, Ready, ResultSegment, Writer};
use super::RankInfo;
use crate::error::{Error, Result, TaskError};
use crate::latch::lock;

/// Messages in flight per worker: one running, one waiting in its receive queue.
pub(super) const DEPTH: usize = 2;
/// A second message goes to a busy worker only when the first is estimated to end within
/// this (so a task never waits behind a long one while another worker will be free).
const PIPELINE_UNDER: Duration = Duration::from_millis(5);
/// A message aims at about this much work on its worker.
const TARGET: Duration = Duration::from_millis(1);
/// At most this many items in one message.
const MAX_ITEMS: usize = 1 << 16;
/// A message stops growing past this many bytes (one segment may be larger).
const SOFT_BYTES: usize = 1 << 20;
/// After the last event, look again without sleeping (yielding the core between looks) this
/// long: a nap costs at least the kernel's timer slack (50 µs), an MPI round trip a few µs.
pub(super) const SPIN: Duration = Duration::from_millis(1);
/// The first nap after [`SPIN`].
const NAP_MIN: Duration = Duration::from_micros(50);
/// The longest nap while results are awaited.
pub(super) const NAP_MAX: Duration = Duration::from_micros(200);
/// The exit code of a job aborted because a rank is lost.
pub(super) const EXIT_RANK_LOST: i32 = 70;

/// Where the outcomes of one segment (a submitted task, or a chunk of a `map`) go: typed by
/// the caller, so the manager only moves bytes.
pub(super) trait Outcomes: Send {
    /// The segment is about to be sent: `false` when its future was cancelled (it is then
    /// dropped, not sent).
    fn start(&self) -> bool;
    /// Whether its future was cancelled (it will not be sent).
    fn cancelled(&self) -> bool;
    /// The segment's outcomes came back.
    fn deliver(self: Box<Self>, segment: ResultSegment<'_>);
    /// The segment will not run (cancelled, broken executor, unreadable results): every item
    /// ends with `error`.
    fn fail(self: Box<Self>, error: TaskError);
}

/// One segment to run: `count` items of the trampoline at offset `entry`.
pub(super) struct Work {
    pub(super) entry: i64,
    pub(super) count: u32,
    pub(super) items: Vec<u8>,
    pub(super) sink: Box<dyn Outcomes>,
}

/// What the callers and the manager share.
pub(super) struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    queue: VecDeque<Work>,
    closed: bool,
    cancel: bool,
    /// The manager waits on `wake`.
    sleeping: bool,
    /// Every task fails with this (a worker's initializer failed).
    broken: Option<TaskError>,
}

impl Shared {
    pub(super) fn new() -> Self {
        Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                closed: false,
                cancel: false,
                sleeping: false,
                broken: None,
            }),
            wake: Condvar::new(),
        }
    }

    /// Queues `work`.
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] after [`close`](Shared::close) (the work is dropped).
    pub(super) fn push(&self, work: Work) -> Result<()> {
        if work.items.len() > wire::MAX_MESSAGE - 64 {
            work.sink.fail(TaskError::failed(format!(
                "the arguments take {} bytes, more than one MPI message carries ({} bytes)",
                work.items.len(),
                wire::MAX_MESSAGE - 64
            )));
            return Ok(());
        }
        let mut s = lock(&self.state);
        if s.closed {
            return Err(Error::Shutdown);
        }
        if let Some(e) = &s.broken {
            let e = e.clone();
            drop(s);
            work.sink.fail(e);
            return Ok(());
        }
        s.queue.push_back(work);
        let wake = s.sleeping;
        drop(s);
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Accepts no more work; with `cancel`, the work not sent yet is cancelled.
    pub(super) fn close(&self, cancel: bool) {
        let mut s = lock(&self.state);
        s.closed = true;
        s.cancel |= cancel;
        drop(s);
        self.wake.notify_one();
    }

    /// The manager has nothing to do: yields (a zero `d`), naps `d` (woken early by new
    /// work), or, with no `d`, sleeps until a caller pushes work or closes the executor.
    ///
    /// `was_closed` is what the manager's last look at the queue saw: a `close` that came
    /// after it (its notification sent while no one waited) ends the sleep at once, instead
    /// of being taken for the state to wait in.
    pub(super) fn nap(&self, d: Option<Duration>, was_closed: bool) {
        if d.is_some_and(|d| d.is_zero()) {
            std::thread::yield_now();
            return;
        }
        let mut s = lock(&self.state);
        if !s.queue.is_empty() || s.cancel || s.closed != was_closed {
            return;
        }
        s.sleeping = true;
        let (mut s, _) = self
            .wake
            .wait_timeout_while(s, d.unwrap_or(Duration::from_secs(3600)), |s| {
                s.queue.is_empty() && s.closed == was_closed && !s.cancel
            })
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.sleeping = false;
    }

    pub(super) fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }
}

/// A message sent and not answered yet.
struct Sent {
    seq: u64,
    bsend: usize,
    /// The work it carries, in seconds, when every function's time per item is known.
    estimate: Option<f64>,
    segments: Vec<(Box<dyn Outcomes>, i64, u32)>,
}

/// One worker rank as the manager sees it.
struct Worker {
    rank: u32,
    inflight: VecDeque<Sent>,
}

/// The manager's state (on its own thread).
pub(super) struct Manager {
    comm: Comm,
    shared: Arc<Shared>,
    workers: Vec<Worker>,
    info: Vec<RankInfo>,
    backlog: VecDeque<Work>,
    backlog_items: usize,
    seq: u64,
    bsend_outstanding: usize,
    /// Seconds per item of each function (by offset), smoothed.
    per_item: HashMap<i64, f64>,
}

impl Manager {
    /// Greets every worker (`HELLO`) and waits for each `READY`. Returns the manager and what
    /// the ranks said, or the reason the pool cannot start (the workers are stopped then).
    pub(super) fn handshake(comm: Comm, shared: Arc<Shared>, hello: &Hello) -> Result<Manager> {
        let bytes = wire::encode(hello)?;
        let size = comm.size();
        for rank in 1..size {
            comm.send(rank, wire::TAG_HELLO, &bytes);
        }
        let mut info: Vec<Option<RankInfo>> = vec![None; size as usize];
        let mut failures = Vec::new();
        let mut another_build = Vec::new();
        let mut waiting = size.saturating_sub(1);
        let mut nap = Nap::new();
        while waiting > 0 {
            let Some((source, tag, bytes)) = comm.poll(None) else {
                nap.idle_sleep(None);
                continue;
            };
            nap.reset();
            let ready: Ready = match (tag, wire::decode::<Ready>(&bytes)) {
                (wire::TAG_READY, Ok(r)) => r,
                (_, Err(e)) => rank_lost(&comm, source, None, &Lost::Protocol(e.to_string())),
                (tag, _) => rank_lost(
                    &comm,
                    source,
                    None,
                    &Lost::Protocol(format!("message tag {tag} before READY")),
                ),
            };
            let slot = &mut info[source as usize];
            if slot.is_some() {
                rank_lost(&comm, source, None, &Lost::Protocol("two READY".into()));
            }
            let place = RankInfo {
                rank: source,
                host: ready.host,
                pid: ready.pid,
            };
            match ready.init {
                Ok(()) => {}
                Err(why) if why.starts_with(ANOTHER_BUILD) => {
                    another_build.push(format!("rank {} on {}: {why}", source, place.host));
                }
                Err(why) => failures.push(format!("rank {} on {}: {why}", source, place.host)),
            }
            *slot = Some(place);
            waiting -= 1;
        }
        let info: Vec<RankInfo> = info.into_iter().flatten().collect();
        if !another_build.is_empty() {
            for rank in 1..size {
                comm.send(rank, wire::TAG_STOP, &[]);
            }
            return Err(Error::Protocol(another_build.join("; ")));
        }
        if !failures.is_empty() {
            lock(&shared.state).broken = Some(TaskError::initializer_failed(failures.join("; ")));
        }
        Ok(Manager {
            workers: (1..size)
                .map(|rank| Worker {
                    rank,
                    inflight: VecDeque::new(),
                })
                .collect(),
            comm,
            shared,
            info,
            backlog: VecDeque::new(),
            backlog_items: 0,
            seq: 0,
            bsend_outstanding: 0,
            per_item: HashMap::new(),
        })
    }

    /// What the workers said at the handshake.
    pub(super) fn ranks(&self) -> Vec<RankInfo> {
        self.info.clone()
    }

    /// The loop, until the executor is closed and every task has ended; then every worker is
    /// told to stop.
    pub(super) fn run(mut self) {
        let mut nap = Nap::new();
        loop {
            let (closed, cancel) = self.intake();
            if cancel {
                self.cancel_backlog();
            }
            let mut progressed = self.dispatch();
            progressed |= self.receive();
            if progressed {
                nap.reset();
                continue;
            }
            let busy = self.workers.iter().any(|w| !w.inflight.is_empty());
            if !busy && self.backlog.is_empty() {
                if closed {
                    break;
                }
                self.shared.nap(nap.idle_for(), closed);
            } else {
                self.shared.nap(nap.busy_for(), closed);
            }
        }
        for w in &self.workers {
            self.comm.send(w.rank, wire::TAG_STOP, &[]);
        }
    }

    /// Moves the callers' work to the backlog; returns `(closed, cancel)`.
    fn intake(&mut self) -> (bool, bool) {
        let mut s = lock(&self.shared.state);
        for w in s.queue.drain(..) {
            self.backlog_items += w.count as usize;
            self.backlog.push_back(w);
        }
        let cancel = std::mem::take(&mut s.cancel);
        (s.closed, cancel)
    }

    fn cancel_backlog(&mut self) {
        self.backlog_items = 0;
        for w in self.backlog.drain(..) {
            w.sink.fail(TaskError::cancelled());
        }
    }

    /// Sends work to every worker with room; returns whether anything was sent.
    fn dispatch(&mut self) -> bool {
        let mut sent = false;
        for depth in 0..DEPTH {
            for i in 0..self.workers.len() {
                if self.backlog.is_empty() {
                    return sent;
                }
                let w = &self.workers[i];
                let short = w
                    .inflight
                    .iter()
                    .all(|m| m.estimate.is_some_and(|t| t < PIPELINE_UNDER.as_secs_f64()));
                if w.inflight.len() == depth && short {
                    sent |= self.send_to(i);
                }
            }
        }
        sent
    }

    /// Free message slots over all workers.
    fn free_slots(&self) -> usize {
        self.workers
            .iter()
            .map(|w| DEPTH - w.inflight.len().min(DEPTH))
            .sum()
    }

    /// Packs one message for worker `i` from the front of the backlog and sends it: whole
    /// segments while the message holds under [`TARGET`] of estimated work and its share of
    /// the backlog; a segment of a function whose time is not known yet travels alone.
    fn send_to(&mut self, i: usize) -> bool {
        let share = self.backlog_items.div_ceil(self.free_slots().max(1)).max(1);
        let idle = self.workers[i].inflight.is_empty();
        let budget = (comm::BSEND_BUFFER / 2).saturating_sub(self.bsend_outstanding);
        let cap = if idle { wire::MAX_MESSAGE } else { budget };
        self.seq += 1;
        let mut w = Writer::new(self.seq, 256);
        let mut segments = Vec::new();
        let (mut items, mut work_s) = (0usize, 0.0f64);
        while let Some(front) = self.backlog.front() {
            if front.sink.cancelled() {
                if let Some(gone) = self.backlog.pop_front() {
                    self.backlog_items -= gone.count as usize;
                }
                continue;
            }
            let time = self
                .per_item
                .get(&front.entry)
                .map(|t| t * f64::from(front.count));
            let grown = w.len() + 16 + front.items.len() + comm::BSEND_OVERHEAD;
            let full = time.is_none()
                || work_s >= TARGET.as_secs_f64()
                || items >= share.min(MAX_ITEMS)
                || w.len() >= SOFT_BYTES;
            if grown > cap || (!segments.is_empty() && full) {
                break;
            }
            let Some(work) = self.backlog.pop_front() else {
                break;
            };
            self.backlog_items -= work.count as usize;
            if !work.sink.start() {
                continue;
            }
            w.task_segment(work.entry, work.count, &work.items);
            items += work.count as usize;
            segments.push((work.sink, work.entry, work.count));
            match time {
                Some(t) => work_s += t,
                // Unknown: it goes alone, and its time is learnt.
                None => break,
            }
        }
        if segments.is_empty() {
            return false;
        }
        let bytes = w.finish();
        let rank = self.workers[i].rank;
        let charge = bytes.len() + comm::BSEND_OVERHEAD;
        let bsend = if charge <= budget {
            self.comm.bsend(rank, wire::TAG_TASKS, &bytes);
            self.bsend_outstanding += charge;
            charge
        } else {
            // Too large for the buffer: this worker has nothing in flight, so it is
            // receiving, and a blocking send cannot wait on anything else.
            self.comm.send(rank, wire::TAG_TASKS, &bytes);
            0
        };
        let estimate = segments.iter().try_fold(0.0, |sum, (_, entry, count)| {
            Some(sum + self.per_item.get(entry)? * f64::from(*count))
        });
        self.workers[i].inflight.push_back(Sent {
            seq: self.seq,
            bsend,
            estimate,
            segments,
        });
        true
    }

    /// Handles every message that has arrived; returns whether there was one.
    fn receive(&mut self) -> bool {
        let mut any = false;
        while let Some((source, tag, bytes)) = self.comm.poll(None) {
            any = true;
            if tag != wire::TAG_RESULTS {
                self.lost(
                    source,
                    &Lost::Protocol(format!("unexpected message tag {tag}")),
                );
            }
            if let Err(e) = self.results(source, &bytes) {
                self.lost(source, &Lost::Protocol(e.to_string()));
            }
        }
        any
    }

    /// The `RESULTS` of the oldest message sent to `source`.
    fn results(&mut self, source: u32, bytes: &[u8]) -> Result<()> {
        let i = self
            .workers
            .iter()
            .position(|w| w.rank == source)
            .ok_or_else(|| Error::Protocol(format!("results from rank {source}")))?;
        let (seq, segments, mut r) = wire::open(bytes)?;
        let sent = self.workers[i]
            .inflight
            .pop_front()
            .ok_or_else(|| Error::Protocol("results of a message never sent".into()))?;
        self.bsend_outstanding -= sent.bsend;
        if seq != sent.seq || segments as usize != sent.segments.len() {
            return Err(Error::Protocol(format!(
                "results of message {seq} ({segments} segments), expected {} ({})",
                sent.seq,
                sent.segments.len()
            )));
        }
        for (sink, entry, count) in sent.segments {
            let seg = wire::result_segment(&mut r)?;
            if seg.count != count {
                return Err(Error::Protocol(format!(
                    "{} outcomes for {count} items",
                    seg.count
                )));
            }
            if count > 0 {
                let t = seg.elapsed_ns as f64 * 1e-9 / f64::from(count);
                let e = self.per_item.entry(entry).or_insert(t);
                *e = 0.5 * *e + 0.5 * t;
            }
            sink.deliver(seg);
        }
        Ok(())
    }

    /// A worker rank is out of the pool: see [`rank_lost`].
    fn lost(&self, rank: u32, why: &Lost) -> ! {
        let place = self.info.iter().find(|i| i.rank == rank);
        rank_lost(&self.comm, rank, place, why)
    }
}

/// The first words of a worker's refusal to run another build's tasks.
pub(super) const ANOTHER_BUILD: &str = "runs another build";

/// A worker rank is out of the pool: today the whole job ends (`MPI_Abort`), with a message
/// naming the rank.
///
/// The seam for a fault-tolerant MPI (ULFM: `MPIX_Comm_revoke`, `MPIX_Comm_shrink`): with
/// `MPI_ERRORS_RETURN` on the pool's communicator, a failed send or probe would name the lost
/// rank and arrive here; instead of aborting, the manager would end that rank's messages in
/// flight with [`TaskError::worker_died`] naming it, put its backlog back, shrink the
/// communicator and go on with the others.
pub(super) fn rank_lost(comm: &Comm, rank: u32, place: Option<&RankInfo>, why: &Lost) -> ! {
    let at = place.map_or(String::new(), |p| format!(" on {} (pid {})", p.host, p.pid));
    eprintln!(
        "spindle: MPI rank {rank}{at} is lost: {why}. Without a fault-tolerant MPI (ULFM) the \
         job cannot go on without it: aborting every rank (exit code {EXIT_RANK_LOST})."
    );
    comm.abort(EXIT_RANK_LOST)
}

/// How long to wait before looking again: at once while events are recent, then naps that
/// double up to [`NAP_MAX`].
pub(super) struct Nap {
    last: Instant,
    nap: Duration,
}

impl Nap {
    pub(super) fn new() -> Self {
        Nap {
            last: Instant::now(),
            nap: NAP_MIN,
        }
    }

    /// Something happened.
    pub(super) fn reset(&mut self) {
        self.last = Instant::now();
        self.nap = NAP_MIN;
    }

    /// Waiting for results: `Some(ZERO)` (yield and look again) within [`SPIN`] of the last
    /// event, then growing naps.
    pub(super) fn busy_for(&mut self) -> Option<Duration> {
        if self.last.elapsed() < SPIN {
            return Some(Duration::ZERO);
        }
        let d = self.nap;
        self.nap = (self.nap * 2).min(NAP_MAX);
        Some(d)
    }

    /// Nothing in flight: yield within [`SPIN`] of the last event, then sleep until woken.
    pub(super) fn idle_for(&mut self) -> Option<Duration> {
        if self.last.elapsed() < SPIN {
            Some(Duration::ZERO)
        } else {
            None
        }
    }

    /// Waiting for a message with nothing else to do: yield, then sleep `min(nap, cap)`.
    pub(super) fn idle_sleep(&mut self, cap: Option<Duration>) {
        match self.busy_for() {
            Some(d) if d.is_zero() => std::thread::yield_now(),
            Some(d) => std::thread::sleep(cap.map_or(d, |c| d.min(c))),
            None => {}
        }
    }
}
