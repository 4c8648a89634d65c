//! The call methods of the thread [`Pool`](super::Pool) and its [`Call`](super::Call) options,
//! on the process pool's shared consumer side.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::{key_of, Call, Core, Job, Pool, Queue};
use crate::error::{Error, Result};
use crate::latch::lock;
use crate::multiprocessing::pool::{
    collect, drain, single, worker_state as worker, AsyncResult, AsyncShared, Bar, Block, Chunking,
    IMap, IMapUnordered, Order, Outcomes, Pull, Sizer, Stream, MAX_WINDOW,
};

/// Pulls a thread `imap`'s input into its job, on the consumer's thread.
struct Feed<A, R, I> {
    iter: I,
    job: Arc<Job<A, R>>,
    core: Arc<Core>,
    limit: Option<usize>,
}

impl<A: Send + 'static, R: Send + 'static, I: Iterator<Item = A>> Pull for Feed<A, R, I> {
    fn pull(&mut self, n: usize) -> Result<usize> {
        let items: Vec<A> = self.iter.by_ref().take(n).collect();
        let mut q = lock(&self.job.q);
        if q.closed {
            return Err(q.why.clone().map_or(Error::Shutdown, Error::Task));
        }
        if items.is_empty() {
            q.input_done = true;
            drop(q);
            self.core.work.notify_all();
            return Ok(0);
        }
        let k = items.len();
        self.job.out.register(k as u64);
        q.items.extend(items);
        let requeue = !q.queued;
        q.queued = true;
        drop(q);
        if requeue {
            lock(&self.core.state)
                .jobs
                .push_back(Arc::clone(&self.job) as _);
        }
        self.core.work.notify_all();
        Ok(k)
    }

    fn window(&self) -> usize {
        let chunk = lock(&self.job.q).sizer.next(None);
        let w = self.core.workers.max(1);
        (2 * w * chunk)
            .max(2 * w)
            .min(self.limit.unwrap_or(MAX_WINDOW))
            .max(1)
    }

    fn cancel(&mut self) {
        let mut q = lock(&self.job.q);
        q.items.clear();
        q.input_done = true;
    }
}

