//! Runs of flat items: the trampolines that run many items of plain data in one call, and
//! how their outcomes are written.
//!
//! A task's function travels as the offset of a monomorphised trampoline in the image (as
//! `Process` targets do). Each task function has two (an [`Entries`] pair):
//!
//! * the *item* trampoline (`worker.rs`) runs one item whose argument is `varint length +
//!   postcard` (framed), and appends one tagged outcome;
//! * the *run* trampoline runs a run of items whose arguments are flat (`flat.rs`, D160):
//!   `count` values of `stride` bytes each, the shape set by the worker with
//!   [`set_run_shape`] just before the call (a trampoline has one signature, `EntryFn`, for
//!   every function, so the shape travels beside it). It appends `count` outcomes: runs of
//!   flat values (`TAG_RUN`) while the values allow it, tagged items otherwise, and catches
//!   its items' panics itself (one catch per stretch of items, not per item), so it never
//!   unwinds.
//!
//! The outcomes a worker sends (`protocol.rs`), per item:
//!
//! | tag | then |
//! |---|---|
//! | `TAG_VALUE` | the value, postcard |
//! | `TAG_PANIC` | the panic report, postcard |
//! | `TAG_CODEC` | why the argument or the value could not be coded, postcard string |
//! | `TAG_RUN` | `count: u32, stride: u32`, then `count` flat values of `stride` bytes: `count` items |

use std::cell::Cell;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::flat;
use super::protocol as wire;
use super::worker::{self, codec_failure, map_item, push_panic, star_item, state_item};
use crate::error::Error;
use crate::multiprocessing::Target;
use crate::panic::PanicReport;
use crate::sys::{self, image::EntryFn};

/// A task function's two trampolines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entries {
    /// One framed item.
    pub(crate) item: EntryFn,
    /// A run of flat items.
    pub(crate) run: EntryFn,
}

impl Entries {
    /// `map`'s `F(A) -> R`.
    pub(crate) fn map<F, A, R>() -> Entries
    where
        F: Fn(A) -> R + Copy + 'static,
        A: DeserializeOwned,
        R: Serialize,
    {
        Entries {
            item: map_item::<F, A, R>,
            run: map_run::<F, A, R>,
        }
    }

    /// `starmap`'s and `apply`'s `F(args...)`.
    pub(crate) fn star<F, Args>() -> Entries
    where
        F: Target<Args>,
        Args: DeserializeOwned,
        F::Output: Serialize,
    {
        Entries {
            item: star_item::<F, Args>,
            run: star_run::<F, Args>,
        }
    }

    /// A task that takes the worker's state: `F(&mut S, A) -> R`.
    pub(crate) fn state<F, S, A, R>() -> Entries
    where
        F: Fn(&mut S, A) -> R + Copy + 'static,
        S: 'static,
        A: DeserializeOwned,
        R: Serialize,
    {
        Entries {
            item: state_item::<F, S, A, R>,
            run: state_run::<F, S, A, R>,
        }
    }
}

/// What a run trampoline returns: it ran its items.
pub(crate) const RUN_DONE: u8 = 0;
/// What a run trampoline returns: its input does not have the shape it was told.
pub(crate) const RUN_BAD_SHAPE: u8 = 1;

/// A run left open at the end of a report: where its header is, its count, its stride.
pub(crate) type OpenRun = Option<(usize, u32, u32)>;

thread_local! {
    /// The shape of the next run: `(count, stride)`.
    static RUN_SHAPE: Cell<(u32, u32)> = const { Cell::new((0, 0)) };
    /// The run the next call may extend, then the run the last call left open.
    static OPEN_RUN: Cell<OpenRun> = const { Cell::new(None) };
}

/// Tells the next run trampoline called on this thread that its input holds `count` values
/// of `stride` bytes, and that its values may extend `open`, a run the previous call of the
/// same segment left at the end of the report (so a segment's values make one run, not one
/// per call).
pub(crate) fn set_run_shape(count: u32, stride: u32, open: OpenRun) {
    RUN_SHAPE.with(|s| s.set((count, stride)));
    OPEN_RUN.with(|s| s.set(open));
}

/// The run the last run trampoline called on this thread left open at the end of its report.
pub(crate) fn open_run() -> OpenRun {
    OPEN_RUN.with(Cell::get)
}

/// The run trampoline of `map`'s `F`.
pub(crate) fn map_run<F, A, R>(input: &[u8], out: &mut Vec<u8>) -> u8
where
    F: Fn(A) -> R + Copy + 'static,
    A: DeserializeOwned,
    R: Serialize,
{
    let f = sys::image::conjure::<F>();
    run_flat(input, out, f)
}

