//! The raw limits of the IPC workloads, written against the system calls with nothing on
//! top: a bare `AF_UNIX` socket pair (a stream of fixed-size writes, and a ping-pong), a futex
//! handshake in shared memory, a robust process-shared pthread mutex guarding a counter, and
//! `memcpy`. Each child is a bare `fork()` that does its part and `_exit`s.
//!
//! This is the one place of the benches that needs `unsafe` (the library keeps all of its
//! own in `spindle::sys`); every block says why it is sound.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A forked child running `f` and `_exit`ing with 0 (1 if `f` returns `false`).
fn fork_child(f: impl FnOnce() -> bool) -> Result<libc::pid_t, String> {
    // SAFETY: the child runs `f` (plain loops and system calls on descriptors and shared
    // memory set up before the fork; glibc's malloc is fork-safe) and ends with `_exit`,
    // never returning into the parent's frames.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error().to_string()),
        0 => {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(false);
            // SAFETY: `_exit` is always safe and does not return.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        pid => Ok(pid),
    }
}

fn reap(pid: libc::pid_t) -> Result<(), String> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer; `pid` is our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    if r != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("raw child {pid} failed (status {status:#x})"));
    }
    Ok(())
}

/// A shared anonymous mapping of `len` bytes (inherited by forked children), unmapped on drop.
struct SharedPage {
    ptr: *mut u8,
    len: usize,
}

impl SharedPage {
    fn new(len: usize) -> Result<SharedPage, String> {
        // SAFETY: a fresh anonymous shared mapping chosen by the kernel.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error().to_string());
        }
        Ok(SharedPage { ptr: p.cast(), len })
    }

    fn u32_at(&self, offset: usize) -> &AtomicU32 {
        assert!(offset % 4 == 0 && offset + 4 <= self.len);
        // SAFETY: in bounds and aligned (checked); zero-filled memory is a valid AtomicU32,
        // which lives as long as `self`.
        unsafe { &*self.ptr.add(offset).cast::<AtomicU32>() }
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `new`; nothing borrows it any more.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

fn futex(word: &AtomicU32, op: libc::c_int, val: u32) {
    // SAFETY: `word` is a live aligned u32 in a shared mapping; no timeout, no second word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op,
            val,
            ptr::null::<libc::timespec>(),
            ptr::null::<u32>(),
            0u32,
        )
    };
}

/// `count` messages of `size` bytes through a bare stream socket pair, one `write` per
/// message from a forked child, read message by message here. Returns the wall time.
pub(crate) fn socketpair_stream(size: usize, count: u64) -> Result<Duration, String> {
    let (mut ours, mut theirs) = UnixStream::pair().map_err(|e| e.to_string())?;
    let pid = fork_child(|| {
        let msg = vec![7u8; size];
        (0..count).all(|_| theirs.write_all(&msg).is_ok())
    })?;
    let t0 = Instant::now();
    let mut buf = vec![0u8; size];
    let mut total = 0u64;
    for _ in 0..count {
        ours.read_exact(&mut buf).map_err(|e| e.to_string())?;
        total += buf[size - 1] as u64;
    }
    let took = t0.elapsed();
    reap(pid)?;
    if total != 7 * count {
        return Err("wrong bytes through the socket pair".into());
    }
    Ok(took)
}

/// `count` round trips of 8 bytes through a bare stream socket pair with a forked echo child.
pub(crate) fn socketpair_pingpong(count: u64) -> Result<Duration, String> {
    let (mut ours, mut theirs) = UnixStream::pair().map_err(|e| e.to_string())?;
    let pid = fork_child(|| {
        let mut b = [0u8; 8];
        while theirs.read_exact(&mut b).is_ok() {
            let v = u64::from_le_bytes(b);
            if v == u64::MAX || theirs.write_all(&(v + 1).to_le_bytes()).is_err() {
                return true;
            }
        }
        true
    })?;
    let mut b = [0u8; 8];
    let t0 = Instant::now();
    for i in 0..count {
        ours.write_all(&i.to_le_bytes())
            .map_err(|e| e.to_string())?;
        ours.read_exact(&mut b).map_err(|e| e.to_string())?;
        if u64::from_le_bytes(b) != i + 1 {
            return Err("wrong echo".into());
        }
    }
    let took = t0.elapsed();
    ours.write_all(&u64::MAX.to_le_bytes())
        .map_err(|e| e.to_string())?;
    reap(pid)?;
    Ok(took)
}

