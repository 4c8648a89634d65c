//! Signals of children: exec's rule for dispositions, the signal mask, and the stack-overflow
//! report.
//!
//! **One rule for every start method.** A child starts with the signals its parent ignores
//! still ignored and every other signal at its default action (what `exec` does: a handler's
//! address means nothing in a new image), and with no signal blocked. A spawned child gets
//! that from `posix_spawn` itself; a forked child applies it with [`apply_exec_rule`], a fork
//! server's child with [`apply_callers_rule`] and the caller's ignored set.
//!
//! **Stack overflow.** A child entered before `main` never runs the Rust runtime's start-up,
//! which is what installs std's stack-overflow handler; and in a forked child std's message
//! would name the parent's thread. So children install spindle's own: an alternate signal
//! stack and a `SIGSEGV`/`SIGBUS` handler that, when the fault lies in the guard area below
//! the running thread's stack, writes "overflowed its stack" on stderr and a pre-encoded
//! failure frame on the control socket — with async-signal-safe `write` calls only — then
//! restores the default action, so that the fault ends the process as it would have.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicUsize, Ordering};

use super::cvt;

/// The highest signal number a disposition can be read for.
const LAST: libc::c_int = 64;

fn settable(sig: libc::c_int) -> bool {
    // SIGKILL and SIGSTOP cannot change; 32 and 33 belong to glibc's threads.
    !matches!(sig, libc::SIGKILL | libc::SIGSTOP | 32 | 33)
}

fn current(sig: libc::c_int) -> Option<libc::sighandler_t> {
    let mut old = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null new action only reads the current one into `old`.
    let r = unsafe { libc::sigaction(sig, ptr::null(), old.as_mut_ptr()) };
    // SAFETY: zero-initialised, and filled in when the call succeeded.
    (r == 0).then(|| unsafe { old.assume_init() }.sa_sigaction)
}

fn set(sig: libc::c_int, handler: libc::sighandler_t) {
    let mut act = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a zeroed sigaction with SIG_DFL or SIG_IGN and an empty mask is a valid action.
    unsafe {
        (*act.as_mut_ptr()).sa_sigaction = handler;
        libc::sigaction(sig, act.as_ptr(), ptr::null_mut());
    }
}

/// The signals this process ignores, as a bit set (bit `n - 1` for signal `n`).
pub(crate) fn ignored_set() -> u64 {
    let mut set = 0u64;
    for sig in 1..=LAST {
        if settable(sig) && current(sig) == Some(libc::SIG_IGN) {
            set |= 1 << (sig - 1);
        }
    }
    set
}

/// Exec's rule in a forked child: the signals ignored now stay ignored, every handled one goes
/// back to the default; then no signal is blocked.
pub(crate) fn apply_exec_rule() {
    for sig in 1..=LAST {
        if !settable(sig) {
            continue;
        }
        match current(sig) {
            Some(now) if now != libc::SIG_IGN && now != libc::SIG_DFL => set(sig, libc::SIG_DFL),
            _ => {}
        }
    }
    unblock_all();
}

