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
use super::protocol as wire;
use crate::error::{Error, Result, TaskError};
use crate::latch::{lock, wait_until_std as wait_until};
use crate::panic::PanicReport;

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
    fn raw(first: u64, count: u64, bytes: Vec<u8>, stride: usize) -> Self
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
    fn flat(&mut self, bytes: &[u8])
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

/// Decodes one outcome from the front of `bytes`: the item's value or its own error, and the
/// bytes after it.
///
/// # Errors
///
/// When the bytes do not hold one outcome (a run of flat values counts as one only when it
/// holds one value).
// The pool's own sinks read with `Reports`; this is for executors that run the pool's item
// trampolines elsewhere (the MPI executor's ranks).
#[allow(dead_code)]
pub(crate) fn decode_one<R: DeserializeOwned>(
    bytes: &[u8],
) -> Result<(std::result::Result<R, TaskError>, &[u8])> {
    let mut reports = Reports::new(bytes);
    let outcome = reports.next::<R>()?;
    reports.check_end_of_run()?;
    Ok((outcome, reports.rest))
}

/// Reads a worker's outcomes one item at a time: tagged items, and the values of runs of
/// flat values (`trampoline.rs`). Bytes from a worker are untrusted: every length is checked.
#[derive(Debug)]
pub(crate) struct Reports<'a> {
    start: usize,
    rest: &'a [u8],
    /// The values left in the run being read, and their stride.
    run: &'a [u8],
    run_left: u32,
    stride: usize,
}

impl<'a> Reports<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reports {
            start: bytes.len(),
            rest: bytes,
            run: &[],
            run_left: 0,
            stride: 0,
        }
    }

    /// The next item's outcome. A flat value that does not decode is that item's error (the
    /// run's stride still cuts the rest).
    ///
    /// # Errors
    ///
    /// When the bytes cannot be split any more (a malformed tag, length or postcard value).
    #[inline]
    pub(crate) fn next<R: DeserializeOwned>(
        &mut self,
    ) -> Result<std::result::Result<R, TaskError>> {
        if self.run_left == 0 {
            match self.rest.split_first() {
                Some((&wire::TAG_RUN, tail)) => self.open_run(tail)?,
                _ => {
                    let (outcome, tail) = decode_tagged::<R>(self.rest)?;
                    self.rest = tail;
                    return Ok(outcome);
                }
            }
        }
        let (value, tail) = self.run.split_at(self.stride);
        self.run = tail;
        self.run_left -= 1;
        Ok(flat::decode::<R>(value).map_err(|e| unreadable::<R>(&e)))
    }

    /// When a run is open, decodes up to `max` of its values into `block`; returns how many.
    #[inline]
    pub(crate) fn take_run<R: DeserializeOwned>(&mut self, max: u32, block: &mut Block<R>) -> u32 {
        let k = self.run_left.min(max);
        if k == 0 {
            return 0;
        }
        let (values, tail) = self.run.split_at(k as usize * self.stride);
        self.run = tail;
        self.run_left -= k;
        block.values.reserve(k as usize);
        if self.stride == 0 {
            for _ in 0..k {
                block.flat(&[]);
            }
            return k;
        }
        let mut done = 0u64;
        for v in values.chunks_exact(self.stride) {
            match flat::decode::<R>(v) {
                Ok(x) => {
                    block.values.push(x);
                    done += 1;
                }
                Err(e) => {
                    block.len += done;
                    done = 0;
                    block.error(unreadable::<R>(&e));
                }
            }
        }
        block.len += done;
        k
    }

    #[cold]
    fn open_run(&mut self, tail: &'a [u8]) -> Result<()> {
        let bad = || Error::Protocol("a malformed run of values in a pool result".into());
        let (count, rest) = tail.split_first_chunk::<4>().ok_or_else(bad)?;
        let (stride, rest) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
        let count = u32::from_le_bytes(*count);
        let stride = u32::from_le_bytes(*stride) as usize;
        let len = (count as usize).checked_mul(stride).ok_or_else(bad)?;
        if count == 0 || len > rest.len() {
            return Err(bad());
        }
        let (run, rest) = rest.split_at(len);
        self.run = run;
        self.run_left = count;
        self.stride = stride;
        self.rest = rest;
        Ok(())
    }

    /// Fails unless the last item read ended a run (a run never spans two calls' items).
    pub(crate) fn check_end_of_run(&self) -> Result<()> {
        if self.run_left == 0 {
            Ok(())
        } else {
            Err(Error::Protocol(
                "a run of values in a pool result runs past its items".into(),
            ))
        }
    }

    /// Bytes read so far.
    pub(crate) fn used(&self) -> usize {
        self.start - self.rest.len()
    }
}