/// The run trampoline of `starmap`'s and `apply`'s `F`.
pub(crate) fn star_run<F, Args>(input: &[u8], out: &mut Vec<u8>) -> u8
where
    F: Target<Args>,
    Args: DeserializeOwned,
    F::Output: Serialize,
{
    let f = sys::image::conjure::<F>();
    run_flat(input, out, |args: Args| f.call(args))
}

/// The run trampoline of a task that takes the worker's state.
pub(crate) fn state_run<F, S, A, R>(input: &[u8], out: &mut Vec<u8>) -> u8
where
    F: Fn(&mut S, A) -> R + Copy + 'static,
    S: 'static,
    A: DeserializeOwned,
    R: Serialize,
{
    let f = sys::image::conjure::<F>();
    run_flat(input, out, |a: A| worker::with_state(|s: &mut S| f(s, a)))
}

/// Runs every flat item of `input` (the shape [`set_run_shape`] gave), appending one outcome
/// each; a panic ends its item only.
#[inline]
fn run_flat<A, R>(input: &[u8], out: &mut Vec<u8>, call: impl Fn(A) -> R) -> u8
where
    A: DeserializeOwned,
    R: Serialize,
{
    let (count, stride) = RUN_SHAPE.with(Cell::get);
    let (count, stride) = (count as usize, stride as usize);
    if count.checked_mul(stride) != Some(input.len()) {
        return RUN_BAD_SHAPE;
    }
    let mut results = Results::new(out, OPEN_RUN.with(Cell::take));
    let mut i = 0;
    while i < count {
        let ran = crate::panic::catch(|| {
            while i < count {
                // Plain data: the tight loop, while the values extend the open run.
                if let Some(r) = results.extend_run(input, stride, &mut i, count, &call) {
                    results.begin_item();
                    results.value(&r);
                    i += 1;
                    continue;
                }
                if i == count {
                    break;
                }
                // The first value, or an argument that does not decode.
                results.begin_item();
                match flat::decode::<A>(&input[i * stride..(i + 1) * stride]) {
                    Ok(a) => {
                        let r = call(a);
                        results.value(&r);
                    }
                    Err(e) => results.failed(&Error::Codec(format!(
                        "cannot decode the argument (a {}): {e}",
                        std::any::type_name::<A>()
                    ))),
                }
                i += 1;
            }
        });
        if let Err(report) = ran {
            results.panicked(report, i);
            i += 1;
        }
    }
    results.finish();
    RUN_DONE
}

/// Appends outcomes to a report: flat values in runs while they allow it, tagged otherwise.
struct Results<'a> {
    out: &'a mut Vec<u8>,
    /// The run being filled: where its header is, its count, its stride.
    run: Option<(usize, u32, u32)>,
    /// Whether to try the flat layout for the next value.
    flat: bool,
    /// Where the current item's outcome starts.
    mark: usize,
    /// Inside [`extend_run`](Results::extend_run): the item it started at, and the open
    /// run's count then (each item before `*i` added one value).
    fast: Option<(usize, u32)>,
}

/// Bytes of a run's header: the tag, its count, its stride.
const RUN_HEADER: usize = 9;

impl<'a> Results<'a> {
    /// Appends to `out`, extending `open` if it is a run that ends where `out` ends.
    fn new(out: &'a mut Vec<u8>, open: OpenRun) -> Self {
        let mark = out.len();
        let run = open.filter(|&(at, count, stride)| {
            (count as usize)
                .checked_mul(stride as usize)
                .and_then(|n| n.checked_add(at + RUN_HEADER))
                == Some(mark)
                && out.get(at) == Some(&wire::TAG_RUN)
        });
        Results {
            out,
            run,
            flat: true,
            mark,
            fast: None,
        }
    }

    /// The current item's outcome starts here (when no run is open).
    #[inline]
    fn begin_item(&mut self) {
        self.mark = self.out.len();
    }

