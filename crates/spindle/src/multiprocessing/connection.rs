//! `multiprocessing.connection`: [`pipe`] and [`Connection`], [`Listener`] and [`client`] with
//! an `authkey` handshake, and [`wait`] on any mix of connections, queues and processes.
//!
//! A connection is one end of a Unix stream socket carrying frames: a 4-byte little-endian
//! length and that many bytes (a postcard-encoded value, or raw bytes from
//! [`Connection::send_bytes`]). A reader:
//! - refuses a length beyond its limit ([`Connection::set_max_frame`], 1 GiB by default) as
//!   soon as the 4 bytes arrive, without reading on;
//! - never allocates ahead of the bytes it has received (the buffer grows with them);
//! - waits for the rest of a frame only until the peer's end of stream, which is then a
//!   truncated-frame error, not a hang.
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

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::reduction;
use super::shared_memory::{deserialize_fd, explain_encode_error, serialize_fd};
use crate::error::Error;
use crate::sys::fd::{self as sysfd, Interest};

/// The default frame limit: 1 GiB (as the process control channel's).
pub const DEFAULT_MAX_FRAME: usize = 1 << 30;
const LEN: usize = 4;
/// Bytes asked of the socket at once while no frame is known to be larger.
const CHUNK: usize = 64 * 1024;
/// How long a receiver spins (asking the socket without sleeping) before it sleeps.
const SPIN: Duration = Duration::from_micros(20);

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

#[derive(Debug, Default)]
struct Rx {
    /// Bytes received and not yet handed out (whole frames, then part of one).
    buf: Vec<u8>,
    /// Where the unread bytes of `buf` start.
    at: usize,
    eof: bool,
}

#[derive(Debug, Default)]
struct Tx {
    buf: Vec<u8>,
    broken: bool,
}

/// One end of a [`pipe`] (or of a [`Listener`]/[`client`] connection): sends `S`, receives
/// `R` (Python's `Connection`).
///
/// Methods take `&self`; sends from several threads never interleave their frames, nor do
/// receives. Two *processes* using the same end at once can interleave, as in Python: give
/// each process its own connection, or use a [`Queue`](super::queues::Queue).
#[derive(Serialize, Deserialize)]
pub struct Connection<S, R> {
    #[serde(serialize_with = "ser_fd", deserialize_with = "deserialize_fd")]
    fd: OwnedFd,
    readable: bool,
    writable: bool,
    max_frame: usize,
    #[serde(skip)]
    rx: Mutex<Rx>,
    #[serde(skip)]
    tx: Mutex<Tx>,
    #[serde(skip)]
    _types: PhantomData<fn(S) -> R>,
}

fn ser_fd<Ser: serde::Serializer>(fd: &OwnedFd, s: Ser) -> Result<Ser::Ok, Ser::Error> {
    serialize_fd(fd.as_fd(), s)
}

impl<S, R> fmt::Debug for Connection<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("readable", &self.readable)
            .field("writable", &self.writable)
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
    let (a, b) = UnixStream::pair()?;
    let (a, b) = (OwnedFd::from(a), OwnedFd::from(b));
    let first = Connection::from_fd(a, true, duplex);
    let second = Connection::from_fd(b, duplex, true);
    Ok((first, second))
}

impl<S, R> From<UnixStream> for Connection<S, R> {
    /// A connection over a connected Unix stream socket whose peer speaks the same framing
    /// (Python's `Connection(handle)`).
    fn from(stream: UnixStream) -> Self {
        Connection::from_fd(OwnedFd::from(stream), true, true)
    }
}

