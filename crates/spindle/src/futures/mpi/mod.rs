//! [`MpiPoolExecutor`]: the same [`Executor`] on MPI ranks (`mpi4py.futures`'
//! `MPICommExecutor`), behind the cargo feature `mpi`.
//!
//! Every rank runs the same binary, so a task travels as it does to a process pool: the offset
//! of its trampoline in the image, checked against rank 0's build-id, and its argument encoded
//! with serde. See `README.md` beside this file for the messages, the waiting and the faults.

mod comm;
mod feed;
mod manager;
mod serve;
mod wire;

#[cfg(test)]
mod tests;

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use self::comm::Comm;
use self::feed::{MpiFeed, One};
use self::manager::{Manager, Shared, Work};
use self::wire::Hello;
use super::map::Feed;
use super::{promise, Executor, Future, Map, MapOptions};
use crate::error::{Error, Result};
use crate::latch::{deadline, lock};
use crate::multiprocessing::pool::{
    arg_error, encode_item, init_entry, map_item, protocol as pw, star_item, Chunking, InitResult,
    Sizer,
};
use crate::multiprocessing::Target;
use crate::sys::image;

/// This process's rank in a running pool (-1: none).
static CURRENT_RANK: AtomicI64 = AtomicI64::new(-1);

/// A worker rank of an [`MpiPoolExecutor`], as it introduced itself at the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankInfo {
    /// Its rank in the pool's communicator (1, 2, ...; rank 0 holds the executor).
    pub rank: u32,
    /// Its host, as MPI names it (`MPI_Get_processor_name`).
    pub host: String,
    /// Its process id on that host.
    pub pid: u32,
}

/// Settings of an [`MpiPoolExecutor`] before it starts.
///
/// ```
/// use spindle::futures::MpiPoolExecutor;
/// fn connect(url: String) -> Result<(), String> {
///     if url.is_empty() { Err("no url".into()) } else { Ok(()) }
/// }
/// let builder = MpiPoolExecutor::builder()
///     .initializer(connect, ("db://local".to_string(),))
///     .spawn_workers(2);
/// # let _ = builder;
/// ```
#[must_use = "a builder does nothing until `start` is called"]
pub struct MpiPoolBuilder {
    init: std::result::Result<Option<(i64, Vec<u8>)>, String>,
    spawn: Option<u32>,
}

impl fmt::Debug for MpiPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpiPoolBuilder")
            .field("initializer", &matches!(self.init, Ok(Some(_))))
            .field("spawn", &self.spawn)
            .finish()
    }
}

impl MpiPoolBuilder {
    /// Runs `init(args...)` on every worker rank before it serves (Python's `initializer`,
    /// `initargs`). If it fails (returns an error or panics) on any rank, every task of the
    /// executor fails with [`is_initializer_failed`](crate::TaskError::is_initializer_failed)
    /// naming the rank, its host and the message.
    pub fn initializer<F, Args>(mut self, init: F, args: Args) -> Self
    where
        F: Target<Args>,
        F::Output: InitResult,
        Args: Serialize + DeserializeOwned,
    {
        const {
            assert!(
                std::mem::size_of::<F>() == 0,
                "an initializer must capture nothing: use a fn item or a non-capturing closure"
            )
        };
        let _ = init;
        let mut bytes = Vec::new();
        self.init = match pw::append(&args, &mut bytes) {
            Ok(()) => Ok(Some((image::entry_offset(init_entry::<F, Args>), bytes))),
            Err(e) => Err(format!("the initializer's arguments do not encode: {e}")),
        };
        self
    }

    /// When rank 0 is alone (`mpiexec -n 1`, or the program started without `mpiexec`),
    /// start `n` workers with `MPI_Comm_spawn`, as `mpi4py.futures` does (default: the
    /// universe's other slots, or one per CPU). Ignored when the world has other ranks.
    pub fn spawn_workers(mut self, n: u32) -> Self {
        self.spawn = Some(n);
        self
    }

