//! `multiprocessing.queues`: [`Queue`], [`SimpleQueue`] and [`JoinableQueue`] across
//! processes, with crossbeam-style [`Sender`] / [`Receiver`] ends for end of stream.
//!
//! Every message is a record in a ring of shared memory, published by one atomic store under a
//! robust process-shared mutex (see `ring.rs`): messages never interleave or tear, also when a
//! producer or consumer is SIGKILLed in the middle of one; a consumer killed inside `get`
//! takes nothing it had not received, and the next consumer goes on; each producer's messages
//! arrive in the order it put them. Payloads over half the ring travel as sealed memfds
//! (`SCM_RIGHTS`), so one item of any size never blocks its producer.
//!
//! **End of stream.** Python's `Queue` is one object that both puts and gets, so a reader can
//! never learn that every writer is gone. Here the same object exists ([`Queue`]), and
//! [`Queue::split`] (or [`Queue::sender`] / [`Queue::receiver`]) gives separate ends, as in
//! crossbeam: once every [`Sender`] and every `Queue` handle (in every process) is gone and
//! the queue is empty, [`Receiver::get`] returns [`GetError::Disconnected`]; once every
//! receiving handle is gone, a put returns [`PutError::Disconnected`] with the item. The
//! kernel tracks this through a socket pair, so it also holds when processes are SIGKILLed
//! (a put notices a receiver that was dropped at once, one whose process was killed within a
//! millisecond or 64 puts, and always before it waits for room).
//!
//! **Bounded.** A queue holds at most its ring (1 MiB by default, [`Builder::capacity`]) of
//! inline items plus the out-of-line ones, and at most `maxsize` items when one is set; a
//! put waits (or times out, or hands the item back) when it is full.
//!
//! ```
//! use spindle::multiprocessing::queues::{GetError, Queue};
//! use spindle::multiprocessing::Builder;
//!
//! let (tx, rx) = Queue::<String>::new()?.split()?;
//! let p = Builder::new().fork_target(move || {
//!     for i in 0..3 {
//!         tx.put(format!("item {i}")).unwrap();
//!     }
//! });
//! p.start()?;
//! p.join()?; // the child's sender is gone with it
//! assert_eq!(rx.get()?, "item 0");
//! assert_eq!(rx.get()?, "item 1");
//! assert_eq!(rx.get()?, "item 2");
//! assert!(matches!(rx.get(), Err(GetError::Disconnected)));
//! # Ok::<(), spindle::Error>(())
//! ```

pub(crate) mod ring;

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use self::ring::{Encode, PeerCheck, Shared, Stop};
use super::connection::Waitable;
use super::reduction;
use super::shared_memory::{deserialize_fd, explain_encode_error, serialize_fd};
use crate::error::Error;
use crate::sys::fd as sysfd;

/// Why a put did not happen; every variant gives the item back.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum PutError<T> {
    /// No room (or `maxsize` items) and no time to wait (`put_nowait`): Python's `queue.Full`.
    #[error("the queue is full")]
    Full(T),
    /// The time ran out (`put_timeout`).
    #[error("timed out waiting for room in the queue")]
    Timeout(T),
    /// This handle was closed ([`Queue::close`]).
    #[error("the queue was closed")]
    Closed(T),
    /// Every receiving handle is gone: nobody can ever get the item.
    #[error("every receiver of the queue is gone")]
    Disconnected(T),
    /// The item did not encode, or the system or the shared ring failed.
    #[error("cannot put: {1}")]
    Failed(T, Error),
}

impl<T> PutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(t)
            | PutError::Timeout(t)
            | PutError::Closed(t)
            | PutError::Disconnected(t)
            | PutError::Failed(t, _) => t,
        }
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("Full(..)"),
            PutError::Timeout(_) => f.write_str("Timeout(..)"),
            PutError::Closed(_) => f.write_str("Closed(..)"),
            PutError::Disconnected(_) => f.write_str("Disconnected(..)"),
            PutError::Failed(_, e) => write!(f, "Failed(.., {e:?})"),
        }
    }
}