impl<S, R> Connection<S, R> {
    fn from_fd(fd: OwnedFd, readable: bool, writable: bool) -> Self {
        Connection {
            fd,
            readable,
            writable,
            max_frame: DEFAULT_MAX_FRAME,
            rx: Mutex::new(Rx::default()),
            tx: Mutex::new(Tx::default()),
            _types: PhantomData,
        }
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

    fn rx(&self) -> MutexGuard<'_, Rx> {
        self.rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends raw bytes as one frame (Python's `send_bytes`).
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<(), SendError> {
        self.send_frame(
            |buf| {
                buf.extend_from_slice(bytes);
                Ok(())
            },
            None,
        )
    }

    /// Receives one frame's bytes (Python's `recv_bytes`).
    pub fn recv_bytes(&self) -> Result<Vec<u8>, RecvError> {
        self.recv_frame(None)
    }

    /// [`recv_bytes`](Connection::recv_bytes) for at most `timeout`.
    pub fn recv_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>, RecvError> {
        self.recv_frame(Instant::now().checked_add(timeout))
    }

    /// Whether a message (or the end of stream) can be received now or within `timeout`
    /// (Python's `poll(timeout)`).
    pub fn poll(&self, timeout: Duration) -> Result<bool, RecvError> {
        if !self.readable {
            return Err(RecvError::WrongDirection);
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut rx = self.rx();
        loop {
            if rx.eof || self.complete_frame(&rx).map_err(RecvError::Bad)?.is_some() {
                return Ok(true);
            }
            match self.fill(&mut rx) {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => return Err(e),
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Ok(false);
            }
            let ready = sysfd::poll(&[(self.fd.as_fd(), Interest::Read)], left)
                .map_err(|e| RecvError::Bad(e.into()))?;
            if !ready[0].any() {
                return Ok(false);
            }
        }
    }

    /// The length of the complete frame at the head of the buffer, if there is one; an error
    /// when its header is beyond the limit.
    fn complete_frame(&self, rx: &Rx) -> crate::Result<Option<usize>> {
        let have = rx.buf.len() - rx.at;
        if have < LEN {
            return Ok(None);
        }
        let len =
            u32::from_le_bytes(rx.buf[rx.at..rx.at + LEN].try_into().unwrap_or([0; 4])) as usize;
        if len > self.max_frame {
            return Err(Error::Protocol(format!(
                "frame of {len} bytes exceeds the {}-byte limit",
                self.max_frame
            )));
        }
        Ok((have >= LEN + len).then_some(len))
    }

    /// Reads what the socket has now into the buffer. `Ok(true)` when bytes (or the end of
    /// stream) arrived, `Ok(false)` when nothing was there.
    fn fill(&self, rx: &mut Rx) -> Result<bool, RecvError> {
        if rx.at > 0 && rx.at == rx.buf.len() {
            rx.buf.clear();
            rx.at = 0;
        }
        // Ask for the rest of the frame being received, or a chunk: never more than the
        // bytes already in hand plus one chunk (the buffer grows with what arrives).
        let have = rx.buf.len() - rx.at;
        let want = if have >= LEN {
            let len = u32::from_le_bytes(rx.buf[rx.at..rx.at + LEN].try_into().unwrap_or([0; 4]))
                as usize;
            let rest = (LEN + len).saturating_sub(have);
            rest.clamp(CHUNK, 1 << 20)
        } else {
            CHUNK
        };
        let start = rx.buf.len();
        rx.buf.resize(start + want, 0);
        let r = sysfd::recv_now(self.fd.as_fd(), &mut rx.buf[start..]);
        let got = *r.as_ref().unwrap_or(&0);
        rx.buf.truncate(start + got);
        match r {
            Ok(0) => {
                rx.eof = true;
                Ok(true)
            }
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                rx.eof = true;
                Ok(true)
            }
            Err(e) => Err(RecvError::Bad(e.into())),
        }
    }

    fn recv_frame(&self, deadline: Option<Instant>) -> Result<Vec<u8>, RecvError> {
        if !self.readable {
            return Err(RecvError::WrongDirection);
        }
        let mut rx = self.rx();
        let began = Instant::now();
        loop {
            if let Some(len) = self.complete_frame(&rx).map_err(RecvError::Bad)? {
                let start = rx.at + LEN;
                let frame = if start == LEN && rx.buf.len() == LEN + len {
                    // The buffer is exactly this frame: hand it over without a copy.
                    let mut v = std::mem::take(&mut rx.buf);
                    v.drain(..LEN);
                    rx.at = 0;
                    v
                } else {
                    let v = rx.buf[start..start + len].to_vec();
                    rx.at = start + len;
                    v
                };
                return Ok(frame);
            }
            if rx.eof {
                let have = rx.buf.len() - rx.at;
                return Err(if have == 0 {
                    RecvError::Disconnected
                } else {
                    RecvError::Bad(Error::Protocol(format!(
                        "truncated frame: the peer ended the stream after {have} bytes of it"
                    )))
                });
            }
            if self.fill(&mut rx)? {
                continue;
            }
            // Nothing there: spin briefly (a reply is often microseconds away), then sleep.
            if began.elapsed() < SPIN {
                std::thread::yield_now();
                continue;
            }
            let left = match deadline {
                None => None,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(RecvError::Timeout);
                    }
                    Some(d - now)
                }
            };
            sysfd::poll(&[(self.fd.as_fd(), Interest::Read)], left)
                .map_err(|e| RecvError::Bad(e.into()))?;
        }
    }

