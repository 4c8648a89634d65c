//! `multiprocessing.connection`: [`pipe`] and [`Connection`], [`Listener`] and [`client`] with
//! an `authkey` handshake, and [`wait`] on any mix of connections, queues and processes.
//!
//! A connection carries frames: one encoded value (postcard), or raw bytes from
//! [`Connection::send_bytes`]. Two transports sit under the same type:
//!
//! - a [`pipe`]'s ends share memory: one ring per direction, the same ring as a
//!   [`Queue`](super::queues::Queue)'s (a value is encoded straight into shared memory and
//!   decoded from it; no system call while both sides are busy), with a socket pair beside it
//!   for end of stream, for [`wait`], and for the descriptors that carry the ring to a child;
//! - a [`Listener`] / [`client`] connection, or one made from a socket
//!   ([`From<UnixStream>`](Connection#impl-From%3CUnixStream%3E-for-Connection%3CS,+R%3E)),
//!   is a stream: a 4-byte little-endian length, then the frame. Its reader refuses a length
//!   beyond the limit ([`Connection::set_max_frame`], 1 GiB by default) as soon as the 4
//!   bytes arrive, never allocates more than one chunk ahead of the bytes received, and waits
//!   for the rest of a frame only until the peer's end of stream (then a truncated-frame
//!   error, not a hang).
//!
//! ```
//! use spindle::multiprocessing::connection::pipe;
//! use spindle::multiprocessing::Builder;
//!
//! // A typed duplex pipe: the parent sends u64s and receives Strings.
//! let (parent, child) = pipe::<u64, String>(true)?;
//! let p = Builder::new().fork_target(move || {
//!     let n = child.recv().unwrap();
//!     child.send(&format!("got {n}")).unwrap();
//! });
//! p.start()?;
//! parent.send(&7)?;
//! assert_eq!(parent.recv()?, "got 7");
//! p.join()?;
//! # Ok::<(), spindle::Error>(())
//! ```
//!
//! **Fork and end of stream.** A forked child inherits every descriptor its parent holds at
//! that moment, the other end of its own pipe included (a spawned or forkserver child holds
//! only what its arguments carry). So a child forked while its parent holds both ends never
//! sees end of stream from the parent until it drops them: end the conversation with a
//! message of its own, as the examples do (Python documents the same rule).

mod listener;
mod rings;
mod stream;

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use listener::{client, Listener};

use self::rings::{Raw, RingEnd};
use self::stream::Stream;
use super::queues::ring::Encode;
use super::queues::Item;
use super::reduction;
use super::shared_memory::{deserialize_fd, serialize_fd};
use crate::error::Error;
use crate::sys::fd::{self as sysfd, Interest};

/// The default frame limit: 1 GiB (as the process control channel's).
pub const DEFAULT_MAX_FRAME: usize = 1 << 30;

/// Why a receive did not return a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The peer is gone (every copy of the other end closed, or its process died) and
    /// nothing is left to read.
    #[error("the other end of the connection is gone")]
    Disconnected,
    /// The time ran out (nothing is lost: a partial frame stays buffered).
    #[error("timed out waiting for a message")]
    Timeout,
    /// This end cannot receive (the write end of a one-way pipe).
    #[error("this end of the connection cannot receive")]
    WrongDirection,
    /// A frame was corrupt, truncated, oversized, or did not decode (see the inner error:
    /// [`Error::Protocol`] or [`Error::Codec`]).
    #[error(transparent)]
    Bad(Error),
}

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The peer is gone.
    #[error("the other end of the connection is gone")]
    Disconnected,
    /// The time ran out with the frame not (fully) written. A partly written frame leaves
    /// the connection unusable; the next send reports [`SendError::Broken`].
    #[error("timed out sending a message")]
    Timeout,
    /// This end cannot send (the read end of a one-way pipe).
    #[error("this end of the connection cannot send")]
    WrongDirection,
    /// An earlier send stopped in the middle of a frame.
    #[error("an earlier send stopped mid-frame; the connection is unusable")]
    Broken,
    /// The value did not encode, or exceeds the frame limit.
    #[error(transparent)]
    Bad(Error),
}

