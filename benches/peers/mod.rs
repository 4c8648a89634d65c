//! The contenders spindle is compared with that are not libraries on crates.io: a bare
//! crossbeam-channel pool written here, and CPython's `concurrent.futures` run as a subprocess.

pub(crate) mod cpython;
pub(crate) mod crossbeam_pool;