    /// Initialises MPI and starts the pool: on rank 0, returns the executor; on every other
    /// rank, serves tasks until rank 0 shuts the executor down, finalizes MPI and returns
    /// `None`.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] in a child process that spindle started (of a rank or not: it
    /// is no rank) and when the MPI library lacks the thread level or cannot spawn workers;
    /// [`Error::InvalidState`] when MPI was initialised before (an executor starts once per
    /// process); [`Error::Protocol`] when a worker rank runs another build of the program;
    /// [`Error::InvalidArgument`] when the initializer's arguments do not encode.
    pub fn start(self) -> Result<Option<MpiPoolExecutor>> {
        if crate::multiprocessing::parent_process().is_some() {
            return Err(Error::Unsupported(
                "this process was started by spindle (a Process or a pool worker): it is not \
                 an MPI rank, and only ranks started by mpiexec or MPI_Comm_spawn serve an \
                 MpiPoolExecutor"
                    .into(),
            ));
        }
        let init = self.init.map_err(Error::InvalidArgument)?;
        let mut universe = comm::initialize()?;
        let (rank, size) = comm::world_place();
        let spawned = Comm::from_parent();
        if spawned.is_some() || rank != 0 {
            let comm = spawned.unwrap_or_else(Comm::world);
            CURRENT_RANK.store(i64::from(comm.rank()), Ordering::Release);
            if let Err(e) = serve::serve(&comm) {
                serve::give_up(&comm, &e);
            }
            drop(comm);
            CURRENT_RANK.store(-1, Ordering::Release);
            drop(universe);
            return Ok(None);
        }
        let spawn = (size == 1).then(|| self.spawn.unwrap_or(comm::default_spawn(&universe)));
        comm::attach_bsend_buffer(&mut universe);
        let shared = Arc::new(Shared::new());
        let hello = Hello {
            identity: image::build_identity().to_vec(),
            init,
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let for_manager = Arc::clone(&shared);
        let started = std::thread::Builder::new()
            .name("spindle-mpi-manager".into())
            .spawn(move || manage(spawn, for_manager, &hello, &tx));
        let handle = match started {
            Ok(h) => h,
            Err(e) => {
                drop(universe);
                return Err(Error::Io(e));
            }
        };
        let manager_id = handle.thread().id();
        match rx.recv() {
            Ok(Ok(ranks)) => {
                CURRENT_RANK.store(0, Ordering::Release);
                Ok(Some(MpiPoolExecutor {
                    shared,
                    manager: Mutex::new(Some(handle)),
                    manager_id,
                    universe: Mutex::new(Some(universe)),
                    ranks,
                }))
            }
            Ok(Err(e)) => {
                let _ = handle.join();
                drop(universe);
                Err(e)
            }
            Err(_) => {
                let _ = handle.join();
                drop(universe);
                Err(Error::Protocol(
                    "the MPI manager thread ended at the start".into(),
                ))
            }
        }
    }
}

/// The manager thread: makes the pool's communicator, greets the workers, then runs.
fn manage(
    spawn: Option<u32>,
    shared: Arc<Shared>,
    hello: &Hello,
    tx: &std::sync::mpsc::SyncSender<Result<Vec<RankInfo>>>,
) {
    let comm = match spawn {
        None => Comm::world(),
        Some(n) => {
            let me = std::env::current_exe();
            let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
            match me
                .map_err(Error::Io)
                .and_then(|p| Comm::spawn(n.max(1), &p, &args))
            {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    };
    let m = match Manager::handshake(comm, shared, hello) {
        Ok(m) => m,
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    let _ = tx.send(Ok(m.ranks()));
    if let Err(report) = crate::panic::catch(move || m.run()) {
        eprintln!(
            "spindle: the MPI manager thread panicked ({report}): aborting every rank (exit \
             code {})",
            manager::EXIT_RANK_LOST
        );
        comm::abort_world(manager::EXIT_RANK_LOST);
    }
}

/// `concurrent.futures` on MPI ranks: the shape of `mpi4py.futures`' `MPICommExecutor`.
///
/// One line in `main` starts the pool on every rank. On rank 0 it returns the executor; every
/// other rank serves tasks until rank 0 shuts the executor down (or drops it), then
/// finalizes MPI and returns `None`, so the code after the `if let` runs on every rank.
/// Code before the line runs on every rank too: keep it short.
///
/// ```no_run
/// use spindle::futures::{Executor, MpiPoolExecutor};
///
/// fn square(n: u64) -> u64 {
///     n * n
/// }
///
/// fn main() -> spindle::Result<()> {
///     // mpiexec -n 3 target/release/my-program
///     if let Some(ex) = MpiPoolExecutor::start()? {
///         let squares: Vec<u64> = ex.map(square, 1..=5)?.collect::<spindle::Result<_>>()?;
///         assert_eq!(squares, [1, 4, 9, 16, 25]);
///     }
///     Ok(())
/// }
/// ```
///
/// Its futures are the same [`Future`] as every executor's (they mix in
/// [`wait`](super::wait) and [`as_completed`](super::as_completed)); a panic in a task is
/// that task's error, with the pid, [`rank`](crate::TaskError::rank) and
/// [`host`](crate::TaskError::host) it happened on. Without a fault-tolerant MPI, a rank that
/// dies ends the whole job (the MPI runtime's doing: a non-zero exit and a message naming the
/// rank), never a hang.
///
/// **MPI.** The executor initialises MPI (`MPI_THREAD_SERIALIZED`: on rank 0 a manager
/// thread of spindle's makes every MPI call while the executor lives) and finalizes it when
/// it is shut down with `wait` or dropped, after telling every worker rank to stop; each
/// worker finalizes as it returns from `start`. The program may make no MPI call of its own.
/// Processes that spindle starts from a rank (a `Process`, a process pool's workers, the
/// fork server) are not ranks: they never initialise MPI, and `start` refuses there.
///
/// A task travels by name, so it must capture nothing (a capturing closure is refused when
/// the program is compiled):
///
/// ```compile_fail
/// use spindle::futures::MpiPoolExecutor;
/// fn run(ex: &MpiPoolExecutor) {
///     let name = String::from("spindle");
///     let _ = ex.submit(move |n: usize| name.len() + n, 1);
/// }
/// ```
///
/// # Dropping
///
/// Dropping it is `shutdown(wait=True)`: the submitted tasks run to their end, the worker
/// ranks stop, MPI is finalized.
pub struct MpiPoolExecutor {
    shared: Arc<Shared>,
    manager: Mutex<Option<JoinHandle<()>>>,
    manager_id: ThreadId,
    universe: Mutex<Option<mpi::environment::Universe>>,
    ranks: Vec<RankInfo>,
}

impl fmt::Debug for MpiPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpiPoolExecutor")
            .field("ranks", &self.ranks)
            .field("closed", &self.shared.is_closed())
            .finish_non_exhaustive()
    }
}

macro_rules! zst {
    ($f:ty) => {
        const {
            assert!(
                std::mem::size_of::<$f>() == 0,
                "an MPI task must capture nothing: use a fn item or a non-capturing closure"
            )
        }
    };
}

impl MpiPoolExecutor {
    /// Starts the pool with the defaults: [`MpiPoolBuilder::start`].
    ///
    /// # Errors
    ///
    /// Those of [`MpiPoolBuilder::start`].
    pub fn start() -> Result<Option<MpiPoolExecutor>> {
        Self::builder().start()
    }

    /// A builder (an initializer, workers to spawn).
    pub fn builder() -> MpiPoolBuilder {
        MpiPoolBuilder {
            init: Ok(None),
            spawn: None,
        }
    }

    /// This process's rank in a running pool: `Some(0)` on rank 0 while its executor
    /// lives, a worker's rank while it serves (so a task can ask where it runs), `None`
    /// elsewhere — in a process spindle started from a rank, for instance.
    pub fn current_rank() -> Option<u32> {
        u32::try_from(CURRENT_RANK.load(Ordering::Acquire)).ok()
    }

    /// Whether this process has initialised MPI (`MPI_Initialized`, true after finalizing
    /// too). False in the processes spindle starts from a rank.
    pub fn mpi_initialized() -> bool {
        comm::initialized()
    }

    /// The number of worker ranks.
    pub fn max_workers(&self) -> usize {
        self.ranks.len()
    }

    /// The worker ranks: rank, host and pid of each.
    pub fn ranks(&self) -> &[RankInfo] {
        &self.ranks
    }

    /// Schedules `f(arg)` on a worker rank and returns its future (Python's `submit`).
    /// Submits are pipelined: many travel in one message.
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] after [`shutdown`](MpiPoolExecutor::shutdown). An argument that
    /// does not encode fails its future.
    pub fn submit<F, A, R>(&self, f: F, arg: A) -> Result<Future<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        zst!(F);
        let _ = f;
        let (p, future) = promise::<R>();
        let mut items = Vec::with_capacity(16);
        if let Err(e) = encode_item(&arg, &mut items) {
            if self.shared.is_closed() {
                return Err(Error::Shutdown);
            }
            let _ = p.set_exception(arg_error::<A>(&e));
            return Ok(future);
        }
        self.shared.push(Work {
            entry: image::entry_offset(map_item::<F, A, R>),
            count: 1,
            items,
            sink: Box::new(One { promise: p }),
        })?;
        Ok(future)
    }

