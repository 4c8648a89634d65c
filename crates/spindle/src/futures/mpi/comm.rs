//! The MPI seam: every call into the MPI library (through rsmpi) is made here, so that the
//! thread level, who finalizes, and what a fault-tolerant MPI would change are in one place.
//!
//! **Thread level: `MPI_THREAD_SERIALIZED`.** MPI is initialised on the thread that calls
//! `start` (normally `main`). On a worker rank that thread also serves and finalizes: it is the
//! only one to call MPI. On rank 0 one thread of spindle's, the *manager*, makes every MPI call
//! while the executor lives (callers of `submit`, `map` and `Future::result` never do), and the
//! thread that ends the executor calls `MPI_Finalize` after the manager has exited: calls from
//! two threads, never at once, which `FUNNELED` (only the initialising thread) forbids and
//! `SERIALIZED` allows. `MULTIPLE` is not needed, and in Open MPI it turns on a lock around
//! every call.
//!
//! **Faults.** Open MPI 4.1 as Debian ships it has no ULFM (`MPIX_Comm_revoke`, `_shrink`,
//! `_agree`): the default error handler, `MPI_ERRORS_ARE_FATAL`, stays on, and a rank that dies
//! makes the runtime (`mpiexec`) end the whole job at once, with a non-zero exit and a message
//! naming the rank. What spindle sees itself (a worker's malformed message) ends the same way,
//! through [`Comm::abort`]. The seam for ULFM is [`Lost`]: see the manager's `rank_lost`.

use std::process::Command;

use mpi::collective::Root;
use mpi::environment::Universe;
use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use mpi::topology::{Communicator, InterCommunicator, MergeOrder, SimpleCommunicator};
use mpi::Threading;

use crate::error::{Error, Result};

/// The thread level spindle asks for (see the module docs).
pub(super) const LEVEL: Threading = Threading::Serialized;

/// The space attached for buffered sends on rank 0 (`MPI_Buffer_attach`).
pub(super) const BSEND_BUFFER: usize = 32 << 20;

/// What rank 0 charges the buffer per buffered send, above the message (Open MPI's
/// `MPI_BSEND_OVERHEAD` is under 200 bytes; a wide margin).
pub(super) const BSEND_OVERHEAD: usize = 1024;

/// Why a rank is out of the pool. Without ULFM nothing reports it (the job ends first); a
/// fault-tolerant MPI would report `Failed` from any call that involved the rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Lost {
    /// The rank broke the protocol (bytes spindle cannot read).
    Protocol(String),
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::Protocol(why) => write!(f, "it broke the protocol: {why}"),
        }
    }
}

/// Initialises MPI at [`LEVEL`].
///
/// # Errors
///
/// [`Error::InvalidState`] when MPI is initialised or finalized already (an executor starts
/// once per process, as MPI allows one initialisation); [`Error::Unsupported`] when the
/// library does not offer the level.
pub(super) fn initialize() -> Result<Universe> {
    if mpi::is_finalized() {
        return Err(Error::InvalidState(
            "MPI was finalized in this process: an MpiPoolExecutor starts once per process",
        ));
    }
    let Some((universe, provided)) = mpi::initialize_with_threading(LEVEL) else {
        return Err(Error::InvalidState(
            "MPI is initialized already: MpiPoolExecutor::start must be this program's first \
             MPI call, made once",
        ));
    };
    if provided < LEVEL {
        drop(universe);
        return Err(Error::Unsupported(format!(
            "the MPI library offers the thread level {provided:?}; MpiPoolExecutor needs \
             {LEVEL:?}"
        )));
    }
    Ok(universe)
}

/// Whether this process has initialised MPI (`MPI_Initialized`).
pub(super) fn initialized() -> bool {
    mpi::is_initialized()
}

/// This process's host as MPI names it (`MPI_Get_processor_name`).
pub(super) fn host() -> String {
    mpi::environment::processor_name().unwrap_or_else(|_| "an unnamed host".into())
}

/// `(rank, size)` in `MPI_COMM_WORLD`.
pub(super) fn world_place() -> (u32, u32) {
    let world = SimpleCommunicator::world();
    (world.rank() as u32, world.size() as u32)
}

/// The communicator of one pool: rank 0 is the master, every other rank a worker.
///
/// Field order is drop order: the merged communicator is freed, then the spawn's
/// intercommunicator is disconnected (`MPI_Comm_disconnect`, collective: rank 0 and its
/// spawned workers each do it as they end).
pub(super) struct Comm {
    comm: SimpleCommunicator,
    _inter: Option<InterCommunicator>,
}