impl From<RecvError> for Error {
    fn from(e: RecvError) -> Error {
        match e {
            RecvError::Disconnected => Error::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the other end of the connection is gone",
            )),
            RecvError::Timeout => Error::Timeout,
            RecvError::WrongDirection => Error::InvalidState("this end cannot receive"),
            RecvError::Bad(e) => e,
        }
    }
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Error {
        match e {
            SendError::Disconnected => Error::Io(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the other end of the connection is gone",
            )),
            SendError::Timeout => Error::Timeout,
            SendError::WrongDirection => Error::InvalidState("this end cannot send"),
            SendError::Broken => Error::InvalidState("an earlier send stopped mid-frame"),
            SendError::Bad(e) => e,
        }
    }
}

/// How a connection's frames travel.
#[derive(Debug, Serialize, Deserialize)]
enum Transport {
    /// A stream socket (a listener's or client's connection).
    Stream(#[serde(serialize_with = "ser_stream", deserialize_with = "de_stream")] Stream),
    /// Shared rings (a pipe's end): `out` to send, `inn` to receive.
    Rings {
        out: Option<RingEnd>,
        inn: Option<RingEnd>,
    },
}

fn ser_stream<S: serde::Serializer>(s: &Stream, ser: S) -> Result<S::Ok, S::Error> {
    serialize_fd(s.fd(), ser)
}

fn de_stream<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Stream, D::Error> {
    Ok(Stream::new(deserialize_fd(d)?))
}

/// One end of a [`pipe`] (or of a [`Listener`]/[`client`] connection): sends `S`, receives
/// `R` (Python's `Connection`).
///
/// Methods take `&self`; sends from several threads never interleave their frames, nor do
/// receives. A pipe's end may even be used by several processes at once (its frames are ring
/// records, whole or absent); a stream connection may not (two processes writing one socket
/// interleave, as in Python).
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Connection<S, R> {
    transport: Transport,
    readable: bool,
    writable: bool,
    max_frame: usize,
    #[serde(skip)]
    _types: PhantomData<fn(S) -> R>,
}

impl<S, R> fmt::Debug for Connection<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("readable", &self.readable)
            .field("writable", &self.writable)
            .field(
                "transport",
                &match self.transport {
                    Transport::Stream(_) => "stream",
                    Transport::Rings { .. } => "shared rings",
                },
            )
            .finish()
    }
}

/// A pair of connected [`Connection`]s (Python's `Pipe(duplex)`).
///
/// With `duplex`, each end sends and receives (`A` one way, `B` the other). Without, the
/// first end only receives and the second only sends, as Python's `Pipe(False)` returns
/// `(reader, writer)`; using the wrong direction is
/// [`RecvError::WrongDirection`] / [`SendError::WrongDirection`].
///
/// ```
/// use spindle::multiprocessing::connection::pipe;
/// let (reader, writer) = pipe::<(), Vec<u32>>(false)?;
/// writer.send(&vec![1, 2, 3])?;
/// assert_eq!(reader.recv()?, [1, 2, 3]);
/// # Ok::<(), spindle::Error>(())
/// ```
#[allow(clippy::type_complexity)]
pub fn pipe<A, B>(duplex: bool) -> crate::Result<(Connection<A, B>, Connection<B, A>)> {
    pipe_with_capacity(duplex, rings::RING)
}

