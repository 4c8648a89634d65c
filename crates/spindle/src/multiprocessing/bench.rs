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

/// The guarantees spindle's fork start adds to a bare `fork` + `waitpid`, in the order
/// [`fork_ladder`] adds them: each rung is the one before and one guarantee more, so the step
/// from one rung to the next is what that guarantee costs.
///
/// ```
/// use spindle::multiprocessing::bench::{fork_ladder, ForkRung};
/// for rung in ForkRung::ALL {
///     fork_ladder(rung).unwrap();
/// }
/// assert_eq!(ForkRung::ALL[0], ForkRung::Bare);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ForkRung {
    /// `fork`; the child `_exit(0)`s at once; `waitpid`.
    Bare,
    /// A socket pair made before the fork; the child writes one byte on it, the parent reads
    /// it: the channel a value comes back on.
    Channel,
    /// The parent opens a pidfd of the child and sleeps on it before reaping: signals never
    /// reach a recycled pid, and `join` sleeps on it.
    Pidfd,
    /// The child sets its death signal (`PR_SET_PDEATHSIG`).
    DeathSignal,
    /// The child checks that its parent is still the one that forked it (the parent may have
    /// died before the death signal was set).
    Liveness,
    /// spindle's locks held across the fork (stdout, stderr, the process identity and
    /// children, the launcher, the thread registry, the descriptor registry).
    Locks,
    /// The child closes spindle's own descriptors (other children's channels and pidfds, the
    /// fork server's connection).
    CloseDescriptors,
    /// The child applies exec's signal rule.
    SignalRule,
    /// The child installs the stack-overflow report.
    OverflowReport,
}

impl ForkRung {
    /// Every rung, from the bare fork up.
    pub const ALL: [ForkRung; 9] = [
        ForkRung::Bare,
        ForkRung::Channel,
        ForkRung::Pidfd,
        ForkRung::DeathSignal,
        ForkRung::Liveness,
        ForkRung::Locks,
        ForkRung::CloseDescriptors,
        ForkRung::SignalRule,
        ForkRung::OverflowReport,
    ];

    /// The guarantee this rung adds, in a few words.
    pub fn adds(self) -> &'static str {
        match self {
            ForkRung::Bare => "bare fork+waitpid",
            ForkRung::Channel => "socket pair",
            ForkRung::Pidfd => "pidfd",
            ForkRung::DeathSignal => "death signal",
            ForkRung::Liveness => "liveness check",
            ForkRung::Locks => "locks held across fork",
            ForkRung::CloseDescriptors => "closing spindle's descriptors",
            ForkRung::SignalRule => "signal rule",
            ForkRung::OverflowReport => "overflow report",
        }
    }
}

/// One fork and wait with every guarantee of spindle's fork start up to `upto`, made of the
/// same calls the fork start makes (see [`ForkRung`]). The child runs no job; with
/// [`ForkRung::Channel`] and up it sends one byte. Creates the child on the calling thread.
pub fn fork_ladder(upto: ForkRung) -> Result<()> {
    super::start::fork::ladder(upto)
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

/// The pid of the fork server's spare, the child forked ahead that the next forkserver start
/// hands its call to; starts the fork server first if none runs, and waits for the spare's
/// announcement.
pub fn forkserver_spare_pid() -> Result<Option<u32>> {
    super::start::forkserver::warm()?;
    Ok(super::start::forkserver::spare_pid())
}

/// The pids of all the spares the fork server keeps forked ahead now (one in the steady
/// state, up to four after starts came faster than the server forks), once every spare asked
/// for has been announced; empty when no fork server runs. Each holds two descriptors of this
/// process (its control socket and a pidfd), for tests that count them.
pub fn forkserver_spares() -> Vec<u32> {
    super::start::forkserver::spare_pids()
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
