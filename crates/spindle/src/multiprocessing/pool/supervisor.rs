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

pub(crate) use super::chunk::{Chunk, KillReason, Segment};
use super::flat::FRAMED;
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

/// A chunk of estimated work below this may be followed by a second one on the same worker
/// (hiding the round trip); above it, one chunk at a time keeps slow items spread out.
const PREFETCH_BELOW: Duration = Duration::from_millis(5);
/// Pack single items of different calls into one message while their estimated work stays
/// below this.
const PACK_TARGET: Duration = Duration::from_millis(2);
/// The most items (and calls) packed into one message.
const PACK_MAX: usize = 4096;
/// How long the supervisor busy-waits around tiny tasks (see `Supervisor::spin`).
const SPIN_FOR: Duration = Duration::from_micros(60);
/// Wait this long before trying again to start a worker that failed to start.
const RESTART_AFTER: Duration = Duration::from_millis(100);

/// Writes as much of `parts` as the non-blocking socket takes now; returns how many bytes.
fn write_all_now(chan: &mut std::os::unix::net::UnixStream, parts: &[&[u8]]) -> usize {
    use std::io::{IoSlice, Write};
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut done = 0;
    while done < total {
        let mut skip = done;
        let mut slices = Vec::with_capacity(parts.len());
        for p in parts {
            if skip >= p.len() {
                skip -= p.len();
                continue;
            }
            slices.push(IoSlice::new(&p[skip..]));
            skip = 0;
        }
        match chan.write_vectored(&slices) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // Full (the rest waits for writability) or gone (its pidfd says so next).
            Err(_) => break,
        }
    }
    done
}

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
        for w in &mut self.workers {
            for (ci, c) in w.inflight.iter().enumerate() {
                let Some(pos) = c.position_of(job, index) else {
                    continue;
                };
                let running = ci == 0 && (pos == c.reported || !c.flush_each);
                if running && w.kill.is_none() {
                    w.kill = Some(KillReason::Stop { job, index });
                    let _ = w.process.terminate();
                    w.kill_at = Some(Instant::now() + grace);
                } else if !running {
                    // Not started: it ends now; its result, if it ever comes, is dropped.
                    if let Some((j, index)) = c.item_at(pos) {
                        j.sink.fail(index, 1, &TaskError::cancelled());
                    }
                }
                return;
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
        self.retry.is_empty() && self.workers.iter().all(|w| w.inflight.is_empty()) && {
            let s = lock(&self.shared.sched);
            s.jobs.is_empty()
                && s.live
                    .iter()
                    .filter_map(std::sync::Weak::upgrade)
                    .all(|j| lock(&j.q).input_done)
        }
    }

    fn has_room(&self, w: &Worker) -> bool {
        if w.retiring || w.kill.is_some() || w.exited || w.stop_sent {
            return false;
        }
        if let Some(limit) = self.settings.maxtasksperchild {
            if w.items_sent >= limit {
                return false;
            }
        }
        match w.inflight.len() {
            0 => true,
            // Not when a memory bound may retire the worker after its chunk: the next one
            // must go to a fresh worker.
            1 => {
                self.settings.max_memory.is_none()
                    && w.inflight[0].estimate.is_some_and(|e| e < PREFETCH_BELOW)
            }
            _ => false,
        }
    }

    /// Sends chunks to every worker with room.
    fn dispatch(&mut self) {
        self.shared.fresh.store(false, Ordering::Release);
        // First one chunk to every worker that holds none, then a second chunk to those
        // whose chunk is short (hiding the round trip): a chunk never waits behind another
        // while a worker is idle.
        for second in [false, true] {
            for i in 0..self.workers.len() {
                while self.has_room(&self.workers[i])
                    && (second || self.workers[i].inflight.is_empty())
                {
                    let allowance = self
                        .settings
                        .maxtasksperchild
                        .map_or(usize::MAX, |l| (l - self.workers[i].items_sent) as usize);
                    let Some(chunk) = self.next_chunk(allowance) else {
                        break;
                    };
                    self.send(i, chunk);
                }
            }
        }
        for i in 0..self.workers.len() {
            self.retire_if_done(i);
        }
    }

    /// Sends `STOP` to a worker that must go once it holds nothing.
    fn retire_if_done(&mut self, i: usize) {
        let closing = lock(&self.shared.sched).closed;
        let w = &mut self.workers[i];
        let spent = self
            .settings
            .maxtasksperchild
            .is_some_and(|l| w.items_sent >= l);
        if spent {
            w.retiring = true;
        }
        if w.inflight.is_empty() && !w.stop_sent && !w.exited && w.kill.is_none() {
            let done = closing && self.retry.is_empty() && {
                let s = lock(&self.shared.sched);
                s.jobs.is_empty()
                    && s.live
                        .iter()
                        .filter_map(std::sync::Weak::upgrade)
                        .all(|j| lock(&j.q).input_done)
            };
            let w = &mut self.workers[i];
            if w.retiring || done {
                let mut f = Vec::new();
                let _ = wire::push_frame(&mut f, wire::STOP, b"");
                w.out.extend_from_slice(&f);
                w.stop_sent = true;
                self.flush(i);
            }
        }
    }

    /// The next chunk to send: one to send again first, else cut from the queued calls.
    fn next_chunk(&mut self, allowance: usize) -> Option<Chunk> {
        if let Some(c) = self.retry.pop_front() {
            return Some(c);
        }
        let seq = self.next_seq;
        let mut chunk = Chunk::new(seq);
        let mut s = lock(&self.shared.sched);
        let mut est = Duration::ZERO;
        let mut skip = Vec::new();
        while let Some(job) = s.jobs.front().cloned() {
            let mut q = lock(&job.q);
            if q.closed || q.is_empty() {
                q.queued = false;
                drop(q);
                s.jobs.pop_front();
                continue;
            }
            let per_item = q.sizer.per_item();
            // Only one-task calls (apply, submit) are packed together, and only while every
            // function is timed and the work stays small; a call's own chunks keep their size.
            let single = q.total == Some(1);
            if !chunk.segments.is_empty() {
                let Some(t) = per_item.filter(|_| single) else {
                    break;
                };
                if est.as_secs_f64() + t > PACK_TARGET.as_secs_f64()
                    || chunk.segments.len() >= PACK_MAX
                    || chunk.total as usize >= allowance
                {
                    break;
                }
            }
            if !job.sink.start() {
                q.clear();
                q.queued = false;
                drop(q);
                s.jobs.pop_front();
                continue;
            }
            let room = allowance.saturating_sub(chunk.total as usize).max(1);
            let n = q.sizer.next(q.remaining()).min(room);
            let Some(pieces) = q.cut(n) else {
                break;
            };
            if q.is_empty() {
                q.queued = false;
                drop(q);
                s.jobs.pop_front();
            } else {
                drop(q);
            }
            // Items whose future was cancelled while queued are dropped here, never run.
            skip.clear();
            for p in &pieces {
                job.sink.start_items(p.first, p.count, &mut skip);
            }
            let mut count = 0u32;
            for p in pieces {
                let parts = if skip.is_empty() {
                    vec![p]
                } else {
                    p.without(&skip)
                };
                for p in parts {
                    count += p.count;
                    chunk.push(Segment::new(Arc::clone(&job), p));
                }
            }
            if count == 0 {
                continue;
            }
            chunk.flush_each |= job.timeout.is_some();
            match (chunk.estimate, per_item) {
                (Some(e), Some(t)) => {
                    let add = Duration::from_secs_f64(t * f64::from(count));
                    chunk.estimate = Some(e + add);
                    est += add;
                }
                _ => chunk.estimate = None,
            }
            if per_item.is_none()
                || !single
                || est >= PACK_TARGET
                || chunk.total as usize >= allowance.min(PACK_MAX)
            {
                break;
            }
        }
        drop(s);
        if chunk.segments.is_empty() {
            return None;
        }
        self.next_seq += 1;
        Some(chunk)
    }

    /// Writes `chunk` to worker `i` and keeps it in flight.
    fn send(&mut self, i: usize, chunk: Chunk) {
        let w = &mut self.workers[i];
        // The frame's header and each segment's header; the segments' items are written from
        // where they are (no copy) when the socket takes them at once.
        let mut head = Vec::with_capacity(wire::HEADER + 13 + 20 * chunk.segments.len());
        let at = wire::begin_frame(&mut head, wire::TASK);
        head.extend_from_slice(&chunk.seq.to_le_bytes());
        head.push(if chunk.flush_each {
            wire::FLUSH_EACH
        } else {
            0
        });
        head.extend_from_slice(&(chunk.segments.len() as u32).to_le_bytes());
        let mut cuts = Vec::with_capacity(chunk.segments.len());
        let mut len = head.len() - at - wire::HEADER;
        for s in &chunk.segments {
            let entry = if s.stride == FRAMED {
                s.job.entry
            } else {
                s.job.run_entry
            };
            head.extend_from_slice(&entry.to_le_bytes());
            head.extend_from_slice(&s.count.to_le_bytes());
            head.extend_from_slice(&s.stride.to_le_bytes());
            head.extend_from_slice(&(s.bytes.len() as u32).to_le_bytes());
            cuts.push(head.len());
            len += 20 + s.bytes.len();
        }
        match wire::header(wire::TASK, len) {
            Ok(h) => head[at..at + wire::HEADER].copy_from_slice(&h),
            Err(_) => {
                // Larger than a frame may be: the items fail, nothing is sent.
                chunk.fail_unreported(&TaskError::failed(
                    "the chunk's arguments exceed the 1 GiB message limit",
                ));
                return;
            }
        }
        if w.inflight.is_empty() {
            w.item_started = Instant::now();
        }
        w.items_sent += u64::from(chunk.total);
        if w.out_pos < w.out.len() || chunk.segments.len() > 64 {
            // Behind bytes still waiting, or many small segments (packed single tasks): one
            // buffer.
            let mut from = 0;
            for (s, &cut) in chunk.segments.iter().zip(&cuts) {
                w.out.extend_from_slice(&head[from..cut]);
                w.out.extend_from_slice(&s.bytes);
                from = cut;
            }
        } else {
            let mut parts = Vec::with_capacity(2 * cuts.len() + 1);
            let mut from = 0;
            for (s, &cut) in chunk.segments.iter().zip(&cuts) {
                parts.push(&head[from..cut]);
                parts.push(&s.bytes[..]);
                from = cut;
            }
            let written = write_all_now(&mut w.chan, &parts);
            // What the socket did not take waits in the buffer for writability.
            let mut skip = written;
            for p in parts {
                if skip >= p.len() {
                    skip -= p.len();
                    continue;
                }
                w.out.extend_from_slice(&p[skip..]);
                skip = 0;
            }
        }
        w.inflight.push_back(chunk);
        self.flush(i);
    }

    /// Writes what worker `i`'s buffer holds; waits for writability if the socket is full.
    fn flush(&mut self, i: usize) {
        let w = &mut self.workers[i];
        while w.out_pos < w.out.len() {
            match std::io::Write::write(&mut w.chan, &w.out[w.out_pos..]) {
                Ok(n) => w.out_pos += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    // The worker is gone; its pidfd says so next.
                    w.out.clear();
                    w.out_pos = 0;
                    break;
                }
            }
        }
        if w.out_pos == w.out.len() {
            w.out.clear();
            w.out_pos = 0;
        }
        let want = w.out_pos < w.out.len();
        if want != w.want_write {
            w.want_write = want;
            let interest = if want {
                Interest::READ_WRITE
            } else {
                Interest::READ
            };
            let _ = self.epoll.modify(w.chan.as_fd(), w.id * 4 + CHAN, interest);
        }
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
