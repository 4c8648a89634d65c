//! Where the outcomes of a pool call arrive ([`Outcomes`]), shared by the process
//! [`Pool`](super::Pool) and the thread [`dummy::Pool`](crate::multiprocessing::dummy::Pool);
//! what the caller holds is in `async_result.rs` and `imap.rs`.
//!
//! Outcomes arrive in blocks (a chunk's items, or part of them) from whichever thread runs
//! or supervises the work. Every item ends exactly once: with its value, with its own error,
//! or — when the pool is terminated or dropped — with the termination's error, at once.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use serde::de::DeserializeOwned;

use super::flat;
use super::reports::{decode_block, unreadable, whole_run, RAW_FROM};
use crate::error::{Error, Result, TaskError};
use crate::latch::{lock, wait_until_std as wait_until};

/// The outcomes of consecutive items `first..first + len`: the values of those that
/// succeeded and the errors of those that failed, both in input order — or, for a run of
/// flat values from a worker, their bytes, decoded by whoever takes the block (the consumer's
/// thread, straight into its own buffer: the supervisor only copies them).
#[derive(Debug)]
pub(crate) struct Block<R> {
    pub(crate) first: u64,
    pub(crate) len: u64,
    pub(crate) values: Vec<R>,
    pub(crate) errors: Vec<(u64, TaskError)>,
    /// Every item's value, not decoded yet (then `values` and `errors` are empty).
    raw: Option<Raw<R>>,
}

/// A run of flat values not decoded yet, and how to decode them.
pub(crate) struct Raw<R> {
    bytes: Vec<u8>,
    stride: usize,
    decode: DecodeRun<R>,
}

impl<R> std::fmt::Debug for Raw<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Raw({} bytes, stride {})", self.bytes.len(), self.stride)
    }
}

/// Decodes the flat values of items `first..first + count` into `values` (the ones that
/// decode) and `errors` (the others, by index). Monomorphised where `R` can be decoded, so
/// that a block's taker needs no bound on `R`.
type DecodeRun<R> = fn(
    bytes: &[u8],
    stride: usize,
    first: u64,
    count: u64,
    values: &mut Vec<R>,
    errors: &mut Vec<(u64, TaskError)>,
);

fn decode_run<R: DeserializeOwned>(
    bytes: &[u8],
    stride: usize,
    first: u64,
    count: u64,
    values: &mut Vec<R>,
    errors: &mut Vec<(u64, TaskError)>,
) {
    values.reserve(count as usize);
    if stride == 0 {
        for i in 0..count {
            match flat::decode::<R>(&[]) {
                Ok(x) => values.push(x),
                Err(e) => errors.push((first + i, unreadable::<R>(&e).with_task(first + i))),
            }
        }
        return;
    }
    for (i, v) in bytes.chunks_exact(stride).take(count as usize).enumerate() {
        match flat::decode::<R>(v) {
            Ok(x) => values.push(x),
            Err(e) => {
                let at = first + i as u64;
                errors.push((at, unreadable::<R>(&e).with_task(at)));
            }
        }
    }
}

impl<R> Block<R> {
    pub(crate) fn new(first: u64, capacity: usize) -> Self {
        Block {
            first,
            len: 0,
            values: Vec::with_capacity(capacity),
            errors: Vec::new(),
            raw: None,
        }
    }

    /// Items `first..first + count` whose values are the flat `bytes` (`count × stride`).
    pub(super) fn raw(first: u64, count: u64, bytes: Vec<u8>, stride: usize) -> Self
    where
        R: DeserializeOwned,
    {
        Block {
            first,
            len: count,
            values: Vec::new(),
            errors: Vec::new(),
            raw: Some(Raw {
                bytes,
                stride,
                decode: decode_run::<R>,
            }),
        }
    }

    /// Decodes the values still raw.
    pub(crate) fn materialize(&mut self) {
        if let Some(raw) = self.raw.take() {
            (raw.decode)(
                &raw.bytes,
                raw.stride,
                self.first,
                self.len,
                &mut self.values,
                &mut self.errors,
            );
        }
    }