    fn send_frame(
        &self,
        fill: impl FnOnce(&mut Vec<u8>) -> crate::Result<()>,
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        if !self.writable {
            return Err(SendError::WrongDirection);
        }
        let mut tx = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if tx.broken {
            return Err(SendError::Broken);
        }
        let mut buf = std::mem::take(&mut tx.buf);
        buf.clear();
        buf.extend_from_slice(&[0; LEN]);
        if let Err(e) = fill(&mut buf) {
            tx.buf = buf;
            return Err(SendError::Bad(e));
        }
        let len = buf.len() - LEN;
        if len > self.max_frame {
            tx.buf = buf;
            return Err(SendError::Bad(Error::Codec(format!(
                "message of {len} bytes exceeds the {}-byte frame limit",
                self.max_frame
            ))));
        }
        buf[..LEN].copy_from_slice(&(len as u32).to_le_bytes());
        let r = self.write_all(&buf, deadline);
        if buf.capacity() <= 1 << 20 {
            tx.buf = buf;
        }
        match r {
            Ok(()) => Ok(()),
            Err((written, e)) => {
                if written > 0 {
                    tx.broken = true;
                }
                Err(e)
            }
        }
    }

    fn write_all(
        &self,
        mut data: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), (usize, SendError)> {
        let mut written = 0;
        while !data.is_empty() {
            match sysfd::send_now(self.fd.as_fd(), data) {
                Ok(n) => {
                    written += n;
                    data = &data[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = match deadline {
                        None => None,
                        Some(d) => {
                            let now = Instant::now();
                            if now >= d {
                                return Err((written, SendError::Timeout));
                            }
                            Some(d - now)
                        }
                    };
                    sysfd::poll(&[(self.fd.as_fd(), Interest::Write)], left)
                        .map_err(|e| (written, SendError::Bad(e.into())))?;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ) =>
                {
                    return Err((written, SendError::Disconnected))
                }
                Err(e) => return Err((written, SendError::Bad(e.into()))),
            }
        }
        Ok(())
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
        self.send_frame(
            |buf| reduction::encode_into(value, buf).map_err(explain_encode_error),
            None,
        )
    }

    /// [`send`](Connection::send) for at most `timeout` (a full socket buffer waits).
    pub fn send_timeout(&self, value: &S, timeout: Duration) -> Result<(), SendError> {
        self.send_frame(
            |buf| reduction::encode_into(value, buf).map_err(explain_encode_error),
            Instant::now().checked_add(timeout),
        )
    }

    /// Receives one value (Python's `recv`), waiting for it.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] at end of stream; [`RecvError::Bad`] for a corrupt,
    /// truncated or oversized frame, or one that does not decode as `R`.
    pub fn recv(&self) -> Result<R, RecvError> {
        let bytes = self.recv_frame(None)?;
        reduction::decode(&bytes).map_err(RecvError::Bad)
    }

    /// [`recv`](Connection::recv) for at most `timeout` ([`RecvError::Timeout`]).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<R, RecvError> {
        let bytes = self.recv_frame(Instant::now().checked_add(timeout))?;
        reduction::decode(&bytes).map_err(RecvError::Bad)
    }
}

