//! A coroutine's panic as a value: every poll runs under [`crate::panic::catch`], so a panic
//! inside a task or inside `run`'s main coroutine becomes a [`PanicReport`] (message,
//! location, backtrace when asked for), printed nowhere, handed to whoever awaits it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::panic::PanicReport;
use crate::{Error, TaskError};

/// Why a task gave no value: it panicked (the report is boxed, so that a task's output slot
/// stays the size of its value), or it failed inside a [`TaskGroup`](super::TaskGroup), whose
/// error list holds its error.
#[derive(Debug)]
pub(crate) enum Failure {
    Panic(Box<PanicReport>),
    InGroup,
}

pin_project! {
    /// `fut`, with a panic in any of its polls turned into `Err(Failure::Panic(report))`.
    pub(crate) struct CatchUnwind<F> {
        #[pin]
        fut: F,
    }
}

impl<F> CatchUnwind<F> {
    pub(crate) fn new(fut: F) -> Self {
        CatchUnwind { fut }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Failure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.project().fut;
        match crate::panic::catch(move || fut.poll(cx)) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(report) => Poll::Ready(Err(Failure::Panic(Box::new(report)))),
        }
    }
}

/// The error a failure becomes for whoever awaits the task.
pub(crate) fn failed(failure: Failure) -> Error {
    match failure {
        Failure::Panic(report) => Error::Task(TaskError::panicked(*report)),
        Failure::InGroup => Error::Task(TaskError::failed(
            "the task failed; its error is in its TaskGroup's ExceptionGroup",
        )),
    }
}