/// Runs of at least this many values go to the consumer undecoded.
const RAW_FROM: u32 = 64;

/// When `bytes` start with one run of exactly `count` flat values: `(their bytes, stride,
/// bytes used)`.
fn whole_run(bytes: &[u8], count: u32) -> Option<(&[u8], usize, usize)> {
    let (&wire::TAG_RUN, rest) = bytes.split_first()? else {
        return None;
    };
    let (n, rest) = rest.split_first_chunk::<4>()?;
    let (stride, rest) = rest.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*n) != count {
        return None;
    }
    let stride = u32::from_le_bytes(*stride) as usize;
    let len = (count as usize).checked_mul(stride)?;
    let values = rest.get(..len)?;
    Some((values, stride, 1 + 8 + len))
}

/// The error of a flat value that does not decode.
#[cold]
fn unreadable<R>(e: &flat::DecodeError) -> TaskError {
    TaskError::failed(format!(
        "the result could not be read: cannot decode {}: {e}",
        std::any::type_name::<R>()
    ))
}

/// Decodes one tagged outcome (not a run) from the front of `bytes`.
fn decode_tagged<R: DeserializeOwned>(
    bytes: &[u8],
) -> Result<(std::result::Result<R, TaskError>, &[u8])> {
    match bytes.split_first() {
        None => Err(Error::Protocol("a pool result ends early".into())),
        Some((&wire::TAG_VALUE, tail)) => wire::take::<R>(tail).map(|(v, t)| (Ok(v), t)),
        Some((&wire::TAG_PANIC, tail)) => {
            wire::take::<PanicReport>(tail).map(|(report, t)| (Err(TaskError::panicked(report)), t))
        }
        Some((&wire::TAG_CODEC, tail)) => {
            wire::take::<String>(tail).map(|(m, t)| (Err(TaskError::failed(m)), t))
        }
        Some((tag, _)) => Err(Error::Protocol(format!("unknown result tag {tag}"))),
    }
}

/// Decodes `count` outcomes into a block: `(block, bytes used, error at the first
/// undecodable one)`.
pub(crate) fn decode_block<R: DeserializeOwned>(
    first: u64,
    count: u32,
    bytes: &[u8],
) -> (Block<R>, usize, Option<Error>) {
    let mut block = Block::new(first, count as usize);
    let mut reports = Reports::new(bytes);
    let mut left = count;
    while left > 0 {
        // Runs of flat values a run at a time; everything else one by one.
        let k = reports.take_run::<R>(left, &mut block);
        if k > 0 {
            left -= k;
            continue;
        }
        match reports.next::<R>() {
            Ok(Ok(v)) => block.value(v),
            Ok(Err(e)) => block.error(e),
            Err(e) => return failed_from(block, count, e),
        }
        left -= 1;
    }
    if let Err(e) = reports.check_end_of_run() {
        return failed_from(block, count, e);
    }
    let used = reports.used();
    (block, used, None)
}

