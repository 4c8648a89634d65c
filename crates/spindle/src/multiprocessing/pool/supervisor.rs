//! The supervisor: one thread per pool running one event loop (epoll) over every worker's
//! channel, exit descriptor (pidfd) and stderr pipe, a timerfd for time limits and an
//! eventfd for callers' wake-ups. Not a thread per worker.
//!
//! A chunk goes to one worker and its results come back on that worker's channel only, so
//! the supervisor always knows what each worker holds: when a pidfd turns readable (the
//! death itself, an event, not a poll), whatever the worker still held ends with an error
//! and a fresh worker takes its place.

use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod death;
mod dispatch;

pub(crate) use super::chunk::{Chunk, KillReason, Segment};
use super::job::{Command, Shared};
use super::protocol::{self as wire, Reader, ResultsHeader};
use super::spawn::{start_worker, Settings, Worker};
use super::stderr::Relay;
use crate::error::{Error, TaskError};
use crate::latch::lock;
use crate::sys::{self, event::Epoll, event::Interest, event::Timer};

const WAKE: u64 = u64::MAX;
const TIMER: u64 = u64::MAX - 1;
const CHAN: u64 = 0;
const EXIT: u64 = 1;
const ERR: u64 = 2;

/// How long the supervisor busy-waits around tiny tasks (see `Supervisor::spin`).
const SPIN_FOR: Duration = Duration::from_micros(60);
/// Wait this long before trying again to start a worker that failed to start.
const RESTART_AFTER: Duration = Duration::from_millis(100);

/// The event loop of one pool.
pub(crate) struct Supervisor {
    pub(crate) shared: Arc<Shared>,
    pub(crate) settings: Arc<Settings>,
    epoll: Epoll,
    timer: Timer,
    _private: [sys::fork_private::Registration; 2],
    workers: Vec<Worker>,
    next_id: u64,
    next_seq: u64,
    retry: VecDeque<Chunk>,
    relay: Option<Relay>,
    oom_seen: Option<u64>,
    restart_at: Option<Instant>,
    stopping_all: bool,
    /// When a chunk of tiny tasks was last delivered.
    recent_short: Option<Instant>,
}

impl Supervisor {
    /// A supervisor with the workers started by the caller.
    pub(crate) fn new(shared: Arc<Shared>, settings: Arc<Settings>) -> crate::Result<Supervisor> {
        let epoll = Epoll::new(64)?;
        let timer = Timer::new()?;
        epoll.add(shared.wake.as_fd(), WAKE, Interest::READ)?;
        epoll.add(timer.as_fd(), TIMER, Interest::READ)?;
        let private = [
            sys::fork_private::register(epoll.as_fd()),
            sys::fork_private::register(timer.as_fd()),
        ];
        Ok(Supervisor {
            shared,
            settings,
            epoll,
            timer,
            _private: private,
            workers: Vec::new(),
            next_id: 0,
            next_seq: 0,
            retry: VecDeque::new(),
            relay: None,
            oom_seen: None,
            restart_at: None,
            stopping_all: false,
            recent_short: None,
        })
    }

    /// The thread that relays workers' stderr lines, started when the first line comes
    /// (a pool whose workers print nothing never has one). `None` if it cannot start: the
    /// lines are then kept for the death reports but not relayed.
    fn relay(&mut self) -> Option<&Relay> {
        if self.relay.is_none() {
            self.relay = Relay::start().ok();
        }
        self.relay.as_ref()
    }

