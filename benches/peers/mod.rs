//! The contenders spindle is compared with that are not libraries on crates.io: a bare
//! crossbeam-channel pool written here, the raw IPC limits (`raw_ipc`), and CPython run as a
//! subprocess.

pub(crate) mod cpython;
pub(crate) mod crossbeam_pool;
pub(crate) mod raw_ipc;
