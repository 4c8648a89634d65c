//! The stream transport: frames (a 4-byte little-endian length, then that many bytes) on a
//! Unix stream socket. Used by [`Listener`](super::Listener) / [`client`](super::client)
//! connections and by connections made from a socket ([`From<UnixStream>`]); a [`pipe`]'s ends
//! use shared rings instead (see `rings.rs`).
//!
//! A reader refuses a length beyond its limit as soon as the 4 bytes arrive, never allocates
//! more than one chunk (64 KiB, or 1 MiB while a large frame streams in) ahead of the bytes it
//! has received, and waits for the rest of a frame only until the peer's end of stream.
//!
//! [`pipe`]: super::pipe

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{RecvError, SendError};
use crate::error::Error;
use crate::sys::fd::{self as sysfd, Interest};

const LEN: usize = 4;
/// Bytes asked of the socket at once while no frame is known to be larger.
const CHUNK: usize = 64 * 1024;
/// How long a receiver spins (asking the socket without sleeping) before it sleeps.
const SPIN: Duration = Duration::from_micros(20);

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

/// One end of a framed stream socket.
#[derive(Debug)]
pub(super) struct Stream {
    fd: OwnedFd,
    rx: Mutex<Rx>,
    tx: Mutex<Tx>,
}

impl Stream {
    pub(super) fn new(fd: OwnedFd) -> Stream {
        Stream {
            fd,
            rx: Mutex::new(Rx::default()),
            tx: Mutex::new(Tx::default()),
        }
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn rx(&self) -> MutexGuard<'_, Rx> {
        self.rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a frame (or the end of stream) can be received now or within `timeout`.
    pub(super) fn poll(&self, max_frame: usize, timeout: Duration) -> Result<bool, RecvError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut rx = self.rx();
        loop {
            if rx.eof
                || complete_frame(&rx, max_frame)
                    .map_err(RecvError::Bad)?
                    .is_some()
            {
                return Ok(true);
            }
            if self.fill(&mut rx)? {
                continue;
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

    /// For `wait`: whether a frame or the end of stream is there (reading what arrived when
    /// the socket just polled readable).
    pub(super) fn ready_now(&self, max_frame: usize, polled: bool) -> bool {
        let mut rx = self.rx();
        if polled {
            let _ = self.fill(&mut rx);
        }
        rx.eof || !matches!(complete_frame(&rx, max_frame), Ok(None))
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
            let rest = (LEN + frame_len(rx)).saturating_sub(have);
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

    /// Receives one frame's bytes.
    pub(super) fn recv_frame(
        &self,
        max_frame: usize,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, RecvError> {
        let mut rx = self.rx();
        let began = Instant::now();
        loop {
            if let Some(len) = complete_frame(&rx, max_frame).map_err(RecvError::Bad)? {
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

    /// Sends one frame whose payload `fill` appends.
    pub(super) fn send_frame(
        &self,
        max_frame: usize,
        fill: impl FnOnce(&mut Vec<u8>) -> crate::Result<()>,
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
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
        if len > max_frame {
            tx.buf = buf;
            return Err(SendError::Bad(Error::Codec(format!(
                "message of {len} bytes exceeds the {max_frame}-byte frame limit"
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

/// The length the frame at the head of the buffer announces (the buffer holds its header).
fn frame_len(rx: &Rx) -> usize {
    u32::from_le_bytes(rx.buf[rx.at..rx.at + LEN].try_into().unwrap_or([0; 4])) as usize
}

/// The length of the complete frame at the head of the buffer, if there is one; an error when
/// its header is beyond the limit.
fn complete_frame(rx: &Rx, max_frame: usize) -> crate::Result<Option<usize>> {
    let have = rx.buf.len() - rx.at;
    if have < LEN {
        return Ok(None);
    }
    let len = frame_len(rx);
    if len > max_frame {
        return Err(Error::Protocol(format!(
            "frame of {len} bytes exceeds the {max_frame}-byte limit"
        )));
    }
    Ok((have >= LEN + len).then_some(len))
}