/// The signals the fork server ignores (after [`server_signals`]); it handles none.
static SERVER_IGNORED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Signal set-up of the fork server: ignore `SIGINT` (Ctrl-C reaches the parent and the
/// children directly; the server ends with its connection) and `SIGPIPE`. It records the set
/// it ignores, so that each child changes only the signals where the caller differs, and sets
/// up the alternate signal stack its children inherit.
pub(crate) fn server_signals() {
    set(libc::SIGINT, libc::SIG_IGN);
    ignore_sigpipe();
    SERVER_IGNORED.store(ignored_set(), Ordering::Relaxed);
    let _ = ensure_alt_stack();
}

/// In a fork server's child: exec's rule with the caller's ignored set. The server handles no
/// signal, so only the signals whose ignored state differs from the server's change: usually
/// none. Then no signal is blocked.
pub(crate) fn apply_callers_rule(ignored: u64) {
    let server = SERVER_IGNORED.load(Ordering::Relaxed);
    let differ = ignored ^ server;
    for sig in 1..=LAST {
        if settable(sig) && differ & (1 << (sig - 1)) != 0 {
            let want = if ignored & (1 << (sig - 1)) != 0 {
                libc::SIG_IGN
            } else {
                libc::SIG_DFL
            };
            set(sig, want);
        }
    }
    unblock_all();
}

fn unblock_all() {
    let mut empty = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set that sigprocmask then reads.
    unsafe {
        libc::sigemptyset(empty.as_mut_ptr());
        libc::sigprocmask(libc::SIG_SETMASK, empty.as_ptr(), ptr::null_mut());
    }
}

/// Ignores `SIGPIPE`, so that writing to a closed pipe returns `EPIPE` instead of killing.
pub(crate) fn ignore_sigpipe() {
    set(libc::SIGPIPE, libc::SIG_IGN);
}

thread_local! {
    /// The guard area below this thread's stack, once computed.
    static GUARD: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

fn page_size() -> usize {
    // SAFETY: sysconf only reads a system value.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// Computes (once per thread) where an overflow of the calling thread's stack faults, so that
/// a child forked from this thread later installs its report without asking again (for the
/// main thread, glibc reads `/proc/self/maps` to answer).
pub(crate) fn prepare_overflow_report() -> (usize, usize) {
    if let Some(g) = GUARD.with(Cell::get) {
        return g;
    }
    let page = page_size();
    if super::proc::is_main_thread() {
        let range = main_thread_guard(page);
        GUARD.with(|g| g.set(Some(range)));
        return range;
    }
    let mut attr = MaybeUninit::<libc::pthread_attr_t>::uninit();
    let (mut low, mut size, mut guard) = (ptr::null_mut::<libc::c_void>(), 0usize, 0usize);
    // SAFETY: pthread_getattr_np initialises `attr` for the calling thread; the getters read
    // it into valid out-parameters; it is destroyed once, only when it was initialised.
    let ok = unsafe {
        if libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) == 0 {
            let ok = libc::pthread_attr_getstack(attr.as_ptr(), &mut low, &mut size) == 0;
            libc::pthread_attr_getguardsize(attr.as_ptr(), &mut guard);
            libc::pthread_attr_destroy(attr.as_mut_ptr());
            ok
        } else {
            false
        }
    };
    let low = low as usize;
    // glibc has reported the guard both inside and below the stack over the years: take both,
    // and one page more for the probe that crosses the limit.
    let guard = guard.max(page);
    let range = if ok && low > guard + page {
        (low - guard - page, low + guard + page)
    } else {
        (0, 0)
    };
    GUARD.with(|g| g.set(Some(range)));
    range
}

extern "C" {
    /// Where the main thread's stack began (glibc, set before any constructor runs).
    static __libc_stack_end: *const libc::c_void;
}

/// The main thread's guard area without reading `/proc/self/maps` (which `pthread_getattr_np`
/// does for the main thread): the stack may grow to its limit below the top, which lies a
/// little above `__libc_stack_end` (the arguments, environment and auxiliary vector sit
/// between them: at most the kernel's argument limit, a quarter of the stack limit). No range
/// without a limit.
fn main_thread_guard(page: usize) -> (usize, usize) {
    let mut lim = MaybeUninit::<libc::rlimit>::zeroed();
    // SAFETY: getrlimit writes the limit into a valid out-parameter.
    if unsafe { libc::getrlimit(libc::RLIMIT_STACK, lim.as_mut_ptr()) } != 0 {
        return (0, 0);
    }
    // SAFETY: zeroed and filled in by the successful call.
    let cur = unsafe { lim.assume_init() }.rlim_cur;
    // SAFETY: glibc sets this variable before constructors run and never changes it after.
    let top = unsafe { __libc_stack_end } as usize;
    if cur == libc::RLIM_INFINITY || top == 0 {
        return (0, 0);
    }
    let limit = cur as usize;
    let Some(low) = top.checked_sub(limit) else {
        return (0, 0);
    };
    (low.saturating_sub(page), low + limit / 4 + page)
}

static REPORT_FD: AtomicI32 = AtomicI32::new(-1);
static FRAME: AtomicPtr<u8> = AtomicPtr::new(ptr::null_mut());
static FRAME_LEN: AtomicUsize = AtomicUsize::new(0);
static GUARD_LO: AtomicUsize = AtomicUsize::new(0);
static GUARD_HI: AtomicUsize = AtomicUsize::new(0);
static PID: AtomicUsize = AtomicUsize::new(0);

/// Installs the stack-overflow report of a child (see the module docs): `frame` goes to
/// `report` when the calling thread overflows its stack. The descriptor must stay open for
/// the rest of the process's life (it is the child's control socket).
pub(crate) fn install_overflow_report(report: BorrowedFd<'_>, frame: &'static [u8]) {
    let (lo, hi) = prepare_overflow_report();
    REPORT_FD.store(report.as_raw_fd(), Ordering::Relaxed);
    FRAME.store(frame.as_ptr().cast_mut(), Ordering::Relaxed);
    FRAME_LEN.store(frame.len(), Ordering::Relaxed);
    GUARD_LO.store(lo, Ordering::Relaxed);
    GUARD_HI.store(hi, Ordering::Relaxed);
    PID.store(super::proc::getpid() as usize, Ordering::Relaxed);
    if ensure_alt_stack().is_err() {
        return;
    }
    for sig in [libc::SIGSEGV, libc::SIGBUS] {
        let mut act = MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: a zeroed sigaction filled with a valid handler address, SA_SIGINFO (the
        // handler takes three arguments, as `on_fault` does) and SA_ONSTACK (an alternate
        // stack is in place) is a valid action.
        unsafe {
            let a = act.as_mut_ptr();
            (*a).sa_sigaction = on_fault
                as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
                as libc::sighandler_t;
            (*a).sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigaction(sig, act.as_ptr(), ptr::null_mut());
        }
    }
}

/// An alternate signal stack for the calling thread: the one in place (std gives its threads
/// one), or a new mapping that lives as long as the process.
fn ensure_alt_stack() -> std::io::Result<()> {
    let mut old = MaybeUninit::<libc::stack_t>::zeroed();
    // SAFETY: a null new stack only reads the current one into `old`.
    cvt(unsafe { libc::sigaltstack(ptr::null(), old.as_mut_ptr()) })?;
    // SAFETY: filled in by the successful call.
    let old = unsafe { old.assume_init() };
    if old.ss_flags & libc::SS_DISABLE == 0 && !old.ss_sp.is_null() {
        return Ok(());
    }
    let size = 64 * 1024;
    // SAFETY: an anonymous private mapping at an address of the kernel's choice.
    let mem = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if mem == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let stack = libc::stack_t {
        ss_sp: mem,
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: `stack` describes the mapping just made, which is never unmapped.
    cvt(unsafe { libc::sigaltstack(&stack, ptr::null_mut()) })?;
    Ok(())
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // The kernel passes a valid siginfo for a SA_SIGINFO handler; for SIGSEGV and SIGBUS
    // `si_addr` is the faulting address.
    // SAFETY: sound for the reason above.
    let addr = unsafe { (*info).si_addr() } as usize;
    let (lo, hi) = (
        GUARD_LO.load(Ordering::Relaxed),
        GUARD_HI.load(Ordering::Relaxed),
    );
    if (lo..hi).contains(&addr) {
        let mut line = [0u8; 96];
        let n = overflow_line(&mut line, PID.load(Ordering::Relaxed));
        let fd = REPORT_FD.load(Ordering::Relaxed);
        let (frame, len) = (
            FRAME.load(Ordering::Relaxed),
            FRAME_LEN.load(Ordering::Relaxed),
        );
        // write(2) is async-signal-safe; the buffers are a stack array and the leaked frame.
        // SAFETY: sound for the reason above.
        unsafe {
            libc::write(2, line.as_ptr().cast(), n);
            if fd >= 0 && !frame.is_null() {
                libc::write(fd, frame.cast(), len);
            }
        }
    }
    // Back to the default action: returning re-runs the faulting instruction, which now ends
    // the process with this signal, as it would have without us.
    set(sig, libc::SIG_DFL);
}

/// "\nspindle: process PID has overflowed its stack\n" into `buf`, without allocating.
fn overflow_line(buf: &mut [u8; 96], pid: usize) -> usize {
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        buf[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    put(b"\nspindle: process ");
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = pid;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    put(&digits[i..]);
    put(b" has overflowed its stack\n");
    n
}

/// Ignores `SIGINT` in this process (a pool worker), so that Ctrl-C at a terminal (which
/// signals the whole foreground process group) leaves the decision to the parent. An ignored
/// signal stays ignored across `fork` and `exec`.
pub(crate) fn ignore_interrupt() {
    set(libc::SIGINT, libc::SIG_IGN);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overflow_line_names_the_pid() {
        let mut buf = [0u8; 96];
        let n = overflow_line(&mut buf, 4_194_304);
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            "\nspindle: process 4194304 has overflowed its stack\n"
        );
    }

    #[test]
    fn the_guard_lies_below_this_threads_stack() {
        let local = std::hint::black_box(7u8);
        let here = &local as *const u8 as usize;
        let (lo, hi) = prepare_overflow_report();
        assert!(lo < hi && hi < here, "{lo:#x}..{hi:#x} vs {here:#x}");
    }
}
