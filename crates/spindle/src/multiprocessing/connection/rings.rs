//! The shared-memory transport of a [`pipe`](super::pipe)'s ends: one queue ring (see
//! `queues/ring.rs`) per direction, each with its socket pair for end of stream. A frame is a
//! ring record: encoded in place into shared memory by the sender and decoded from it by the
//! receiver, with no system call while both sides are busy. A blocked receiver sleeps on the
//! ring's doorbell, which is also what [`wait`](super::wait) polls.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{RecvError, SendError};
use crate::error::Error;
use crate::multiprocessing::queues::ring::{Encode, PeerCheck, Shared, Stop};
use crate::multiprocessing::shared_memory::{deserialize_fd, serialize_fd};
use crate::sys::fd::{self as sysfd, Interest};

/// The ring of one direction by default: 1 MiB, as a queue's.
pub(super) const RING: usize = 1 << 20;

/// One direction's ring, seen from one end.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RingEnd {
    #[serde(serialize_with = "ser_shared", deserialize_with = "de_shared")]
    shared: Arc<Shared>,
    #[serde(serialize_with = "ser_sock", deserialize_with = "de_sock")]
    sock: Sock,
    #[serde(skip)]
    scratch: Mutex<Vec<u8>>,
    #[serde(skip)]
    peer: PeerCheck,
}

/// This end's socket: always open but while the end is dropped, when it is closed first and
/// the ring told after (see `Drop for RingEnd`).
#[derive(Debug)]
struct Sock(Option<OwnedFd>);

impl AsFd for Sock {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0
            .as_ref()
            .expect("a ring end's socket is open until the end is dropped")
            .as_fd()
    }
}

fn ser_sock<S: serde::Serializer>(sock: &Sock, s: S) -> Result<S::Ok, S::Error> {
    serialize_fd(sock.as_fd(), s)
}

fn de_sock<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Sock, D::Error> {
    deserialize_fd(d).map(|fd| Sock(Some(fd)))
}

fn ser_shared<S: serde::Serializer>(shared: &Arc<Shared>, s: S) -> Result<S::Ok, S::Error> {
    Shared::serialize(shared, s)
}

fn de_shared<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Arc<Shared>, D::Error> {
    let shared = Shared::deserialize(d)?;
    shared
        .validate()
        .map_err(<D::Error as serde::de::Error>::custom)?;
    Ok(Arc::new(shared))
}

impl RingEnd {
    fn new(shared: Arc<Shared>, sock: OwnedFd) -> RingEnd {
        RingEnd {
            shared,
            sock: Sock(Some(sock)),
            scratch: Mutex::new(Vec::new()),
            peer: PeerCheck::default(),
        }
    }

    /// Another handle on the same end (the same ring, a copy of the socket end).
    pub(super) fn clone_handle(&self) -> crate::Result<RingEnd> {
        Ok(RingEnd::new(
            Arc::clone(&self.shared),
            self.sock.as_fd().try_clone_to_owned()?,
        ))
    }

    /// A new direction with a ring of `capacity` bytes: (the sending end, the receiving end).
    pub(super) fn pair(capacity: usize) -> crate::Result<(RingEnd, RingEnd)> {
        let shared = Arc::new(Shared::new(capacity, 0)?);
        let (tx, rx) = sysfd::seqpacket_pair()?;
        let _ = sysfd::set_send_buffer(tx.as_fd(), 4 << 20);
        Ok((
            RingEnd::new(Arc::clone(&shared), tx),
            RingEnd::new(shared, rx),
        ))
    }

    fn with_scratch<T>(&self, f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
        let mut own = Vec::new();
        let mut guard = self.scratch.try_lock().ok();
        let scratch = guard.as_deref_mut().unwrap_or(&mut own);
        let out = f(scratch);
        if scratch.capacity() > self.shared.capacity() {
            *scratch = Vec::new();
        }
        out
    }

    /// Sends one frame: `item` encoded (at most `max_frame` bytes).
    pub(super) fn send(
        &self,
        item: &dyn Encode,
        max_frame: usize,
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        let limited = Limited { item, max_frame };
        let r = self.with_scratch(|scratch| {
            self.shared
                .put(&limited, scratch, self.sock.as_fd(), &self.peer, deadline)
        });
        match r {
            Ok(()) => Ok(()),
            Err(Stop::Timeout) => Err(SendError::Timeout),
            Err(Stop::Disconnected) => Err(SendError::Disconnected),
            Err(Stop::Bad(e)) => Err(SendError::Bad(e)),
        }
    }