impl<T> From<PutError<T>> for Error {
    fn from(e: PutError<T>) -> Error {
        match e {
            PutError::Full(_) => Error::InvalidState("the queue is full"),
            PutError::Timeout(_) => Error::Timeout,
            PutError::Closed(_) => Error::Shutdown,
            PutError::Disconnected(_) => Error::Io(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "every receiver of the queue is gone",
            )),
            PutError::Failed(_, e) => e,
        }
    }
}

/// Why a get returned no item.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// Nothing to take now (`get_nowait`): Python's `queue.Empty`.
    #[error("the queue is empty")]
    Empty,
    /// The time ran out (`get_timeout`).
    #[error("timed out waiting for an item")]
    Timeout,
    /// The queue is empty and every sending handle is gone: no item will ever come.
    #[error("the queue is empty and every sender is gone")]
    Disconnected,
    /// This handle cannot receive (a [`Sender`]).
    #[error("this handle cannot receive")]
    WrongDirection,
    /// An item did not decode (it is consumed), or the shared ring or the system failed.
    #[error(transparent)]
    Failed(Error),
}

impl From<GetError> for Error {
    fn from(e: GetError) -> Error {
        match e {
            GetError::Empty => Error::InvalidState("the queue is empty"),
            GetError::Timeout => Error::Timeout,
            GetError::Disconnected => Error::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the queue is empty and every sender is gone",
            )),
            GetError::WrongDirection => Error::InvalidState("this handle cannot receive"),
            GetError::Failed(e) => e,
        }
    }
}

/// Settings of a new queue: `maxsize` and the ring's size.
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    maxsize: u32,
    capacity: usize,
}

impl Builder {
    /// At most `n` items at once (Python's `maxsize`; 0: no limit but the ring's).
    pub fn maxsize(mut self, n: u32) -> Self {
        self.maxsize = n;
        self
    }

    /// The ring's size in bytes (rounded up to a power of two, 4 KiB to 64 GiB; default
    /// 1 MiB). Items over half of it travel out of line.
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }

    /// Makes the queue.
    pub fn build<T>(self) -> crate::Result<Queue<T>> {
        let shared = Shared::new(self.capacity, self.maxsize)?;
        let (a, b) = sysfd::seqpacket_pair()?;
        let _ = sysfd::set_send_buffer(a.as_fd(), 4 << 20);
        Ok(Queue {
            ends: Ends::new(Arc::new(shared), Some(a), Some(b)),
        })
    }
}

/// The descriptors and mapping a handle holds: the shared ring, and the producers' and/or
/// consumers' socket end.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct Ends<T> {
    #[serde(serialize_with = "ser_arc", deserialize_with = "de_arc")]
    shared: Arc<Shared>,
    #[serde(serialize_with = "ser_opt_fd", deserialize_with = "de_opt_fd")]
    tx: Option<OwnedFd>,
    #[serde(serialize_with = "ser_opt_fd", deserialize_with = "de_opt_fd")]
    rx: Option<OwnedFd>,
    #[serde(skip)]
    closed: AtomicBool,
    #[serde(skip)]
    scratch: Mutex<Vec<u8>>,
    #[serde(skip)]
    peer: PeerCheck,
    #[serde(skip)]
    _t: PhantomData<fn(T) -> T>,
}

fn ser_arc<S: serde::Serializer>(shared: &Arc<Shared>, s: S) -> Result<S::Ok, S::Error> {
    Shared::serialize(shared, s)
}

fn de_arc<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Arc<Shared>, D::Error> {
    Shared::deserialize(d).map(Arc::new)
}

fn ser_opt_fd<S: serde::Serializer>(fd: &Option<OwnedFd>, s: S) -> Result<S::Ok, S::Error> {
    struct W<'a>(BorrowedFd<'a>);
    impl Serialize for W<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize_fd(self.0, s)
        }
    }
    fd.as_ref().map(|f| W(f.as_fd())).serialize(s)
}

fn de_opt_fd<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<OwnedFd>, D::Error> {
    struct W(OwnedFd);
    impl<'de> Deserialize<'de> for W {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<W, D::Error> {
            deserialize_fd(d).map(W)
        }
    }
    Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
}

impl<T> Ends<T> {
    fn new(shared: Arc<Shared>, tx: Option<OwnedFd>, rx: Option<OwnedFd>) -> Self {
        Ends {
            shared,
            tx,
            rx,
            closed: AtomicBool::new(false),
            scratch: Mutex::new(Vec::new()),
            peer: PeerCheck::default(),
            _t: PhantomData,
        }
    }

