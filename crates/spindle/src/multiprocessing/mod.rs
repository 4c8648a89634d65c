//! `multiprocessing`: run Rust functions in other processes, with Python's names.
//!
//! ```
//! use spindle::multiprocessing::{Process, StartMethod};
//!
//! fn work(name: String, n: u32) -> String {
//!     format!("{name} did {n}")
//! }
//!
//! for method in StartMethod::ALL {
//!     let p = Process::builder().start_method(method).target(work, ("A".to_string(), 3));
//!     p.start().unwrap();
//!     assert_eq!(p.join().unwrap(), "A did 3");
//! }
//! ```
//!
//! | Python | spindle |
//! |---|---|
//! | `Process(target=f, args=(a, b), name=..., daemon=...)` | [`Process::builder`]`().name(..).daemon(..).target(f, (a, b))` |
//! | `p.start()`, `p.join()`, `p.join(timeout)` | [`Process::start`], [`Process::join`] (returns `f`'s value), [`Process::join_timeout`] |
//! | `p.is_alive()`, `p.pid`, `p.exitcode` | [`Process::is_alive`], [`Process::pid`], [`Process::exitcode`] (minus the signal number when killed) |
//! | `p.terminate()`, `p.kill()`, `p.close()` | [`Process::terminate`], [`Process::kill`], [`Process::close`] |
//! | `set_start_method`, `get_start_method`, `get_context` | [`set_start_method`], [`get_start_method`], [`get_context`] |
//! | `"spawn"`, `"fork"`, `"forkserver"` | [`StartMethod::Spawn`], [`StartMethod::Fork`], [`StartMethod::Forkserver`] (the default) |
//! | `active_children()`, `current_process()`, `parent_process()`, `cpu_count()` | [`active_children`], [`current_process`], [`parent_process`], [`cpu_count`] |
//! | `Pool(processes, initializer, initargs, maxtasksperchild)` | [`Pool::builder`] ([`pool`] has the whole map) |
//! | `multiprocessing.dummy.Pool` | [`dummy::Pool`] |
//! | `set_executable(path)` | [`set_executable`] (for spindle inside a shared object) |
//! | `p.sentinel` | [`Process::sentinel`] |
//! | `Pipe(duplex)`, `Connection.send` / `recv` / `poll` / `send_bytes` / `recv_bytes` | [`pipe`]`::<S, R>(duplex)`, [`Connection`] (typed both ways) |
//! | `connection.Listener`, `connection.Client`, `connection.wait` | [`connection::Listener`], [`connection::client`], [`connection::wait`] |
//! | `Queue(maxsize)`, `SimpleQueue`, `JoinableQueue` | [`Queue`], [`SimpleQueue`], [`JoinableQueue`]; plus [`Queue::split`] into [`queues::Sender`] / [`queues::Receiver`] for end of stream |
//! | `queue.Empty`, `queue.Full` | [`queues::GetError::Empty`], [`queues::PutError::Full`] (the item handed back) |
//! | `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`, `Event`, `Condition`, `Barrier` | [`synchronize`]`::{`[`Lock`]`, `[`RLock`]`, ...}`: robust to a dead holder, waiter or party |
//! | `Value(typecode, v)`, `Array(typecode, n)`, `RawValue`, `RawArray` | [`Value`], [`Array`] (`new_raw` without a lock) |
//! | `shared_memory.SharedMemory`, `shared_memory.ShareableList` | [`shared_memory::SharedMemory`], [`shared_memory::ShareableList`] |
//!
//! What differs from Python, on purpose:
//! - no `if __name__ == "__main__":` guard: a spawned child is entered before `main`;
//! - a target is a `fn` item or a closure that captures nothing (a capturing closure is a
//!   compile error), except with [`Builder::fork_target`], which only forks;
//! - a panic in the child comes back from `join` as a [`TaskError`](crate::TaskError) with
//!   its message and pid (exit code 1); bad bytes on the control channel are typed errors;
//! - every child dies with its parent, also when the parent is killed with `SIGKILL`;
//! - dropping a running non-daemon [`Process`] waits for it; a daemon is killed. At exit
//!   (`main` returning, `std::process::exit`) children still running — a leaked `Process` —
//!   are treated as Python does: daemonic ones killed, the others waited for;
//! - a target that captures something is refused by `cargo build`, not by `cargo check`
//!   (see [`Builder::target`]);
//! - a program only acts as a spindle child for a spindle parent running the same file, of the
//!   same user, and never under setuid/setgid/file capabilities (see `README.md`).
//!
//! How a spawned child knows what to run, and how the fork server works, is told in
//! `README.md` beside this file.

pub(crate) mod bootstrap;
mod context;
mod forkserver;
pub(crate) mod handles;
mod identity;
mod process;
mod reduction;
mod start;
mod target;

pub mod bench;
pub mod connection;
pub mod dummy;
pub mod pool;
pub mod queues;
pub mod shared_memory;
pub mod sharedctypes;
pub mod synchronize;

pub use context::{
    cpu_count, get_all_start_methods, get_context, get_start_method, set_executable,
    set_start_method, set_start_method_force, Context, StartMethod,
};
pub use identity::{active_children, current_process, parent_process, ProcessInfo};
pub use pool::{Pool, PoolBuilder};
pub use process::{Builder, Process};
pub use target::Target;

pub use connection::{pipe, Connection};
pub use queues::{JoinableQueue, Queue, SimpleQueue};
pub use sharedctypes::{Array, Value};
pub use synchronize::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};

#[cfg(test)]
mod tests;
