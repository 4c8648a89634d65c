//! Reading what a worker reports: its outcomes one item at a time ([`Reports`]) — tagged
//! postcard values, panics and codec failures, and runs of flat values (`runs.rs`) — and
//! decoding a segment's outcomes into a [`Block`]. Bytes from a worker are untrusted: every
//! count and length is checked, and bytes that cannot be split are an error value.

use serde::de::DeserializeOwned;

use super::flat;
use super::protocol as wire;
use super::result::Block;
use crate::error::{Error, Result, TaskError};
use crate::panic::PanicReport;

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
pub(super) const RAW_FROM: u32 = 64;

/// When `bytes` start with one run of exactly `count` flat values: `(their bytes, stride,
/// bytes used)`.
pub(super) fn whole_run(bytes: &[u8], count: u32) -> Option<(&[u8], usize, usize)> {
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
pub(super) fn unreadable<R>(e: &flat::DecodeError) -> TaskError {
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
        Some((&wire::TAG_CANCELLED, tail)) => Ok((Err(TaskError::cancelled()), tail)),
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