    fn dup(&self, tx: bool, rx: bool) -> crate::Result<Ends<T>> {
        let tx = match (&self.tx, tx) {
            (Some(fd), true) => Some(fd.try_clone()?),
            _ => None,
        };
        let rx = match (&self.rx, rx) {
            (Some(fd), true) => Some(fd.try_clone()?),
            _ => None,
        };
        Ok(Ends::new(Arc::clone(&self.shared), tx, rx))
    }
}

impl<T> Drop for Ends<T> {
    fn drop(&mut self) {
        // The receiving end is closed first, then counted: a put that sees the count move
        // asks the kernel, which then knows whether a receiver is left.
        if let Some(rx) = self.rx.take() {
            drop(rx);
            self.shared.end_closed();
        }
    }
}

impl<T: Serialize + DeserializeOwned> Ends<T> {
    fn put_until(
        &self,
        item: T,
        deadline: Option<Instant>,
        nowait: bool,
    ) -> Result<(), PutError<T>> {
        let Some(tx) = self.tx.as_ref() else {
            return Err(PutError::Disconnected(item));
        };
        if self.closed.load(Ordering::Relaxed) {
            return Err(PutError::Closed(item));
        }
        let mut own = Vec::new();
        let mut guard = self.scratch.try_lock().ok();
        let scratch = guard.as_deref_mut().unwrap_or(&mut own);
        let r = self
            .shared
            .put(&Item(&item), scratch, tx.as_fd(), &self.peer, deadline);
        if scratch.capacity() > self.shared.capacity().max(1 << 20) {
            *scratch = Vec::new();
        }
        match r {
            Ok(()) => Ok(()),
            Err(Stop::Timeout) if nowait => Err(PutError::Full(item)),
            Err(Stop::Timeout) => Err(PutError::Timeout(item)),
            Err(Stop::Disconnected) => Err(PutError::Disconnected(item)),
            Err(Stop::Bad(e)) => Err(PutError::Failed(item, e)),
        }
    }

    fn get_until(&self, deadline: Option<Instant>, nowait: bool) -> Result<T, GetError> {
        let Some(rx) = self.rx.as_ref() else {
            return Err(GetError::WrongDirection);
        };
        let mut own = Vec::new();
        let mut guard = self.scratch.try_lock().ok();
        let scratch = guard.as_deref_mut().unwrap_or(&mut own);
        let r = self
            .shared
            .get(rx.as_fd(), scratch, deadline, reduction::decode::<T>);
        if scratch.capacity() > self.shared.capacity().max(1 << 20) {
            *scratch = Vec::new();
        }
        match r {
            Ok(item) => Ok(item),
            Err(Stop::Timeout) if nowait => Err(GetError::Empty),
            Err(Stop::Timeout) => Err(GetError::Timeout),
            Err(Stop::Disconnected) => Err(GetError::Disconnected),
            Err(Stop::Bad(e)) => Err(GetError::Failed(e)),
        }
    }
}

/// An item being put, encoded with the crate's codec.
pub(crate) struct Item<'a, T>(pub(crate) &'a T);

impl<T: Serialize> Encode for Item<'_, T> {
    fn encode_in_place(&self, buf: &mut [u8]) -> Option<usize> {
        postcard::to_slice(self.0, buf).ok().map(|used| used.len())
    }

    fn encode_vec(&self, out: &mut Vec<u8>) -> crate::Result<()> {
        reduction::encode_into(self.0, out).map_err(explain_encode_error)
    }
}

fn deadline(t: Duration) -> Option<Instant> {
    Instant::now().checked_add(t)
}

macro_rules! put_api {
    () => {
        /// Puts `item`, waiting while the queue is full (Python's `put`).
        ///
        /// # Errors
        ///
        /// [`PutError::Closed`] after [`close`](Queue::close); [`PutError::Disconnected`]
        /// when no receiving handle is left; [`PutError::Failed`] when the item does not
        /// encode. Each gives the item back.
        pub fn put(&self, item: T) -> Result<(), PutError<T>> {
            self.ends.put_until(item, None, false)
        }

        /// [`put`](Self::put) waiting at most `timeout` for room ([`PutError::Timeout`]).
        pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
            self.ends.put_until(item, deadline(timeout), false)
        }

        /// [`put`](Self::put) only if there is room now ([`PutError::Full`]).
        pub fn put_nowait(&self, item: T) -> Result<(), PutError<T>> {
            self.ends.put_until(item, Some(Instant::now()), true)
        }
    };
}

