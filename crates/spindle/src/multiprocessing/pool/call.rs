//! [`Call`]: the options of one pool call (chunk size, time limit, input window) and every
//! call method; [`Pool`]'s methods are calls with the pool's defaults.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::async_result::{AsyncResult, AsyncShared};
use super::chunking::{Chunking, Sizer};
use super::imap::{IMap, IMapUnordered, Stream};
use super::job::{arg_error, Encoded, Feed, ItemEncoder, JobQueue, ProcJob};
use super::result::{collect, Order, Outcomes};
use super::runs::Entries;
use super::Pool;
use crate::error::{Error, Result};
use crate::latch::lock;
use crate::multiprocessing::Target;
use crate::sys::image::entry_offset;

/// The options of one call of a [`Pool`], then the call itself:
/// `pool.call().chunksize(100).timeout(d).map(f, items)`.
///
/// ```
/// use std::time::Duration;
/// use spindle::multiprocessing::{Pool, StartMethod};
/// fn slow(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
/// let pool = Pool::builder().processes(2).start_method(StartMethod::Fork).build()?;
/// let out: Vec<_> = pool.call().timeout(Duration::from_millis(500)).imap(slow, [1, 5_000])?.collect();
/// assert_eq!(*out[0].as_ref().unwrap(), 1);
/// assert!(out[1].as_ref().unwrap_err().as_task().unwrap().is_timeout());
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "a call does nothing until one of its methods runs"]
pub struct Call<'a, S = ()> {
    pool: &'a Pool<S>,
    chunking: Chunking,
    timeout: Option<Duration>,
    buffersize: Option<usize>,
    progress: bool,
}

/// The bounds of a task function of [`Pool::map`]: a named function of one argument.
macro_rules! zst {
    ($f:ty) => {
        const {
            assert!(
                std::mem::size_of::<$f>() == 0,
                "a pool task must capture nothing: use a fn item or a non-capturing closure"
            )
        }
    };
}

