//! File descriptors: pipes, socket pairs, `poll`, fds carried in messages (`SCM_RIGHTS`), and
//! the registry of spindle's own descriptors that a forked child closes.

use std::io;
use std::mem;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{cvt, cvt_retry};

/// The most descriptors one message may carry.
pub(crate) const MAX_FDS: usize = 72;

/// The descriptor number a child's channel has in the child (spawn and forkserver).
pub(crate) const CHANNEL_FD: RawFd = 3;

/// spindle's own process-management descriptors (control sockets, pidfds, the fork server's
/// connection, a spare child's channel): a forked child closes them, so that it never holds
/// another child's channel open. A user's descriptors, IPC handles included, are never in it.
///
/// Each entry is the descriptor's number and the registration's own serial: a forked child
/// closes every number and empties the list, and a value it inherited finds its serial gone
/// when dropped there, so it forgets its number instead of closing it again (by then the number
/// may name another descriptor of the child).
static TRACKED: Mutex<Vec<(RawFd, u64)>> = Mutex::new(Vec::new());

/// The serial of the next registration.
static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn tracked_list() -> MutexGuard<'static, Vec<(RawFd, u64)>> {
    TRACKED.lock().unwrap_or_else(PoisonError::into_inner)
}

fn register(list: &mut Vec<(RawFd, u64)>, fd: RawFd) -> u64 {
    let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    list.push((fd, serial));
    serial
}

/// A descriptor-owning value registered as one of spindle's own (see [`TRACKED`]).
#[derive(Debug)]
pub(crate) struct Tracked<T: AsRawFd> {
    value: Option<T>,
    serial: u64,
}

impl<T: AsRawFd> Tracked<T> {
    /// Makes a value and registers it, with the registry held so that no fork happens between.
    pub(crate) fn make(make: impl FnOnce() -> io::Result<T>) -> io::Result<Self> {
        let mut list = tracked_list();
        let v = make()?;
        let serial = register(&mut list, v.as_raw_fd());
        Ok(Tracked {
            value: Some(v),
            serial,
        })
    }

    /// Registers a pair made in one call (a socket pair).
    pub(crate) fn make_pair<U: AsRawFd>(
        make: impl FnOnce() -> io::Result<(T, U)>,
    ) -> io::Result<(Self, Tracked<U>)> {
        let mut list = tracked_list();
        let (a, b) = make()?;
        let sa = register(&mut list, a.as_raw_fd());
        let sb = register(&mut list, b.as_raw_fd());
        Ok((
            Tracked {
                value: Some(a),
                serial: sa,
            },
            Tracked {
                value: Some(b),
                serial: sb,
            },
        ))
    }
}

impl Tracked<OwnedFd> {
    /// Runs `make`, which brings descriptors into this process (a receive), and registers
    /// them, with the registry held so that no fork happens between.
    pub(crate) fn make_many<R>(
        make: impl FnOnce() -> io::Result<(R, Vec<OwnedFd>)>,
    ) -> io::Result<(R, Vec<Self>)> {
        let mut list = tracked_list();
        let (r, fds) = make()?;
        let tracked = fds
            .into_iter()
            .map(|fd| {
                let serial = register(&mut list, fd.as_raw_fd());
                Tracked {
                    value: Some(fd),
                    serial,
                }
            })
            .collect();
        Ok((r, tracked))
    }
}

impl<T: AsRawFd> Deref for Tracked<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value.as_ref().expect("present until dropped")
    }
}

impl<T: AsRawFd> DerefMut for Tracked<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value.as_mut().expect("present until dropped")
    }
}

impl<T: AsRawFd> Drop for Tracked<T> {
    fn drop(&mut self) {
        if let Some(v) = self.value.take() {
            // Unregistered and closed under the registry's lock: a fork in between would
            // otherwise inherit a descriptor nobody tracks.
            let mut list = tracked_list();
            let entry = (v.as_raw_fd(), self.serial);
            match list.iter().position(|e| *e == entry) {
                Some(i) => {
                    list.swap_remove(i);
                    drop(v);
                }
                // Inherited through a fork that closed it already.
                None => std::mem::forget(v),
            }
        }
    }
}

