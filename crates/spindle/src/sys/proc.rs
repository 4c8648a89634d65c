//! Processes: fork, `posix_spawn` of the running image, wait, pidfd, signals, death signal.

use std::ffi::{CString, OsString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::ptr;

use super::{cvt, cvt_retry};

/// The signals spindle sends or handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// `SIGTERM`: ask to stop.
    Term,
    /// `SIGKILL`: stop now.
    Kill,
}

impl Signal {
    fn raw(self) -> libc::c_int {
        match self {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        }
    }
}

/// This process's id.
pub(crate) fn getpid() -> u32 {
    std::process::id()
}

/// The parent's process id (1 or a subreaper once the parent has died).
pub(crate) fn getppid() -> u32 {
    // SAFETY: getppid has no preconditions and cannot fail.
    unsafe { libc::getppid() as u32 }
}

/// The calling thread's id (`gettid`).
pub(crate) fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() as u32 }
}

/// Whether the calling thread is the process's main thread (its tid equals the pid).
pub(crate) fn is_main_thread() -> bool {
    gettid() == getpid()
}

/// The number of threads in this process.
///
/// One `stat` of `/proc/self/task`, whose link count procfs reports as the number of
/// threads plus 2 (`.` and `..`); no allocation, a few microseconds less than reading and
/// parsing `/proc/self/stat`, which remains the fallback (`num_threads`, its field 20).
pub(crate) fn thread_count() -> usize {
    use std::os::unix::fs::MetadataExt;
    if never_threaded() {
        return 1;
    }
    match std::fs::metadata("/proc/self/task") {
        Ok(m) if m.nlink() >= 3 => (m.nlink() - 2) as usize,
        _ => thread_count_from_stat(),
    }
}

#[cfg(target_env = "gnu")]
extern "C" {
    /// glibc's own answer (2.32+): true until the process first creates a thread, and again in
    /// a fork child; never true while a second thread exists.
    static __libc_single_threaded: libc::c_char;
}

/// Whether this process certainly has one thread, without asking `/proc` (glibc knows).
fn never_threaded() -> bool {
    #[cfg(target_env = "gnu")]
    {
        // glibc sets the byte to 0 before it creates a second thread (so the write happens
        // before any other thread exists to read it) and to 1 only in a new fork child, whose
        // only thread is the reader: no read here races with a write.
        // SAFETY: sound for the reasons above; the symbol is glibc's, a byte.
        unsafe { std::ptr::read_volatile(&raw const __libc_single_threaded) != 0 }
    }
    #[cfg(not(target_env = "gnu"))]
    {
        false
    }
}

/// The number of threads read from `/proc/self/stat` (the fallback of [`thread_count`]).
pub(crate) fn thread_count_from_stat() -> usize {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after_name
        .split_whitespace()
        .nth(17)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// The number of processors online (`sysconf(_SC_NPROCESSORS_ONLN)`), at least 1.
pub(crate) fn cpu_count() -> usize {
    // SAFETY: sysconf only reads a system value.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n < 1 {
        1
    } else {
        n as usize
    }
}

/// Which side of a [`fork`] the caller is on.
#[derive(Debug)]
pub(crate) enum Forked {
    /// The new process.
    Child,
    /// The original process; the child's pid.
    Parent(u32),
}

/// Forks the process.
///
/// # Safety
///
/// In the child only the calling thread exists: any lock another thread held at the moment of
/// the fork stays locked forever. The caller must keep the child to code that takes no lock
/// another thread may have held (glibc's `malloc` is made fork-safe by its own atfork handlers;
/// Rust's `stdout` lock is not), and must end the child with [`exit_now`].
pub(crate) unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller upholds the contract above.
    match cvt(unsafe { libc::fork() })? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as u32)),
    }
}

/// Ends the process at once with `code`, running no destructor or `atexit` handler (`_exit`).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// Asks the kernel to SIGKILL this process when its parent thread exits, then checks that
/// the parent is still `expected_parent` (closing the race where it died before the call).
/// Returns `false` when the parent is already gone.
pub(crate) fn die_with_parent(expected_parent: u32) -> io::Result<bool> {
    set_death_signal()?;
    Ok(getppid() == expected_parent)
}

/// Asks the kernel to SIGKILL this process when its parent thread exits
/// (`PR_SET_PDEATHSIG`); [`die_with_parent`] without its check.
pub(crate) fn set_death_signal() -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory.
    cvt(unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    })
    .map(drop)
}