/// A block whose items from the first not decoded on end with `e`.
#[cold]
fn failed_from<R>(mut block: Block<R>, count: u32, e: Error) -> (Block<R>, usize, Option<Error>) {
    let err = TaskError::failed(format!("the result could not be read: {e}"));
    // Items already decoded keep their outcome only if the stream was sound up to them;
    // a run that overran its items makes the whole block suspect.
    if matches!(e, Error::Protocol(_)) && block.len == u64::from(count) {
        block = Block::new(block.first, 0);
    }
    while block.len < u64::from(count) {
        block.error(err.clone());
    }
    (block, 0, Some(e))
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
mod tests {
    use super::*;
    use std::time::Duration;

    /// Every outcome handed out now, one by one.
    fn items<R: Send + 'static>(out: &Outcomes<R>, until: Option<Instant>) -> Vec<Result<R>> {
        let mut got = Vec::new();
        while let Some(b) = out.next_block(until) {
            match b {
                Ok(b) => {
                    let mut c = Cursor::new(b);
                    while let Some(item) = c.next() {
                        got.push(item);
                    }
                }
                Err(e) => {
                    got.push(Err(e));
                    break;
                }
            }
        }
        got
    }

    fn block(first: u64, vals: &[u32]) -> Block<u32> {
        let mut b = Block::new(first, vals.len());
        for v in vals {
            b.value(*v);
        }
        b
    }

    #[test]
    fn ordered_outcomes_come_in_input_order_whatever_the_arrival() {
        let out = Outcomes::<u32>::new(Order::Ordered);
        out.register(5);
        out.input_done();
        out.deliver(block(3, &[30, 40]));
        let mut b = block(0, &[0]);
        b.error(TaskError::cancelled());
        b.value(20);
        out.deliver(b);
        let got = items(&out, None);
        assert_eq!(got.len(), 5);
        assert_eq!(*got[0].as_ref().unwrap(), 0);
        let e = got[1].as_ref().unwrap_err().as_task().unwrap().clone();
        assert!(e.is_cancelled());
        assert_eq!(e.task(), Some(1));
        assert_eq!(*got[4].as_ref().unwrap(), 40);
        assert!(out.exhausted());
    }

    #[test]
    fn termination_fails_every_gap_once_and_ignores_late_deliveries() {
        for order in [Order::Ordered, Order::Unordered] {
            let out = Outcomes::<u32>::new(order);
            out.register(6);
            out.deliver(block(1, &[1]));
            out.deliver(block(4, &[4]));
            out.terminate(&TaskError::cancelled());
            out.deliver(block(0, &[99]));
            let got = items(&out, None);
            assert_eq!(got.len(), 6, "{order:?}");
            let failed: Vec<u64> = got
                .iter()
                .filter_map(|r| r.as_ref().err()?.as_task()?.task())
                .collect();
            let mut sorted = failed.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 2, 3, 5], "{order:?}");
            assert!(!got.iter().any(|r| matches!(r, Ok(99))));
        }
    }

    #[test]
    fn collect_finishes_once_with_the_first_error_by_position() {
        let out = Outcomes::<u32>::new(Order::Collect);
        let (tx, rx) = std::sync::mpsc::channel();
        out.on_finish(move |blocks| tx.send(collect(blocks)).unwrap());
        out.register(4);
        let mut late = Block::new(2, 2);
        late.value(2);
        late.error(TaskError::timed_out());
        out.deliver(late);
        let mut early = Block::new(0, 2);
        early.error(TaskError::cancelled());
        early.value(1);
        out.deliver(early);
        assert!(rx.try_recv().is_err(), "the input is not done yet");
        out.input_done();
        let e = rx.recv().unwrap().unwrap_err();
        assert!(e.as_task().unwrap().is_cancelled());
        assert_eq!(e.as_task().unwrap().task(), Some(0));
    }

    #[test]
    fn a_timeout_leaves_the_outcome_coming() {
        let out = Outcomes::<u32>::new(Order::Unordered);
        out.register(1);
        let until = Some(Instant::now() + Duration::from_millis(5));
        assert!(matches!(out.next_block(until), Some(Err(Error::Timeout))));
        out.deliver(block(0, &[7]));
        let got = items(&out, None);
        assert_eq!(*got[0].as_ref().unwrap(), 7);
        assert_eq!(got.len(), 1);
        assert!(out.next_block(None).is_none());
    }

    #[test]
    fn decoding_tagged_outcomes_and_a_bad_value() {
        let mut bytes = Vec::new();
        bytes.push(wire::TAG_VALUE);
        wire::append(&5u32, &mut bytes).unwrap();
        bytes.push(wire::TAG_PANIC);
        wire::append(&PanicReport::new("boom".into(), None, None), &mut bytes).unwrap();
        bytes.push(wire::TAG_CODEC);
        wire::append("cannot encode", &mut bytes).unwrap();
        let (b, used, err) = decode_block::<u32>(10, 3, &bytes);
        assert_eq!((b.len, used, err.is_none()), (3, bytes.len(), true));
        assert_eq!(b.values, [5]);
        assert_eq!(b.errors[0].1.panic_message(), Some("boom"));
        assert_eq!(b.errors[1].0, 12);
        let (b, _, err) = decode_block::<u32>(0, 2, &[wire::TAG_VALUE]);
        assert_eq!(b.len, 2);
        assert!(err.is_some());
        let (_, _, err) = decode_block::<u32>(0, 1, &[77]);
        assert!(err.is_some());
    }

    fn run_record(count: u32, stride: u32, values: &[u8]) -> Vec<u8> {
        let mut out = vec![wire::TAG_RUN];
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&stride.to_le_bytes());
        out.extend_from_slice(values);
        out
    }

    #[test]
    fn hostile_runs_are_typed_errors_and_never_panic() {
        // A count of zero, a count × stride that overflows, a run longer than the bytes, a
        // header cut short: the stream cannot be split; every item of the block fails.
        for bytes in [
            run_record(0, 8, &[]),
            run_record(u32::MAX, u32::MAX, &[0; 16]),
            run_record(3, 8, &[0; 16]),
            vec![wire::TAG_RUN, 1, 0, 0],
            vec![9, 9, 9],
        ] {
            let (b, _, err) = decode_block::<u64>(0, 2, &bytes);
            assert!(
                matches!(err, Some(Error::Protocol(_))),
                "{bytes:?}: {err:?}"
            );
            assert_eq!((b.len, b.errors.len()), (2, 2));
            let out = Outcomes::<u64>::new(Order::Unordered);
            out.register(2);
            assert!(out.deliver_bytes(0, 2, &bytes).is_err());
            let got = items(&out, None);
            assert_eq!(got.len(), 2);
            assert!(got.iter().all(|r| r.is_err()));
        }
        // A run with more values than the items it reports for: the block is suspect.
        let bytes = run_record(5, 8, &[1; 40]);
        let (b, _, err) = decode_block::<u64>(0, 2, &bytes);
        assert!(err.is_some());
        assert!(b.values.is_empty() && b.errors.len() == 2);
        // A value no `bool` encodes to fails alone: the stride still cuts the rest.
        let bytes = run_record(3, 1, &[1, 7, 0]);
        let (b, used, err) = decode_block::<bool>(10, 3, &bytes);
        assert!(err.is_none());
        assert_eq!(used, bytes.len());
        assert_eq!(b.values, [true, false]);
        assert_eq!(b.errors[0].0, 11);
        assert!(b.errors[0].1.to_string().contains("could not be read"));
    }

    #[test]
    fn a_big_run_reaches_the_consumer_undecoded_and_decodes_there() {
        let values: Vec<u8> = (0..100u64).flat_map(u64::to_le_bytes).collect();
        let out = Outcomes::<u64>::new(Order::Ordered);
        out.register(100);
        out.input_done();
        let bytes = run_record(100, 8, &values);
        assert_eq!(out.deliver_bytes(0, 100, &bytes).unwrap(), bytes.len());
        let got: Vec<u64> = items(&out, None).into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        // Hostile values in a raw run: each is its item's error, found by the consumer.
        let mut bad = vec![1u8; 100];
        bad[40] = 2;
        let out = Outcomes::<bool>::new(Order::Collect);
        let (tx, rx) = std::sync::mpsc::channel();
        out.on_finish(move |blocks| tx.send(collect(blocks)).unwrap());
        out.register(100);
        out.input_done();
        out.deliver_bytes(0, 100, &run_record(100, 1, &bad))
            .unwrap();
        let e = rx.recv().unwrap().unwrap_err();
        assert_eq!(e.as_task().unwrap().task(), Some(40), "{e}");
    }
}
