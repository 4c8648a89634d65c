//! The contenders spindle is compared with that are not libraries on crates.io: a bare
//! crossbeam-channel pool and a raw fork pool written here, the raw IPC limits (`raw_ipc`),
//! and CPython's `concurrent.futures` and `multiprocessing` run as subprocesses.

pub(crate) mod cpython;
pub(crate) mod cpython_asyncio;
pub(crate) mod cpython_pool;
pub(crate) mod crossbeam_pool;
pub(crate) mod raw_ipc;
pub(crate) mod raw_pool;
