//! `asyncio.queues`: [`Queue`], a FIFO for coroutines of one loop, with `maxsize`,
//! `task_done` and `join`.

use std::collections::VecDeque;
use std::fmt;
use std::pin::pin;
use std::sync::Mutex;

use crate::latch::lock;
use crate::multiprocessing::queues::{GetError, PutError};
use crate::{Error, Result};

/// A first-in first-out queue for coroutines (Python's `asyncio.Queue`): `put` waits while
/// `maxsize` items are in it (0: never), `get` waits while it is empty.
///
/// | Python                                   | spindle                                 |
/// |------------------------------------------|-----------------------------------------|
/// | `asyncio.Queue(maxsize=n)`               | `Queue::new(n)`                          |
/// | `await q.put(x)` / `q.put_nowait(x)`     | `q.put(x).await` / `q.put_nowait(x)?`    |
/// | `await q.get()` / `q.get_nowait()`       | `q.get().await` / `q.get_nowait()?`      |
/// | `q.task_done()` / `await q.join()`       | `q.task_done()?` / `q.join().await`      |
/// | `QueueFull` / `QueueEmpty`               | [`PutError::Full`] (with the item) / [`GetError::Empty`] |
///
/// Waiters are served first come, first served; a cancelled `get` or `put` takes nothing and
/// leaves nothing behind.
///
/// ```
/// use std::sync::Arc;
/// use spindle::asyncio::{self, create_task, Queue};
///
/// asyncio::run(async {
///     let q = Arc::new(Queue::new(2));
///     let consumer = {
///         let q = Arc::clone(&q);
///         create_task(async move {
///             let mut got = Vec::new();
///             for _ in 0..5 {
///                 got.push(q.get().await);
///                 q.task_done().unwrap();
///             }
///             got
///         })?
///     };
///     for i in 0..5 {
///         q.put(i).await; // waits while 2 items are queued
///     }
///     q.join().await;
///     assert_eq!(consumer.await?, [0, 1, 2, 3, 4]);
///     Ok::<_, spindle::Error>(())
/// })??;
/// # Ok::<(), spindle::Error>(())
/// ```
pub struct Queue<T> {
    items: Mutex<VecDeque<T>>,
    /// One permit per item in `items`.
    available: tokio::sync::Semaphore,
    /// One permit per free place (`None`: unbounded).
    room: Option<tokio::sync::Semaphore>,
    maxsize: usize,
    unfinished: Mutex<usize>,
    all_done: tokio::sync::Notify,
}

impl<T> Queue<T> {
    /// A queue holding at most `maxsize` items (0: no limit).
    pub fn new(maxsize: usize) -> Self {
        let maxsize = maxsize.min(tokio::sync::Semaphore::MAX_PERMITS);
        Queue {
            items: Mutex::new(VecDeque::new()),
            available: tokio::sync::Semaphore::new(0),
            room: (maxsize > 0).then(|| tokio::sync::Semaphore::new(maxsize)),
            maxsize,
            unfinished: Mutex::new(0),
            all_done: tokio::sync::Notify::new(),
        }
    }

    /// Puts `item`, waiting for room (Python's `await q.put(item)`).
    pub async fn put(&self, item: T) {
        if let Some(room) = &self.room {
            if let Ok(p) = room.acquire().await {
                p.forget();
            }
        }
        self.push(item);
    }

    /// Puts `item` if there is room now (Python's `put_nowait`).
    ///
    /// # Errors
    ///
    /// [`PutError::Full`] with the item (Python's `QueueFull`).
    pub fn put_nowait(&self, item: T) -> std::result::Result<(), PutError<T>> {
        if let Some(room) = &self.room {
            match room.try_acquire() {
                Ok(p) => p.forget(),
                Err(_) => return Err(PutError::Full(item)),
            }
        }
        self.push(item);
        Ok(())
    }

    fn push(&self, item: T) {
        lock(&self.items).push_back(item);
        *lock(&self.unfinished) += 1;
        self.available.add_permits(1);
    }

    /// Takes the first item, waiting for one (Python's `await q.get()`).
    pub async fn get(&self) -> T {
        loop {
            if let Ok(p) = self.available.acquire().await {
                p.forget();
                if let Some(item) = self.pop() {
                    return item;
                }
            }
        }
    }

    /// Takes the first item if there is one now (Python's `get_nowait`).
    ///
    /// # Errors
    ///
    /// [`GetError::Empty`] (Python's `QueueEmpty`).
    pub fn get_nowait(&self) -> std::result::Result<T, GetError> {
        match self.available.try_acquire() {
            Ok(p) => {
                p.forget();
                self.pop().ok_or(GetError::Empty)
            }
            Err(_) => Err(GetError::Empty),
        }
    }

    fn pop(&self) -> Option<T> {
        // A permit of `available` stands for an item pushed before it was added.
        let item = lock(&self.items).pop_front();
        if item.is_some() {
            if let Some(room) = &self.room {
                room.add_permits(1);
            }
        }
        item
    }

    /// Marks one item taken with `get` as processed (Python's `task_done()`).
    ///
    /// # Errors
    ///
    /// [`Error::OverRelease`] when called more times than items were put (Python's
    /// `ValueError`).
    pub fn task_done(&self) -> Result<()> {
        let mut n = lock(&self.unfinished);
        if *n == 0 {
            return Err(Error::OverRelease);
        }
        *n -= 1;
        let done = *n == 0;
        drop(n);
        if done {
            self.all_done.notify_waiters();
        }
        Ok(())
    }

    /// Waits until every item put has been marked done (Python's `await q.join()`).
    pub async fn join(&self) {
        loop {
            let mut done = pin!(self.all_done.notified());
            done.as_mut().enable();
            if *lock(&self.unfinished) == 0 {
                return;
            }
            done.await;
        }
    }

    /// The number of items now (Python's `qsize()`).
    pub fn qsize(&self) -> usize {
        lock(&self.items).len()
    }

    /// Whether it is empty now.
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether it holds `maxsize` items now (never without a limit).
    pub fn full(&self) -> bool {
        self.maxsize > 0 && self.qsize() >= self.maxsize
    }

    /// The limit given to [`new`](Queue::new) (0: none).
    pub fn maxsize(&self) -> usize {
        self.maxsize
    }
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self::new(0)
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("qsize", &self.qsize())
            .field("maxsize", &self.maxsize)
            .finish()
    }
}
