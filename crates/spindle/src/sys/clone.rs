//! `clone3(CLONE_PARENT | CLONE_PIDFD)`: how the fork server makes a child that is not its
//! own but its parent's.
//!
//! A child made this way is the *caller's* process's child: it survives the server's death, its
//! death signal follows the thread that started the server (a long-lived one, see
//! `start::on_launcher`), and the caller reaps it by pidfd. `clone3` requires an exit signal of
//! 0 in its arguments with `CLONE_PARENT`; the kernel then gives the child the exit signal of
//! the server (`SIGCHLD`), so the caller sees it end like any child of its own.
//!
//! What `fork()` in glibc does besides the system call, and a raw clone does not, is done here:
//! the child's thread id is written where glibc keeps it (`CLONE_CHILD_SETTID`, at an address
//! found and checked once, see [`prepare`]), and the robust-mutex list is registered again (the
//! kernel clears it in a new process). No atfork handler runs: the server is single-threaded
//! and holds no lock while it clones.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::OnceLock;

/// Creates a child of this process's parent (see the module docs) that runs `child` and exits
/// with its return value (1 if it panics). Returns the child's pid and a pidfd of it.
///
/// As with `proc::fork_run`, only the calling thread exists in the child: the fork server,
/// which calls this, is single-threaded, so no lock can be held by a thread that is missing
/// there (a deadlock hazard, not a memory-safety matter, elsewhere).
pub(crate) fn run_sibling(child: impl FnOnce() -> i32) -> io::Result<(u32, OwnedFd)> {
    // In the child, the closure runs on this thread's copied stack and the process ends with
    // `exit_now` without returning into the caller's frames (a panic is caught first).
    // SAFETY: sound for the reasons above.
    match unsafe { clone_sibling() }? {
        Cloned::Parent(pid, pidfd) => Ok((pid, pidfd)),
        Cloned::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(1);
            super::proc::exit_now(code)
        }
    }
}

/// Which side of a [`clone_sibling`] the caller is on.
#[derive(Debug)]
enum Cloned {
    /// The new process.
    Child,
    /// The original process: the child's pid and a pidfd of it.
    Parent(u32, OwnedFd),
}

/// `clone_args` of `clone3(2)`, version 0 (64 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// glibc's robust-list head of the calling (main) thread and the address of its cached thread
/// id, when both were found and checked.
#[derive(Debug, Clone, Copy)]
struct Slots {
    robust_head: usize,
    robust_len: usize,
    tid: Option<usize>,
}

static SLOTS: OnceLock<Option<Slots>> = OnceLock::new();

/// Finds, on the thread that will clone, glibc's robust-list head (`get_robust_list`) and,
/// right before it in glibc's thread descriptor, its cached thread id — used only if it holds
/// this thread's id now. Call once before the first [`clone_sibling`].
pub(crate) fn prepare() {
    SLOTS.get_or_init(|| {
        let mut head: *mut libc::c_void = std::ptr::null_mut();
        let mut len: libc::size_t = 0;
        // SAFETY: get_robust_list of the calling thread (pid 0) writes into the two
        // out-parameters.
        let r = unsafe {
            libc::syscall(
                libc::SYS_get_robust_list,
                0,
                &mut head as *mut *mut libc::c_void,
                &mut len as *mut libc::size_t,
            )
        };
        if r != 0 || head.is_null() {
            return None;
        }
        let head = head as usize;
        // glibc's `struct pthread` on 64-bit targets: `pid_t tid; pid_t pid_unused;
        // void *robust_prev; struct robust_list_head robust_head;`, so the thread id sits 16
        // bytes before the head that glibc registered. Read only on glibc, where the head
        // is inside that descriptor (so the address is mapped), and used only if it holds
        // this thread's id.
        let tid = if cfg!(all(target_env = "gnu", target_pointer_width = "64")) {
            let at = head - 16;
            // SAFETY: sound for the reasons above (an aligned read inside glibc's descriptor
            // of the calling thread).
            let seen = unsafe { std::ptr::read_volatile(at as *const libc::pid_t) };
            // SAFETY: gettid has no preconditions.
            (seen == unsafe { libc::gettid() }).then_some(at)
        } else {
            None
        };
        Some(Slots {
            robust_head: head,
            robust_len: len,
            tid,
        })
    });
}