// ---- Listener / Client ----

const CHALLENGE: usize = 32;
const HANDSHAKE_LIMIT: usize = 256;
const HANDSHAKE_TIME: Duration = Duration::from_secs(10);
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn digest(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

fn verify(key: &[u8], msg: &[u8], tag: &[u8]) -> bool {
    use hmac::Mac;
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(msg);
    mac.verify_slice(tag).is_ok()
}

fn random_bytes() -> io::Result<[u8; CHALLENGE]> {
    let mut b = [0u8; CHALLENGE];
    io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut b)?;
    Ok(b)
}

fn handshake_conn(stream: UnixStream) -> Connection<(), ()> {
    let mut c = Connection::from_fd(OwnedFd::from(stream), true, true);
    c.max_frame = HANDSHAKE_LIMIT;
    c
}

fn auth_error(what: &str) -> Error {
    Error::Protocol(format!("authentication failed: {what}"))
}

/// Proves to the peer that we know `key`, then checks that it does.
fn deliver_challenge(c: &Connection<(), ()>, key: &[u8], deadline: Instant) -> crate::Result<()> {
    let challenge = random_bytes()?;
    c.send_frame(
        |b| {
            b.extend_from_slice(&challenge);
            Ok(())
        },
        Some(deadline),
    )?;
    let answer = c.recv_frame(Some(deadline))?;
    if verify(key, &challenge, &answer) {
        c.send_frame(
            |b| {
                b.extend_from_slice(WELCOME);
                Ok(())
            },
            Some(deadline),
        )?;
        Ok(())
    } else {
        let _ = c.send_frame(
            |b| {
                b.extend_from_slice(FAILURE);
                Ok(())
            },
            Some(deadline),
        );
        Err(auth_error("the peer does not know the authkey"))
    }
}

fn answer_challenge(c: &Connection<(), ()>, key: &[u8], deadline: Instant) -> crate::Result<()> {
    let challenge = c.recv_frame(Some(deadline))?;
    if challenge.len() != CHALLENGE {
        return Err(auth_error("malformed challenge"));
    }
    let tag = digest(key, &challenge);
    c.send_frame(
        |b| {
            b.extend_from_slice(&tag);
            Ok(())
        },
        Some(deadline),
    )?;
    match c.recv_frame(Some(deadline)) {
        Ok(reply) if reply == WELCOME => Ok(()),
        Ok(_) | Err(RecvError::Disconnected) => Err(auth_error("the peer refused our authkey")),
        Err(e) => Err(e.into()),
    }
}

/// The typed connection after a handshake, keeping whatever the handshake read ahead (the
/// peer's first message may have arrived in the same read as its last handshake frame).
fn upgrade<S, R>(c: Connection<(), ()>) -> Connection<S, R> {
    let rx =
        c.rx.into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut up = Connection::from_fd(c.fd, true, true);
    up.rx = Mutex::new(rx);
    up
}

/// Accepts connections on a Unix socket path (Python's `multiprocessing.connection.Listener`
/// for the `AF_UNIX` family), authenticating each with `authkey` when given: both sides prove
/// they know the key (HMAC-SHA256 of a random challenge, each way) before any message flows.
///
/// ```
/// use spindle::multiprocessing::connection::{client, Listener};
/// let dir = std::env::temp_dir().join(format!("spindle-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("listener.sock");
/// let listener = Listener::bind(&path, Some(b"secret"))?;
/// let t = std::thread::spawn({
///     let path = path.clone();
///     move || client::<String, ()>(&path, Some(b"secret")).unwrap().send(&"hi".into()).unwrap()
/// });
/// let conn = listener.accept::<(), String>()?;
/// assert_eq!(conn.recv()?, "hi");
/// t.join().unwrap();
/// assert!(client::<(), ()>(&path, Some(b"wrong")).is_err());
/// # drop(listener); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Debug)]
pub struct Listener {
    sock: UnixListener,
    path: PathBuf,
    authkey: Option<Vec<u8>>,
}