    /// Receives one frame and decodes it.
    pub(super) fn recv<R>(
        &self,
        max_frame: usize,
        deadline: Option<Instant>,
        decode: impl FnOnce(&[u8]) -> crate::Result<R>,
    ) -> Result<R, RecvError> {
        let r = self.with_scratch(|scratch| {
            self.shared
                .get(self.sock.as_fd(), scratch, deadline, |bytes| {
                    if bytes.len() > max_frame {
                        return Err(Error::Protocol(format!(
                            "frame of {} bytes exceeds the {max_frame}-byte limit",
                            bytes.len()
                        )));
                    }
                    decode(bytes)
                })
        });
        match r {
            Ok(v) => Ok(v),
            Err(Stop::Timeout) => Err(RecvError::Timeout),
            Err(Stop::Disconnected) => Err(RecvError::Disconnected),
            Err(Stop::Bad(e)) => Err(RecvError::Bad(e)),
        }
    }

    fn peer_gone(&self) -> bool {
        sysfd::poll(&[(self.sock.as_fd(), Interest::Read)], Some(Duration::ZERO))
            .is_ok_and(|r| r[0].hangup)
    }

    /// Whether a frame or the end of stream can be received now.
    pub(super) fn ready_now(&self, polled: bool) -> bool {
        self.shared.has_items(polled) || self.peer_gone()
    }

    /// Whether a frame (or the end of stream) can be received now or within `timeout`.
    pub(super) fn poll(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        if self.ready_now(false) {
            return true;
        }
        self.shared.announce(true);
        let ready = loop {
            if self.ready_now(true) {
                break true;
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                break false;
            }
            let fds = [
                (self.shared.data_bell(), Interest::Read),
                (self.sock.as_fd(), Interest::Hangup),
            ];
            if sysfd::poll(&fds, left).is_err() {
                break false;
            }
        };
        self.shared.announce(false);
        ready
    }

    /// For `wait`: the doorbell, and the socket whose hang-up is the sender's death.
    pub(super) fn wait_fds(&self) -> [(BorrowedFd<'_>, bool); 2] {
        [(self.shared.data_bell(), false), (self.sock.as_fd(), true)]
    }

    /// For `wait`: announce (or withdraw) a sleeper.
    pub(super) fn register(&self, on: bool) {
        self.shared.announce(on);
    }
}

impl Drop for RingEnd {
    fn drop(&mut self) {
        // Closed first, then counted: a sender that sees the count move asks the kernel,
        // which then knows whether this was the last receiving end (`queues/ring.rs`).
        if let Some(sock) = self.sock.0.take() {
            drop(sock);
            self.shared.end_closed();
        }
    }
}

/// An item whose encoding may not exceed `max_frame` bytes.
struct Limited<'a> {
    item: &'a dyn Encode,
    max_frame: usize,
}

impl Encode for Limited<'_> {
    fn encode_in_place(&self, buf: &mut [u8]) -> Option<usize> {
        self.item
            .encode_in_place(buf)
            .filter(|n| *n <= self.max_frame)
    }

    fn encode_vec(&self, out: &mut Vec<u8>) -> crate::Result<()> {
        let before = out.len();
        self.item.encode_vec(out)?;
        let len = out.len() - before;
        if len > self.max_frame {
            return Err(Error::Codec(format!(
                "message of {len} bytes exceeds the {}-byte frame limit",
                self.max_frame
            )));
        }
        Ok(())
    }
}

/// Raw bytes as a frame (`send_bytes`).
pub(super) struct Raw<'a>(pub(super) &'a [u8]);

impl Encode for Raw<'_> {
    fn encode_in_place(&self, buf: &mut [u8]) -> Option<usize> {
        let dst = buf.get_mut(..self.0.len())?;
        dst.copy_from_slice(self.0);
        Some(self.0.len())
    }

    fn encode_vec(&self, out: &mut Vec<u8>) -> crate::Result<()> {
        out.extend_from_slice(self.0);
        Ok(())
    }
}