impl<'a, S: 'static> Call<'a, S> {
    /// Exactly `n` items per chunk (Python's `chunksize=`); 0 is an error.
    pub fn chunksize(mut self, n: usize) -> Self {
        self.chunking = Chunking::Fixed(n);
        self
    }

    /// How the input is cut into chunks.
    pub fn chunking(mut self, chunking: Chunking) -> Self {
        self.chunking = chunking;
        self
    }

    /// At most `n` items of an `imap`'s input pulled ahead of what has been consumed.
    pub fn buffersize(mut self, n: usize) -> Self {
        self.buffersize = Some(n.max(1));
        self
    }

    /// A progress bar for `map`, `imap` and `imap_unordered` (feature `progress`), drawn on
    /// stderr only when it is a terminal.
    #[cfg(feature = "progress")]
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    fn job<A, R>(
        &self,
        f: Arc<dyn Fn(A) -> R + Send + Sync>,
        key: u64,
        out: Arc<Outcomes<R>>,
        len: Option<usize>,
        is_map: bool,
    ) -> Result<Arc<Job<A, R>>> {
        let prior = lock(&self.pool.core.estimates).get(&key).copied();
        let sizer = Sizer::new(self.chunking, self.pool.core.workers, len, is_map, prior)?;
        Ok(Arc::new(Job {
            q: Mutex::new(Queue {
                items: VecDeque::new(),
                first: 0,
                input_done: false,
                closed: false,
                why: None,
                queued: true,
                sizer,
                total: len.map(|l| l as u64),
            }),
            f,
            out,
            key,
        }))
    }

    fn stream<A, R, I>(
        &self,
        f: Arc<dyn Fn(A) -> R + Send + Sync>,
        key: u64,
        iter: I,
        order: Order,
        is_map: bool,
    ) -> Result<Stream<R, Feed<A, R, I>>>
    where
        A: Send + 'static,
        R: Send + 'static,
        I: Iterator<Item = A>,
    {
        let (lo, hi) = iter.size_hint();
        let len = (Some(lo) == hi).then_some(lo);
        let out = Outcomes::<R>::new(order);
        let job = self.job(f, key, Arc::clone(&out), len, is_map)?;
        self.pool.submit(Arc::clone(&job) as _)?;
        let feed = Feed {
            iter,
            job,
            core: Arc::clone(&self.pool.core),
            limit: self.buffersize,
        };
        let bar = self.progress.then(|| Bar::new(len.map(|l| l as u64)));
        Ok(Stream::new(out, Some(Box::new(feed))).with_bar(bar))
    }

    fn collected<A, R, T>(
        &self,
        f: Arc<dyn Fn(A) -> R + Send + Sync>,
        key: u64,
        items: Vec<A>,
        is_map: bool,
        finish: impl FnOnce(Vec<Block<R>>) -> Result<T> + Send + 'static,
    ) -> Result<AsyncResult<T>>
    where
        A: Send + 'static,
        R: Send + 'static,
        T: Send + 'static,
    {
        let out = Outcomes::<R>::new(Order::Collect);
        let result = AsyncShared::<T>::new();
        let done = Arc::clone(&result);
        out.on_finish(move |blocks| done.complete(finish(blocks)));
        let job = self.job(f, key, Arc::clone(&out), Some(items.len()), is_map)?;
        out.register(items.len() as u64);
        {
            let mut q = lock(&job.q);
            q.items.extend(items);
            q.input_done = true;
        }
        self.pool.submit(job as _)?;
        out.input_done();
        Ok(AsyncResult::from_shared(result))
    }

    fn run_all<A, R, I>(
        self,
        f: Arc<dyn Fn(A) -> R + Send + Sync>,
        key: u64,
        items: I,
    ) -> Result<Vec<R>>
    where
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
    {
        let iter = items.into_iter();
        let (lo, hi) = iter.size_hint();
        if self.chunking == Chunking::Python && Some(lo) != hi {
            let all: Vec<A> = iter.collect();
            return drain(
                self.stream(f, key, all.into_iter(), Order::Ordered, true)?,
                lo,
            );
        }
        drain(self.stream(f, key, iter, Order::Ordered, true)?, lo)
    }

    /// Applies `f` to every item, values in input order (Python's `map`): every item runs;
    /// the first failed item by position is the error.
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] when the pool is closed; the first item's error otherwise.
    pub fn map<F, A, R, I>(self, f: F, items: I) -> Result<Vec<R>>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
    {
        self.run_all(Arc::new(f), key_of::<F>(), items)
    }

    /// Like [`map`](Call::map) without waiting (Python's `map_async`).
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] when the pool is closed.
    pub fn map_async<F, A, R, I>(self, f: F, items: I) -> Result<AsyncResult<Vec<R>>>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
    {
        let items: Vec<A> = items.into_iter().collect();
        self.collected(Arc::new(f), key_of::<F>(), items, true, collect)
    }

    /// The values in input order, lazily (Python's `imap`): see [`IMap`].
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] when the pool is closed.
    pub fn imap<F, A, R, I>(self, f: F, items: I) -> Result<IMap<R>>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        let s = self.stream(
            Arc::new(f),
            key_of::<F>(),
            items.into_iter(),
            Order::Ordered,
            false,
        )?;
        Ok(IMap::from_stream(s))
    }

    /// The values as they finish (Python's `imap_unordered`): see [`IMapUnordered`].
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] when the pool is closed.
    pub fn imap_unordered<F, A, R, I>(self, f: F, items: I) -> Result<IMapUnordered<R>>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        let s = self.stream(
            Arc::new(f),
            key_of::<F>(),
            items.into_iter(),
            Order::Unordered,
            false,
        )?;
        Ok(IMapUnordered::from_stream(s))
    }

    /// Calls `f` with each tuple of arguments (Python's `starmap`).
    ///
    /// # Errors
    ///
    /// As [`map`](Call::map).
    pub fn starmap<F, Args, I>(self, f: F, items: I) -> Result<Vec<F::Output>>
    where
        F: Apply<Args>,
        Args: Send + 'static,
        F::Output: Send + 'static,
        I: IntoIterator<Item = Args>,
    {
        let g = move |args: Args| f.apply(args);
        self.run_all(Arc::new(g), key_of::<F>(), items)
    }

    /// Like [`starmap`](Call::starmap) without waiting (Python's `starmap_async`).
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] when the pool is closed.
    pub fn starmap_async<F, Args, I>(self, f: F, items: I) -> Result<AsyncResult<Vec<F::Output>>>
    where
        F: Apply<Args>,
        Args: Send + 'static,
        F::Output: Send + 'static,
        I: IntoIterator<Item = Args>,
    {
        let g = move |args: Args| f.apply(args);
        let items: Vec<Args> = items.into_iter().collect();
        self.collected(Arc::new(g), key_of::<F>(), items, true, collect)
    }

    /// Runs `f(args...)` on a thread without waiting (Python's `apply_async`).
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] when the pool is closed.
    pub fn apply_async<F, Args>(self, f: F, args: Args) -> Result<AsyncResult<F::Output>>
    where
        F: Apply<Args>,
        Args: Send + 'static,
        F::Output: Send + 'static,
    {
        let g = move |args: Args| f.apply(args);
        self.collected(Arc::new(g), key_of::<F>(), vec![args], false, single)
    }

    /// Runs `f(args...)` on a thread and waits (Python's `apply`).
    ///
    /// # Errors
    ///
    /// The task's error, or [`Error::Shutdown`].
    pub fn apply<F, Args>(self, f: F, args: Args) -> Result<F::Output>
    where
        F: Apply<Args>,
        Args: Send + 'static,
        F::Output: Send + 'static,
    {
        self.apply_async(f, args)?.get()
    }

    /// [`map`](Call::map) with a task that takes its thread's state first.
    ///
    /// # Errors
    ///
    /// As [`map`](Call::map).
    pub fn map_with_state<F, A, R, I>(self, f: F, items: I) -> Result<Vec<R>>
    where
        F: Fn(&mut S, A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
    {
        let g = move |a: A| worker::with_state(|s: &mut S| f(s, a));
        self.run_all(Arc::new(g), key_of::<F>(), items)
    }

    /// [`imap`](Call::imap) with a task that takes its thread's state first.
    ///
    /// # Errors
    ///
    /// As [`imap`](Call::imap).
    pub fn imap_with_state<F, A, R, I>(self, f: F, items: I) -> Result<IMap<R>>
    where
        F: Fn(&mut S, A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        let g = move |a: A| worker::with_state(|s: &mut S| f(s, a));
        let s = self.stream(
            Arc::new(g),
            key_of::<F>(),
            items.into_iter(),
            Order::Ordered,
            false,
        )?;
        Ok(IMap::from_stream(s))
    }
}

