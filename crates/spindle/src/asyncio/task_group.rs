//! [`TaskGroup`]: structured concurrency (Python 3.11's `asyncio.TaskGroup`): one failure
//! cancels the siblings, and the group reports every error.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};

use super::task::{no_running_loop, Task};
use super::unwind::{failed, CatchUnwind, Failure};
use crate::latch::lock;
use crate::{Error, Result, TaskError};

/// A set of tasks that end together (Python 3.11's `async with asyncio.TaskGroup() as tg`).
///
/// Tasks are coroutines whose output is a `Result<T, E>`. When one fails (returns `Err` or
/// panics), every other task of the group is cancelled, and [`join`](TaskGroup::join)
/// returns an [`ExceptionGroup`] holding every error and every panic (cancellations are not
/// errors, as in Python). Dropping the group without joining
/// cancels the tasks still running: a group never leaves a task behind.
///
/// | Python                                   | spindle                                   |
/// |------------------------------------------|-------------------------------------------|
/// | `async with asyncio.TaskGroup() as tg:`  | `let tg = TaskGroup::new();`              |
/// | `t = tg.create_task(coro)`               | `let t = tg.create_task(coro)?;`          |
/// | (end of the `async with` block)          | `tg.join().await?`                        |
/// | `except* ValueError as eg:`              | `Err(eg)` → [`eg.errors()`](ExceptionGroup::errors) |
///
/// ```
/// use std::time::Duration;
/// use spindle::asyncio::{self, TaskGroup};
///
/// asyncio::run(async {
///     let tg: TaskGroup<String> = TaskGroup::new();
///     let slow = tg.create_task(async {
///         asyncio::sleep(Duration::from_secs(60)).await;
///         Ok(1)
///     }).unwrap();
///     tg.create_task(async { Err::<u8, _>("bad input".to_string()) }).unwrap();
///     let eg = tg.join().await.unwrap_err();
///     assert_eq!(eg.errors(), ["bad input"]);
///     // The sibling was cancelled, not waited for for a minute.
///     assert!(slow.await.unwrap_err().as_task().unwrap().is_cancelled());
/// })?;
/// # Ok::<(), spindle::Error>(())
/// ```
pub struct TaskGroup<E = Error> {
    shared: Arc<Shared<E>>,
}

struct Shared<E> {
    state: Mutex<State<E>>,
    idle: tokio::sync::Notify,
}

struct State<E> {
    next_id: u64,
    /// The tasks not finished; `None` while the task is being spawned.
    live: HashMap<u64, Option<tokio::task::AbortHandle>>,
    errors: Vec<E>,
    panics: Vec<TaskError>,
    failing: bool,
}

/// Every failure of a [`TaskGroup`]'s tasks (Python's `ExceptionGroup`): the errors they
/// returned and the panics they raised, each in the order they happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionGroup<E> {
    errors: Vec<E>,
    panics: Vec<TaskError>,
}

impl<E> ExceptionGroup<E> {
    /// The errors the tasks returned (Python's `eg.exceptions`, less the panics).
    pub fn errors(&self) -> &[E] {
        &self.errors
    }

    /// The errors, owned.
    pub fn into_errors(self) -> Vec<E> {
        self.errors
    }

    /// The panics of tasks, each a [`TaskError`] with
    /// [`is_panic`](TaskError::is_panic), its message and location.
    pub fn panics(&self) -> &[TaskError] {
        &self.panics
    }

    /// How many tasks failed.
    pub fn len(&self) -> usize {
        self.errors.len() + self.panics.len()
    }