    /// Appends the block's values to `values` and returns its errors (decoding raw values
    /// straight into `values`).
    pub(crate) fn drain_into(mut self, values: &mut Vec<R>) -> Vec<(u64, TaskError)> {
        match self.raw.take() {
            Some(raw) => {
                let mut errors = Vec::new();
                (raw.decode)(
                    &raw.bytes,
                    raw.stride,
                    self.first,
                    self.len,
                    values,
                    &mut errors,
                );
                errors
            }
            None => {
                values.append(&mut self.values);
                self.errors
            }
        }
    }

    pub(crate) fn value(&mut self, v: R) {
        self.values.push(v);
        self.len += 1;
    }

    pub(crate) fn error(&mut self, e: TaskError) {
        let at = self.first + self.len;
        self.errors.push((at, e.with_task(at)));
        self.len += 1;
    }

    /// An item whose flat value is `bytes`.
    pub(super) fn flat(&mut self, bytes: &[u8])
    where
        R: DeserializeOwned,
    {
        match flat::decode::<R>(bytes) {
            Ok(v) => self.value(v),
            Err(e) => self.error(unreadable::<R>(&e)),
        }
    }

    /// `len` items that all failed with `e`.
    pub(crate) fn failed(first: u64, len: u64, e: &TaskError) -> Self {
        let mut b = Block::new(first, 0);
        for _ in 0..len {
            b.error(e.clone());
        }
        b
    }
}

/// Where the outcomes of a call go, as the side that runs the work sees it.
pub(crate) trait Sink: Send + Sync {
    /// A chunk of this call is about to be handed to a worker: `false` when nobody wants its
    /// outcome any more (the consumer is gone, the future was cancelled), so the items are
    /// dropped instead.
    fn start(&self) -> bool;
    /// Items `first..first + count` are about to be handed to a worker: the indices of those
    /// nobody wants any more (a future cancelled while queued) are added to `skip`, in
    /// order, and they are dropped instead of run. (For sinks with an outcome per item;
    /// by default every item runs.)
    fn start_items(&self, first: u64, count: u32, skip: &mut Vec<u64>) {
        let _ = (first, count, skip);
    }
    /// Items `first..first + len` failed with `error`.
    fn fail(&self, first: u64, len: u64, error: &TaskError);
    /// Every item not delivered yet ends with `error` now; later deliveries are ignored.
    fn terminate(&self, error: &TaskError);
}

/// A [`Sink`] that decodes what a worker process sent.
pub(crate) trait ByteSink: Sink {
    /// Decodes `count` tagged outcomes of items `first..` from the front of `bytes` and
    /// delivers them; returns the bytes used. On a value that does not decode, the items
    /// from there on end with a codec error and the error is returned (the rest of `bytes`
    /// cannot be split any more).
    fn deliver_bytes(&self, first: u64, count: u32, bytes: &[u8]) -> Result<usize>;
}

/// How the consumer takes the outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// One by one, in input order (`imap`, `map`).
    Ordered,
    /// One by one, as they arrive (`imap_unordered`).
    Unordered,
    /// All at once when the last arrives (`map_async`, `apply_async`).
    Collect,
}

type Finish<R> = Box<dyn FnOnce(Vec<Block<R>>) + Send>;

/// The outcomes of one call: blocks delivered by the workers' side, taken by the caller's.
pub(crate) struct Outcomes<R> {
    store: Mutex<Store<R>>,
    cv: Condvar,
}

struct Store<R> {
    order: Order,
    /// Ordered and collect: blocks by their first index.
    ready: BTreeMap<u64, Block<R>>,
    /// Unordered: blocks as they arrived.
    arrived: VecDeque<Block<R>>,
    /// Ordered: the next index to hand out.
    next: u64,
    /// Items handed to the pool so far (indices `0..pulled`).
    pulled: u64,
    input_done: bool,
    delivered: u64,
    /// Items handed to the consumer (in blocks).
    taken: u64,
    /// Delivered index ranges, merged (`start → end`), to find what termination must fail.
    done: BTreeMap<u64, u64>,
    terminated: bool,
    cancelled: bool,
    waiters: usize,
    finish: Option<Finish<R>>,
}