/// What a spawned child runs: a program, its arguments, one added environment variable, and
/// the channel it gets at descriptor 3.
#[derive(Debug)]
pub(crate) struct SpawnSpec<'a> {
    /// The program to execute (`/proc/self/exe`, or a helper).
    pub(crate) program: &'a std::path::Path,
    /// `argv`, the program's name first.
    pub(crate) argv: &'a [OsString],
    /// One variable added to (or replacing one of) this process's environment.
    pub(crate) var: Option<(&'a str, &'a str)>,
    /// The channel, inherited as descriptor [`CHANNEL_FD`](super::fd::CHANNEL_FD).
    pub(crate) channel: Option<BorrowedFd<'a>>,
}

/// `posix_spawn`s `spec`: the child inherits stdio and the channel (at descriptor 3) and no
/// other descriptor, close-on-exec or not (`posix_spawn_file_actions_addclosefrom_np`); its
/// signal mask is empty and the signals this process ignores stay ignored (exec's rule).
/// Returns the child's pid.
pub(crate) fn spawn_program(spec: &SpawnSpec<'_>) -> io::Result<u32> {
    use std::os::unix::ffi::OsStrExt;
    let path = CString::new(spec.program.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| CString::new(a.clone().into_vec()))
        .collect::<Result<_, _>>()
        .map_err(io::Error::other)?;
    let mut env: Vec<CString> = Vec::new();
    for (k, v) in std::env::vars_os() {
        if spec.var.is_some_and(|(name, _)| k == name) {
            continue;
        }
        let mut kv = k.into_vec();
        kv.push(b'=');
        kv.extend(v.into_vec());
        if let Ok(c) = CString::new(kv) {
            env.push(c);
        }
    }
    if let Some((k, v)) = spec.var {
        env.push(CString::new(format!("{k}={v}")).map_err(io::Error::other)?);
    }
    let mut argv_ptrs: Vec<*mut libc::c_char> = argv.iter().map(|c| c.as_ptr() as *mut _).collect();
    argv_ptrs.push(ptr::null_mut());
    let mut envp: Vec<*mut libc::c_char> = env.iter().map(|c| c.as_ptr() as *mut _).collect();
    envp.push(ptr::null_mut());
    let target = super::fd::CHANNEL_FD;

    let mut actions = MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
    let mut attr = MaybeUninit::<libc::posix_spawnattr_t>::uninit();
    // init functions fill the MaybeUninit out-params; every later call gets pointers to
    // initialised objects, which are destroyed exactly once below. argv/envp are
    // null-terminated arrays of pointers into CStrings that outlive the call.
    // SAFETY: sound for the reasons above.
    unsafe {
        spawn_check(libc::posix_spawn_file_actions_init(actions.as_mut_ptr()))?;
        let actions = SpawnGuard::Actions(actions.as_mut_ptr());
        spawn_check(libc::posix_spawnattr_init(attr.as_mut_ptr()))?;
        let attr_guard = SpawnGuard::Attr(attr.as_mut_ptr());
        if let Some(fd) = spec.channel {
            // dup2 onto the fixed number; onto itself (glibc ≥ 2.29, POSIX.1-2024) it clears
            // close-on-exec in the child only.
            spawn_check(libc::posix_spawn_file_actions_adddup2(
                actions.actions(),
                fd.as_raw_fd(),
                target,
            ))?;
        }
        // Everything above the channel goes, inheritable or not (glibc ≥ 2.34).
        spawn_check(libc::posix_spawn_file_actions_addclosefrom_np(
            actions.actions(),
            target + 1,
        ))?;
        let mut empty = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(empty.as_mut_ptr());
        spawn_check(libc::posix_spawnattr_setsigmask(
            attr_guard.attr(),
            empty.as_ptr(),
        ))?;
        spawn_check(libc::posix_spawnattr_setflags(
            attr_guard.attr(),
            libc::POSIX_SPAWN_SETSIGMASK as _,
        ))?;
        let mut pid: libc::pid_t = 0;
        spawn_check(libc::posix_spawn(
            &mut pid,
            path.as_ptr(),
            actions.actions(),
            attr_guard.attr(),
            argv_ptrs.as_ptr(),
            envp.as_ptr(),
        ))?;
        Ok(pid as u32)
    }
}

/// This program's `argv[0]` (or `fallback`).
pub(crate) fn argv0() -> OsString {
    std::env::args_os()
        .next()
        .unwrap_or_else(|| OsString::from("spindle-child"))
}

