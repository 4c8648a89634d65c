//! How a call's input is cut into chunks (one message to a worker each): the user's chunk
//! size, Python's rule, or the adaptive default (docs/decisions.md, D81).

use std::time::Duration;

use crate::error::{Error, Result};

/// How a pool call cuts its input into chunks (Python's `chunksize=`).
///
/// ```
/// use spindle::multiprocessing::pool::Chunking;
/// assert_eq!(Chunking::default(), Chunking::Adaptive);
/// assert_eq!(Chunking::python(100, 2), 13); // ceil(100 / (4 × 2))
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Chunking {
    /// Start with one item per chunk and grow while the items are short: chunks of about
    /// 2 ms of work, and a known input cut in at least four chunks per worker (Python's
    /// split) so that every worker finishes at about the same time, but none under 10 µs of
    /// work. Slow items travel alone (the notes' 50 sleeps of 0.2 s on 10 workers take
    /// 1.0 s); tiny items travel in chunks of thousands.
    #[default]
    Adaptive,
    /// Python's rule: `ceil(len / (4 × workers))` items per chunk for `map` and `starmap`
    /// (the input is collected to know its length), 1 for `imap` and `imap_unordered`.
    Python,
    /// Exactly this many items per chunk (the last one may be shorter); 0 is an error.
    Fixed(usize),
}

impl Chunking {
    /// Python's chunk size for `map` over `len` items on `workers` workers.
    pub fn python(len: usize, workers: usize) -> usize {
        let per = 4 * workers.max(1);
        len.div_ceil(per).max(1)
    }
}

/// Work per chunk the adaptive rule aims at.
const TARGET: Duration = Duration::from_millis(2);
/// A known input's chunks hold at least this much work (a chunk's own cost, its writes and
/// wake-ups, is ten-odd microseconds of CPU; D164).
const FLOOR: Duration = Duration::from_micros(10);
/// The most items in one chunk.
pub(crate) const MAX_CHUNK: usize = 1 << 16;

/// Chooses the length of each chunk of one call.
#[derive(Debug, Clone)]
pub(crate) struct Sizer {
    fixed: Option<usize>,
    workers: usize,
    /// Seconds per item, smoothed over the chunks seen (or known from earlier calls of the
    /// same function).
    per_item: Option<f64>,
    /// The input's length, when known.
    len: Option<usize>,
}

impl Sizer {
    /// The sizer of a call. `len` is the input's length when known (needed by Python's rule
    /// for `map`); `ordered_map` says the call is a `map`/`starmap` (Python's rule gives 1
    /// for the `imap`s); `prior` is the per-item time of earlier calls of the same function.
    pub(crate) fn new(
        chunking: Chunking,
        workers: usize,
        len: Option<usize>,
        is_map: bool,
        prior: Option<f64>,
    ) -> Result<Sizer> {
        let fixed = match chunking {
            Chunking::Adaptive => None,
            Chunking::Fixed(0) => {
                return Err(Error::InvalidArgument(
                    "a chunk size must be at least 1".into(),
                ))
            }
            Chunking::Fixed(n) => Some(n.min(MAX_CHUNK)),
            Chunking::Python => Some(match (is_map, len) {
                (true, Some(len)) => Chunking::python(len, workers).min(MAX_CHUNK),
                _ => 1,
            }),
        };
        Ok(Sizer {
            fixed,
            workers: workers.max(1),
            per_item: prior,
            len,
        })
    }

    /// The length of the next chunk; `remaining` is how many items of a known input are
    /// left to cut (none are cut beyond it).
    pub(crate) fn next(&self, remaining: Option<usize>) -> usize {
        if let Some(n) = self.fixed {
            return n;
        }
        let Some(t) = self.per_item else {
            return 1;
        };
        let t = t.max(1e-9);
        let mut n = TARGET.as_secs_f64() / t;
        if let Some(len) = self.len {
            // A known input: at least four chunks per worker (Python's split), so that the
            // workers finish together and a chunk's transfer overlaps another's work, but
            // never under FLOOR of work per chunk.
            let balanced = len as f64 / (4 * self.workers) as f64;
            n = n.min(balanced.max(FLOOR.as_secs_f64() / t));
        }
        let n = (n as usize).clamp(1, MAX_CHUNK);
        remaining.map_or(n, |rem| n.min(rem.max(1)))
    }

    /// A chunk of `items` took `elapsed` on a worker.
    pub(crate) fn observe(&mut self, items: usize, elapsed: Duration) {
        if items == 0 {
            return;
        }
        let t = elapsed.as_secs_f64() / items as f64;
        self.per_item = Some(match self.per_item {
            None => t,
            Some(old) => 0.5 * old + 0.5 * t,
        });
    }

    /// Seconds per item, when known.
    pub(crate) fn per_item(&self) -> Option<f64> {
        self.per_item
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pythons_rule() {
        assert_eq!(Chunking::python(100_000, 2), 12_500);
        assert_eq!(Chunking::python(5, 3), 1);
        assert_eq!(Chunking::python(0, 3), 1);
        assert_eq!(Chunking::python(50, 10), 2);
        let s = Sizer::new(Chunking::Python, 2, Some(100_000), true, None).unwrap();
        assert_eq!(s.next(Some(100_000)), 12_500);
        let s = Sizer::new(Chunking::Python, 2, None, false, None).unwrap();
        assert_eq!(s.next(None), 1);
    }

    #[test]
    fn fixed_sizes_are_used_as_given_and_zero_is_refused() {
        let s = Sizer::new(Chunking::Fixed(7), 4, Some(3), true, Some(1e-9)).unwrap();
        assert_eq!(s.next(Some(3)), 7);
        assert!(Sizer::new(Chunking::Fixed(0), 4, None, true, None).is_err());
    }

    #[test]
    fn adaptive_starts_at_one_and_keeps_slow_items_alone() {
        let mut s = Sizer::new(Chunking::Adaptive, 10, Some(50), true, None).unwrap();
        assert_eq!(s.next(Some(50)), 1);
        s.observe(1, Duration::from_millis(200));
        assert_eq!(s.next(Some(49)), 1);
    }

    #[test]
    fn adaptive_grows_for_tiny_items_and_splits_a_known_input_for_every_worker() {
        let mut s = Sizer::new(Chunking::Adaptive, 2, Some(100_000), true, None).unwrap();
        s.observe(1, Duration::from_nanos(20));
        assert_eq!(s.next(Some(100_000)), 12_500, "balanced: 100,000 / (4 × 2)");
        assert_eq!(s.next(Some(10)), 10, "never past the input's end");
        let mut s = Sizer::new(Chunking::Adaptive, 2, None, true, None).unwrap();
        s.observe(1, Duration::from_nanos(20));
        assert_eq!(s.next(None), MAX_CHUNK, "2 ms of 20 ns items, capped");
        // A small input: no smaller than 10 µs of work (500 items of 20 ns).
        let mut s = Sizer::new(Chunking::Adaptive, 2, Some(1_000), true, None).unwrap();
        s.observe(1, Duration::from_nanos(20));
        assert_eq!(s.next(Some(1_000)), 500);
        // Items of 1 ms: two per chunk.
        s.observe(1, Duration::from_millis(1));
        s.observe(1, Duration::from_millis(1));
        s.observe(1, Duration::from_millis(1));
        assert!(s.next(None) <= 2, "{}", s.next(None));
    }
}