impl<R: Send + 'static> Outcomes<R> {
    pub(crate) fn new(order: Order) -> Arc<Self> {
        Arc::new(Outcomes {
            store: Mutex::new(Store {
                order,
                ready: BTreeMap::new(),
                arrived: VecDeque::new(),
                next: 0,
                pulled: 0,
                input_done: false,
                delivered: 0,
                taken: 0,
                done: BTreeMap::new(),
                terminated: false,
                cancelled: false,
                waiters: 0,
                finish: None,
            }),
            cv: Condvar::new(),
        })
    }

    /// Collect mode: `finish` receives every block, in order, once the last item is in.
    pub(crate) fn on_finish(&self, finish: impl FnOnce(Vec<Block<R>>) + Send + 'static) {
        lock(&self.store).finish = Some(Box::new(finish));
    }

    /// Items `pulled..pulled + n` now exist; returns the index of the first.
    pub(crate) fn register(&self, n: u64) -> u64 {
        let mut s = lock(&self.store);
        let first = s.pulled;
        s.pulled += n;
        first
    }

    /// No more items will be registered.
    pub(crate) fn input_done(&self) {
        let mut s = lock(&self.store);
        s.input_done = true;
        self.settle(s);
    }

    /// Items registered so far.
    pub(crate) fn pulled(&self) -> u64 {
        lock(&self.store).pulled
    }

    /// Delivers a block.
    pub(crate) fn deliver(&self, block: Block<R>) {
        if block.len == 0 {
            return;
        }
        let mut s = lock(&self.store);
        if s.terminated || s.cancelled {
            return;
        }
        s.mark_done(block.first, block.first + block.len);
        s.delivered += block.len;
        match s.order {
            Order::Unordered => s.arrived.push_back(block),
            Order::Ordered | Order::Collect => {
                s.ready.insert(block.first, block);
            }
        }
        self.settle(s);
    }

    /// Wakes the consumer and, in collect mode, finishes once everything is in.
    fn settle(&self, mut s: MutexGuard<'_, Store<R>>) {
        if s.order == Order::Collect {
            if s.input_done && s.delivered >= s.pulled && s.finish.is_some() {
                let finish = s.finish.take().expect("checked");
                let blocks: Vec<Block<R>> = std::mem::take(&mut s.ready).into_values().collect();
                drop(s);
                finish(blocks);
                self.cv.notify_all();
            }
            return;
        }
        let wake = s.waiters > 0;
        drop(s);
        if wake {
            self.cv.notify_all();
        }
    }

    /// The next block of outcomes (in input order, or in arrival order), waiting until
    /// `until`. `None` when every registered item has been handed out (the caller registers
    /// more, or the input is done).
    pub(crate) fn next_block(&self, until: Option<Instant>) -> Option<Result<Block<R>>> {
        let mut s = lock(&self.store);
        loop {
            if let Some(b) = s.take_block() {
                s.taken += b.len;
                return Some(Ok(b));
            }
            if s.taken >= s.pulled {
                return None;
            }
            s.waiters += 1;
            let (g, ok) = wait_until(&self.cv, s, until, |s| s.has_block());
            s = g;
            s.waiters -= 1;
            if !ok {
                return Some(Err(Error::Timeout));
            }
        }
    }

    /// Whether the input is done and every item has been handed out.
    #[cfg(test)]
    pub(crate) fn exhausted(&self) -> bool {
        let s = lock(&self.store);
        s.input_done && s.taken >= s.pulled
    }
}

impl<R> Outcomes<R> {
    /// The consumer is gone: deliveries from now on are dropped, and the chunks not handed
    /// to a worker yet are not started.
    pub(crate) fn cancel(&self) {
        let mut s = lock(&self.store);
        s.cancelled = true;
        s.ready.clear();
        s.arrived.clear();
    }
}

impl<R: Send + 'static> Sink for Outcomes<R> {
    fn start(&self) -> bool {
        !lock(&self.store).cancelled
    }

    fn fail(&self, first: u64, len: u64, error: &TaskError) {
        self.deliver(Block::failed(first, len, error));
    }

    fn terminate(&self, error: &TaskError) {
        let mut s = lock(&self.store);
        if s.terminated {
            return;
        }
        // Every registered item not delivered yet fails now.
        let mut gaps = Vec::new();
        let mut at = 0;
        for (&start, &end) in &s.done {
            if start > at {
                gaps.push((at, start));
            }
            at = at.max(end);
        }
        if at < s.pulled {
            gaps.push((at, s.pulled));
        }
        for (start, end) in gaps {
            let b = Block::failed(start, end - start, error);
            s.mark_done(start, end);
            s.delivered += b.len;
            if !s.cancelled {
                match s.order {
                    Order::Unordered => s.arrived.push_back(b),
                    Order::Ordered | Order::Collect => {
                        s.ready.insert(start, b);
                    }
                }
            }
        }
        s.terminated = true;
        s.input_done = true;
        self.settle(s);
    }
}