/// Creates a child of this process's parent (see the module docs).
///
/// # Safety
///
/// As for `fork`: only the calling thread exists in the child, which must take no lock another
/// thread may hold and must end with `_exit`. The caller is the fork server, single-threaded.
unsafe fn clone_sibling() -> io::Result<Cloned> {
    prepare();
    let slots = SLOTS.get().copied().flatten();
    let tid_slot = slots.and_then(|s| s.tid);
    let mut pidfd: libc::c_int = -1;
    let mut flags = (libc::CLONE_PARENT | libc::CLONE_PIDFD) as u64;
    if tid_slot.is_some() {
        flags |= libc::CLONE_CHILD_SETTID as u64;
    }
    let args = CloneArgs {
        flags,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        child_tid: tid_slot.unwrap_or(0) as u64,
        exit_signal: 0,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 with no stack behaves as fork, and the caller upholds the fork contract;
    // `args` and `pidfd` are valid for the call; the child tid slot, when given, is glibc's
    // own field of this thread (checked in `prepare`).
    let mut r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if r == -1
        && matches!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::ENOSYS) | Some(libc::EPERM)
        )
    {
        // A kernel before 5.3, or a seccomp filter that refuses clone3: the older call takes
        // the same flags (the exit signal is the low byte of the flags: 0).
        // SAFETY: no stack, so it behaves as fork, and the caller upholds the fork contract;
        // `pidfd` (written through the parent-tid argument) is valid for the call, and the
        // tid slot is glibc's own field of this thread, as for clone3.
        r = unsafe { legacy_clone(flags, &mut pidfd, tid_slot.unwrap_or(0)) };
    }
    match r {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            if let Some(s) = slots {
                // The kernel does not carry the robust list into a new process.
                // SAFETY: the head glibc registered for this thread, in the copied memory.
                unsafe { libc::syscall(libc::SYS_set_robust_list, s.robust_head, s.robust_len) };
            }
            Ok(Cloned::Child)
        }
        pid => {
            // SAFETY: CLONE_PIDFD gave us a fresh descriptor of the child that we now own.
            Ok(Cloned::Parent(pid as u32, unsafe {
                OwnedFd::from_raw_fd(pidfd)
            }))
        }
    }
}

/// The `clone` system call with `clone3`'s flags, for kernels without `clone3`.
///
/// # Safety
///
/// As for `fork` (see [`clone_sibling`]); `pidfd` and `ctid`, when set, must be valid for the
/// call.
#[cfg(target_arch = "x86_64")]
unsafe fn legacy_clone(flags: u64, pidfd: &mut libc::c_int, ctid: usize) -> libc::c_long {
    // x86-64 order: flags, stack, parent_tid, child_tid, tls.
    // SAFETY: the caller's contract; the pointers are valid for the call.
    unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            0usize,
            pidfd as *mut libc::c_int,
            ctid,
            0usize,
        )
    }
}

/// The `clone` system call with `clone3`'s flags, for kernels without `clone3`.
///
/// # Safety
///
/// As for `fork` (see [`clone_sibling`]); `pidfd` and `ctid`, when set, must be valid for the
/// call.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn legacy_clone(flags: u64, pidfd: &mut libc::c_int, ctid: usize) -> libc::c_long {
    // The generic order: flags, stack, parent_tid, tls, child_tid.
    // SAFETY: the caller's contract; the pointers are valid for the call.
    unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            0usize,
            pidfd as *mut libc::c_int,
            0usize,
            ctid,
        )
    }
}