macro_rules! delegate {
    ($( $(#[$doc:meta])* fn $name:ident<$($g:ident),*>($($arg:ident: $t:ty),*) -> $ret:ty where { $($w:tt)* } )*) => {
        impl<S: 'static> Pool<S> {
            $(
                $(#[$doc])*
                pub fn $name<$($g),*>(&self, $($arg: $t),*) -> $ret where $($w)* {
                    self.call().$name($($arg),*)
                }
            )*
        }
    };
}

delegate! {
    /// [`Call::map`] with the pool's defaults.
    ///
    /// # Errors
    ///
    /// As [`Call::map`].
    fn map<F, A, R, I>(f: F, items: I) -> Result<Vec<R>> where {
        F: Fn(A) -> R + Send + Sync + 'static, A: Send + 'static, R: Send + 'static,
        I: IntoIterator<Item = A>,
    }
    /// [`Call::map_async`] with the pool's defaults.
    ///
    /// # Errors
    ///
    /// As [`Call::map_async`].
    fn map_async<F, A, R, I>(f: F, items: I) -> Result<AsyncResult<Vec<R>>> where {
        F: Fn(A) -> R + Send + Sync + 'static, A: Send + 'static, R: Send + 'static,
        I: IntoIterator<Item = A>,
    }
    /// [`Call::imap`] with the pool's defaults.
    ///
    /// # Errors
    ///
    /// As [`Call::imap`].
    fn imap<F, A, R, I>(f: F, items: I) -> Result<IMap<R>> where {
        F: Fn(A) -> R + Send + Sync + 'static, A: Send + 'static, R: Send + 'static,
        I: IntoIterator<Item = A>, I::IntoIter: Send + 'static,
    }
    /// [`Call::imap_unordered`] with the pool's defaults.
    ///
    /// # Errors
    ///
    /// As [`Call::imap_unordered`].
    fn imap_unordered<F, A, R, I>(f: F, items: I) -> Result<IMapUnordered<R>> where {
        F: Fn(A) -> R + Send + Sync + 'static, A: Send + 'static, R: Send + 'static,
        I: IntoIterator<Item = A>, I::IntoIter: Send + 'static,
    }
    /// [`Call::starmap`] with the pool's defaults.
    ///
    /// # Errors
    ///
    /// As [`Call::map`].
    fn starmap<F, Args, I>(f: F, items: I) -> Result<Vec<F::Output>> where {
        F: Apply<Args>, Args: Send + 'static, F::Output: Send + 'static,
        I: IntoIterator<Item = Args>,
    }
    /// [`Call::starmap_async`] with the pool's defaults.
    ///
    /// # Errors
    ///
    /// As [`Call::map_async`].
    fn starmap_async<F, Args, I>(f: F, items: I) -> Result<AsyncResult<Vec<F::Output>>> where {
        F: Apply<Args>, Args: Send + 'static, F::Output: Send + 'static,
        I: IntoIterator<Item = Args>,
    }
    /// [`Call::apply`] with the pool's defaults.
    ///
    /// # Errors
    ///
    /// As [`Call::apply`].
    fn apply<F, Args>(f: F, args: Args) -> Result<F::Output> where {
        F: Apply<Args>, Args: Send + 'static, F::Output: Send + 'static,
    }
    /// [`Call::apply_async`] with the pool's defaults.
    ///
    /// # Errors
    ///
    /// As [`Call::apply_async`].
    fn apply_async<F, Args>(f: F, args: Args) -> Result<AsyncResult<F::Output>> where {
        F: Apply<Args>, Args: Send + 'static, F::Output: Send + 'static,
    }
    /// [`Call::map_with_state`] with the pool's defaults.
    ///
    /// # Errors
    ///
    /// As [`Call::map`].
    fn map_with_state<F, A, R, I>(f: F, items: I) -> Result<Vec<R>> where {
        F: Fn(&mut S, A) -> R + Send + Sync + 'static, A: Send + 'static,
        R: Send + 'static, I: IntoIterator<Item = A>,
    }
    /// [`Call::imap_with_state`] with the pool's defaults.
    ///
    /// # Errors
    ///
    /// As [`Call::imap`].
    fn imap_with_state<F, A, R, I>(f: F, items: I) -> Result<IMap<R>> where {
        F: Fn(&mut S, A) -> R + Send + Sync + 'static, A: Send + 'static,
        R: Send + 'static, I: IntoIterator<Item = A>, I::IntoIter: Send + 'static,
    }
}

/// A function a thread pool task calls with its arguments as a tuple (Python's
/// `apply(f, args)`, `starmap`): any `Fn` of zero to four arguments; unlike the process pool's
/// [`Target`](crate::multiprocessing::Target), it may capture anything.
///
/// ```
/// use spindle::multiprocessing::dummy::Pool;
/// let base = String::from("item ");
/// let pool = Pool::new(2)?;
/// assert_eq!(pool.apply(move |n: u32, m: u32| format!("{base}{}", n * m), (6, 7))?, "item 42");
/// # Ok::<(), spindle::Error>(())
/// ```
pub trait Apply<Args>: Send + Sync + 'static {
    /// What the function returns.
    type Output;
    /// Calls the function with its arguments.
    fn apply(&self, args: Args) -> Self::Output;
}

macro_rules! impl_apply {
    ($($a:ident),*) => {
        impl<Func, Ret, $($a),*> Apply<($($a,)*)> for Func
        where
            Func: Fn($($a),*) -> Ret + Send + Sync + 'static,
        {
            type Output = Ret;
            #[allow(non_snake_case)]
            fn apply(&self, ($($a,)*): ($($a,)*)) -> Ret {
                self($($a),*)
            }
        }
    };
}

impl_apply!();
impl_apply!(A);
impl_apply!(A, B);
impl_apply!(A, B, C);
impl_apply!(A, B, C, D);