/// [`pipe`] with rings of `ring_bytes` each way (rounded up to a power of two, at least
/// 4 KiB; [`pipe`] takes 1 MiB). Frames up to half the ring travel through shared memory;
/// larger ones out of line, as a sealed memfd each (see
/// [`queues::Builder::capacity`](super::queues::Builder::capacity)).
///
/// ```
/// use spindle::multiprocessing::connection::pipe_with_capacity;
/// let (a, b) = pipe_with_capacity::<Vec<u8>, ()>(false, 4 << 20)?;
/// # let _ = (a, b);
/// # Ok::<(), spindle::Error>(())
/// ```
#[allow(clippy::type_complexity)]
pub fn pipe_with_capacity<A, B>(
    duplex: bool,
    ring_bytes: usize,
) -> crate::Result<(Connection<A, B>, Connection<B, A>)> {
    // Direction 1: first -> second (used only when duplex); direction 2: second -> first.
    let (to_first_tx, to_first_rx) = RingEnd::pair(ring_bytes)?;
    let (to_second_tx, to_second_rx) = if duplex {
        let (tx, rx) = RingEnd::pair(ring_bytes)?;
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let first = Connection::from_transport(
        Transport::Rings {
            out: to_second_tx,
            inn: Some(to_first_rx),
        },
        true,
        duplex,
    );
    let second = Connection::from_transport(
        Transport::Rings {
            out: Some(to_first_tx),
            inn: to_second_rx,
        },
        duplex,
        true,
    );
    Ok((first, second))
}

impl<S, R> From<UnixStream> for Connection<S, R> {
    /// A connection over a connected Unix stream socket whose peer speaks the same framing
    /// (Python's `Connection(handle)`).
    fn from(stream: UnixStream) -> Self {
        Connection::from_stream(Stream::new(OwnedFd::from(stream)))
    }
}

impl<S, R> Connection<S, R> {
    fn from_transport(transport: Transport, readable: bool, writable: bool) -> Self {
        Connection {
            transport,
            readable,
            writable,
            max_frame: DEFAULT_MAX_FRAME,
            _types: PhantomData,
        }
    }

    fn from_stream(stream: Stream) -> Self {
        Connection::from_transport(Transport::Stream(stream), true, true)
    }

    /// The largest frame this end accepts or sends (default [`DEFAULT_MAX_FRAME`]).
    pub fn set_max_frame(&mut self, bytes: usize) {
        self.max_frame = bytes.min(u32::MAX as usize);
    }

    /// Whether this end can receive.
    pub fn readable(&self) -> bool {
        self.readable
    }

    /// Whether this end can send.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Closes this end (Python's `close()`); the same as dropping it. The peer sees end of
    /// stream once every copy of this end (in every process) is closed.
    pub fn close(self) {}

    /// Another handle on this same end, in this process: what Python does when it pickles
    /// one `Connection` into the arguments of several processes. Give each
    /// [`Process`](super::Process) its own handle; the peer sees end of stream once every
    /// handle is gone.
    ///
    /// A pipe's end may be used through several handles (and processes) at once: its frames
    /// are ring records, whole or absent. The handles of a stream connection (a
    /// [`Listener`]'s or [`client`]'s) share the socket but not what each has read ahead,
    /// so only one of them may receive at a time, and one send at a time (as in Python).
    ///
    /// ```
    /// use spindle::multiprocessing::connection::pipe;
    /// let (reader, writer) = pipe::<(), u8>(false)?;
    /// let second = writer.clone_handle()?;
    /// drop(writer);
    /// second.send(&7)?;
    /// assert_eq!(reader.recv()?, 7);
    /// drop(second); // the last writer: end of stream
    /// assert!(reader.recv().is_err());
    /// # Ok::<(), spindle::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the system refuses another descriptor.
    pub fn clone_handle(&self) -> crate::Result<Connection<S, R>> {
        let transport = match &self.transport {
            Transport::Stream(s) => Transport::Stream(Stream::new(s.fd().try_clone_to_owned()?)),
            Transport::Rings { out, inn } => Transport::Rings {
                out: out.as_ref().map(RingEnd::clone_handle).transpose()?,
                inn: inn.as_ref().map(RingEnd::clone_handle).transpose()?,
            },
        };
        Ok(Connection {
            transport,
            readable: self.readable,
            writable: self.writable,
            max_frame: self.max_frame,
            _types: PhantomData,
        })
    }

    fn send_with(&self, item: &dyn Encode, deadline: Option<Instant>) -> Result<(), SendError> {
        if !self.writable {
            return Err(SendError::WrongDirection);
        }
        match &self.transport {
            Transport::Stream(s) => {
                s.send_frame(self.max_frame, |buf| item.encode_vec(buf), deadline)
            }
            Transport::Rings { out: Some(r), .. } => r.send(item, self.max_frame, deadline),
            Transport::Rings { out: None, .. } => Err(SendError::WrongDirection),
        }
    }

    fn recv_with<T>(
        &self,
        deadline: Option<Instant>,
        decode: impl FnOnce(&[u8]) -> crate::Result<T>,
    ) -> Result<T, RecvError> {
        if !self.readable {
            return Err(RecvError::WrongDirection);
        }
        match &self.transport {
            Transport::Stream(s) => {
                let bytes = s.recv_frame(self.max_frame, deadline)?;
                decode(&bytes).map_err(RecvError::Bad)
            }
            Transport::Rings { inn: Some(r), .. } => r.recv(self.max_frame, deadline, decode),
            Transport::Rings { inn: None, .. } => Err(RecvError::WrongDirection),
        }
    }

    /// Sends raw bytes as one frame (Python's `send_bytes`).
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<(), SendError> {
        self.send_with(&Raw(bytes), None)
    }

    /// Receives one frame's bytes (Python's `recv_bytes`).
    pub fn recv_bytes(&self) -> Result<Vec<u8>, RecvError> {
        self.recv_with(None, |b| Ok(b.to_vec()))
    }

    /// [`recv_bytes`](Connection::recv_bytes) for at most `timeout`.
    pub fn recv_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>, RecvError> {
        self.recv_with(Instant::now().checked_add(timeout), |b| Ok(b.to_vec()))
    }

    /// Whether a message (or the end of stream) can be received now or within `timeout`
    /// (Python's `poll(timeout)`).
    pub fn poll(&self, timeout: Duration) -> Result<bool, RecvError> {
        if !self.readable {
            return Err(RecvError::WrongDirection);
        }
        match &self.transport {
            Transport::Stream(s) => s.poll(self.max_frame, timeout),
            Transport::Rings { inn: Some(r), .. } => Ok(r.poll(timeout)),
            Transport::Rings { inn: None, .. } => Err(RecvError::WrongDirection),
        }
    }
}

impl<S: Serialize, R: DeserializeOwned> Connection<S, R> {
    /// Sends `value` (Python's `send`).
    ///
    /// # Errors
    ///
    /// [`SendError::Disconnected`] when the peer is gone; [`SendError::Bad`] when the value
    /// does not encode or exceeds the frame limit.
    pub fn send(&self, value: &S) -> Result<(), SendError> {
        self.send_with(&Item(value), None)
    }

    /// [`send`](Connection::send) for at most `timeout` (a full buffer waits).
    pub fn send_timeout(&self, value: &S, timeout: Duration) -> Result<(), SendError> {
        self.send_with(&Item(value), Instant::now().checked_add(timeout))
    }

    /// Receives one value (Python's `recv`), waiting for it.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] at end of stream; [`RecvError::Bad`] for a corrupt,
    /// truncated or oversized frame, or one that does not decode as `R`.
    pub fn recv(&self) -> Result<R, RecvError> {
        self.recv_with(None, reduction::decode::<R>)
    }

    /// [`recv`](Connection::recv) for at most `timeout` ([`RecvError::Timeout`]).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<R, RecvError> {
        self.recv_with(Instant::now().checked_add(timeout), reduction::decode::<R>)
    }
}