    /// Applies `f` to every item on the worker ranks, results in input order (Python's
    /// `map`), with adaptive chunks (about 2 ms of work each) and a bounded window of input
    /// pulled ahead.
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] after `shutdown`.
    pub fn map<F, A, R, I>(&self, f: F, args: I) -> Result<Map<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        self.map_with(f, args, MapOptions::new())
    }

    /// [`map`](MpiPoolExecutor::map) with Python's `chunksize`, `buffersize` (in chunks) and
    /// `timeout` ([`MapOptions`]).
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] after `shutdown`; [`Error::InvalidArgument`] for a chunk size
    /// of 0.
    pub fn map_with<F, A, R, I>(&self, f: F, args: I, options: MapOptions) -> Result<Map<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        zst!(F);
        let _ = f;
        self.fed(image::entry_offset(map_item::<F, A, R>), args, options)
    }

    /// Calls `f(a, b, ...)` for every argument tuple, results in input order
    /// (`mpi4py.futures`' `starmap`), with adaptive chunks.
    ///
    /// # Errors
    ///
    /// Those of [`map`](MpiPoolExecutor::map).
    pub fn starmap<F, Args, I>(&self, f: F, args: I) -> Result<Map<F::Output>>
    where
        F: Target<Args> + Sync,
        F::Output: Serialize + DeserializeOwned + Send + 'static,
        Args: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = Args>,
        I::IntoIter: Send + 'static,
    {
        self.starmap_with(f, args, MapOptions::new())
    }

    /// [`starmap`](MpiPoolExecutor::starmap) with [`MapOptions`].
    ///
    /// # Errors
    ///
    /// Those of [`map_with`](MpiPoolExecutor::map_with).
    pub fn starmap_with<F, Args, I>(
        &self,
        f: F,
        args: I,
        options: MapOptions,
    ) -> Result<Map<F::Output>>
    where
        F: Target<Args> + Sync,
        F::Output: Serialize + DeserializeOwned + Send + 'static,
        Args: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = Args>,
        I::IntoIter: Send + 'static,
    {
        zst!(F);
        let _ = f;
        self.fed(image::entry_offset(star_item::<F, Args>), args, options)
    }

    /// A `map` of the trampoline at `entry` over `args`.
    fn fed<A, R, I>(&self, entry: i64, args: I, options: MapOptions) -> Result<Map<R>>
    where
        A: Serialize + Send + 'static,
        R: DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        if self.shared.is_closed() {
            return Err(Error::Shutdown);
        }
        let iter = args.into_iter();
        let len = match iter.size_hint() {
            (lo, Some(hi)) if lo == hi => Some(lo),
            _ => None,
        };
        let chunking = options
            .chunksize
            .map_or(Chunking::Adaptive, Chunking::Fixed);
        let sizer = Sizer::new(chunking, self.max_workers(), len, true, None)?;
        let until = options.timeout.and_then(deadline);
        let mut feed = MpiFeed {
            iter,
            shared: Arc::clone(&self.shared),
            entry,
            sizer,
            workers: self.max_workers(),
            chunks_ahead: options.buffersize,
            next: 0,
            stashed: None,
            _a: PhantomData,
        };
        let first = feed.next_part();
        Ok(Map::fed(Box::new(feed), first, until))
    }

    /// Stops accepting tasks (Python's `shutdown(wait, cancel_futures)`). With
    /// `cancel_futures` the tasks not sent to a rank yet are cancelled. With `wait`, returns
    /// once every task has ended, every worker rank has been told to stop, and MPI is
    /// finalized on rank 0. Idempotent; a `wait` from a done-callback (which runs on the
    /// manager thread) does not wait.
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.shared.close(cancel_futures);
        if !wait || std::thread::current().id() == self.manager_id {
            return;
        }
        let mut manager = lock(&self.manager);
        if let Some(handle) = manager.take() {
            if handle.join().is_err() {
                eprintln!("spindle: the MPI manager thread failed: aborting every rank");
                comm::abort_world(manager::EXIT_RANK_LOST);
            }
            CURRENT_RANK.store(-1, Ordering::Release);
            // Every worker was told to stop: MPI_Finalize.
            drop(lock(&self.universe).take());
        }
    }
}

impl Drop for MpiPoolExecutor {
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}

impl Executor for MpiPoolExecutor {
    fn submit<F, A, R>(&self, f: F, arg: A) -> Result<Future<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        MpiPoolExecutor::submit(self, f, arg)
    }

    fn map<F, A, R, I>(&self, f: F, args: I) -> Result<Map<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        MpiPoolExecutor::map(self, f, args)
    }

    fn map_timeout<F, A, R, I>(&self, f: F, args: I, timeout: Duration) -> Result<Map<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        self.map_with(f, args, MapOptions::new().timeout(timeout))
    }

    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        MpiPoolExecutor::shutdown(self, wait, cancel_futures);
    }
}
