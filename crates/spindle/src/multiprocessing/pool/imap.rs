//! The consumer's side of a streamed call, and what `imap` and `imap_unordered` return
//! ([`IMap`], [`IMapUnordered`]).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::result::{keep, Cursor, Outcomes, Pull};
use crate::error::{Error, Result};
use crate::latch::deadline;

/// The consumer's side of a streamed call: the outcomes and the input still to pull (the
/// shared part of [`IMap`] and [`IMapUnordered`], and what a blocking `map` drives).
pub(crate) struct Stream<R, P: Pull + ?Sized = dyn Pull + Send> {
    out: Arc<Outcomes<R>>,
    feed: Option<Box<P>>,
    /// The error that stopped the input (the pool shut down), yielded once.
    stopped: Option<Error>,
    /// Dropping cancels the call (false once moved into another stream).
    armed: bool,
    /// The block being handed out.
    cursor: Option<Cursor<R>>,
    /// Items pulled from the input, and items handed to the caller.
    pulled: u64,
    yielded: u64,
    /// The call's progress bar, if it has one.
    bar: Option<super::progress::Bar>,
}

impl<R: Send + 'static, P: Pull + ?Sized> Stream<R, P> {
    pub(crate) fn new(out: Arc<Outcomes<R>>, feed: Option<Box<P>>) -> Self {
        let mut stream = Stream {
            out,
            feed,
            stopped: None,
            armed: true,
            cursor: None,
            pulled: 0,
            yielded: 0,
            bar: None,
        };
        stream.top_up();
        stream
    }

    /// The same stream with a progress bar.
    pub(crate) fn with_bar(mut self, bar: Option<super::progress::Bar>) -> Self {
        self.bar = bar;
        self
    }

    /// The same stream with its input behind a trait object.
    pub(crate) fn boxed(mut self) -> Stream<R, dyn Pull + Send>
    where
        P: Send + Sized + 'static,
    {
        self.armed = false;
        Stream {
            out: Arc::clone(&self.out),
            feed: self.feed.take().map(|b| b as Box<dyn Pull + Send>),
            stopped: self.stopped.take(),
            armed: true,
            cursor: self.cursor.take(),
            pulled: self.pulled,
            yielded: self.yielded,
            bar: self.bar.take(),
        }
    }

    pub(crate) fn next_until(&mut self, until: Option<Instant>) -> Option<Result<R>> {
        loop {
            if let Some(c) = &mut self.cursor {
                if let Some(item) = c.next() {
                    self.yielded += 1;
                    if let Some(bar) = &self.bar {
                        bar.add(1);
                    }
                    return Some(item);
                }
                self.cursor = None;
            }
            self.top_up();
            match self.out.next_block(until) {
                Some(Ok(b)) => self.cursor = Some(Cursor::new(b)),
                Some(Err(e)) => return Some(Err(e)),
                None if self.feed.is_some() => continue,
                None => {
                    if let Some(bar) = &self.bar {
                        bar.finish();
                    }
                    return self.stopped.take().map(Err);
                }
            }
        }
    }

    /// Every remaining value in order into `values`, a block at a time; the first error by
    /// position is kept in `first` (later values are dropped once there is one).
    pub(crate) fn drain_into(&mut self, values: &mut Vec<R>, first: &mut Option<Error>) {
        while let Some(item) = self.cursor.as_mut().and_then(Cursor::next) {
            self.yielded += 1;
            keep(item, values, first);
        }
        self.cursor = None;
        loop {
            self.top_up();
            match self.out.next_block(None) {
                Some(Ok(b)) => {
                    self.yielded += b.len;
                    if let Some(bar) = &self.bar {
                        bar.add(b.len);
                    }
                    if first.is_none() {
                        // The common case: a whole block of values, moved (or decoded) at
                        // once; the first error by position stops the values.
                        let errors = b.drain_into(values);
                        if let Some((_, e)) = errors.into_iter().next() {
                            *first = Some(Error::Task(e));
                        }
                        continue;
                    }
                    let mut c = Cursor::new(b);
                    while let Some(item) = c.next() {
                        keep(item, values, first);
                    }
                }
                Some(Err(e)) => keep(Err(e), values, first),
                None if self.feed.is_some() => {}
                None => {
                    if let Some(bar) = &self.bar {
                        bar.finish();
                    }
                    if let Some(e) = self.stopped.take() {
                        keep(Err(e), values, first);
                    }
                    return;
                }
            }
        }
    }

    /// Pulls input up to the window, between blocks (on the
    /// consumer's thread: the input iterator is the caller's and runs where the caller runs).
    fn top_up(&mut self) {
        let Some(feed) = &mut self.feed else {
            return;
        };
        let outstanding = (self.pulled - self.yielded) as usize;
        let window = feed.window().max(1);
        if outstanding >= window {
            return;
        }
        match feed.pull(window - outstanding.min(window)) {
            Ok(0) => {
                self.feed = None;
                self.out.input_done();
            }
            Ok(n) => self.pulled += n as u64,
            Err(e) => {
                self.feed = None;
                self.out.input_done();
                self.stopped = Some(e);
            }
        }
    }
}

