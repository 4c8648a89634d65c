//! Futex words shared between processes, and glibc's robust process-shared mutexes.
//!
//! The futex calls are the *shared* ones (no `FUTEX_PRIVATE_FLAG`): the kernel keys a waiter
//! on the page behind the address, so a word in a `MAP_SHARED` mapping wakes waiters of every
//! process that maps it.
//!
//! A robust mutex (`PTHREAD_MUTEX_ROBUST`, `PTHREAD_PROCESS_SHARED`) is linked into its
//! holder's robust list; when the holder dies the kernel marks it and the next locker gets
//! `EOWNERDEAD` instead of waiting for ever. glibc owns each thread's robust list, so spindle
//! uses glibc's mutexes rather than registering a list of its own (which would replace
//! glibc's and silently break every other robust mutex of the thread).

use std::io;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use super::shm::Mapping;

/// Waits while `*word == expected`, for at most `timeout` (`None`: until woken). Returns
/// `false` when the time ran out; spurious returns are possible (callers re-check).
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> bool {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned u32 (an AtomicU32); the timespec (relative, as
    // FUTEX_WAIT takes it) outlives the call or is null.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            tsp,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    !(r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT))
}

/// Wakes at most `n` waiters of `word`; returns how many were woken.
pub(crate) fn wake(word: &AtomicU32, n: u32) -> usize {
    let n = n.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE only reads the address as a key.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    r.max(0) as usize
}

/// Bytes a [`RobustMutex`] takes in a mapping (and its alignment).
pub(crate) const MUTEX_SIZE: usize = std::mem::size_of::<libc::pthread_mutex_t>();
/// Alignment of a [`RobustMutex`].
pub(crate) const MUTEX_ALIGN: usize = std::mem::align_of::<libc::pthread_mutex_t>();

/// What a lock attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locked {
    /// The caller holds the mutex.
    Acquired,
    /// The caller holds the mutex, and its previous holder died holding it. The mutex has
    /// already been marked consistent again (the caller's own state tells the rest).
    OwnerDied,
    /// The time ran out (or, for a try, the mutex was held).
    Busy,
    /// The calling thread already holds it.
    WouldDeadlock,
}

/// A robust, process-shared, error-checking pthread mutex living in a [`Mapping`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RobustMutex<'a> {
    _map: std::marker::PhantomData<&'a Mapping>,
    ptr: *mut libc::pthread_mutex_t,
}