impl<R: DeserializeOwned + Send + 'static> ByteSink for Outcomes<R> {
    fn deliver_bytes(&self, first: u64, count: u32, bytes: &[u8]) -> Result<usize> {
        // A big run of plain values: copied as they are, decoded by the consumer.
        if count >= RAW_FROM {
            if let Some((values, stride, used)) = whole_run(bytes, count) {
                self.deliver(Block::raw(first, u64::from(count), values.to_vec(), stride));
                return Ok(used);
            }
        }
        let (block, used, err) = decode_block::<R>(first, count, bytes);
        self.deliver(block);
        match err {
            Some(e) => Err(e),
            None => Ok(used),
        }
    }
}

impl<R> Store<R> {
    fn mark_done(&mut self, start: u64, end: u64) {
        let (mut start, mut end) = (start, end);
        // Merge with a range that ends where this starts, and one that starts where it ends.
        if let Some((&s0, &e0)) = self.done.range(..=start).next_back() {
            if e0 >= start {
                start = s0;
                end = end.max(e0);
                self.done.remove(&s0);
            }
        }
        if let Some(&e1) = self.done.get(&end) {
            self.done.remove(&end);
            end = e1;
        }
        self.done.insert(start, end);
    }

    fn has_block(&self) -> bool {
        match self.order {
            Order::Unordered => !self.arrived.is_empty(),
            _ => self.ready.contains_key(&self.next),
        }
    }

    fn take_block(&mut self) -> Option<Block<R>> {
        match self.order {
            Order::Unordered => self.arrived.pop_front(),
            _ => {
                let b = self.ready.remove(&self.next)?;
                self.next += b.len;
                Some(b)
            }
        }
    }
}

pub(crate) fn keep<R>(item: Result<R>, values: &mut Vec<R>, first: &mut Option<Error>) {
    match item {
        Ok(v) if first.is_none() => values.push(v),
        Ok(_) => {}
        Err(e) => {
            if first.is_none() {
                *first = Some(e);
            }
        }
    }
}

/// The items of one block, in order.
pub(crate) struct Cursor<R> {
    at: u64,
    end: u64,
    values: std::vec::IntoIter<R>,
    errors: std::vec::IntoIter<(u64, TaskError)>,
    next_error: Option<(u64, TaskError)>,
}

impl<R> Cursor<R> {
    pub(crate) fn new(mut b: Block<R>) -> Self {
        b.materialize();
        let mut errors = b.errors.into_iter();
        let next_error = errors.next();
        Cursor {
            at: b.first,
            end: b.first + b.len,
            values: b.values.into_iter(),
            errors,
            next_error,
        }
    }

    pub(crate) fn next(&mut self) -> Option<Result<R>> {
        if self.at >= self.end {
            return None;
        }
        let here = self.at;
        self.at += 1;
        match &self.next_error {
            Some((i, _)) if *i == here => {
                let (_, e) = self.next_error.take().expect("checked");
                self.next_error = self.errors.next();
                Some(Err(Error::Task(e)))
            }
            _ => self.values.next().map(Ok),
        }
    }
}

/// Assembles the blocks of a whole call: every value in order, or the first error by
/// position (Python's `map` raises the first failure; every item has run by then).
pub(crate) fn collect<R>(blocks: Vec<Block<R>>) -> Result<Vec<R>> {
    let total: u64 = blocks.iter().map(|b| b.len).sum();
    let mut values = Vec::with_capacity(total as usize);
    for b in blocks {
        if let Some((_, e)) = b.drain_into(&mut values).into_iter().next() {
            return Err(Error::Task(e));
        }
    }
    Ok(values)
}

/// What a call's iterator uses to pull more input into the pool.
pub(crate) trait Pull {
    /// Pulls up to `n` more items into the call: `Ok(0)` at the end of the input,
    /// `Err(Error::Shutdown)` when the pool no longer takes work.
    fn pull(&mut self, n: usize) -> Result<usize>;
    /// How many items may be pulled and not yet consumed.
    fn window(&self) -> usize;
    /// The consumer is gone: the items not started are dropped.
    fn cancel(&mut self);
}

#[cfg(test)]
mod tests;