/// The registry's lock, held by a forking thread across `fork()`.
#[derive(Debug)]
pub(crate) struct TrackedForkGuard(MutexGuard<'static, Vec<(RawFd, u64)>>);

/// Takes the registry's lock for a fork.
pub(crate) fn lock_tracked_for_fork() -> TrackedForkGuard {
    TrackedForkGuard(tracked_list())
}

impl TrackedForkGuard {
    /// In the new child: closes every registered descriptor but `keep`, and forgets them all
    /// (an owning value in the copied memory that is dropped later finds its registration gone
    /// and does not close its number again).
    pub(crate) fn close_in_child(mut self, keep: RawFd) {
        for (fd, _) in self.0.drain(..) {
            if fd != keep {
                // Closing this process's copy of a descriptor the parent keeps.
                // SAFETY: sound for the reason above.
                unsafe { libc::close(fd) };
            }
        }
    }
}

/// A duplicate of `fd`, close-on-exec.
pub(crate) fn dup(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    fd.try_clone_to_owned()
}

/// An `O_PATH` descriptor of the current directory, close-on-exec.
pub(crate) fn open_cwd() -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated path and flags; returns a fresh descriptor or -1.
    let fd = cvt(unsafe {
        libc::open(
            c".".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: a successful open returns a descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes the directory `dir` the current directory.
pub(crate) fn fchdir(dir: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fchdir takes a descriptor and touches no memory.
    cvt(unsafe { libc::fchdir(dir.as_raw_fd()) }).map(drop)
}

/// In a fork server's new child: puts `channel` at [`CHANNEL_FD`] and `link` right after it,
/// and closes every other descriptor but stdio (the server's connection and whatever else it
/// held). Returns both at their new numbers.
pub(crate) fn keep_only_stdio_and(
    channel: OwnedFd,
    link: BorrowedFd<'_>,
) -> io::Result<(OwnedFd, OwnedFd)> {
    let link_fd = CHANNEL_FD + 1;
    // Both go above the two targets first, so that neither dup2 below overwrites the other.
    let dup_high = |fd: RawFd| {
        // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor at or above the given number.
        cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, link_fd + 1) })
    };
    let (c, l) = (dup_high(channel.as_raw_fd())?, dup_high(link.as_raw_fd())?);
    drop(channel);
    // SAFETY: dup2 onto the two fixed numbers, which this child owns from now on (whatever they
    // held belongs to the server's loop, never resumed here).
    unsafe {
        cvt(libc::dup2(c, CHANNEL_FD))?;
        cvt(libc::dup2(l, link_fd))?;
    }
    close_from(link_fd + 1)?;
    // SAFETY: both numbers are open (the dup2s above) and owned by nothing else now.
    Ok(unsafe {
        (
            OwnedFd::from_raw_fd(CHANNEL_FD),
            OwnedFd::from_raw_fd(link_fd),
        )
    })
}

/// Closes every descriptor from `first` on: in a new child, whose owners of them belong to
/// code it never resumes.
fn close_from(first: RawFd) -> io::Result<()> {
    // SAFETY: closes descriptors this child owns no live value of (see above).
    let r = unsafe { libc::close_range(first as u32, u32::MAX, 0) };
    if r != 0 {
        // Before Linux 5.9: close what /proc lists.
        let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd >= first)
            .collect();
        for fd in open {
            // SAFETY: a number /proc listed as open in this new child, at or above `first`:
            // no live value here owns it (the function's contract).
            unsafe { libc::close(fd) };
        }
    }
    Ok(())
}