macro_rules! get_api {
    () => {
        /// Takes the next item, waiting for one (Python's `get`).
        ///
        /// # Errors
        ///
        /// [`GetError::Disconnected`] when the queue is empty and every sending handle is
        /// gone; [`GetError::Failed`] when an item does not decode.
        pub fn get(&self) -> Result<T, GetError> {
            self.ends.get_until(None, false)
        }

        /// [`get`](Self::get) waiting at most `timeout` ([`GetError::Timeout`]).
        pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
            self.ends.get_until(deadline(timeout), false)
        }

        /// [`get`](Self::get) only if an item is there now ([`GetError::Empty`]).
        pub fn get_nowait(&self) -> Result<T, GetError> {
            self.ends.get_until(Some(Instant::now()), true)
        }
    };
}

macro_rules! size_api {
    () => {
        /// The number of items in the queue now (exact at the instant it is read).
        pub fn qsize(&self) -> usize {
            self.ends.shared.len()
        }

        /// Whether the queue is empty now.
        pub fn empty(&self) -> bool {
            self.qsize() == 0
        }

        /// Whether the queue holds `maxsize` items now (never, without a `maxsize`).
        pub fn full(&self) -> bool {
            let max = self.ends.shared.maxsize();
            max != 0 && self.qsize() >= max as usize
        }
    };
}

/// A queue between processes (Python's `multiprocessing.Queue`): many producers, many
/// consumers, optional `maxsize`. Travels to a child captured by a fork closure (or, with the
/// start path's descriptor passing, in a `Process`'s arguments); [`Queue::clone_handle`]
/// makes another handle in this process.
///
/// ```
/// use spindle::multiprocessing::queues::{PutError, Queue};
/// let q = Queue::<u32>::builder().maxsize(1).build()?;
/// q.put(1).unwrap();
/// assert!(q.full());
/// let back = q.put_nowait(2).unwrap_err();
/// assert!(matches!(back, PutError::Full(2)));
/// assert_eq!(q.get()?, 1);
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Queue<T> {
    #[serde(deserialize_with = "de_ends")]
    ends: Ends<T>,
}

fn de_ends<'de, D: serde::Deserializer<'de>, T>(d: D) -> Result<Ends<T>, D::Error> {
    let ends = Ends::<T>::deserialize(d)?;
    ends.shared
        .validate()
        .map_err(<D::Error as serde::de::Error>::custom)?;
    Ok(ends)
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("qsize", &self.ends.shared.len())
            .finish()
    }
}

impl<T> Queue<T> {
    /// Settings for a new queue.
    pub fn builder() -> Builder {
        Builder {
            maxsize: 0,
            capacity: ring::DEFAULT_CAPACITY,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// A queue without `maxsize`, with the default 1 MiB ring.
    pub fn new() -> crate::Result<Queue<T>> {
        Queue::<T>::builder().build()
    }

    /// A queue holding at most `maxsize` items (Python's `Queue(maxsize)`).
    pub fn with_maxsize(maxsize: u32) -> crate::Result<Queue<T>> {
        Queue::<T>::builder().maxsize(maxsize).build()
    }

    put_api!();
    get_api!();
    size_api!();

    /// Another handle on the same queue in this process (both ends).
    pub fn clone_handle(&self) -> crate::Result<Queue<T>> {
        Ok(Queue {
            ends: self.ends.dup(true, true)?,
        })
    }

    /// A sending-only handle.
    pub fn sender(&self) -> crate::Result<Sender<T>> {
        Ok(Sender {
            ends: self.ends.dup(true, false)?,
        })
    }

    /// A receiving-only handle.
    pub fn receiver(&self) -> crate::Result<Receiver<T>> {
        Ok(Receiver {
            ends: self.ends.dup(false, true)?,
        })
    }

    /// Turns this handle into separate ends (see the module docs on end of stream).
    pub fn split(self) -> crate::Result<(Sender<T>, Receiver<T>)> {
        let mut ends = self.ends;
        let (shared, tx, rx) = (Arc::clone(&ends.shared), ends.tx.take(), ends.rx.take());
        drop(ends);
        Ok((
            Sender {
                ends: Ends::new(Arc::clone(&shared), tx, None),
            },
            Receiver {
                ends: Ends::new(shared, None, rx),
            },
        ))
    }

    /// No more puts through this handle (Python's `close()`): a later put returns
    /// [`PutError::Closed`]. Gets still work.
    pub fn close(&self) {
        self.ends.closed.store(true, Ordering::Relaxed);
    }

    /// Python's `join_thread()`: returns at once. There is no feeder thread: a put returns
    /// once its item is in shared memory (or its sealed memfd is in the kernel's socket
    /// queue), so nothing is left to flush when a process exits.
    pub fn join_thread(&self) {}
}

/// The sending end of a [`Queue`] (from [`Queue::split`] or [`Queue::sender`]).
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Sender<T> {
    #[serde(deserialize_with = "de_ends")]
    ends: Ends<T>,
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sender { .. }")
    }
}

impl<T: Serialize + DeserializeOwned> Sender<T> {
    put_api!();
    size_api!();