extern "C" {
    // glibc ≥ 2.30: a timed lock against CLOCK_MONOTONIC (the libc crate does not declare it).
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

impl<'a> RobustMutex<'a> {
    /// The mutex at `offset` of `map` (which the caller has initialised with [`init`](Self::init)
    /// before sharing the mapping).
    pub(crate) fn at(map: &'a Mapping, offset: usize) -> Self {
        let ptr = map.raw(offset, MUTEX_SIZE, MUTEX_ALIGN).cast();
        map.note_robust(offset);
        RobustMutex {
            _map: std::marker::PhantomData,
            ptr,
        }
    }

    /// Initialises the mutex. Called once, by the creator of a fresh mapping, before any other
    /// process or thread can see it.
    pub(crate) fn init(&self) -> io::Result<()> {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: the attribute object is initialised by pthread_mutexattr_init before use and
        // destroyed once; `ptr` points at MUTEX_SIZE aligned bytes of the mapping that nobody
        // else uses yet (the caller's contract).
        unsafe {
            check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))?;
            let a = attr.as_mut_ptr();
            let r = (|| {
                check(libc::pthread_mutexattr_setpshared(
                    a,
                    libc::PTHREAD_PROCESS_SHARED,
                ))?;
                check(libc::pthread_mutexattr_setrobust(
                    a,
                    libc::PTHREAD_MUTEX_ROBUST,
                ))?;
                check(libc::pthread_mutexattr_settype(
                    a,
                    libc::PTHREAD_MUTEX_ERRORCHECK,
                ))?;
                check(libc::pthread_mutex_init(self.ptr, a))
            })();
            libc::pthread_mutexattr_destroy(a);
            r
        }
    }

    /// Locks, waiting until `deadline` (`None`: for ever; a deadline in the past: a try).
    /// `ENOTRECOVERABLE` (someone unlocked it without making it consistent, which spindle
    /// never does) comes back as an error.
    pub(crate) fn lock(&self, deadline: Option<Instant>) -> io::Result<Locked> {
        let r = match deadline {
            None => {
                // SAFETY: ptr points at an initialised mutex inside a live mapping.
                unsafe { libc::pthread_mutex_lock(self.ptr) }
            }
            Some(d) => {
                let now = Instant::now();
                if d <= now {
                    // SAFETY: ptr points at an initialised mutex inside a live mapping.
                    unsafe { libc::pthread_mutex_trylock(self.ptr) }
                } else {
                    let abs = monotonic_after(d - now);
                    // SAFETY: ptr points at an initialised mutex inside a live mapping; `abs`
                    // outlives the call.
                    unsafe { pthread_mutex_clocklock(self.ptr, libc::CLOCK_MONOTONIC, &abs) }
                }
            }
        };
        match r {
            0 => Ok(Locked::Acquired),
            libc::EOWNERDEAD => {
                // SAFETY: we hold the mutex (EOWNERDEAD means it was acquired).
                check(unsafe { libc::pthread_mutex_consistent(self.ptr) })?;
                Ok(Locked::OwnerDied)
            }
            libc::EBUSY | libc::ETIMEDOUT => Ok(Locked::Busy),
            libc::EDEADLK => Ok(Locked::WouldDeadlock),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }

    /// Unlocks. `Err` (EPERM) when the calling thread does not hold it.
    pub(crate) fn unlock(&self) -> io::Result<()> {
        // SAFETY: ptr points at an initialised mutex inside a live mapping.
        check(unsafe { libc::pthread_mutex_unlock(self.ptr) })
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// `CLOCK_MONOTONIC` now plus `d`, as a timespec.
fn monotonic_after(d: Duration) -> libc::timespec {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let mut sec = now
        .tv_sec
        .saturating_add(d.as_secs().min(i64::MAX as u64 / 2) as libc::time_t);
    let mut nsec = now.tv_nsec + d.subsec_nanos() as libc::c_long;
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}

/// The start time of process `pid` (field 22 of `/proc/PID/stat`, in clock ticks since boot),
/// or `None` when it does not exist or is a zombie. A pid and its start time name one process
/// for ever, even after the pid is reused.
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state.starts_with(['Z', 'X']) {
        return None;
    }
    // `rest` starts at field 3 (state); field 22 is the 20th from here.
    fields.nth(18)?.parse().ok()
}

/// Bumped in every child right after `fork()` (a `pthread_atfork` handler), so that cached
/// identities are known to be stale there.
static FORKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

extern "C" fn forked_child() {
    FORKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

thread_local! {
    /// (fork generation + 1, pid, tid) of this thread, or 0s before the first call.
    static IDENTITY: std::cell::Cell<(u64, u32, u32)> = const { std::cell::Cell::new((0, 0, 0)) };
}

/// The calling process's and thread's kernel ids, without a system call once known (both
/// change in a forked child, which a `pthread_atfork` handler tells). A process made by a raw
/// `clone` runs no atfork handler: the fork server's children rely on the server never having
/// asked (its cache is empty, so theirs is too).
pub(crate) fn ids() -> (u32, u32) {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers a child handler that only increments an atomic
        // (async-signal-safe); no prepare or parent handler.
        unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
    });
    let gen = FORKS.load(std::sync::atomic::Ordering::Relaxed) + 1;
    IDENTITY.with(|c| {
        let (g, pid, tid) = c.get();
        if g == gen {
            return (pid, tid);
        }
        // SAFETY: getpid and gettid have no preconditions and cannot fail.
        let ids = unsafe { (libc::getpid() as u32, libc::gettid() as u32) };
        c.set((gen, ids.0, ids.1));
        ids
    })
}