    /// Starts one worker now (on the calling thread) and watches it.
    pub(crate) fn add_worker(&mut self) -> crate::Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        let w = start_worker(&self.settings, id)?;
        self.epoll
            .add(w.chan.as_fd(), id * 4 + CHAN, Interest::READ)?;
        if let Some(fd) = w.process.sentinel() {
            self.epoll.add(fd, id * 4 + EXIT, Interest::READ)?;
        }
        if let Some(tap) = &w.tap {
            self.epoll.add(tap.fd(), id * 4 + ERR, Interest::READ)?;
        }
        let mut s = lock(&self.shared.sched);
        s.starts += 1;
        s.pids.push(w.pid);
        drop(s);
        self.workers.push(w);
        Ok(())
    }

    /// The loop; returns when the pool is terminated, or closed and done.
    pub(crate) fn run(mut self) {
        // The cgroup's OOM count is read right after the first chunk is sent, off the path of
        // the pool's first result (reading two files takes tens of microseconds); a worker
        // killed by the OOM killer before any chunk held no task to report it for.
        let mut oom_read = false;
        loop {
            let timeout = self.arm_timer();
            let mut events = self.spin();
            if events.is_empty() {
                // About to sleep: a caller that adds work from now on wakes us.
                self.shared.idle.store(true, Ordering::SeqCst);
                if !self.work_waiting() {
                    events = self.epoll.wait(timeout).unwrap_or_default();
                }
            }
            self.shared.idle.store(false, Ordering::SeqCst);
            for ev in events {
                match ev.token {
                    WAKE => self.shared.wake.drain(),
                    TIMER => self.timer.drain(),
                    token => {
                        let (id, kind) = (token / 4, token % 4);
                        let Some(i) = self.workers.iter().position(|w| w.id == id) else {
                            continue;
                        };
                        match kind {
                            CHAN if ev.writable => self.flush(i),
                            CHAN => self.read(i),
                            EXIT => self.workers[i].exited = true,
                            _ => {
                                if self.workers[i].tap.is_some() {
                                    let _ = self.relay();
                                    if let (Some(tap), relay) =
                                        (&mut self.workers[i].tap, self.relay.as_ref())
                                    {
                                        tap.pump(relay);
                                    }
                                }
                            }
                        }
                        if ev.writable && ev.readable && kind == CHAN {
                            self.read(i);
                        }
                    }
                }
            }
            if self.commands() {
                break;
            }
            self.check_deadlines();
            self.reap();
            if self.finished() {
                break;
            }
            self.maintain();
            self.dispatch();
            if !oom_read && self.next_seq > 0 {
                oom_read = true;
                self.oom_seen = sys::memory::oom_kill_count();
            }
        }
        self.end();
    }

    /// Busy-waits a short while for the next event when the work in flight (or the work just
    /// delivered) is tiny: an `apply` loop then costs the worker's wake-up and the caller's,
    /// not also two of the supervisor's (a wake-up is 10–20 µs on a small virtual machine;
    /// a tiny task is far less). Long chunks never make it spin: it would take a core from
    /// the workers.
    fn spin(&mut self) -> Vec<sys::event::Event> {
        let short = |e: Option<Duration>| e.is_some_and(|e| e < SPIN_FOR);
        let busy_short = self
            .workers
            .iter()
            .any(|w| w.inflight.iter().any(|c| short(c.estimate)));
        if !(busy_short || self.recent_short.is_some_and(|t| t.elapsed() < SPIN_FOR)) {
            return Vec::new();
        }
        let until = Instant::now() + SPIN_FOR;
        loop {
            match self.epoll.wait(Some(Duration::ZERO)) {
                Ok(ev) if !ev.is_empty() => return ev,
                Err(_) => return Vec::new(),
                Ok(_) => {}
            }
            if self.shared.fresh.load(Ordering::Acquire) || Instant::now() >= until {
                return Vec::new();
            }
            // Yield rather than spin: on a machine with fewer cores than busy threads (the
            // caller may be spinning on its future too), the worker must get the core.
            std::thread::yield_now();
        }
    }

    /// Whether a queued call could go to a worker now.
    fn work_waiting(&self) -> bool {
        let has_room = self.workers.iter().any(|w| self.has_room(w));
        has_room && (!self.retry.is_empty() || !lock(&self.shared.sched).jobs.is_empty())
    }

    /// Handles callers' commands; returns `true` when the pool was terminated.
    fn commands(&mut self) -> bool {
        let (commands, terminated) = {
            let mut s = lock(&self.shared.sched);
            (std::mem::take(&mut s.commands), s.terminated)
        };
        if terminated {
            return true;
        }
        for c in commands {
            match c {
                Command::Stop { job, index, grace } => self.stop_task(job, index, grace),
                Command::Signal { kill } => {
                    for w in &mut self.workers {
                        w.kill = Some(KillReason::Terminate);
                        let _ = if kill {
                            w.process.kill()
                        } else {
                            w.process.terminate()
                        };
                    }
                    self.fail_everything(&TaskError::cancelled());
                    let mut s = lock(&self.shared.sched);
                    s.closed = true;
                    s.terminated = true;
                    return true;
                }
            }
        }
        false
    }

    fn stop_task(&mut self, job: usize, index: u64, grace: Duration) {
        for i in 0..self.workers.len() {
            let w = &mut self.workers[i];
            let Some((ci, seq, pos, running)) =
                w.inflight.iter().enumerate().find_map(|(ci, c)| {
                    let pos = c.position_of(job, index)?;
                    let running = ci == 0 && (pos == c.reported || !c.flush_each);
                    Some((ci, c.seq, pos, running))
                })
            else {
                continue;
            };
            if running && w.kill.is_none() {
                w.kill = Some(KillReason::Stop { job, index });
                let _ = w.process.terminate();
                w.kill_at = Some(Instant::now() + grace);
                return;
            }
            // If the worker dies (it may be being killed for another item of its chunk), the
            // item ends cancelled and is not sent again.
            w.also_stop.push((job, index));
            if !running {
                // Not started: it ends now, and the worker is told not to run it (it looks
                // for that before each chunk and while it works, D162); should it run
                // anyway, its result is dropped.
                if let Some((j, index)) = w.inflight[ci].item_at(pos) {
                    j.sink.fail(index, 1, &TaskError::cancelled());
                }
                let mut f = Vec::with_capacity(wire::HEADER + 12);
                let at = wire::begin_frame(&mut f, wire::SKIP);
                f.extend_from_slice(&seq.to_le_bytes());
                f.extend_from_slice(&pos.to_le_bytes());
                if wire::end_frame(&mut f, at).is_ok() {
                    w.out.extend_from_slice(&f);
                    self.flush(i);
                }
            }
            return;
        }
        // Cut but waiting to be sent again (its worker died): taken out, cancelled.
        for c in std::mem::take(&mut self.retry) {
            if let Some(c) = c.without_stopped(&[(job, index)]) {
                self.retry.push_back(c);
            }
        }
    }

    /// Kills workers whose running item passed its time limit, and stopped workers whose
    /// grace period ended.
    fn check_deadlines(&mut self) {
        let now = Instant::now();
        for w in &mut self.workers {
            if w.exited {
                continue;
            }
            if let Some(at) = w.kill_at {
                if now >= at {
                    let _ = w.process.kill();
                    w.kill_at = None;
                }
            }
            if w.kill.is_some() {
                continue;
            }
            if let Some((deadline, seq, at)) = w.deadline() {
                if now >= deadline {
                    w.kill = Some(KillReason::Timeout { seq, at });
                    let _ = w.process.kill();
                }
            }
        }
        if self.restart_at.is_some_and(|t| now >= t) {
            self.restart_at = None;
        }
    }

    /// Sets the timer to the next deadline; returns how long epoll may wait besides.
    fn arm_timer(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let mut next: Option<Instant> = self.restart_at;
        for w in &self.workers {
            let d = [w.kill_at, w.deadline().map(|(d, _, _)| d)];
            for t in d.into_iter().flatten() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        let _ = self
            .timer
            .set(next.map(|t| t.saturating_duration_since(now)));
        None
    }

    /// Reads what worker `i` sent.
    fn read(&mut self, i: usize) {
        let mut buf = std::mem::take(&mut self.workers[i].inbuf);
        loop {
            let want = buf.wanted(64 * 1024).min(1 << 22);
            let n = match buf.fill(&mut self.workers[i].chan, want) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            loop {
                match wire::split_frame(buf.data()) {
                    Ok(Some((kind, range))) => {
                        let r = self.frame(i, kind, &buf.data()[range.clone()]);
                        buf.consume(range.end);
                        if let Err(e) = r {
                            self.broken_worker(i, &e);
                            buf.clear();
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.broken_worker(i, &e);
                        buf.clear();
                        break;
                    }
                }
            }
            if n < want {
                break;
            }
        }
        self.workers[i].inbuf = buf;
    }

    /// A worker that sent bytes that make no sense is killed; what it held ends with a
    /// protocol error.
    fn broken_worker(&mut self, i: usize, e: &Error) {
        let w = &mut self.workers[i];
        eprintln!(
            "spindle: pool worker {} broke the protocol ({e}); killing it",
            w.pid
        );
        if w.kill.is_none() {
            w.kill = Some(KillReason::Terminate);
        }
        let _ = w.process.kill();
        let err = TaskError::failed(format!("the worker broke the protocol: {e}"));
        for c in w.inflight.drain(..) {
            c.fail_unreported(&err);
        }
    }

    fn frame(&mut self, i: usize, kind: u8, payload: &[u8]) -> crate::Result<()> {
        match kind {
            wire::READY => {
                // Its time limits count from now: starting up is not its tasks' time.
                let w = &mut self.workers[i];
                w.ready = true;
                w.item_started = Instant::now();
                Ok(())
            }
            wire::INIT_FAILED => {
                let message = String::from_utf8_lossy(payload).into_owned();
                self.break_pool(TaskError::initializer_failed(message));
                Ok(())
            }
            wire::RESULTS => self.results(i, payload),
            other => Err(Error::Protocol(format!("unexpected message kind {other}"))),
        }
    }

    fn results(&mut self, i: usize, payload: &[u8]) -> crate::Result<()> {
        let mut r = Reader::new(payload);
        let h = ResultsHeader::read(&mut r)?;
        let mut items = r.rest();
        let now = Instant::now();
        let w = &mut self.workers[i];
        let Some(chunk) = w.inflight.front_mut() else {
            return Err(Error::Protocol("results for no chunk".into()));
        };
        if chunk.seq != h.seq
            || chunk.reported != h.offset
            || h.count > chunk.total - chunk.reported
        {
            return Err(Error::Protocol(format!(
                "results for chunk {} at {} ({} items) do not match chunk {} at {}",
                h.seq, h.offset, h.count, chunk.seq, chunk.reported
            )));
        }
        let mut left = h.count;
        let mut bad: Option<Error> = None;
        while left > 0 {
            let seg = &chunk.segments[chunk.seg];
            let k = left.min(seg.count - chunk.seg_off);
            let first = seg.first + u64::from(chunk.seg_off);
            match &bad {
                Some(e) => seg.job.sink.fail(
                    first,
                    u64::from(k),
                    &TaskError::failed(format!("the result could not be read: {e}")),
                ),
                None => match seg.job.sink.deliver_bytes(first, k, items) {
                    Ok(used) => items = &items[used..],
                    Err(e) => bad = Some(e),
                },
            }
            chunk.advance(k);
            left -= k;
        }
        chunk.elapsed_ns += h.elapsed_ns;
        w.item_started = now;
        if !h.last {
            return Ok(());
        }
        if chunk.reported != chunk.total {
            return Err(Error::Protocol(format!(
                "chunk {} ended after {} of its {} items",
                chunk.seq, chunk.reported, chunk.total
            )));
        }
        let chunk = w.inflight.pop_front().expect("checked above");
        w.items_done += u64::from(chunk.total);
        if chunk.estimate.is_some_and(|e| e < SPIN_FOR) {
            self.recent_short = Some(now);
        }
        self.observe(&chunk);
        let w = &mut self.workers[i];
        if let Some(limit) = self.settings.max_memory {
            if sys::memory::resident_bytes(w.pid).is_ok_and(|rss| rss > limit) {
                w.retiring = true;
            }
        }
        Ok(())
    }

    /// Learns how long the chunk's items took, per call and per function.
    fn observe(&self, chunk: &Chunk) {
        if chunk.total == 0 {
            return;
        }
        let elapsed = Duration::from_nanos(chunk.elapsed_ns);
        let per_item = elapsed.as_secs_f64() / f64::from(chunk.total);
        // A call's segments follow one another (a cut in pieces); packed single tasks are
        // thousands of calls of a few functions: each call learns once, each function once.
        let mut last: Option<*const super::job::ProcJob> = None;
        let mut learned: Vec<(u64, f64)> = Vec::new();
        for s in &chunk.segments {
            if s.count == 0 || last == Some(Arc::as_ptr(&s.job)) {
                continue;
            }
            last = Some(Arc::as_ptr(&s.job));
            let mut q = lock(&s.job.q);
            q.sizer.observe(
                s.count as usize,
                Duration::from_secs_f64(per_item * f64::from(s.count)),
            );
            let t = q.sizer.per_item();
            drop(q);
            if let Some(t) = t {
                match learned.iter_mut().find(|(k, _)| *k == s.job.key) {
                    Some(slot) => slot.1 = t,
                    None => learned.push((s.job.key, t)),
                }
            }
        }
        if !learned.is_empty() {
            let mut estimates = lock(&self.shared.estimates);
            for (key, t) in learned {
                estimates.insert(key, t);
            }
        }
    }

    /// Starts workers until the pool has its number of working ones.
    fn maintain(&mut self) {
        let (closed, broken) = {
            let s = lock(&self.shared.sched);
            (s.closed, s.broken.is_some())
        };
        if broken || self.restart_at.is_some() {
            return;
        }
        if closed && self.idle_and_empty() {
            return;
        }
        let working = self
            .workers
            .iter()
            .filter(|w| !w.retiring && w.kill.is_none() && !w.exited)
            .count();
        for _ in working..self.settings.processes {
            if let Err(e) = self.add_worker() {
                if self.workers.is_empty() {
                    self.break_pool(TaskError::failed(format!("cannot start a worker: {e}")));
                } else {
                    self.restart_at = Some(Instant::now() + RESTART_AFTER);
                }
                return;
            }
        }
    }

    /// Whether nothing is queued or running.
    fn idle_and_empty(&self) -> bool {
        self.retry.is_empty()
            && self.workers.iter().all(|w| w.inflight.is_empty())
            && self.calls_drained()
    }

    /// Whether no call has items queued and every live call's input has ended.
    fn calls_drained(&self) -> bool {
        let s = lock(&self.shared.sched);
        s.jobs.is_empty()
            && s.live
                .iter()
                .filter_map(std::sync::Weak::upgrade)
                .all(|j| lock(&j.q).input_done)
    }

    /// Whether the pool is done: closed with nothing left and every worker gone.
    fn finished(&self) -> bool {
        let s = lock(&self.shared.sched);
        if s.terminated {
            return true;
        }
        let broken = s.broken.is_some();
        let closed = s.closed;
        drop(s);
        (closed || broken) && self.workers.is_empty() && (broken || self.idle_and_empty())
    }

    /// Kills and reaps every worker left, ends every call left.
    fn end(mut self) {
        self.stopping_all = true;
        let terminated = lock(&self.shared.sched).terminated;
        for w in &mut self.workers {
            if w.kill.is_none() {
                w.kill = Some(KillReason::Terminate);
            }
            let _ = w.process.kill();
        }
        if terminated {
            self.fail_everything(&TaskError::cancelled());
        }
        for w in std::mem::take(&mut self.workers) {
            let _ = self.epoll.delete(w.chan.as_fd());
            let _ = w.process.join();
        }
        let mut s = lock(&self.shared.sched);
        s.pids.clear();
        s.finished = true;
    }
}
