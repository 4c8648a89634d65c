//! File descriptors: pipes, socket pairs, `poll`, and fds carried in messages (`SCM_RIGHTS`).

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::time::{Duration, Instant};

use super::{cvt, cvt_retry};

/// The most descriptors one message may carry.
pub(crate) const MAX_FDS: usize = 4;

/// A pipe `(read end, write end)`, both close-on-exec.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid out-array of two ints, as pipe2 requires.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both numbers are fresh descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A connected pair of `SOCK_SEQPACKET` Unix sockets (message boundaries kept), close-on-exec.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid out-array of two ints, as socketpair requires.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: socketpair succeeded, so both numbers are fresh descriptors that nothing owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Takes ownership of a descriptor number inherited across `exec` (named in the environment),
/// after checking that it is open, and marks it close-on-exec so that it goes no further.
pub(crate) fn adopt_inherited(raw: RawFd) -> io::Result<OwnedFd> {
    if raw < 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not an inherited descriptor",
        ));
    }
    // SAFETY: F_GETFD only reads the descriptor flags; an unopened number gives EBADF.
    cvt(unsafe { libc::fcntl(raw, libc::F_GETFD) })?;
    // SAFETY: F_SETFD on an open descriptor (checked above) only changes its flags.
    cvt(unsafe { libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) })?;
    // SAFETY: the number is open (checked above) and was handed to this process by its parent
    // for this purpose only; this is the one place that takes ownership of it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Sends `data` as one message on a `SOCK_SEQPACKET` socket with `fds` attached.
pub(crate) fn send_with_fds(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    assert!(fds.len() <= MAX_FDS && !data.is_empty());
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cmsg_buf = CmsgBuf::new();
    // SAFETY: an all-zero msghdr is a valid empty message header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let payload = mem::size_of_val(fds);
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(payload as u32) } as usize;
        msg.msg_control = cmsg_buf.0.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: msg_control points at a buffer of at least `space` bytes (CmsgBuf is sized
        // for MAX_FDS), so the first header and its data fit; CMSG_FIRSTHDR returns non-null.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(payload as u32) as usize;
            let data_ptr = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                ptr::write_unaligned(data_ptr.add(i), fd.as_raw_fd());
            }
        }
    }
    // SAFETY: msg points at live iovec and control buffers for the duration of the call.
    let n = cvt_retry(|| unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) })?;
    if n as usize != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short send of a packet",
        ));
    }
    Ok(())
}

/// Receives one message from a `SOCK_SEQPACKET` socket into `buf`, with the descriptors it
/// carried (close-on-exec). Returns `(0, [])` at end of stream.
pub(crate) fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cmsg_buf = CmsgBuf::new();
    // SAFETY: an all-zero msghdr is a valid empty message header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg_buf.0.as_mut_ptr().cast();
    msg.msg_controllen = cmsg_buf.0.len();
    // SAFETY: msg points at live, writable iovec and control buffers of the sizes it states.
    let n =
        cvt_retry(|| unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) })?;
    let mut fds = Vec::new();
    // after a successful recvmsg the kernel has filled msg_control/msg_controllen with
    // well-formed headers; CMSG_FIRSTHDR/CMSG_NXTHDR walk them within msg_controllen, and each
    // SCM_RIGHTS payload holds (cmsg_len - CMSG_LEN(0)) / 4 fresh descriptors that this process
    // now owns (read unaligned, as the buffer gives no alignment promise for the data).
    // SAFETY: sound for the reasons above.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let count =
                    ((*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize) / mem::size_of::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & (libc::MSG_CTRUNC | libc::MSG_TRUNC) != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "truncated packet or descriptors",
        ));
    }
    Ok((n as usize, fds))
}

/// A control-message buffer with room for `MAX_FDS` descriptors, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

impl CmsgBuf {
    fn new() -> Self {
        CmsgBuf([0; 64])
    }
}

/// Waits until one of `fds` is readable (or hung up / in error), or until `timeout` passes
/// (`None`: forever). Returns which ones are ready; all `false` on timeout.
pub(crate) fn poll_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let ms: libc::c_int = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up so that a 0.5 ms wait does not spin.
                left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int
            }
        };
        // SAFETY: pfds is a live array of `len` pollfd structs.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        match cvt(r) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(_) => return Ok(pfds.iter().map(|p| p.revents != 0).collect()),
        }
    }
}

