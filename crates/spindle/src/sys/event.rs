//! Readiness: `epoll`, a `timerfd` for deadlines and an `eventfd` for wake-ups, so that one
//! thread can wait for many descriptors, a deadline and other threads at once.
//!
//! Level-triggered throughout: an event is reported again until its cause is consumed (bytes
//! read, the timer's expiry count read, the eventfd's counter read).

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::{cvt, cvt_retry};

/// What a registered descriptor is watched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interest {
    /// Readable (or hung up / in error).
    pub(crate) read: bool,
    /// Writable.
    pub(crate) write: bool,
}

impl Interest {
    /// Readable only.
    pub(crate) const READ: Interest = Interest {
        read: true,
        write: false,
    };
    /// Readable and writable.
    pub(crate) const READ_WRITE: Interest = Interest {
        read: true,
        write: true,
    };

    fn bits(self) -> u32 {
        let mut bits = 0;
        if self.read {
            bits |= (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
        }
        if self.write {
            bits |= libc::EPOLLOUT as u32;
        }
        bits
    }
}

/// One readiness report: the token given at registration and what is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Event {
    /// The registration's token.
    pub(crate) token: u64,
    /// Readable, or the peer hung up, or an error is pending: a read will not block.
    pub(crate) readable: bool,
    /// Writable (or in error): a write will not block.
    pub(crate) writable: bool,
}

/// An epoll instance (close-on-exec).
#[derive(Debug)]
pub(crate) struct Epoll {
    fd: OwnedFd,
    buf: Vec<libc::epoll_event>,
}

impl Epoll {
    /// A new epoll instance that reports up to `capacity` events per wait.
    pub(crate) fn new(capacity: usize) -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes flags only and returns a new descriptor or -1.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: the call succeeded, so `fd` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let empty = libc::epoll_event { events: 0, u64: 0 };
        Ok(Epoll {
            fd,
            buf: vec![empty; capacity.max(1)],
        })
    }

    fn ctl(
        &self,
        op: libc::c_int,
        fd: BorrowedFd<'_>,
        token: u64,
        interest: Interest,
    ) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: interest.bits(),
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call; both descriptors
        // are open (borrowed).
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd.as_raw_fd(), &mut ev) })?;
        Ok(())
    }

    /// Watches `fd` for `interest`, reporting `token`. The caller must [`delete`](Epoll::delete)
    /// it before closing it (a closed descriptor leaves the set by itself only when no copy
    /// of it remains open).
    pub(crate) fn add(&self, fd: BorrowedFd<'_>, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, interest)
    }

    /// Changes what a registered `fd` is watched for.
    pub(crate) fn modify(
        &self,
        fd: BorrowedFd<'_>,
        token: u64,
        interest: Interest,
    ) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, interest)
    }

    /// Stops watching `fd`.
    pub(crate) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL (since Linux 2.6.9).
        cvt(unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd.as_raw_fd(),
                std::ptr::null_mut(),
            )
        })?;
        Ok(())
    }

    /// Waits until something is ready or `timeout` passes (`None`: forever), and returns the
    /// events (none on timeout). A signal interrupting the wait returns no event.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) -> io::Result<Vec<Event>> {
        let ms: libc::c_int = match timeout {
            None => -1,
            // Round up, so that a wait of 0.3 ms does not spin at 0.
            Some(t) => t.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
        };
        // SAFETY: `buf` is a live array of `len` epoll_event structs that the kernel fills.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.buf.as_mut_ptr(),
                self.buf.len() as libc::c_int,
                ms,
            )
        };
        let n = match cvt(n) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        Ok(self.buf[..n]
            .iter()
            .map(|ev| {
                let bits = ev.events;
                let read_bits =
                    (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLRDHUP) as u32;
                let write_bits = (libc::EPOLLOUT | libc::EPOLLERR) as u32;
                Event {
                    token: ev.u64,
                    readable: bits & read_bits != 0,
                    writable: bits & write_bits != 0,
                }
            })
            .collect())
    }
}

impl AsFd for Epoll {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A one-shot timer on the monotonic clock (`timerfd`, non-blocking, close-on-exec): readable
/// once it expires.
#[derive(Debug)]
pub(crate) struct Timer {
    fd: OwnedFd,
}

impl Timer {
    /// A disarmed timer.
    pub(crate) fn new() -> io::Result<Timer> {
        // SAFETY: timerfd_create takes a clock id and flags and returns a descriptor or -1.
        let fd = cvt(unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        })?;
        // SAFETY: the call succeeded, so `fd` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Timer { fd })
    }

