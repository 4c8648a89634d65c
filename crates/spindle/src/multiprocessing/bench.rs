//! Raw baselines and probes for the scoreboard (`benches/`), beside the typed API.
//!
//! These are not part of the Python-shaped API; they exist so that the benchmarks can put
//! `Process` start-up next to the bare system calls on the same machine, and read a child's
//! memory.
//!
//! ```
//! use spindle::multiprocessing::bench;
//! bench::raw_fork_wait().unwrap();
//! bench::raw_spawn_wait().unwrap();
//! ```

use crate::error::{Error, Result};
use crate::sys;

/// `fork()` a child that `_exit(0)`s at once, and `waitpid` it.
pub fn raw_fork_wait() -> Result<()> {
    Ok(sys::proc::raw_fork_wait()?)
}

/// `posix_spawn` this very binary in spindle's empty child mode (the pre-main hook exits
/// with 0 at once, before `main`), and `waitpid` it.
///
/// # Errors
///
/// [`Error::Protocol`] if the child did not exit with 0 (the hook did not run).
pub fn raw_spawn_wait() -> Result<()> {
    sys::image::keep_entry_linked();
    match sys::proc::raw_spawn_wait(&[(sys::image::CHILD_ENV, "exit".to_owned())])? {
        0 => Ok(()),
        code => Err(Error::Protocol(format!(
            "the empty child exited with {code}"
        ))),
    }
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
