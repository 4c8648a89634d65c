//! Descriptors that travel with a call: how an IPC handle (a `Connection`, a `Queue`, a lock, a
//! shared segment) passed in a `Process`'s arguments reaches the child under every start method.
//!
//! A handle's `Serialize` calls [`stash_fd`], which duplicates the descriptor into the table of
//! the call being encoded and writes only the index; its `Deserialize` calls [`take_fd`] with
//! that index. `Builder::target` encodes the arguments inside an encode scope that collects the
//! table into the job; spawn and forkserver send the table with `SCM_RIGHTS` together with the
//! call (at most [`MAX_FDS`]); a forked child finds the same table in its copied memory. The
//! child decodes inside a decode scope; descriptors the decoder did not take are closed.

use std::cell::RefCell;
use std::os::fd::{BorrowedFd, OwnedFd};

use crate::error::{Error, Result};
use crate::sys;

/// The most descriptors one call may carry.
pub(crate) const MAX_FDS: usize = 64;

thread_local! {
    static ENCODING: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    static DECODING: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
}

/// While a `Process`'s arguments are being encoded: dups `fd` into the call's descriptor
/// table and returns its index. Outside that (e.g. encoding a handle into a Queue message
/// or a Vec), `Err(Error::InvalidArgument(..))` with a message saying the handle can only
/// travel in a Process's arguments (or through a Connection that carries descriptors).
#[allow(dead_code)] // the IPC handles call it
pub(crate) fn stash_fd(fd: BorrowedFd<'_>) -> Result<u32> {
    ENCODING.with(|e| match e.borrow_mut().as_mut() {
        Some(table) => {
            let index = table.len() as u32;
            table.push(sys::fd::dup(fd)?);
            Ok(index)
        }
        None => Err(Error::InvalidArgument(
            "this handle can only travel in a Process's arguments (or through a Connection \
             that carries descriptors)"
                .into(),
        )),
    })
}

/// While a child decodes its call's arguments: takes ownership of descriptor `index` of the
/// call's table. Out of range, taken twice, or no table active: `Err(Error::Protocol(..))`.
#[allow(dead_code)] // the IPC handles call it
pub(crate) fn take_fd(index: u32) -> Result<OwnedFd> {
    DECODING.with(|d| match d.borrow_mut().as_mut() {
        Some(table) => table
            .get_mut(index as usize)
            .and_then(Option::take)
            .ok_or_else(|| {
                Error::Protocol(format!(
                    "descriptor {index} of the call is missing or was taken already"
                ))
            }),
        None => Err(Error::Protocol(
            "no descriptor table: a handle is decoded outside a Process's arguments".into(),
        )),
    })
}

/// Runs `encode` with a fresh descriptor table active and returns its outcome and the table.
pub(crate) fn encode_scope<T>(encode: impl FnOnce() -> T) -> (T, Vec<OwnedFd>) {
    let outer = ENCODING.with(|e| e.borrow_mut().replace(Vec::new()));
    let out = encode();
    let table = ENCODING.with(|e| std::mem::replace(&mut *e.borrow_mut(), outer));
    (out, table.unwrap_or_default())
}

/// Makes `fds` the table that [`take_fd`] takes from, on this thread.
pub(crate) fn begin_decode(fds: Vec<OwnedFd>) {
    DECODING.with(|d| *d.borrow_mut() = Some(fds.into_iter().map(Some).collect()));
}

/// Ends the decode scope: the descriptors not taken are closed. Idempotent.
pub(crate) fn end_decode() {
    DECODING.with(|d| d.borrow_mut().take());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn stash_outside_a_scope_is_refused_and_take_without_a_table_too() {
        let (r, _w) = std::os::unix::net::UnixStream::pair().unwrap();
        let err = stash_fd(r.as_fd()).unwrap_err();
        assert!(matches!(&err, Error::InvalidArgument(m) if m.contains("Process's arguments")));
        assert!(matches!(take_fd(0), Err(Error::Protocol(_))));
    }

    #[test]
    fn a_table_is_collected_taken_once_and_the_rest_closed() {
        let (r, w) = std::os::unix::net::UnixStream::pair().unwrap();
        let ((a, b), table) =
            encode_scope(|| (stash_fd(r.as_fd()).unwrap(), stash_fd(w.as_fd()).unwrap()));
        assert_eq!((a, b, table.len()), (0, 1, 2));
        begin_decode(table);
        let taken = take_fd(1).unwrap();
        assert!(matches!(take_fd(1), Err(Error::Protocol(_))));
        assert!(matches!(take_fd(7), Err(Error::Protocol(_))));
        end_decode();
        assert!(matches!(take_fd(0), Err(Error::Protocol(_))));
        drop(taken);
    }
}