    /// Arms the timer to expire `after` from now (at least one nanosecond: a zero value would
    /// disarm it), or disarms it with `None`. Any earlier setting is replaced.
    pub(crate) fn set(&self, after: Option<Duration>) -> io::Result<()> {
        let value = match after {
            None => libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            Some(d) => {
                let d = d.max(Duration::from_nanos(1));
                libc::timespec {
                    tv_sec: d.as_secs().min(i64::MAX as u64 / 2) as libc::time_t,
                    tv_nsec: d.subsec_nanos() as libc::c_long,
                }
            }
        };
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: value,
        };
        // SAFETY: `spec` is a valid itimerspec; the old value is not asked for (null).
        cvt(unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) })?;
        Ok(())
    }

    /// Consumes an expiry, if any (so that the level-triggered readiness ends).
    pub(crate) fn drain(&self) {
        read_counter(self.fd.as_fd());
    }
}

impl AsFd for Timer {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A wake-up counter (`eventfd`, non-blocking, close-on-exec): any thread may
/// [`notify`](Wake::notify); the waiting thread sees it readable until it
/// [`drain`](Wake::drain)s it.
#[derive(Debug)]
pub(crate) struct Wake {
    fd: OwnedFd,
}

impl Wake {
    /// A new, unsignalled counter.
    pub(crate) fn new() -> io::Result<Wake> {
        // SAFETY: eventfd takes an initial value and flags and returns a descriptor or -1.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: the call succeeded, so `fd` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Wake { fd })
    }

    /// Makes the counter readable. Never blocks (a saturated counter is readable already).
    pub(crate) fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64, as eventfd requires.
        let _ = cvt_retry(|| unsafe {
            libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8)
        });
    }

    /// Resets the counter.
    pub(crate) fn drain(&self) {
        read_counter(self.fd.as_fd());
    }
}

impl AsFd for Wake {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Reads the 8-byte counter of a non-blocking timerfd or eventfd, ignoring "nothing to read".
fn read_counter(fd: BorrowedFd<'_>) {
    let mut v = MaybeUninit::<u64>::uninit();
    // SAFETY: reads at most 8 bytes into a live u64-sized buffer.
    let _ = cvt_retry(|| unsafe { libc::read(fd.as_raw_fd(), v.as_mut_ptr().cast(), 8) });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn epoll_reports_a_readable_socket_and_the_timer_and_the_wake() {
        let mut ep = Epoll::new(8).unwrap();
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        ep.add(b.as_fd(), 7, Interest::READ).unwrap();
        let timer = Timer::new().unwrap();
        ep.add(timer.as_fd(), 8, Interest::READ).unwrap();
        let wake = Wake::new().unwrap();
        ep.add(wake.as_fd(), 9, Interest::READ).unwrap();
        assert!(ep.wait(Some(Duration::ZERO)).unwrap().is_empty());
        a.write_all(b"x").unwrap();
        let ev = ep.wait(None).unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].token, ev[0].readable), (7, true));
        ep.delete(b.as_fd()).unwrap();
        timer.set(Some(Duration::from_millis(1))).unwrap();
        let ev = ep.wait(None).unwrap();
        assert_eq!(ev[0].token, 8);
        timer.drain();
        wake.notify();
        wake.notify();
        let ev = ep.wait(None).unwrap();
        assert_eq!(ev[0].token, 9);
        wake.drain();
        timer.set(None).unwrap();
        assert!(ep.wait(Some(Duration::from_millis(5))).unwrap().is_empty());
    }

    #[test]
    fn write_interest_and_hangup() {
        let mut ep = Epoll::new(4).unwrap();
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        ep.add(a.as_fd(), 1, Interest::READ_WRITE).unwrap();
        let ev = ep.wait(None).unwrap();
        assert!(ev[0].writable && !ev[0].readable);
        ep.modify(a.as_fd(), 1, Interest::READ).unwrap();
        assert!(ep.wait(Some(Duration::ZERO)).unwrap().is_empty());
        drop(b);
        let ev = ep.wait(None).unwrap();
        assert!(ev[0].readable, "a hang-up reads as readable");
    }
}
