//! [`Promises`]: where the outcomes of an executor's tasks go when many of them share one
//! pool call (every `submit` of one function, or one `map`): the promise of each item, by its
//! index in the call.

use std::collections::VecDeque;

use serde::de::DeserializeOwned;

use crate::error::{Result, TaskError};
use crate::futures::Promise;
use crate::latch::lock;
use crate::multiprocessing::pool::{ByteSink, Reports, Sink};

/// The promises of a call's items not finished yet, each with the key of its future (its
/// address, for [`ProcessPoolExecutor::stop`](super::ProcessPoolExecutor::stop)).
pub(super) struct Promises<R> {
    slots: std::sync::Mutex<Slots<R>>,
}

struct Slots<R> {
    /// The index of `items[0]`.
    base: u64,
    items: VecDeque<Option<(usize, Promise<R>)>>,
}

impl<R> Slots<R> {
    fn take(&mut self, index: u64) -> Option<(usize, Promise<R>)> {
        let at = usize::try_from(index.checked_sub(self.base)?).ok()?;
        let slot = self.items.get_mut(at)?.take();
        while matches!(self.items.front(), Some(None)) {
            self.items.pop_front();
            self.base += 1;
        }
        slot
    }
}

impl<R> Promises<R> {
    pub(super) fn new() -> Self {
        Promises {
            slots: std::sync::Mutex::new(Slots {
                base: 0,
                items: VecDeque::new(),
            }),
        }
    }

    /// Keeps the promise of item `index`, whose future has `key`.
    pub(super) fn insert(&self, index: u64, key: usize, promise: Promise<R>) {
        let mut s = lock(&self.slots);
        if s.items.is_empty() {
            s.base = index;
        }
        if index < s.base {
            // Indices are handed out in order; one below the window cannot happen. Keep the
            // promise findable anyway.
            let gap = (s.base - index) as usize;
            for _ in 0..gap {
                s.items.push_front(None);
            }
            s.base = index;
        }
        let at = (index - s.base) as usize;
        if s.items.len() <= at {
            s.items.resize_with(at + 1, || None);
        }
        s.items[at] = Some((key, promise));
    }

    /// Takes the promise of item `index` back (its task was never queued).
    pub(super) fn remove(&self, index: u64) -> Option<Promise<R>> {
        lock(&self.slots).take(index).map(|(_, p)| p)
    }

    /// The index of the item whose future has `key`, if it is not finished.
    pub(super) fn find(&self, key: usize) -> Option<u64> {
        let s = lock(&self.slots);
        s.items
            .iter()
            .position(|slot| slot.as_ref().is_some_and(|(k, _)| *k == key))
            .map(|at| s.base + at as u64)
    }

    /// Takes the promises of items `first..first + count` out, in order.
    fn take_range(&self, first: u64, count: u64) -> Vec<Option<Promise<R>>> {
        let mut s = lock(&self.slots);
        (first..first + count)
            .map(|i| s.take(i).map(|(_, p)| p))
            .collect()
    }
}

/// Ends `promise` with `error` (a cancellation cancels it when it had not started).
fn fail<R>(promise: Promise<R>, error: &TaskError) {
    if !(error.is_cancelled() && promise.cancel()) {
        let _ = promise.set_exception(error.clone());
    }
}

impl<R: Send> Sink for Promises<R> {
    fn start(&self) -> bool {
        true
    }

    fn start_items(&self, first: u64, count: u32, skip: &mut Vec<u64>) {
        let mut s = lock(&self.slots);
        for i in first..first + u64::from(count) {
            let Some(at) = i.checked_sub(s.base).and_then(|a| usize::try_from(a).ok()) else {
                continue;
            };
            let cancelled = match s.items.get(at) {
                Some(Some((_, p))) => !p.set_running_or_notify_cancel(),
                _ => false,
            };
            if cancelled {
                s.take(i);
                skip.push(i);
            }
        }
    }

    fn fail(&self, first: u64, len: u64, error: &TaskError) {
        // Outside the lock: ending a future runs its callbacks.
        for p in self.take_range(first, len).into_iter().flatten() {
            fail(p, error);
        }
    }

    fn terminate(&self, error: &TaskError) {
        let all: Vec<Promise<R>> = {
            let mut s = lock(&self.slots);
            s.base += s.items.len() as u64;
            s.items.drain(..).flatten().map(|(_, p)| p).collect()
        };
        for p in all {
            fail(p, error);
        }
    }
}

impl<R: DeserializeOwned + Send> ByteSink for Promises<R> {
    fn deliver_bytes(&self, first: u64, count: u32, bytes: &[u8]) -> Result<usize> {
        let promises = self.take_range(first, u64::from(count));
        let mut reports = Reports::new(bytes);
        let mut promises = promises.into_iter();
        for p in promises.by_ref() {
            match reports.next::<R>() {
                Ok(outcome) => {
                    if let Some(p) = p {
                        let _ = match outcome {
                            Ok(v) => p.set_result(v),
                            Err(e) => p.set_exception(e),
                        };
                    }
                }
                Err(e) => {
                    let err = TaskError::failed(format!("the result could not be read: {e}"));
                    for p in std::iter::once(p).chain(promises).flatten() {
                        fail(p, &err);
                    }
                    return Err(e);
                }
            }
        }
        reports.check_end_of_run()?;
        Ok(reports.used())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::futures::{promise, Future};

    fn table(n: u64) -> (Promises<u64>, Vec<Future<u64>>) {
        let t = Promises::new();
        let fs = (0..n)
            .map(|i| {
                let (p, f) = promise::<u64>();
                t.insert(i, 1000 + i as usize, p);
                f
            })
            .collect();
        (t, fs)
    }

    fn run_of(values: &[u64]) -> Vec<u8> {
        let mut out = vec![3u8];
        out.extend_from_slice(&(values.len() as u32).to_le_bytes());
        out.extend_from_slice(&8u32.to_le_bytes());
        out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        out
    }

    #[test]
    fn cancelled_items_are_skipped_and_the_others_run_and_end() {
        let (t, fs) = table(5);
        assert!(fs[1].cancel() && fs[3].cancel());
        let mut skip = Vec::new();
        t.start_items(0, 5, &mut skip);
        assert_eq!(skip, [1, 3]);
        assert!(fs[0].running() && fs[4].running());
        assert_eq!(t.find(1002), Some(2));
        assert_eq!(t.find(1001), None, "a cancelled item is gone");
        t.deliver_bytes(2, 1, &run_of(&[4])).unwrap();
        // Items 0 and 4 are not consecutive: delivered one at a time.
        t.deliver_bytes(0, 1, &run_of(&[0])).unwrap();
        t.deliver_bytes(4, 1, &run_of(&[16])).unwrap();
        let got: Vec<_> = fs.into_iter().map(|f| f.result().ok()).collect();
        assert_eq!(got, [Some(0), None, Some(4), None, Some(16)]);
        assert_eq!(t.find(1004), None);
    }

    #[test]
    fn hostile_reports_end_their_futures_with_typed_errors() {
        let (t, fs) = table(3);
        let mut bytes = run_of(&[1, 2, 3]);
        bytes[1] = 9; // a run of 9 values in 24 bytes
        assert!(t.deliver_bytes(0, 3, &bytes).is_err());
        for f in fs {
            let e = f.result().unwrap_err();
            assert!(e.to_string().contains("could not be read"), "{e}");
        }
        let (t, fs) = table(2);
        t.terminate(&TaskError::cancelled());
        assert!(fs.iter().all(Future::cancelled));
        assert_eq!(t.find(1000), None);
    }
}
