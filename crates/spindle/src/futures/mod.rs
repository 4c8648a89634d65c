//! `concurrent.futures`: futures, executors, `wait` and `as_completed`.
