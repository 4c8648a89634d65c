//! Raw baselines and probes for the scoreboard (`benches/`), beside the typed API.
//!
//! These are not part of the Python-shaped API; they exist so that the benchmarks can put
//! `Process` start-up next to the bare system calls on the same machine, and read a child's
//! memory.
//!
//! ```
//! use spindle::multiprocessing::bench;
//! bench::raw_fork_wait().unwrap();
//! assert_eq!(bench::raw_spawn_wait("/bin/true".as_ref(), &[]).unwrap(), 0);
//! ```

use crate::error::Result;
use crate::sys;

/// `fork()` a child that `_exit(0)`s at once, and `waitpid` it.
pub fn raw_fork_wait() -> Result<()> {
    Ok(sys::proc::raw_fork_wait()?)
}

/// `posix_spawn` `program` with `args` (as spindle spawns: stdio inherited, every other
/// descriptor closed, an empty signal mask) and `waitpid` it; returns its exit code. The
/// scoreboard's floor of a spawn runs its own binary this way, with an argument that makes
/// it exit before `main` (a hook of the benches, not of this library).
pub fn raw_spawn_wait(program: &std::path::Path, args: &[&str]) -> Result<i32> {
    let mut argv = vec![program.as_os_str().to_owned()];
    argv.extend(args.iter().map(std::ffi::OsString::from));
    Ok(sys::proc::raw_spawn_wait(program, &argv)?)
}

/// The private memory (`Private_Clean + Private_Dirty` of `/proc/PID/smaps_rollup`) of
/// process `pid`, in bytes: what one more idle child really costs.
pub fn private_rss(pid: u32) -> Result<u64> {
    Ok(sys::proc::private_rss(pid)?)
}

/// The pid of this process's fork server, once one runs.
pub fn forkserver_pid() -> Option<u32> {
    super::start::forkserver::server_pid()
}

/// The number of descriptors open in this process (`/proc/self/fd`), for leak checks.
pub fn open_fd_count() -> Result<usize> {
    Ok(sys::fd::open_fd_count()?)
}

/// The name of the environment variable that asks this copy of spindle's pre-main hook for
/// child mode (`__SPINDLE_CHILD_` and the copy's tag), for tests that play an untrusted
/// launcher. It is no secret: the hook trusts who started it, never the variable.
pub fn child_variable() -> &'static str {
    super::bootstrap::child_var()
}