impl std::fmt::Debug for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Comm")
            .field("rank", &self.rank())
            .field("size", &self.size())
            .finish()
    }
}

impl Comm {
    /// A private copy of `MPI_COMM_WORLD` (collective: every rank of the world calls it), so
    /// that the pool's messages never match a user's.
    pub(super) fn world() -> Comm {
        Comm {
            comm: SimpleCommunicator::world().duplicate(),
            _inter: None,
        }
    }

    /// Rank 0 alone (a singleton or `mpiexec -n 1`): spawns `n` copies of `program` with
    /// `args` (`MPI_Comm_spawn`) and merges them into one communicator with this process
    /// first.
    pub(super) fn spawn(
        n: u32,
        program: &std::path::Path,
        args: &[std::ffi::OsString],
    ) -> Result<Comm> {
        let mut cmd = Command::new(program);
        cmd.args(args);
        let world = SimpleCommunicator::world();
        let inter = world
            .process_at_rank(0)
            .spawn(&cmd, n as i32)
            .map_err(|e| {
                Error::Unsupported(format!(
                    "MPI_Comm_spawn of {n} workers failed ({e}): run the program under \
                     `mpiexec -n N` instead"
                ))
            })?;
        Ok(Comm {
            comm: inter.merge(MergeOrder::Low),
            _inter: Some(inter),
        })
    }

    /// A spawned worker: the communicator shared with the process that spawned it, that
    /// process first. `None` when this process was not spawned (`MPI_Comm_get_parent`).
    pub(super) fn from_parent() -> Option<Comm> {
        // rsmpi disconnects the parent's intercommunicator when its value is dropped (a
        // collective call): it is kept until the pool ends on both sides.
        let parent = SimpleCommunicator::world().parent()?;
        Some(Comm {
            comm: parent.merge(MergeOrder::High),
            _inter: Some(parent),
        })
    }

    pub(super) fn rank(&self) -> u32 {
        self.comm.rank() as u32
    }

    pub(super) fn size(&self) -> u32 {
        self.comm.size() as u32
    }

    /// A blocking send (`MPI_Send`). Only ever to a peer that is receiving or will receive
    /// without waiting for the sender (see the manager's rules): a large message waits for
    /// its receiver.
    pub(super) fn send(&self, to: u32, tag: i32, bytes: &[u8]) {
        self.comm
            .process_at_rank(to as i32)
            .send_with_tag(bytes, tag);
    }

    /// A buffered send (`MPI_Bsend`): copied into the attached buffer, returns at once. The
    /// caller keeps what is outstanding under [`BSEND_BUFFER`].
    pub(super) fn bsend(&self, to: u32, tag: i32, bytes: &[u8]) {
        self.comm
            .process_at_rank(to as i32)
            .buffered_send_with_tag(bytes, tag);
    }

    /// The next message that has arrived (from `from`, or anyone), without waiting:
    /// `(source, tag, bytes)`.
    pub(super) fn poll(&self, from: Option<u32>) -> Option<(u32, i32, Vec<u8>)> {
        let (msg, status) = match from {
            Some(r) => self
                .comm
                .process_at_rank(r as i32)
                .immediate_matched_probe()?,
            None => self.comm.any_process().immediate_matched_probe()?,
        };
        let (source, tag) = (status.source_rank() as u32, status.tag());
        let (bytes, _) = (msg, status).matched_receive_vec::<u8>();
        Some((source, tag, bytes))
    }

    /// Ends the whole job (`MPI_Abort`) with `code`: the runtime kills every rank.
    pub(super) fn abort(&self, code: i32) -> ! {
        self.comm.abort(code)
    }
}

/// Attaches the buffer of buffered sends (rank 0).
pub(super) fn attach_bsend_buffer(universe: &mut Universe) {
    universe.set_buffer_size(BSEND_BUFFER);
}

/// Ends the whole job from a process whose pool communicator is gone.
pub(super) fn abort_world(code: i32) -> ! {
    SimpleCommunicator::world().abort(code)
}

/// How many workers to spawn when rank 0 is alone: the universe's other slots
/// (`MPI_UNIVERSE_SIZE` - 1) when it names more than one, else one (as `mpi4py.futures`).
pub(super) fn default_spawn(universe: &Universe) -> u32 {
    match universe.size() {
        Some(n) if n > 1 => (n - 1) as u32,
        _ => 1,
    }
}