pub(crate) mod sealed_waitable {
    pub trait Sealed {}
}

/// Something [`wait`] can wait on: a [`Connection`] that can receive, a
/// [`Queue`](super::queues::Queue)'s receiving side, a [`Process`](super::Process) (its
/// sentinel: ready once it has exited).
pub trait Waitable: sealed_waitable::Sealed {
    /// The descriptors to poll: readable (`false`) or hung up (`true`) when this may be
    /// ready.
    #[doc(hidden)]
    fn wait_fds(&self) -> Vec<(BorrowedFd<'_>, bool)>;
    /// Whether it is ready now (a message or the end of stream can be received without
    /// waiting; the process has exited). `polled`: the descriptor just polled readable.
    #[doc(hidden)]
    fn ready_now(&self, polled: bool) -> bool;
    /// Registers (or unregisters) a waiter that sleeps on [`wait_fd`](Waitable::wait_fd).
    #[doc(hidden)]
    fn register(&self, _on: bool) {}
}

impl<S, R> sealed_waitable::Sealed for Connection<S, R> {}
impl<S, R> Waitable for Connection<S, R> {
    fn wait_fds(&self) -> Vec<(BorrowedFd<'_>, bool)> {
        if !self.readable {
            return Vec::new();
        }
        match &self.transport {
            Transport::Stream(s) => vec![(s.fd(), false)],
            Transport::Rings { inn: Some(r), .. } => r.wait_fds().to_vec(),
            Transport::Rings { inn: None, .. } => Vec::new(),
        }
    }
    fn ready_now(&self, polled: bool) -> bool {
        if !self.readable {
            return false;
        }
        match &self.transport {
            Transport::Stream(s) => s.ready_now(self.max_frame, polled),
            Transport::Rings { inn, .. } => inn.as_ref().is_some_and(|r| r.ready_now(polled)),
        }
    }
    fn register(&self, on: bool) {
        if let Transport::Rings { inn: Some(r), .. } = &self.transport {
            r.register(on);
        }
    }
}

impl<T: Serialize + DeserializeOwned> sealed_waitable::Sealed for super::Process<T> {}
impl<T: Serialize + DeserializeOwned> Waitable for super::Process<T> {
    fn wait_fds(&self) -> Vec<(BorrowedFd<'_>, bool)> {
        self.sentinel().map(|fd| (fd, false)).into_iter().collect()
    }
    fn ready_now(&self, polled: bool) -> bool {
        polled
            || self.sentinel().is_some_and(|fd| {
                sysfd::poll(&[(fd, Interest::Read)], Some(Duration::ZERO)).is_ok_and(|r| r[0].any())
            })
    }
}

/// Waits until at least one of `objects` is ready, or `timeout` passes (`None`: for ever);
/// returns the indices of the ready ones, in order (empty on timeout). Python's
/// `multiprocessing.connection.wait`, with indices instead of the objects.
///
/// A connection is ready when a message or its end of stream can be received without
/// waiting; a queue when an item can be taken or every producer is gone; a process once it
/// has exited.
///
/// ```
/// use spindle::multiprocessing::connection::{pipe, wait, Waitable};
/// use std::time::Duration;
/// let (a, b) = pipe::<u8, u8>(true)?;
/// let (c, d) = pipe::<u8, u8>(true)?;
/// d.send(&1)?;
/// let ready = wait(&[&a as &dyn Waitable, &c], Some(Duration::from_secs(5)))?;
/// assert_eq!(ready, [1]);
/// # drop(b);
/// # Ok::<(), spindle::Error>(())
/// ```
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> crate::Result<Vec<usize>> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    for o in objects {
        o.register(true);
    }
    struct Unregister<'a>(&'a [&'a dyn Waitable]);
    impl Drop for Unregister<'_> {
        fn drop(&mut self) {
            for o in self.0 {
                o.register(false);
            }
        }
    }
    let _unregister = Unregister(objects);
    let mut polled = vec![false; objects.len()];
    loop {
        let ready: Vec<usize> = (0..objects.len())
            .filter(|&i| objects[i].ready_now(polled[i]))
            .collect();
        if !ready.is_empty() {
            return Ok(ready);
        }
        let left = match deadline {
            None => None,
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Ok(Vec::new());
                }
                Some(d - now)
            }
        };
        let fds: Vec<(usize, BorrowedFd<'_>, bool)> = objects
            .iter()
            .enumerate()
            .flat_map(|(i, o)| o.wait_fds().into_iter().map(move |(fd, h)| (i, fd, h)))
            .collect();
        let interest: Vec<(BorrowedFd<'_>, Interest)> = fds
            .iter()
            .map(|(_, fd, hangup)| {
                (
                    *fd,
                    if *hangup {
                        Interest::Hangup
                    } else {
                        Interest::Read
                    },
                )
            })
            .collect();
        let result = sysfd::poll(&interest, left)?;
        polled.iter_mut().for_each(|p| *p = false);
        for ((i, _, _), r) in fds.iter().zip(result) {
            polled[*i] |= r.any();
        }
    }
}