/// `count` round trips of a futex handshake in shared memory with a forked child: the word
/// goes 0 → 1 (ours) → 2 (theirs) → 0..., each side sleeping in `FUTEX_WAIT` until its turn.
pub(crate) fn futex_pingpong(count: u64) -> Result<Duration, String> {
    let page = SharedPage::new(4096)?;
    let word = page.u32_at(0);
    let wait_for = |want: u32| loop {
        let v = word.load(Ordering::Acquire);
        if v == want {
            break;
        }
        futex(word, libc::FUTEX_WAIT, v);
    };
    let pid = fork_child(|| {
        for _ in 0..count {
            wait_for(1);
            word.store(2, Ordering::Release);
            futex(word, libc::FUTEX_WAKE, 1);
        }
        true
    })?;
    let t0 = Instant::now();
    for _ in 0..count {
        word.store(1, Ordering::Release);
        futex(word, libc::FUTEX_WAKE, 1);
        wait_for(2);
    }
    let took = t0.elapsed();
    reap(pid)?;
    Ok(took)
}

/// Two forked children each add 1 to a counter `count` times under a robust,
/// process-shared pthread mutex in shared memory; the time from their start signal to both
/// exits.
pub(crate) fn robust_mutex_counter(count: u64) -> Result<Duration, String> {
    let page = SharedPage::new(4096)?;
    let mutex = page.ptr.cast::<libc::pthread_mutex_t>();
    // SAFETY: the attribute object is initialised before use and destroyed once; the mutex
    // lives in the fresh shared page, which nobody else uses yet.
    unsafe {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        libc::pthread_mutexattr_init(attr.as_mut_ptr());
        libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED);
        libc::pthread_mutexattr_setrobust(attr.as_mut_ptr(), libc::PTHREAD_MUTEX_ROBUST);
        libc::pthread_mutex_init(mutex, attr.as_ptr());
        libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
    }
    let go = page.u32_at(64);
    // SAFETY: offset 128 is in bounds and 8-aligned; zeroed memory is a valid AtomicU64.
    let counter = unsafe { &*page.ptr.add(128).cast::<AtomicU64>() };
    let mut kids = Vec::new();
    for _ in 0..2 {
        kids.push(fork_child(|| {
            while go.load(Ordering::Acquire) == 0 {
                futex(go, libc::FUTEX_WAIT, 0);
            }
            for _ in 0..count {
                // SAFETY: an initialised robust mutex in a live shared mapping.
                unsafe { libc::pthread_mutex_lock(mutex) };
                let v = counter.load(Ordering::Relaxed);
                counter.store(v + 1, Ordering::Relaxed);
                // SAFETY: an initialised robust mutex in a live shared mapping, which this
                // thread locked above.
                unsafe { libc::pthread_mutex_unlock(mutex) };
            }
            true
        })?);
    }
    std::thread::sleep(Duration::from_millis(2));
    let t0 = Instant::now();
    go.store(1, Ordering::Release);
    futex(go, libc::FUTEX_WAKE, i32::MAX as u32);
    for pid in kids {
        reap(pid)?;
    }
    let took = t0.elapsed();
    if counter.load(Ordering::Relaxed) != 2 * count {
        return Err("lost increments under the raw mutex".into());
    }
    Ok(took)
}

/// Copies `src` into `dst` (both private, both already faulted): the memory bandwidth floor.
pub(crate) fn memcpy(dst: &mut [u8], src: &[u8]) -> Duration {
    let t0 = Instant::now();
    dst.copy_from_slice(std::hint::black_box(src));
    std::hint::black_box(&dst[dst.len() / 2]);
    t0.elapsed()
}