/// A spare's wait: `true` when a hand-over arrived on `channel` (or its end, which the caller
/// reads as such), `false` when the server is gone (`life` ended) and nothing arrived. Before
/// answering `false` the channel's reading side is shut, so that a client's hand-over sent from
/// then on fails with `EPIPE` rather than go unread; one that arrived first is taken.
pub(crate) fn wait_for_handover(channel: BorrowedFd<'_>, life: BorrowedFd<'_>) -> bool {
    loop {
        match poll_readable(&[channel, life], None).as_deref() {
            Ok([true, _]) => return true,
            Ok([false, true]) => break,
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    // SAFETY: shutdown takes a descriptor and a flag and touches no memory.
    unsafe { libc::shutdown(channel.as_raw_fd(), libc::SHUT_RD) };
    matches!(
        poll_readable(&[channel], Some(Duration::ZERO)).as_deref(),
        Ok([true])
    ) && has_data(channel)
}

/// Whether a stream socket holds at least one byte now.
fn has_data(sock: BorrowedFd<'_>) -> bool {
    let mut b = [0u8; 1];
    // SAFETY: a one-byte peek into a valid buffer.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            b.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n > 0
}

/// Reads exactly `buf.len()` bytes from a blocking descriptor.
pub(crate) fn read_exact(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: reads into the valid, writable rest of `buf`.
        let n = cvt_retry(|| unsafe {
            libc::read(fd.as_raw_fd(), rest.as_mut_ptr().cast(), rest.len())
        })?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        done += n as usize;
    }
    Ok(())
}

/// A pipe, both ends close-on-exec: `(read, write)`.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid out-array of two ints, as pipe2 requires.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both numbers are fresh descriptors that nothing owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A connected pair of `SOCK_STREAM` Unix sockets, close-on-exec, registered as spindle's own.
pub(crate) fn stream_pair() -> io::Result<(
    Tracked<std::os::unix::net::UnixStream>,
    Tracked<std::os::unix::net::UnixStream>,
)> {
    Tracked::make_pair(std::os::unix::net::UnixStream::pair)
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

/// Sends `data` as one message on a `SOCK_SEQPACKET` socket with `fds` attached.
pub(crate) fn send_with_fds(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let n = send_some_with_fds(sock, data, fds)?;
    if n != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short send of a packet",
        ));
    }
    Ok(())
}

/// Sends the first part of `data` on a socket with `fds` attached to its first byte; returns
/// how many bytes went (a stream socket may take fewer than all).
pub(crate) fn send_some_with_fds(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    if fds.len() > MAX_FDS || data.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many descriptors, or nothing to carry them",
        ));
    }
    sendmsg_fds(sock, data, fds, libc::MSG_NOSIGNAL)
}

/// One `sendmsg` of `data` with `fds` (at most [`MAX_FDS`]) attached to its first byte, with
/// `flags`; returns how many bytes went.
fn sendmsg_fds(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
    flags: libc::c_int,
) -> io::Result<usize> {
    // The control buffer below has room for `MAX_FDS`; the unsafe block relies on it.
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many descriptors",
        ));
    }
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
    let n = cvt_retry(|| unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, flags) })?;
    Ok(n as usize)
}

/// Receives one message from a `SOCK_SEQPACKET` socket into `buf`, with the descriptors it
/// carried (close-on-exec). Returns `(0, [])` at end of stream.
pub(crate) fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Vec<OwnedFd>)> {
    recv_with_fds_flags(sock, buf, 0)
}

/// [`recv_with_fds`] that does not wait: `WouldBlock` when no message is there.
pub(crate) fn try_recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Vec<OwnedFd>)> {
    recv_with_fds_flags(sock, buf, libc::MSG_DONTWAIT)
}

fn recv_with_fds_flags(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: libc::c_int,
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
    let n = cvt_retry(|| unsafe {
        libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC | flags)
    })?;
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
struct CmsgBuf([u8; 24 + 4 * MAX_FDS]);

impl CmsgBuf {
    fn new() -> Self {
        CmsgBuf([0; 24 + 4 * MAX_FDS])
    }
}

impl<T: AsRawFd + AsFd> AsFd for Tracked<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        (**self).as_fd()
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
    let n = sendmsg_fds(sock, data, fds, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)?;
    if n != data.len() {
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