/// Names the calling thread (and so, on the main thread, the process as `ps` and `pgrep`
/// show it): at most 15 bytes are kept.
pub(crate) fn set_name(name: &[u8]) {
    let mut buf = [0u8; 16];
    let n = name.len().min(15);
    buf[..n].copy_from_slice(&name[..n]);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes: `buf` is one.
    unsafe { libc::prctl(libc::PR_SET_NAME, buf.as_ptr()) };
}

fn spawn_check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

enum SpawnGuard {
    Actions(*mut libc::posix_spawn_file_actions_t),
    Attr(*mut libc::posix_spawnattr_t),
}

impl SpawnGuard {
    fn actions(&self) -> *mut libc::posix_spawn_file_actions_t {
        match self {
            SpawnGuard::Actions(a) => *a,
            SpawnGuard::Attr(_) => ptr::null_mut(),
        }
    }
    fn attr(&self) -> *mut libc::posix_spawnattr_t {
        match self {
            SpawnGuard::Attr(a) => *a,
            SpawnGuard::Actions(_) => ptr::null_mut(),
        }
    }
}

impl Drop for SpawnGuard {
    fn drop(&mut self) {
        // SAFETY: the guard is only built around an object whose init call succeeded, and it
        // is dropped exactly once.
        unsafe {
            match self {
                SpawnGuard::Actions(a) => libc::posix_spawn_file_actions_destroy(*a),
                SpawnGuard::Attr(a) => libc::posix_spawnattr_destroy(*a),
            };
        }
    }
}

/// `waitpid(pid)`: the raw wait status, or `None` with `nohang` when it is still running.
/// Waits for children of every kind (`__WALL`). For a child with a pidfd, [`wait_pidfd`]
/// never reaps a process that reused the pid.
pub(crate) fn waitpid(pid: u32, nohang: bool) -> io::Result<Option<i32>> {
    let mut status = 0;
    let flags = libc::__WALL | if nohang { libc::WNOHANG } else { 0 };
    // SAFETY: status is a valid out-pointer for the call.
    let r = cvt_retry(|| unsafe { libc::waitpid(pid as libc::pid_t, &mut status, flags) })?;
    Ok(if r == 0 { None } else { Some(status) })
}

/// Reaps the child behind `pidfd` (`waitid(P_PIDFD)`, Linux 5.4): the raw wait status, or
/// `None` with `nohang` while it runs. Unlike [`waitpid`] it can never reap another process
/// that reused the pid (after someone else reaped ours). `pid` is used on kernels without
/// `P_PIDFD`.
pub(crate) fn wait_pidfd(pidfd: BorrowedFd<'_>, pid: u32, nohang: bool) -> io::Result<Option<i32>> {
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    let flags = libc::WEXITED | libc::__WALL | if nohang { libc::WNOHANG } else { 0 };
    // P_PIDFD is 3 (not in every libc crate's list).
    const P_PIDFD: libc::idtype_t = 3;
    // SAFETY: waitid writes a siginfo_t into the valid, zeroed out-parameter.
    let r = cvt_retry(|| unsafe {
        libc::waitid(
            P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            info.as_mut_ptr(),
            flags,
        )
    });
    match r {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return waitpid(pid, nohang),
        Err(e) => return Err(e),
    }
    // SAFETY: zeroed, then filled in by the successful call (left zeroed when nohang found
    // nothing to reap: si_pid 0).
    let info = unsafe { info.assume_init() };
    // SAFETY: the fields of a SIGCHLD siginfo, which waitid fills.
    let (pid_field, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
    if pid_field == 0 {
        return Ok(None);
    }
    // Back to the raw status `waitpid` would give, for [`exitcode`].
    Ok(Some(match code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => status & 0x7f,
    }))
}

/// Python's exit code for a raw wait status: the exit status, or minus the signal number.
pub(crate) fn exitcode(status: i32) -> i32 {
    if libc::WIFSIGNALED(status) {
        -libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }
}

/// A pidfd for `pid`: readable once the process has exited; signals through it cannot hit a
/// recycled pid.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: the syscall takes a pid and flags and returns a new descriptor or -1.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) })?;
    // SAFETY: a successful pidfd_open returns a fresh descriptor that nothing else owns
    // (pidfds are close-on-exec from birth).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Sends `sig` to the process behind a pidfd. `Ok(false)` when it has already exited.
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: Signal) -> io::Result<bool> {
    pidfd_send_signal_raw(pidfd.as_raw_fd(), sig.raw())
}

