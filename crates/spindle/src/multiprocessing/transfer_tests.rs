//! Every IPC handle's `Serialize`/`Deserialize` through a test-only descriptor table that
//! plays the start path's part (dup on encode, take on decode), so the handles' transfer code
//! is exercised before the real seam (`handles`) carries descriptors between processes.

use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::multiprocessing::connection::pipe;
use crate::multiprocessing::queues::{JoinableQueue, Queue};
use crate::multiprocessing::reduction;
use crate::multiprocessing::shared_memory::{ShareableList, SharedMemory};
use crate::multiprocessing::sharedctypes::{Array, Value};
use crate::multiprocessing::synchronize::{Barrier, Condition, Event, Lock, RLock, Semaphore};

pub(super) mod table {
    use super::*;

    thread_local! {
        static TABLE: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
    }

    pub(crate) fn stash(fd: std::os::fd::BorrowedFd<'_>) -> Option<u32> {
        TABLE.with(|t| {
            let mut t = t.borrow_mut();
            let table = t.as_mut()?;
            table.push(Some(fd.try_clone_to_owned().ok()?));
            Some(table.len() as u32 - 1)
        })
    }

    pub(crate) fn take(i: u32) -> Option<crate::Result<OwnedFd>> {
        TABLE.with(|t| {
            let mut t = t.borrow_mut();
            let table = t.as_mut()?;
            Some(
                table
                    .get_mut(i as usize)
                    .and_then(Option::take)
                    .ok_or_else(|| crate::Error::Protocol(format!("no descriptor {i}"))),
            )
        })
    }

    /// Replaces descriptor `i` (a hostile sender's substitution).
    pub(crate) fn replace(i: u32, fd: OwnedFd) {
        TABLE.with(|t| {
            if let Some(table) = t.borrow_mut().as_mut() {
                table[i as usize] = Some(fd);
            }
        })
    }

    /// Runs `f` with a table active.
    pub(crate) fn scoped<T>(f: impl FnOnce() -> T) -> T {
        TABLE.with(|t| *t.borrow_mut() = Some(Vec::new()));
        let out = f();
        TABLE.with(|t| *t.borrow_mut() = None);
        out
    }
}

/// Encodes and decodes `value` as a `Process`'s arguments would travel.
fn travel<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    table::scoped(|| {
        let bytes = reduction::encode(value).expect("encode");
        reduction::decode(&bytes).expect("decode")
    })
}

#[test]
fn every_handle_survives_the_trip() {
    let (a, b) = pipe::<u32, u32>(true).unwrap();
    let b2 = travel(&b);
    a.send(&7).unwrap();
    assert_eq!(b2.recv().unwrap(), 7);

    let q = Queue::<String>::new().unwrap();
    let (tx, rx) = q.clone_handle().unwrap().split().unwrap();
    let (tx2, rx2) = (travel(&tx), travel(&rx));
    tx2.put("x".into()).unwrap();
    assert_eq!(rx2.get().unwrap(), "x");
    q.put("y".into()).unwrap();
    assert_eq!(travel(&q).get().unwrap(), "y");

    let jq = JoinableQueue::<u8>::new().unwrap();
    jq.put(1).unwrap();
    let jq2 = travel(&jq);
    assert_eq!(jq2.get().unwrap(), 1);
    jq2.task_done().unwrap();
    jq.join_timeout(Duration::from_secs(1)).unwrap();

    let lock = Lock::new().unwrap();
    let lock2 = travel(&lock);
    lock.acquire().unwrap();
    assert!(lock2.locked());
    lock.release().unwrap();
    let r = travel(&RLock::new().unwrap());
    r.acquire().unwrap();
    r.release().unwrap();

    let s = Semaphore::new(0).unwrap();
    travel(&s).release().unwrap();
    assert_eq!(s.get_value(), 1);
    let e = Event::new().unwrap();
    travel(&e).set();
    assert!(e.is_set());
    let c = Condition::new().unwrap();
    let c2 = travel(&c);
    c2.acquire().unwrap();
    c2.notify_all().unwrap();
    c2.release().unwrap();
    let b = Barrier::new(1).unwrap();
    assert_eq!(travel(&b).wait().unwrap(), 0);

    let v = Value::new(5u64).unwrap();
    travel(&v).fetch_add(1);
    assert_eq!(v.get(), 6);
    let arr = Array::new(&[1i32, 2, 3]).unwrap();
    assert_eq!(travel(&arr).as_slice(), [1, 2, 3]);
    let mut shm = SharedMemory::new(8).unwrap();
    shm.buf_mut()[3] = 9;
    assert_eq!(travel(&shm).buf()[3], 9);
    let named = SharedMemory::create(8).unwrap();
    assert_eq!(travel(&named).name(), named.name());
    let list = ShareableList::new(&[1.5f32, 2.5]).unwrap();
    let list2 = travel(&list);
    list2.set(1, 4.0).unwrap();
    assert_eq!(list.to_vec(), [1.5, 4.0]);
}

#[test]
fn a_descriptor_of_the_wrong_kind_is_refused() {
    // An Array whose descriptor is a pipe, not a sealed memfd: a protocol error, no mapping.
    let arr = Array::new(&[1u8]).unwrap();
    let (r, _w) = crate::sys::fd::pipe().unwrap();
    let out = table::scoped(|| {
        let bytes = reduction::encode(&arr).unwrap();
        table::replace(0, r);
        reduction::decode::<Array<u8>>(&bytes)
    });
    // (postcard keeps no custom message: the refusal is a codec error.)
    assert!(matches!(out, Err(crate::Error::Codec(_))));
    // A length larger than the segment: refused before mapping.
    let seg = Value::new_raw(1u8).unwrap();
    let out = table::scoped(|| {
        let mut bytes = reduction::encode(&seg).unwrap();
        // (index 0, length 64) -> claim 2^20 bytes.
        bytes[1] = 0x80;
        bytes[2] = 0x80;
        bytes.insert(3, 0x40);
        reduction::decode::<Value<u8>>(&bytes)
    });
    assert!(out.is_err());
}