impl<'a, S: 'static> Call<'a, S> {
    pub(crate) fn new(pool: &'a Pool<S>) -> Self {
        Call {
            pool,
            chunking: pool.chunking,
            timeout: pool.task_timeout,
            buffersize: None,
            progress: false,
        }
    }

    /// Exactly `n` items per chunk (Python's `chunksize=`); 0 is an error.
    pub fn chunksize(mut self, n: usize) -> Self {
        self.chunking = Chunking::Fixed(n);
        self
    }

    /// How the input is cut into chunks ([`Chunking`]).
    pub fn chunking(mut self, chunking: Chunking) -> Self {
        self.chunking = chunking;
        self
    }

    /// A time limit for each item of this call (pebble's `schedule(timeout=)`): an item
    /// still running after `limit` ends with [`is_timeout`](crate::TaskError::is_timeout),
    /// its worker is killed and replaced, the items after it go on.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// At most `n` items of an `imap`'s input pulled ahead of what has been consumed
    /// (Python 3.14's `buffersize`); by default a few chunks per worker, at most 65,536.
    pub fn buffersize(mut self, n: usize) -> Self {
        self.buffersize = Some(n.max(1));
        self
    }

    /// A new call of `entry` whose outcomes go to `sink` (not yet handed to the pool).
    pub(crate) fn job(
        &self,
        entries: Entries,
        sink: Arc<dyn super::result::ByteSink>,
        len: Option<usize>,
        is_map: bool,
    ) -> Result<Arc<ProcJob>> {
        let offset = entry_offset(entries.item);
        let key = offset as u64;
        let sizer = Sizer::new(
            self.chunking,
            self.pool.processes(),
            len,
            is_map,
            self.pool.shared().estimate(key),
        )?;
        Ok(Arc::new(ProcJob {
            entry: offset,
            run_entry: entry_offset(entries.run),
            key,
            timeout: self.timeout,
            sink,
            q: std::sync::Mutex::new(JobQueue::new(sizer, len.map(|l| l as u64))),
        }))
    }

    /// A streamed call: the outcomes, and the input pulled by whoever iterates.
    fn stream<A, R, I>(
        &self,
        entry: Entries,
        iter: I,
        order: Order,
        is_map: bool,
    ) -> Result<Stream<R, Feed<A, R, I>>>
    where
        A: Serialize,
        R: DeserializeOwned + Send + 'static,
        I: Iterator<Item = A>,
    {
        let (lo, hi) = iter.size_hint();
        let len = (Some(lo) == hi).then_some(lo);
        let out = Outcomes::<R>::new(order);
        let job = self.job(entry, Arc::clone(&out) as _, len, is_map)?;
        self.pool.shared().submit(&job)?;
        let feed = Feed {
            iter,
            job,
            out: Arc::clone(&out),
            shared: Arc::clone(self.pool.shared()),
            limit: self.buffersize,
            encoder: ItemEncoder::default(),
            batch: Encoded::default(),
            _a: PhantomData,
        };
        let bar = self
            .progress
            .then(|| super::progress::Bar::new(len.map(|l| l as u64)));
        Ok(Stream::new(out, Some(Box::new(feed))).with_bar(bar))
    }

    /// A call whose whole input is known now: every item is queued at once, the outcome
    /// assembled by `finish` when the last item is in.
    fn collected<A, R, T>(
        &self,
        entry: Entries,
        items: Vec<A>,
        is_map: bool,
        finish: impl FnOnce(Vec<super::result::Block<R>>) -> Result<T> + Send + 'static,
    ) -> Result<AsyncResult<T>>
    where
        A: Serialize,
        R: DeserializeOwned + Send + 'static,
        T: Send + 'static,
    {
        let out = Outcomes::<R>::new(Order::Collect);
        let result = AsyncShared::<T>::new();
        let done = Arc::clone(&result);
        out.on_finish(move |blocks| done.complete(finish(blocks)));
        let job = self.job(entry, Arc::clone(&out) as _, Some(items.len()), is_map)?;
        let first = out.register(items.len() as u64);
        let mut batch = Encoded::default();
        let mut encoder = ItemEncoder::default();
        encoder.expect(items.len());
        encoder.extend(items.iter(), &mut batch);
        {
            let mut q = lock(&job.q);
            q.push_batch(first, &mut batch);
            q.input_done = true;
        }
        self.pool.shared().submit(&job)?;
        for (k, e) in batch.failed.drain(..) {
            job.sink.fail(first + k, 1, &arg_error::<A>(&e));
        }
        out.input_done();
        Ok(AsyncResult::from_shared(result))
    }

    /// Applies `f` to every item and returns the values in input order (Python's
    /// `map(f, iterable, chunksize)`).
    ///
    /// The input is pulled lazily while the call runs. Every item runs, as in Python; the
    /// first failed item by position is the error ([`TaskError::task`](crate::TaskError::task) names it).
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] when the pool is closed; [`Error::InvalidArgument`] for a chunk
    /// size of 0; otherwise the first item's error: a panic, a dead worker, a time limit,
    /// an argument or value that does not encode.
    pub fn map<F, A, R, I>(self, f: F, items: I) -> Result<Vec<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        zst!(F);
        let _ = f;
        self.run_all(Entries::map::<F, A, R>(), items)
    }

    fn run_all<A, R, I>(self, entry: Entries, items: I) -> Result<Vec<R>>
    where
        A: Serialize,
        R: DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        let iter = items.into_iter();
        let (lo, hi) = iter.size_hint();
        if self.chunking == Chunking::Python && Some(lo) != hi {
            // Python's rule needs the length: collect the input, as Python does.
            let all: Vec<A> = iter.collect();
            return drain(
                self.stream(entry, all.into_iter(), Order::Ordered, true)?,
                lo,
            );
        }
        drain(self.stream(entry, iter, Order::Ordered, true)?, lo)
    }

    /// Like [`map`](Call::map), without waiting: the whole input is taken now (as Python
    /// does) and the [`AsyncResult`] fills when every item has ended.
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] when the pool is closed; item errors come from the result.
    pub fn map_async<F, A, R, I>(self, f: F, items: I) -> Result<AsyncResult<Vec<R>>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        zst!(F);
        let _ = f;
        let items: Vec<A> = items.into_iter().collect();
        self.collected(Entries::map::<F, A, R>(), items, true, collect)
    }

    /// The results in input order, lazily (Python's `imap`): see [`IMap`].
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] when the pool is closed; item errors come one by one.
    pub fn imap<F, A, R, I>(self, f: F, items: I) -> Result<IMap<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        zst!(F);
        let _ = f;
        let s = self.stream(
            Entries::map::<F, A, R>(),
            items.into_iter(),
            Order::Ordered,
            false,
        )?;
        Ok(IMap::from_stream(s))
    }

    /// The results as they finish (Python's `imap_unordered`): see [`IMapUnordered`].
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] when the pool is closed.
    pub fn imap_unordered<F, A, R, I>(self, f: F, items: I) -> Result<IMapUnordered<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        zst!(F);
        let _ = f;
        let s = self.stream(
            Entries::map::<F, A, R>(),
            items.into_iter(),
            Order::Unordered,
            false,
        )?;
        Ok(IMapUnordered::from_stream(s))
    }

    /// Calls `f` with each tuple of arguments (Python's `starmap`); as [`map`](Call::map).
    ///
    /// # Errors
    ///
    /// As [`map`](Call::map).
    pub fn starmap<F, Args, I>(self, f: F, items: I) -> Result<Vec<F::Output>>
    where
        F: Target<Args> + Sync,
        Args: Serialize + DeserializeOwned,
        F::Output: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = Args>,
    {
        zst!(F);
        let _ = f;
        self.run_all(Entries::star::<F, Args>(), items)
    }

    /// Like [`starmap`](Call::starmap), without waiting (Python's `starmap_async`).
    ///
    /// # Errors
    ///
    /// As [`map_async`](Call::map_async).
    pub fn starmap_async<F, Args, I>(self, f: F, items: I) -> Result<AsyncResult<Vec<F::Output>>>
    where
        F: Target<Args> + Sync,
        Args: Serialize + DeserializeOwned,
        F::Output: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = Args>,
    {
        zst!(F);
        let _ = f;
        let items: Vec<Args> = items.into_iter().collect();
        self.collected(Entries::star::<F, Args>(), items, true, collect)
    }

    /// Runs `f(args...)` on a worker and waits for its value (Python's `apply`).
    ///
    /// # Errors
    ///
    /// The task's error, or [`Error::Shutdown`] when the pool is closed.
    pub fn apply<F, Args>(self, f: F, args: Args) -> Result<F::Output>
    where
        F: Target<Args> + Sync,
        Args: Serialize + DeserializeOwned,
        F::Output: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async(f, args)?.get()
    }

    /// Runs `f(args...)` on a worker without waiting (Python's `apply_async`).
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] when the pool is closed; the task's error comes from the result.
    pub fn apply_async<F, Args>(self, f: F, args: Args) -> Result<AsyncResult<F::Output>>
    where
        F: Target<Args> + Sync,
        Args: Serialize + DeserializeOwned,
        F::Output: Serialize + DeserializeOwned + Send + 'static,
    {
        zst!(F);
        let _ = f;
        self.collected(Entries::star::<F, Args>(), vec![args], false, single)
    }

    /// [`map`](Call::map) with a task that takes its worker's state first.
    ///
    /// # Errors
    ///
    /// As [`map`](Call::map).
    pub fn map_with_state<F, A, R, I>(self, f: F, items: I) -> Result<Vec<R>>
    where
        F: Fn(&mut S, A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        zst!(F);
        let _ = f;
        self.run_all(Entries::state::<F, S, A, R>(), items)
    }

    /// [`imap`](Call::imap) with a task that takes its worker's state first.
    ///
    /// # Errors
    ///
    /// As [`imap`](Call::imap).
    pub fn imap_with_state<F, A, R, I>(self, f: F, items: I) -> Result<IMap<R>>
    where
        F: Fn(&mut S, A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        zst!(F);
        let _ = f;
        let s = self.stream(
            Entries::state::<F, S, A, R>(),
            items.into_iter(),
            Order::Ordered,
            false,
        )?;
        Ok(IMap::from_stream(s))
    }

    /// [`apply_async`](Call::apply_async) with a task that takes its worker's state first.
    ///
    /// # Errors
    ///
    /// As [`apply_async`](Call::apply_async).
    pub fn apply_async_with_state<F, A, R>(self, f: F, arg: A) -> Result<AsyncResult<R>>
    where
        F: Fn(&mut S, A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        zst!(F);
        let _ = f;
        self.collected(Entries::state::<F, S, A, R>(), vec![arg], false, single)
    }
}