/// [`pidfd_send_signal`] with a raw signal number (0 only checks that the process exists).
pub(crate) fn pidfd_send_signal_raw(pidfd: libc::c_int, sig: libc::c_int) -> io::Result<bool> {
    // SAFETY: the syscall takes a descriptor, a signal number, a null siginfo and flags 0.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            sig,
            ptr::null::<u8>(),
            0,
        )
    };
    match cvt(r) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether process `pid` exists and is not a zombie (reads `/proc/PID/stat`).
pub(crate) fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// The private memory of process `pid` in bytes: `Private_Clean + Private_Dirty` of
/// `/proc/PID/smaps_rollup`.
pub(crate) fn private_rss(pid: u32) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    let mut kib = 0;
    for line in text.lines() {
        if line.starts_with("Private_Clean:") || line.starts_with("Private_Dirty:") {
            kib += line
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(kib * 1024)
}

/// Raw baseline: fork a child that `_exit(0)`s at once and wait for it.
pub(crate) fn raw_fork_wait() -> io::Result<()> {
    // SAFETY: the child calls only the async-signal-safe `_exit`.
    match unsafe { fork() }? {
        Forked::Child => exit_now(0),
        Forked::Parent(pid) => waitpid(pid, false).map(drop),
    }
}

/// Raw baseline: `posix_spawn` `program` with `argv` and wait for it; returns the exit code.
pub(crate) fn raw_spawn_wait(program: &std::path::Path, argv: &[OsString]) -> io::Result<i32> {
    let pid = spawn_program(&SpawnSpec {
        program,
        argv,
        var: None,
        channel: None,
    })?;
    Ok(exitcode(waitpid(pid, false)?.unwrap_or(0)))
}

/// Forks and runs `child` in the new process, closing `close_in_child` there first and ending
/// it with `child`'s return value as exit code (1 if it panics). Returns the child's pid.
///
/// The child is a copy of the calling thread only. If another thread held a lock at the time
/// of the fork (Rust's `stdout`, an application mutex), the child blocks forever on it: this is
/// the hazard the fork start method documents and warns about. glibc's `malloc` takes its locks
/// around `fork` (atfork handlers), so allocating in the child is fine.
pub(crate) fn fork_run(
    close_in_child: &[BorrowedFd<'_>],
    child: impl FnOnce() -> i32,
) -> io::Result<u32> {
    // in the child, the closure runs on this thread's copied stack and the process
    // ends with `exit_now` without returning into the parent's frames (a panic is caught
    // first). What is left is the deadlock hazard described above, which is not a memory
    // safety matter; the caller warns about it when other threads exist.
    // SAFETY: sound for the reasons above.
    match unsafe { fork() }? {
        Forked::Parent(pid) => Ok(pid),
        Forked::Child => {
            for fd in close_in_child {
                // closing this process's copy of a descriptor the parent keeps; the
                // `OwnedFd` that owns it in the copied memory is never dropped here, because
                // the child ends with `exit_now`.
                // SAFETY: sound for the reasons above.
                unsafe { libc::close(fd.as_raw_fd()) };
            }
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(1);
            exit_now(code)
        }
    }
}

static AT_EXIT: std::sync::Mutex<Vec<fn()>> = std::sync::Mutex::new(Vec::new());

/// Runs `hook` when the process exits through `exit` (a return from `main`,
/// `std::process::exit`), once; hooks run in the order they were first registered, and a
/// hook registered again is kept once.
pub(crate) fn at_exit(hook: fn()) {
    let mut hooks = AT_EXIT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if hooks.iter().any(|h| std::ptr::fn_addr_eq(*h, hook)) {
        return;
    }
    if hooks.is_empty() {
        // SAFETY: registers a function with the C signature atexit expects.
        unsafe { libc::atexit(run_at_exit) };
    }
    hooks.push(hook);
}

extern "C" fn run_at_exit() {
    let hooks = AT_EXIT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    for hook in hooks {
        // A panic must not unwind into libc's exit: it ends here.
        let _ = std::panic::catch_unwind(hook);
    }
}

/// `SIGKILL`s our own child `pid`, which is not reaped yet (so the pid is still its).
pub(crate) fn kill_pid(pid: u32) {
    // SAFETY: kill takes a pid and a signal number and touches no memory.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
}