/// The number of descriptors open in this process (entries of `/proc/self/fd`, minus the one
/// used to read it).
pub(crate) fn open_fd_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")?
        .count()
        .saturating_sub(1))
}

// ---- Additions for `multiprocessing`'s exchange channels (connection, queues) ----

/// A new eventfd (counter 0, non-blocking, close-on-exec): a doorbell that `poll` can watch.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes an initial value and flags and returns a new descriptor or -1.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Rings an eventfd doorbell (adds 1; it stays readable until drained).
pub(crate) fn eventfd_ring(fd: BorrowedFd<'_>) {
    let one: u64 = 1;
    // SAFETY: writes the 8 bytes of `one`; an eventfd at its maximum returns EAGAIN, which
    // leaves it readable, which is all a doorbell needs.
    unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

/// Empties an eventfd doorbell (non-blocking).
pub(crate) fn eventfd_drain(fd: BorrowedFd<'_>) {
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into `v`; EAGAIN when already empty.
    unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
}

/// What [`poll`] should watch a descriptor for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    /// Readable (or hung up).
    Read,
    /// Writable (or hung up).
    Write,
    /// Only the peer's hang-up (a socket whose data is someone else's to read).
    Hangup,
}

/// What [`poll`] found on one descriptor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ready {
    /// Data to read (or end of stream to see).
    pub(crate) readable: bool,
    /// Room to write.
    pub(crate) writable: bool,
    /// The peer is gone (`POLLHUP`, `POLLRDHUP` or `POLLERR`).
    pub(crate) hangup: bool,
}

impl Ready {
    /// Whether anything at all was reported.
    pub(crate) fn any(&self) -> bool {
        self.readable || self.writable || self.hangup
    }
}

/// Waits until one of `fds` is ready for its interest, or `timeout` passes (`None`: for
/// ever). Retries on `EINTR` with the time left.
pub(crate) fn poll(
    fds: &[(BorrowedFd<'_>, Interest)],
    timeout: Option<Duration>,
) -> io::Result<Vec<Ready>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|(fd, i)| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: match i {
                Interest::Read => libc::POLLIN | libc::POLLRDHUP,
                Interest::Write => libc::POLLOUT,
                Interest::Hangup => libc::POLLRDHUP,
            },
            revents: 0,
        })
        .collect();
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let ms: libc::c_int = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int
            }
        };
        // SAFETY: pfds is a live array of `len` pollfd structs.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        match cvt(r) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(_) => {
                return Ok(pfds
                    .iter()
                    .map(|p| Ready {
                        readable: p.revents & libc::POLLIN != 0,
                        writable: p.revents & libc::POLLOUT != 0,
                        hangup: p.revents
                            & (libc::POLLHUP | libc::POLLRDHUP | libc::POLLERR | libc::POLLNVAL)
                            != 0,
                    })
                    .collect())
            }
        }
    }
}