/// The one value of a one-item call.
pub(crate) fn single<R>(blocks: Vec<super::result::Block<R>>) -> Result<R> {
    collect(blocks)?
        .into_iter()
        .next()
        .ok_or(Error::InvalidState(
            "a one-item call ended without its item",
        ))
}

/// Runs a streamed call to its end: every value in order, or the first error by position.
pub(crate) fn drain<R, P>(mut stream: Stream<R, P>, hint: usize) -> Result<Vec<R>>
where
    R: Send + 'static,
    P: super::result::Pull + ?Sized,
{
    let mut values = Vec::with_capacity(hint.min(1 << 20));
    let mut first: Option<Error> = None;
    stream.drain_into(&mut values, &mut first);
    match first {
        Some(e) => Err(e),
        None => Ok(values),
    }
}

impl<S: 'static> Pool<S> {
    /// Applies `f` to every item and returns the values in input order (Python's
    /// `pool.map(f, iterable)`), with the pool's default chunking; options per call through
    /// [`Pool::call`].
    ///
    /// ```
    /// use spindle::multiprocessing::{Pool, StartMethod};
    /// fn square(n: u64) -> u64 { n * n }
    /// let pool = Pool::builder().processes(3).start_method(StartMethod::Fork).build()?;
    /// assert_eq!(pool.map(square, 1..=5)?, [1, 4, 9, 16, 25]);
    /// # Ok::<(), spindle::Error>(())
    /// ```
    ///
    /// A task is named by its type in the worker, so a closure that captures a value does not
    /// compile here (worker state or [`dummy::Pool`](crate::multiprocessing::dummy::Pool)
    /// carry data):
    ///
    /// ```compile_fail
    /// use spindle::multiprocessing::Pool;
    /// let pool = Pool::new(2).unwrap();
    /// let offset = 10u64;
    /// let _ = pool.map(move |x: u64| x + offset, 1..=5);
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Call::map`].
    pub fn map<F, A, R, I>(&self, f: F, items: I) -> Result<Vec<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        self.call().map(f, items)
    }

    /// [`Call::map_async`] with the pool's defaults.
    ///
    /// # Errors
    ///
    /// As [`Call::map_async`].
    pub fn map_async<F, A, R, I>(&self, f: F, items: I) -> Result<AsyncResult<Vec<R>>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        self.call().map_async(f, items)
    }

    /// [`Call::imap`] with the pool's defaults.
    ///
    /// # Errors
    ///
    /// As [`Call::imap`].
    pub fn imap<F, A, R, I>(&self, f: F, items: I) -> Result<IMap<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        self.call().imap(f, items)
    }

    /// [`Call::imap_unordered`] with the pool's defaults.
    ///
    /// # Errors
    ///
    /// As [`Call::imap_unordered`].
    pub fn imap_unordered<F, A, R, I>(&self, f: F, items: I) -> Result<IMapUnordered<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        self.call().imap_unordered(f, items)
    }

    /// [`Call::starmap`] with the pool's defaults.
    ///
    /// ```
    /// use spindle::multiprocessing::{Pool, StartMethod};
    /// fn add(a: u32, b: u32) -> u32 { a + b }
    /// let pool = Pool::builder().processes(2).start_method(StartMethod::Fork).build()?;
    /// assert_eq!(pool.starmap(add, [(1, 2), (3, 4)])?, [3, 7]);
    /// # Ok::<(), spindle::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Call::starmap`].
    pub fn starmap<F, Args, I>(&self, f: F, items: I) -> Result<Vec<F::Output>>
    where
        F: Target<Args> + Sync,
        Args: Serialize + DeserializeOwned,
        F::Output: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = Args>,
    {
        self.call().starmap(f, items)
    }

    /// [`Call::starmap_async`] with the pool's defaults.
    ///
    /// # Errors
    ///
    /// As [`Call::starmap_async`].
    pub fn starmap_async<F, Args, I>(&self, f: F, items: I) -> Result<AsyncResult<Vec<F::Output>>>
    where
        F: Target<Args> + Sync,
        Args: Serialize + DeserializeOwned,
        F::Output: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = Args>,
    {
        self.call().starmap_async(f, items)
    }

    /// [`Call::apply`] with the pool's defaults.
    ///
    /// # Errors
    ///
    /// As [`Call::apply`].
    pub fn apply<F, Args>(&self, f: F, args: Args) -> Result<F::Output>
    where
        F: Target<Args> + Sync,
        Args: Serialize + DeserializeOwned,
        F::Output: Serialize + DeserializeOwned + Send + 'static,
    {
        self.call().apply(f, args)
    }

    /// [`Call::apply_async`] with the pool's defaults.
    ///
    /// ```
    /// use spindle::multiprocessing::{Pool, StartMethod};
    /// fn greet(name: String) -> String { format!("hello {name}") }
    /// let pool = Pool::builder().processes(1).start_method(StartMethod::Fork).build()?;
    /// let r = pool.apply_async(greet, ("bob".to_string(),))?;
    /// assert_eq!(r.get()?, "hello bob");
    /// # Ok::<(), spindle::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Call::apply_async`].
    pub fn apply_async<F, Args>(&self, f: F, args: Args) -> Result<AsyncResult<F::Output>>
    where
        F: Target<Args> + Sync,
        Args: Serialize + DeserializeOwned,
        F::Output: Serialize + DeserializeOwned + Send + 'static,
    {
        self.call().apply_async(f, args)
    }

    /// [`Call::map_with_state`] with the pool's defaults.
    ///
    /// # Errors
    ///
    /// As [`Call::map`].
    pub fn map_with_state<F, A, R, I>(&self, f: F, items: I) -> Result<Vec<R>>
    where
        F: Fn(&mut S, A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        self.call().map_with_state(f, items)
    }

    /// [`Call::imap_with_state`] with the pool's defaults.
    ///
    /// # Errors
    ///
    /// As [`Call::imap`].
    pub fn imap_with_state<F, A, R, I>(&self, f: F, items: I) -> Result<IMap<R>>
    where
        F: Fn(&mut S, A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        self.call().imap_with_state(f, items)
    }

    /// [`Call::apply_async_with_state`] with the pool's defaults.
    ///
    /// # Errors
    ///
    /// As [`Call::apply_async`].
    pub fn apply_async_with_state<F, A, R>(&self, f: F, arg: A) -> Result<AsyncResult<R>>
    where
        F: Fn(&mut S, A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.call().apply_async_with_state(f, arg)
    }
}