    /// Whether no task failed (never, for a group returned by `join`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<E: fmt::Display> fmt::Display for ExceptionGroup<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.len();
        write!(
            f,
            "unhandled errors in a TaskGroup ({n} sub-exception{})",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            write!(f, "; {e}")?;
        }
        for p in &self.panics {
            write!(f, "; {p}")?;
        }
        Ok(())
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ExceptionGroup<E> {}

/// Ends a group task's life in the group, however it ends (returned, failed, cancelled).
struct Member<E> {
    shared: Arc<Shared<E>>,
    id: u64,
}

impl<E> Drop for Member<E> {
    fn drop(&mut self) {
        let mut s = lock(&self.shared.state);
        s.live.remove(&self.id);
        let idle = s.live.is_empty();
        drop(s);
        if idle {
            self.shared.idle.notify_waiters();
        }
    }
}

impl<E> Shared<E> {
    /// Records `error` (or a panic) and cancels every other task of the group.
    fn fail(&self, error: std::result::Result<E, TaskError>, me: u64) {
        let mut s = lock(&self.state);
        match error {
            Ok(e) => s.errors.push(e),
            Err(p) => s.panics.push(p),
        }
        s.failing = true;
        let others: Vec<tokio::task::AbortHandle> = s
            .live
            .iter()
            .filter(|(id, _)| **id != me)
            .filter_map(|(_, a)| a.clone())
            .collect();
        drop(s);
        for a in others {
            a.abort();
        }
    }
}

impl<E: Send + 'static> TaskGroup<E> {
    /// An empty group.
    pub fn new() -> Self {
        TaskGroup {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    next_id: 0,
                    live: HashMap::new(),
                    errors: Vec::new(),
                    panics: Vec::new(),
                    failing: false,
                }),
                idle: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Starts `coro` as a task of the group (Python's `tg.create_task(coro)`). Awaiting the
    /// returned [`Task`] gives its value; a task that failed gives an error that points to
    /// the group's [`ExceptionGroup`], which holds its own error.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] outside a loop, or once a task of the group has failed (the
    /// group is shutting down: Python's `RuntimeError`).
    pub fn create_task<F, T>(&self, coro: F) -> Result<Task<T>>
    where
        F: Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| no_running_loop())?;
        let id = {
            let mut s = lock(&self.shared.state);
            if s.failing {
                return Err(Error::InvalidState("the task group is shutting down"));
            }
            let id = s.next_id;
            s.next_id += 1;
            s.live.insert(id, None);
            id
        };
        let member = Member {
            shared: Arc::clone(&self.shared),
            id,
        };
        let handle = rt.spawn(async move {
            let member = member;
            match CatchUnwind::new(coro).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => {
                    member.shared.fail(Ok(e), member.id);
                    Err(Failure::InGroup)
                }
                Err(failure) => {
                    let error = match failed(failure) {
                        Error::Task(t) => t,
                        other => TaskError::failed(other.to_string()),
                    };
                    member.shared.fail(Err(error), member.id);
                    Err(Failure::InGroup)
                }
            }
        });
        let abort = handle.abort_handle();
        let mut s = lock(&self.shared.state);
        let failing = s.failing;
        if let Some(slot) = s.live.get_mut(&id) {
            *slot = Some(abort.clone());
        }
        drop(s);
        if failing {
            // A sibling failed while this one was being spawned: it missed the cancel.
            abort.abort();
        }
        Ok(Task::from_handle(handle))
    }

    /// Waits until every task of the group has ended (Python's end of the `async with`
    /// block): `Ok` when none failed, else every error.
    ///
    /// # Errors
    ///
    /// The [`ExceptionGroup`] of every task that failed or panicked.
    pub async fn join(self) -> std::result::Result<(), ExceptionGroup<E>> {
        loop {
            let mut idle = pin!(self.shared.idle.notified());
            idle.as_mut().enable();
            if lock(&self.shared.state).live.is_empty() {
                break;
            }
            idle.await;
        }
        let mut s = lock(&self.shared.state);
        let group = ExceptionGroup {
            errors: std::mem::take(&mut s.errors),
            panics: std::mem::take(&mut s.panics),
        };
        if group.is_empty() {
            Ok(())
        } else {
            Err(group)
        }
    }

    /// How many tasks of the group have not ended.
    pub fn running(&self) -> usize {
        lock(&self.shared.state).live.len()
    }
}

impl<E: Send + 'static> Default for TaskGroup<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> Drop for TaskGroup<E> {
    fn drop(&mut self) {
        // Not joined (the awaiting code was cancelled, or returned early): no task outlives
        // the group.
        let aborts: Vec<_> = lock(&self.shared.state)
            .live
            .values()
            .flatten()
            .cloned()
            .collect();
        for a in aborts {
            a.abort();
        }
    }
}

impl<E> fmt::Debug for TaskGroup<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.shared.state);
        f.debug_struct("TaskGroup")
            .field("running", &s.live.len())
            .field("errors", &s.errors.len())
            .finish()
    }
}
