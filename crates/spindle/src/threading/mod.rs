//! `threading`: threads and the synchronisation primitives between them.
//!
//! Python's `threading` module, name for name. Where Python raises, spindle returns a typed
//! [`Error`](crate::Error); where Python takes `timeout=`, spindle has a `_timeout(Duration)`
//! twin; where Python uses `with lock:`, spindle returns a guard that releases on drop.
//!
//! | Python                                        | spindle                                             |
//! |-----------------------------------------------|-----------------------------------------------------|
//! | `Thread(target=f, args=(x,))`                 | [`Thread::new(move \|\| f(x))`](Thread::new)        |
//! | `Thread(target=f, name="A", daemon=True)`     | [`Thread::builder()`](Thread::builder)`.name("A").daemon(true).target(f)?` |
//! | `t.start()` / `t.join()`                      | [`t.start()?`](Thread::start) / [`t.join()?`](Thread::join) (returns `f`'s value) |
//! | `t.join(timeout)` then `t.is_alive()`         | [`t.join_timeout(d)`](Thread::join_timeout) → `Err(Error::Timeout)` while alive |
//! | `t.name`, `t.ident`, `t.native_id`, `t.daemon`| [`name()`](Thread::name), [`ident()`](Thread::ident), [`native_id()`](Thread::native_id), [`is_daemon()`](Thread::is_daemon) |
//! | `current_thread()`, `main_thread()`           | [`current_thread()`], [`main_thread()`] (a [`ThreadInfo`]) |
//! | `get_ident()`, `get_native_id()`              | [`get_ident()`], [`get_native_id()`]               |
//! | `active_count()`, `enumerate()`               | [`active_count()`], [`enumerate()`]                 |
//! | `Lock()`, `RLock()`                           | [`Lock::new()`](Lock::new), [`RLock::new()`](RLock::new) |
//! | `lock.acquire()` / `acquire(False)` / `acquire(timeout=t)` | [`acquire()`](Lock::acquire) / [`try_acquire()`](Lock::try_acquire) / [`acquire_timeout(t)`](Lock::acquire_timeout) |
//! | `lock.release()`, `with lock:`                | [`release()?`](Lock::release), [`let _g = lock.lock();`](Lock::lock) |
//! | `Condition()`, `Condition(lock)`              | [`Condition::new()`](Condition::new), [`Condition::with_lock`] / [`Condition::with_rlock`] |
//! | `cond.wait()`, `wait_for(p)`, `notify(n)`     | [`wait()?`](Condition::wait), [`wait_for(p)?`](Condition::wait_for), [`notify(n)?`](Condition::notify) |
//! | `Semaphore(n)`, `BoundedSemaphore(n)`         | [`Semaphore::new(n)`](Semaphore::new), [`BoundedSemaphore::new(n)`](BoundedSemaphore::new) |
//! | `sem.release(n)`, `with sem:`                 | [`release_n(n)?`](Semaphore::release_n), [`let _p = sem.permit();`](Semaphore::permit) |
//! | `Event()`: `set`, `clear`, `is_set`, `wait`   | [`Event`]: the same names, [`wait_timeout`](Event::wait_timeout) → `bool` |
//! | `Barrier(n, action, timeout)`                 | [`Barrier::new(n)?`](Barrier::new), [`Barrier::builder(n)`](Barrier::builder)`.action(f).timeout(t).build()?` |
//! | `Timer(interval, f)`: `start`, `cancel`       | [`Timer::new(interval, f)`](Timer::new): [`start`](Timer::start), [`cancel`](Timer::cancel) |
//! | `RuntimeError` (lock misuse, start twice)     | [`Error::NotOwner`](crate::Error::NotOwner), [`Error::InvalidState`](crate::Error::InvalidState) |
//! | `ValueError` (over-release)                   | [`Error::OverRelease`](crate::Error::OverRelease)   |
//! | `BrokenBarrierError`                          | [`Error::BrokenBarrier`](crate::Error::BrokenBarrier) |
//! | exception in a thread (`excepthook`)          | [`Error::Task`](crate::Error::Task) from `join`, with the panic message |
//!
//! Every type here is `Send + Sync`, so share it between threads with `Arc` or a `static`;
//! the exceptions are [`BarrierBuilder`] (`Send` only) and the guards of the owner-checked
//! locks ([`RLockGuard`], [`ConditionGuard`]), which stay on the thread that took them.
//!
//! Two differences from Python deserve a note. Dropping the handle of a running non-daemon
//! [`Thread`] joins it (Python instead waits for such threads at interpreter exit; Rust has no
//! such point), while a daemon thread's handle detaches. And idents are never reused.
//!
//! # Example
//!
//! Python's
//!
//! ```python
//! import threading
//!
//! def download_file(file_id):
//!     return f"file {file_id} downloaded"
//!
//! threads = [threading.Thread(target=download_file, args=(f,)) for f in [1, 2, 3]]
//! for t in threads:
//!     t.start()
//! for t in threads:
//!     t.join()
//! ```
//!
//! in spindle, with the return values:
//!
//! ```
//! use spindle::threading::Thread;
//!
//! fn download_file(file_id: u32) -> String {
//!     format!("file {file_id} downloaded")
//! }
//!
//! let mut threads: Vec<Thread<String>> =
//!     [1, 2, 3].into_iter().map(|f| Thread::new(move || download_file(f))).collect();
//! for t in &mut threads {
//!     t.start()?;
//! }
//! for (t, f) in threads.iter_mut().zip(1..) {
//!     assert_eq!(t.join()?, format!("file {f} downloaded"));
//! }
//! # Ok::<(), spindle::Error>(())
//! ```

mod barrier;
mod condition;
mod event;
mod lock;
mod semaphore;
mod thread;
mod timer;

pub use barrier::{Barrier, BarrierBuilder};
pub use condition::{Condition, ConditionGuard};
pub use event::Event;
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, Permit, Semaphore};
pub use thread::{
    active_count, current_thread, enumerate, get_ident, get_native_id, main_thread, Thread,
    ThreadBuilder, ThreadInfo,
};
pub use timer::Timer;

pub(crate) use thread::{lock_registry_for_fork, RegistryForkGuard};