impl Listener {
    /// Listens on `path` (which must not exist yet).
    pub fn bind(path: impl AsRef<Path>, authkey: Option<&[u8]>) -> crate::Result<Listener> {
        let path = path.as_ref().to_path_buf();
        Ok(Listener {
            sock: UnixListener::bind(&path)?,
            path,
            authkey: authkey.map(<[u8]>::to_vec),
        })
    }

    /// The address (Python's `address`).
    pub fn address(&self) -> &Path {
        &self.path
    }

    /// Waits for a client and authenticates it.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] when the client fails the handshake (the wrong key, a malformed
    /// or slow answer: at most 10 s); the listener stays usable.
    pub fn accept<S, R>(&self) -> crate::Result<Connection<S, R>> {
        let (stream, _) = self.sock.accept()?;
        let c = handshake_conn(stream);
        if let Some(key) = &self.authkey {
            let deadline = Instant::now() + HANDSHAKE_TIME;
            deliver_challenge(&c, key, deadline)?;
            answer_challenge(&c, key, deadline)?;
        }
        Ok(upgrade(c))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Connects to a [`Listener`] at `path` (Python's `multiprocessing.connection.Client`),
/// authenticating with `authkey` when given.
///
/// # Errors
///
/// [`Error::Protocol`] when the handshake fails (the wrong key on either side).
pub fn client<S, R>(
    path: impl AsRef<Path>,
    authkey: Option<&[u8]>,
) -> crate::Result<Connection<S, R>> {
    let stream = UnixStream::connect(path)?;
    let c = handshake_conn(stream);
    if let Some(key) = authkey {
        let deadline = Instant::now() + HANDSHAKE_TIME;
        answer_challenge(&c, key, deadline)?;
        deliver_challenge(&c, key, deadline)?;
    }
    Ok(upgrade(c))
}

// ---- wait ----

pub(crate) mod sealed_waitable {
    pub trait Sealed {}
}

/// Something [`wait`] can wait on: a [`Connection`] that can receive, a
/// [`Queue`](super::queues::Queue)'s receiving side, a [`Process`](super::Process) (its
/// sentinel: ready once it has exited).
pub trait Waitable: sealed_waitable::Sealed {
    /// The descriptor that becomes readable when this may be ready.
    #[doc(hidden)]
    fn wait_fd(&self) -> Option<BorrowedFd<'_>>;
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
    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        self.readable.then(|| self.fd.as_fd())
    }
    fn ready_now(&self, polled: bool) -> bool {
        if !self.readable {
            return false;
        }
        let mut rx = self.rx();
        if polled {
            let _ = self.fill(&mut rx);
        }
        rx.eof || !matches!(self.complete_frame(&rx), Ok(None))
    }
}

impl<T: Serialize + DeserializeOwned> sealed_waitable::Sealed for super::Process<T> {}
impl<T: Serialize + DeserializeOwned> Waitable for super::Process<T> {
    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        self.sentinel()
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
        let fds: Vec<(usize, BorrowedFd<'_>)> = objects
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.wait_fd().map(|fd| (i, fd)))
            .collect();
        let interest: Vec<(BorrowedFd<'_>, Interest)> =
            fds.iter().map(|(_, fd)| (*fd, Interest::Read)).collect();
        let result = sysfd::poll(&interest, left)?;
        polled.iter_mut().for_each(|p| *p = false);
        for ((i, _), r) in fds.iter().zip(result) {
            polled[*i] = r.any();
        }
    }
}
