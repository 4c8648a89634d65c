//! Handing work to workers: which worker gets a chunk, how a chunk is cut from the queued
//! calls (packing single tasks of timed functions), how it is written (from where its items
//! are), and when a worker is told to stop.

use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Chunk, Segment, Supervisor, CHAN};
use crate::error::TaskError;
use crate::latch::lock;
use crate::multiprocessing::pool::flat::FRAMED;
use crate::multiprocessing::pool::protocol as wire;
use crate::multiprocessing::pool::spawn::Worker;
use crate::sys::event::Interest;

/// A chunk of estimated work below this may be followed by a second one on the same worker
/// (hiding the round trip); above it, one chunk at a time keeps slow items spread out.
const PREFETCH_BELOW: Duration = Duration::from_millis(5);
/// Pack single items of different calls into one message while their estimated work stays
/// below this.
const PACK_TARGET: Duration = Duration::from_millis(2);
/// The most items (and calls) packed into one message.
const PACK_MAX: usize = 4096;
/// Chunks of at least this many bytes are written from where their items are (`writev`);
/// smaller ones are copied into the worker's buffer (no allocation for the list of parts).
const WRITE_IN_PLACE_FROM: usize = 16 << 10;

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

impl Supervisor {
    pub(super) fn has_room(&self, w: &Worker) -> bool {
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
    pub(super) fn dispatch(&mut self) {
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
            let done = closing && self.retry.is_empty() && self.calls_drained();
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
        let len = 13
            + chunk
                .segments
                .iter()
                .map(|s| 20 + s.bytes.len())
                .sum::<usize>();
        let Ok(frame) = wire::header(wire::TASK, len) else {
            // Larger than a frame may be: the items fail, nothing is sent.
            chunk.fail_unreported(&TaskError::failed(
                "the chunk's arguments exceed the 1 GiB message limit",
            ));
            return;
        };
        if w.inflight.is_empty() {
            w.item_started = Instant::now();
        }
        w.items_sent += u64::from(chunk.total);
        // The frame's header, then each segment's header and its items.
        let put_head = |out: &mut Vec<u8>| {
            out.extend_from_slice(&frame);
            out.extend_from_slice(&chunk.seq.to_le_bytes());
            out.push(if chunk.flush_each {
                wire::FLUSH_EACH
            } else {
                0
            });
            out.extend_from_slice(&(chunk.segments.len() as u32).to_le_bytes());
        };
        let put_segment = |out: &mut Vec<u8>, s: &Segment| {
            let entry = if s.stride == FRAMED {
                s.job.entry
            } else {
                s.job.run_entry
            };
            out.extend_from_slice(&entry.to_le_bytes());
            out.extend_from_slice(&s.count.to_le_bytes());
            out.extend_from_slice(&s.stride.to_le_bytes());
            out.extend_from_slice(&(s.bytes.len() as u32).to_le_bytes());
        };
        if len < WRITE_IN_PLACE_FROM || w.out_pos < w.out.len() || chunk.segments.len() > 64 {
            // Small, behind bytes still waiting, or many small segments (packed single
            // tasks): copied into the worker's buffer and written at once.
            put_head(&mut w.out);
            for s in &chunk.segments {
                put_segment(&mut w.out, s);
                w.out.extend_from_slice(&s.bytes);
            }
        } else {
            // Big: the segments' items are written from where they are (no copy) when the
            // socket takes them at once.
            let mut head = Vec::with_capacity(wire::HEADER + 13 + 20 * chunk.segments.len());
            put_head(&mut head);
            let mut cuts = Vec::with_capacity(chunk.segments.len());
            for s in &chunk.segments {
                put_segment(&mut head, s);
                cuts.push(head.len());
            }
            let mut parts = Vec::with_capacity(2 * cuts.len());
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
    pub(super) fn flush(&mut self, i: usize) {
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
}