    /// Another sending handle in this process.
    pub fn clone_handle(&self) -> crate::Result<Sender<T>> {
        Ok(Sender {
            ends: self.ends.dup(true, false)?,
        })
    }

    /// No more puts through this handle.
    pub fn close(&self) {
        self.ends.closed.store(true, Ordering::Relaxed);
    }
}

/// The receiving end of a [`Queue`] (from [`Queue::split`] or [`Queue::receiver`]).
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Receiver<T> {
    #[serde(deserialize_with = "de_ends")]
    ends: Ends<T>,
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receiver { .. }")
    }
}

impl<T: Serialize + DeserializeOwned> Receiver<T> {
    get_api!();
    size_api!();

    /// Another receiving handle in this process.
    pub fn clone_handle(&self) -> crate::Result<Receiver<T>> {
        Ok(Receiver {
            ends: self.ends.dup(false, true)?,
        })
    }

    /// The items, until end of stream (or the first error).
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.get().ok())
    }
}

/// A queue without `maxsize` (Python's `multiprocessing.SimpleQueue`): `put`, `get`, `empty`,
/// `close`.
///
/// ```
/// use spindle::multiprocessing::queues::SimpleQueue;
/// let q = SimpleQueue::new()?;
/// q.put((1, "one".to_string())).unwrap();
/// assert_eq!(q.get()?, (1, "one".to_string()));
/// assert!(q.empty());
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct SimpleQueue<T> {
    inner: Queue<T>,
}

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// A new simple queue.
    pub fn new() -> crate::Result<SimpleQueue<T>> {
        Ok(SimpleQueue {
            inner: Queue::new()?,
        })
    }

    /// Puts `item` (see [`Queue::put`]).
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.inner.put(item)
    }

    /// Takes the next item (see [`Queue::get`]).
    pub fn get(&self) -> Result<T, GetError> {
        self.inner.get()
    }

    /// Whether it is empty now.
    pub fn empty(&self) -> bool {
        self.inner.empty()
    }

    /// No more puts through this handle.
    pub fn close(&self) {
        self.inner.close()
    }

    /// Another handle in this process.
    pub fn clone_handle(&self) -> crate::Result<SimpleQueue<T>> {
        Ok(SimpleQueue {
            inner: self.inner.clone_handle()?,
        })
    }
}