/// Reads what a socket holds now into `buf`, without blocking and without touching the
/// descriptor's `O_NONBLOCK` flag (which other processes share): `Ok(0)` at end of stream,
/// `WouldBlock` when nothing is there.
pub(crate) fn recv_now(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is a writable buffer of the stated length.
    let n = cvt_retry(|| unsafe {
        libc::recv(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    })?;
    Ok(n as usize)
}

/// Writes as much of `data` as the socket takes now (without blocking, without touching
/// `O_NONBLOCK`, without `SIGPIPE`): `WouldBlock` when it takes nothing, `BrokenPipe` when
/// the peer is gone.
pub(crate) fn send_now(sock: BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
    // SAFETY: data is a readable buffer of the stated length.
    let n = cvt_retry(|| unsafe {
        libc::send(
            sock.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    })?;
    Ok(n as usize)
}

/// The most descriptors one packet of [`send_packet`] / [`recv_packet`] may carry.
pub(crate) const MAX_PACKET_FDS: usize = 16;

#[repr(C, align(8))]
struct BigCmsgBuf([u8; 128]);

/// Sends `data` (non-empty) as one `SOCK_SEQPACKET` packet with `fds` attached, without
/// blocking and without `SIGPIPE`: `WouldBlock` when the socket's buffer is full,
/// `BrokenPipe` when every peer is gone, `InvalidInput` (`EMSGSIZE`) when it can never fit.
pub(crate) fn send_packet(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    if data.is_empty() || fds.len() > MAX_PACKET_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a packet needs data and at most 16 descriptors",
        ));
    }
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cmsg_buf = BigCmsgBuf([0; 128]);
    // SAFETY: an all-zero msghdr is a valid empty message header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let payload = mem::size_of_val(fds);
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(payload as u32) } as usize;
        msg.msg_control = cmsg_buf.0.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: the buffer holds CMSG_SPACE(16 * 4) = 80 <= 128 bytes, so the first header
        // and its data fit; CMSG_FIRSTHDR returns non-null for a non-empty control buffer.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(payload as u32) as usize;
            let data_ptr = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                ptr::write_unaligned(data_ptr.add(i), fd.as_raw_fd());
            }
        }
    }
    // SAFETY: msg points at live iovec and control buffers for the duration of the call.
    let n = cvt_retry(|| unsafe {
        libc::sendmsg(
            sock.as_raw_fd(),
            &msg,
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    })?;
    if n as usize != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short send of a packet",
        ));
    }
    Ok(())
}

/// One packet received by [`recv_packet`].
#[derive(Debug)]
pub(crate) struct Packet {
    /// Bytes of the packet copied into the buffer (0 with no descriptor: end of stream).
    pub(crate) len: usize,
    /// The descriptors it carried (close-on-exec).
    pub(crate) fds: Vec<OwnedFd>,
    /// The packet or its descriptors did not fit (the rest is lost).
    pub(crate) truncated: bool,
}

/// Receives one `SOCK_SEQPACKET` packet into `buf` without blocking (`WouldBlock` when none is
/// there). With `peek`, the packet stays in the socket (its descriptors are still copied in).
pub(crate) fn recv_packet(sock: BorrowedFd<'_>, buf: &mut [u8], peek: bool) -> io::Result<Packet> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cmsg_buf = BigCmsgBuf([0; 128]);
    // SAFETY: an all-zero msghdr is a valid empty message header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg_buf.0.as_mut_ptr().cast();
    msg.msg_controllen = cmsg_buf.0.len();
    let flags = libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT | if peek { libc::MSG_PEEK } else { 0 };
    // SAFETY: msg points at live, writable iovec and control buffers of the sizes it states.
    let n = cvt_retry(|| unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, flags) })?;
    let mut fds = Vec::new();
    // after a successful recvmsg the kernel has filled msg_control/msg_controllen with
    // well-formed headers; CMSG_FIRSTHDR/CMSG_NXTHDR walk them within msg_controllen, and each
    // SCM_RIGHTS payload holds (cmsg_len - CMSG_LEN(0)) / 4 fresh descriptors that this process
    // now owns (read unaligned, as the buffer gives no alignment promise for the data).
    // SAFETY: sound for the reasons above.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let count =
                    ((*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize) / mem::size_of::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Packet {
        len: n as usize,
        fds,
        truncated: msg.msg_flags & (libc::MSG_CTRUNC | libc::MSG_TRUNC) != 0,
    })
}

/// Makes a socket's send buffer `bytes` large (the kernel may cap it at `wmem_max`).
pub(crate) fn set_send_buffer(sock: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: passes a pointer to a c_int and its size, as SO_SNDBUF expects.
    cvt(unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&v as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Reads `buf.len()` bytes at `offset` of a file (`pread`); `UnexpectedEof` when shorter.
pub(crate) fn read_exact_at(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let file = std::mem::ManuallyDrop::new(
        // SAFETY: a borrowed view of a descriptor we do not close (ManuallyDrop).
        unsafe { std::fs::File::from_raw_fd(fd.as_raw_fd()) },
    );
    std::os::unix::fs::FileExt::read_exact_at(&*file, buf, offset)
}