    /// Runs items `*i..count` while a run is open and each value extends it: the tight loop
    /// of plain data, one decode, call and write per item, each value written in place into
    /// room made for all of them at once (so the loop carries its position in a register,
    /// not in the buffer's length). `*i` names the item running, so that a panic names it
    /// (and [`panicked`](Results::panicked) counts the values before it). Stops at an
    /// argument that does not decode (not run) or at a value the run cannot take (run: it is
    /// returned, for [`value`](Results::value)).
    #[inline(always)]
    fn extend_run<A, R>(
        &mut self,
        input: &[u8],
        stride: usize,
        i: &mut usize,
        count: usize,
        call: &impl Fn(A) -> R,
    ) -> Option<R>
    where
        A: DeserializeOwned,
        R: Serialize,
    {
        let (_, n0, width) = self.run?;
        let width = width as usize;
        let start = *i;
        let base = self.out.len();
        self.out.resize(base + (count - start) * width, 0);
        self.fast = Some((start, n0));
        let buf = &mut self.out[base..];
        let (mut k, mut pos) = (start, 0usize);
        let mut odd = None;
        while k < count {
            *i = k;
            let Ok(a) = flat::decode::<A>(&input[k * stride..(k + 1) * stride]) else {
                break;
            };
            let r = call(a);
            match flat::write(&r, &mut buf[pos..pos + width]) {
                Ok(()) => {
                    pos += width;
                    k += 1;
                }
                Err(_) => {
                    odd = Some(r);
                    break;
                }
            }
        }
        self.out.truncate(base + pos);
        self.fast = None;
        if let Some((_, n, _)) = &mut self.run {
            *n += (k - start) as u32;
        }
        *i = k;
        odd
    }

    /// Appends the current item's value.
    #[inline(always)]
    fn value<R: Serialize>(&mut self, v: &R) {
        // The common case, kept small enough to inline: another value of the open run.
        if let Some((_, count, stride)) = &mut self.run {
            let at = self.out.len();
            match flat::append(v, self.out) {
                Ok(n) if n == *stride as usize => {
                    *count += 1;
                    return;
                }
                Ok(_) => self.out.truncate(at),
                Err(_) => {}
            }
        }
        self.value_slow(v);
    }

    /// Appends the current item's value when it does not extend the open run: it opens a
    /// run, or it is tagged.
    #[inline(never)]
    fn value_slow<R: Serialize>(&mut self, v: &R) {
        if self.flat {
            let at = self.out.len();
            self.out.extend_from_slice(&[wire::TAG_RUN; RUN_HEADER]);
            match flat::append(v, self.out) {
                Ok(n) if n < u32::MAX as usize => {
                    self.close_run_before(at);
                    self.run = Some((at, 1, n as u32));
                    return;
                }
                _ => self.out.truncate(at),
            }
            // Not flat: this call's values go tagged from now on.
            self.flat = false;
        }
        self.close_run();
        self.out.push(wire::TAG_VALUE);
        let at = self.out.len();
        if let Err(e) = wire::append(v, self.out) {
            self.out.truncate(at - 1);
            self.failed(&Error::Codec(format!(
                "the value (a {}) cannot be encoded: {e}",
                std::any::type_name::<R>()
            )));
        }
    }

    /// Closes the open run, whose values end before `at`.
    fn close_run_before(&mut self, at: usize) {
        debug_assert!(self.run.is_none_or(|(h, _, _)| h < at));
        self.close_run();
    }

    /// The current item's outcome is `e`.
    fn failed(&mut self, e: &Error) {
        self.close_run();
        let at = self.out.len();
        self.out.push(0);
        let tag = codec_failure(e, self.out);
        self.out[at] = tag;
    }

    /// The current item panicked: whatever it appended goes, the report takes its place.
    /// An open run holds whole values only: the item's bytes start where it ends.
    #[cold]
    fn panicked(&mut self, report: PanicReport, item: usize) {
        if let (Some((start, n0)), Some((_, count, _))) = (self.fast.take(), &mut self.run) {
            *count = n0 + (item - start) as u32;
        }
        let cut = match self.run {
            Some((at, count, stride)) => at + RUN_HEADER + count as usize * stride as usize,
            None => self.mark,
        };
        self.out.truncate(cut);
        self.close_run();
        push_panic(report, self.out);
    }

    /// Writes the open run's count and stride into its header.
    fn close_run(&mut self) {
        if let Some((at, count, stride)) = self.run.take() {
            self.out[at] = wire::TAG_RUN;
            self.out[at + 1..at + 5].copy_from_slice(&count.to_le_bytes());
            self.out[at + 5..at + 9].copy_from_slice(&stride.to_le_bytes());
        }
    }

    /// Writes the open run's header, and leaves the run for the next call to extend.
    fn finish(mut self) {
        let open = self.run;
        self.close_run();
        OPEN_RUN.with(|s| s.set(open));
    }
}

#[cfg(test)]
mod tests;