/// A [`Queue`] that counts unfinished items (Python's `multiprocessing.JoinableQueue`): every
/// `put` adds one, every [`task_done`](JoinableQueue::task_done) removes one, and
/// [`join`](JoinableQueue::join) waits until none is left.
///
/// The count is derived from the ring's own record counter (puts) and one shared counter
/// (done), so a producer killed mid-put never leaves it off by one. A consumer killed after
/// `get` and before `task_done` leaves its item unfinished, as in Python: use
/// [`join_timeout`](JoinableQueue::join_timeout) where consumers may die.
///
/// ```
/// use spindle::multiprocessing::queues::JoinableQueue;
/// let q = JoinableQueue::new()?;
/// q.put(5u8).unwrap();
/// assert_eq!(q.get()?, 5);
/// q.task_done()?;
/// q.join();
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct JoinableQueue<T> {
    inner: Queue<T>,
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// A new joinable queue without `maxsize`.
    pub fn new() -> crate::Result<JoinableQueue<T>> {
        Ok(JoinableQueue {
            inner: Queue::new()?,
        })
    }

    /// A new joinable queue holding at most `maxsize` items.
    pub fn with_maxsize(maxsize: u32) -> crate::Result<JoinableQueue<T>> {
        Ok(JoinableQueue {
            inner: Queue::with_maxsize(maxsize)?,
        })
    }

    /// The queue itself (put, get, sizes, ends).
    pub fn queue(&self) -> &Queue<T> {
        &self.inner
    }

    /// Puts `item` (see [`Queue::put`]).
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.inner.put(item)
    }

    /// Takes the next item (see [`Queue::get`]).
    pub fn get(&self) -> Result<T, GetError> {
        self.inner.get()
    }

    /// [`Queue::get_timeout`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.inner.get_timeout(timeout)
    }

    /// Marks one item taken with `get` as processed.
    ///
    /// # Errors
    ///
    /// [`Error::OverRelease`] when called more times than items were put (Python's
    /// `ValueError`).
    pub fn task_done(&self) -> crate::Result<()> {
        if self.inner.ends.shared.task_done() {
            Ok(())
        } else {
            Err(Error::OverRelease)
        }
    }

    /// Waits until every item put has been marked done.
    pub fn join(&self) {
        self.inner.ends.shared.join(None);
    }

    /// [`join`](JoinableQueue::join) for at most `timeout` ([`Error::Timeout`] then).
    pub fn join_timeout(&self, timeout: Duration) -> crate::Result<()> {
        if self.inner.ends.shared.join(deadline(timeout)) {
            Ok(())
        } else {
            Err(Error::Timeout)
        }
    }

    /// Another handle in this process.
    pub fn clone_handle(&self) -> crate::Result<JoinableQueue<T>> {
        Ok(JoinableQueue {
            inner: self.inner.clone_handle()?,
        })
    }
}

impl<T> super::connection::sealed_waitable::Sealed for Queue<T> {}
impl<T> Waitable for Queue<T> {
    fn wait_fds(&self) -> Vec<(BorrowedFd<'_>, bool)> {
        wait_fds(&self.ends)
    }
    fn ready_now(&self, polled: bool) -> bool {
        ready_now(&self.ends, polled)
    }
    fn register(&self, on: bool) {
        register(&self.ends, on);
    }
}

impl<T> super::connection::sealed_waitable::Sealed for Receiver<T> {}
impl<T> Waitable for Receiver<T> {
    fn wait_fds(&self) -> Vec<(BorrowedFd<'_>, bool)> {
        wait_fds(&self.ends)
    }
    fn ready_now(&self, polled: bool) -> bool {
        ready_now(&self.ends, polled)
    }
    fn register(&self, on: bool) {
        register(&self.ends, on);
    }
}

/// What `connection::wait` sleeps on for a receiving end: the data bell and the end's own
/// descriptor (nothing for an end that cannot receive).
fn wait_fds<T>(ends: &Ends<T>) -> Vec<(BorrowedFd<'_>, bool)> {
    match &ends.rx {
        Some(rx) => vec![(ends.shared.data_bell(), false), (rx.as_fd(), true)],
        None => Vec::new(),
    }
}

/// Announces (or withdraws) a `wait` sleeping on the data bell of a receiving end.
fn register<T>(ends: &Ends<T>, on: bool) {
    if ends.rx.is_some() {
        ends.shared.announce(on);
    }
}

fn ready_now<T>(ends: &Ends<T>, polled: bool) -> bool {
    let Some(rx) = ends.rx.as_ref() else {
        return false;
    };
    if ends.shared.has_items(polled) {
        return true;
    }
    // Every producer gone is ready too (a get would return Disconnected at once).
    sysfd::poll(&[(rx.as_fd(), sysfd::Interest::Read)], Some(Duration::ZERO))
        .is_ok_and(|r| r[0].hangup)
}

#[cfg(test)]
mod tests;