impl<R, P: Pull + ?Sized> Drop for Stream<R, P> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(feed) = &mut self.feed {
            feed.cancel();
        }
        // Deliveries of chunks still running are dropped from now on.
        self.out.cancel();
    }
}

/// The results of `imap`, in input order (Python's `IMapIterator`): one `Result` per item.
///
/// The input is pulled lazily, on the thread that iterates, a bounded number of items ahead
/// of what has been consumed, so an endless input runs in bounded memory. Dropping the
/// iterator cancels the items not started yet (the running ones finish, unobserved). If the
/// pool is closed to new input, terminated or dropped before the input ends, one
/// `Err(Error::Shutdown)` follows the items already handed to it, and the iterator ends.
///
/// ```
/// use spindle::multiprocessing::{Pool, StartMethod};
/// fn square(x: u64) -> u64 { x * x }
/// let pool = Pool::builder().processes(2).start_method(StartMethod::Fork).build()?;
/// let first: Vec<u64> = pool.imap(square, 1..)?.take(3).collect::<Result<_, _>>()?;
/// assert_eq!(first, [1, 4, 9]);
/// # Ok::<(), spindle::Error>(())
/// ```
pub struct IMap<R> {
    stream: Stream<R>,
}

/// The results of `imap_unordered`, in the order they finish (Python's
/// `IMapUnorderedIterator`); otherwise as [`IMap`]. An item's error names its position
/// ([`TaskError::task`](crate::TaskError::task)).
pub struct IMapUnordered<R> {
    stream: Stream<R>,
}

macro_rules! stream_iterator {
    ($t:ident) => {
        impl<R: Send + 'static> $t<R> {
            pub(crate) fn from_stream<P: Pull + Send + 'static>(s: Stream<R, P>) -> Self {
                $t { stream: s.boxed() }
            }

            /// The next result, waiting at most `timeout` (Python's `next(timeout)`):
            /// `Some(Err(Error::Timeout))` when none arrived in time (the iterator stays
            /// usable), `None` at the end.
            pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<R>> {
                self.stream.next_until(deadline(timeout))
            }

            /// How many items have been pulled from the input so far.
            pub fn pulled(&self) -> u64 {
                self.stream.out.pulled()
            }
        }

        impl<R: Send + 'static> Iterator for $t<R> {
            type Item = Result<R>;

            fn next(&mut self) -> Option<Result<R>> {
                self.stream.next_until(None)
            }
        }

        impl<R> fmt::Debug for $t<R> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("input_done", &self.stream.feed.is_none())
                    .finish()
            }
        }
    };
}

stream_iterator!(IMap);
stream_iterator!(IMapUnordered);
