//! CPython's `Lib/test/_test_multiprocessing.py` (3.11), the shared-state part (`_TestValue`,
//! `_TestArray`, `_TestSharedMemory`), ported to `spindle::multiprocessing::{sharedctypes,
//! shared_memory}`. Its own binary: it starts and kills processes.
//!
//! Ported (CPython test -> Rust test):
//!
//! * `_TestValue.test_value`, `test_rawvalue` -> `values_written_by_a_child` (a spawned child
//!   gets the values in its arguments)
//! * `_TestValue.test_getobj_getlock` -> `value_lock`
//! * `_TestArray.test_array`, `test_rawarray` -> `array_prefix_sums_in_a_child`
//! * `_TestArray.test_array_from_size` -> `array_from_size_is_zeroed`
//! * `_TestArray.test_getobj_getlock_obj` -> `array_lock`
//! * `_TestSharedMemory.test_shared_memory_basics` -> `shared_memory_basics`
//! * `_TestSharedMemory.test_invalid_shared_memory_cration` -> `zero_size_segments`
//!   (deliberate difference: a zero-byte segment is an empty buffer, not a `ValueError`)
//! * `_TestSharedMemory.test_shared_memory_pickle_unpickle_dead_object` -> `attach_after_unlink`
//! * `_TestSharedMemory.test_shared_memory_across_processes` -> `shared_memory_across_processes`
//! * `_TestSharedMemory.test_shared_memory_ShareableList_basics` -> `shareable_list_basics`
//!   (one element type per list: spindle's lists hold plain values)
//! * `_TestSharedMemory.test_shared_memory_ShareableList_pickling` -> `shareable_list_in_a_child`
//! * `_TestSharedMemory.test_shared_memory_cleaned_after_process_termination` ->
//!   `a_killed_creators_segment_is_unlinked`
//!
//! Not ported: the `SharedMemoryManager` tests (no managers), `test_shared_memory_recreate`
//! (a mocked name generator), `Value(..., lock=some_lock)` (a value brings its own lock).

use std::time::Duration;

use spindle::multiprocessing::shared_memory::{AttachError, ShareableList, SharedMemory};
use spindle::multiprocessing::sharedctypes::{Array, Value};
use spindle::multiprocessing::{Builder, StartMethod};
use spindle::Error;

mod common;
use common::{eventually, running, serial_watchdog};

const LONG: Duration = Duration::from_secs(20);

type Values = (Value<i32>, Value<f64>, Value<i16>, Value<i64>, Value<u8>);

fn make_values(raw: bool) -> Values {
    if raw {
        (
            Value::new_raw(4343).unwrap(),
            Value::new_raw(3.625).unwrap(),
            Value::new_raw(-232).unwrap(),
            Value::new_raw(1 << 33).unwrap(),
            Value::new_raw(b'x').unwrap(),
        )
    } else {
        (
            Value::new(4343).unwrap(),
            Value::new(3.625).unwrap(),
            Value::new(-232).unwrap(),
            Value::new(1 << 33).unwrap(),
            Value::new(b'x').unwrap(),
        )
    }
}

fn write_values(v: Values) {
    v.0.set(24234);
    v.1.set(-4.25);
    v.2.set(234);
    v.3.set(1 << 34);
    v.4.set(b'y');
}

#[test]
fn values_written_by_a_child() {
    serial_watchdog(|| {
        for raw in [false, true] {
            let v = make_values(raw);
            assert_eq!(
                (v.0.get(), v.1.get(), v.2.get(), v.3.get(), v.4.get()),
                (4343, 3.625, -232, 1 << 33, b'x')
            );
            let p = Builder::new()
                .start_method(StartMethod::Spawn)
                .daemon(true)
                .target(write_values, (v.clone(),));
            p.start().unwrap();
            p.join().unwrap();
            assert_eq!(
                (v.0.get(), v.1.get(), v.2.get(), v.3.get(), v.4.get()),
                (24234, -4.25, 234, 1 << 34, b'y'),
                "raw: {raw}"
            );
        }
    });
}

#[test]
fn value_lock() {
    let v = Value::new(5i32).unwrap();
    let lock = v.get_lock().expect("a Value comes with a lock");
    {
        let _g = lock.lock().unwrap();
        v.set(v.get() + 1);
    }
    assert_eq!(v.get(), 6);
    assert!(
        Value::new_raw(5i32).unwrap().get_lock().is_none(),
        "RawValue has no lock"
    );
    // Atomic updates need no lock at all.
    assert_eq!(v.fetch_add(4), 6);
    assert_eq!(v.compare_exchange(10, 11), Ok(10));
    assert_eq!(v.compare_exchange(10, 12), Err(11));
}

/// CPython's `_TestArray.f`: a running sum, in place.
fn prefix_sums(seq: &mut [i32]) {
    for i in 1..seq.len() {
        seq[i] += seq[i - 1];
    }
}

fn prefix_sums_in_child(mut arr: Array<i32>) {
    prefix_sums(arr.as_mut_slice());
}

#[test]
fn array_prefix_sums_in_a_child() {
    serial_watchdog(|| {
        for raw in [false, true] {
            let mut seq = vec![680, 626, 934, 821, 150, 233, 548, 982, 714, 831];
            let mut arr = if raw {
                Array::new_raw(&seq)
            } else {
                Array::new(&seq)
            }
            .unwrap();
            assert_eq!(arr.len(), seq.len());
            assert_eq!(arr.as_slice()[3], seq[3]);
            assert_eq!(&arr.as_slice()[2..7], &seq[2..7]);
            arr.as_mut_slice()[4..8].copy_from_slice(&[1, 2, 3, 4]);
            seq[4..8].copy_from_slice(&[1, 2, 3, 4]);
            assert_eq!(arr.as_slice(), &seq[..]);
            prefix_sums(&mut seq);
            let p = Builder::new()
                .start_method(StartMethod::Spawn)
                .daemon(true)
                .target(prefix_sums_in_child, (arr.share().unwrap(),));
            p.start().unwrap();
            p.join().unwrap();
            assert_eq!(arr.as_slice(), &seq[..], "raw: {raw}");
        }
    });
}

#[test]
fn array_from_size_is_zeroed() {
    for _ in 0..3 {
        let mut arr = Array::<i32>::zeroed(10).unwrap();
        assert_eq!(arr.len(), 10);
        assert_eq!(arr.as_slice(), [0; 10]);
        arr.as_mut_slice()
            .copy_from_slice(&(0..10).collect::<Vec<_>>());
        assert_eq!(arr.as_slice(), (0..10).collect::<Vec<_>>());
    }
}

#[test]
fn array_lock() {
    let arr = Array::new(&(0..10).collect::<Vec<i32>>()).unwrap();
    assert!(arr.get_lock().is_some());
    assert!(Array::new_raw(&[1i32]).unwrap().get_lock().is_none());
    assert!(Array::<u8>::zeroed(0).unwrap().is_empty());
}

#[test]
fn shared_memory_basics() {
    let name = format!("spindle-test01-tsmb-{}", std::process::id());
    let mut sms = SharedMemory::create_named(&name, 512).unwrap();
    assert_eq!(sms.name(), Some(name.as_str()));
    assert!(sms.size() >= 512);
    assert!(sms.buf().len() >= sms.size());
    let shown = format!("{sms:?}");
    assert!(shown.contains(&name) && shown.contains("512"), "{shown}");

    sms.buf_mut()[0] = 42;
    assert_eq!(sms.buf()[0], 42);
    let also = SharedMemory::attach(&name).unwrap();
    assert_eq!(also.buf()[0], 42);
    assert_eq!(also.size(), 512);
    drop(also);

    // A name already in use cannot be created again.
    match SharedMemory::create_named(&name, 512) {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists),
        other => panic!("{other:?}"),
    }
    // A name nobody created cannot be attached.
    assert!(matches!(
        SharedMemory::attach("spindle-test01-notthere"),
        Err(AttachError::NotFound(_))
    ));
    // Unlinking is idempotent here (Python's second unlink raises).
    sms.unlink().unwrap();
    sms.unlink().unwrap();
    assert!(matches!(
        SharedMemory::attach(&name),
        Err(AttachError::NotFound(_))
    ));
    assert_eq!(sms.buf()[0], 42, "the mapping outlives the name");
}

#[test]
fn zero_size_segments() {
    let anon = SharedMemory::new(0).unwrap();
    assert_eq!(anon.size(), 0);
    assert!(anon.buf().is_empty());
    let named = SharedMemory::create(0).unwrap();
    assert_eq!(named.size(), 0);
    let attached = SharedMemory::attach(named.name().unwrap()).unwrap();
    assert_eq!(attached.size(), 0);
}

#[test]
fn attach_after_unlink() {
    let mut sms = SharedMemory::create(512).unwrap();
    sms.buf_mut()[..6].copy_from_slice(b"pickle");
    let name = sms.name().unwrap().to_owned();
    sms.unlink().unwrap();
    drop(sms);
    assert!(matches!(
        SharedMemory::attach(&name),
        Err(AttachError::NotFound(_))
    ));
}

fn attach_then_write(name: String, data: Vec<u8>) {
    let mut local = SharedMemory::attach(&name).unwrap();
    local.buf_mut()[..data.len()].copy_from_slice(&data);
}

fn write_through(mut shm: SharedMemory, data: Vec<u8>) {
    shm.buf_mut()[..data.len()].copy_from_slice(&data);
}

#[test]
fn shared_memory_across_processes() {
    serial_watchdog(|| {
        let sms = SharedMemory::create(512).unwrap();
        // Attachment by name.
        let p = Builder::new()
            .start_method(StartMethod::Spawn)
            .daemon(true)
            .target(
                attach_then_write,
                (sms.name().unwrap().to_owned(), b"howdy".to_vec()),
            );
        p.start().unwrap();
        p.join().unwrap();
        assert_eq!(&sms.buf()[..5], b"howdy");
        // The handle itself travels (CPython pickles it).
        let p = Builder::new()
            .start_method(StartMethod::Forkserver)
            .daemon(true)
            .target(write_through, (sms.share().unwrap(), b"HELLO".to_vec()));
        p.start().unwrap();
        p.join().unwrap();
        assert_eq!(&sms.buf()[..5], b"HELLO");
        // An anonymous segment travels the same way.
        let anon = SharedMemory::new(64).unwrap();
        let p = Builder::new()
            .start_method(StartMethod::Spawn)
            .target(write_through, (anon.share().unwrap(), b"anon".to_vec()));
        p.start().unwrap();
        p.join().unwrap();
        assert_eq!(&anon.buf()[..4], b"anon");
    });
}

#[test]
fn shareable_list_basics() {
    let sl = ShareableList::create(&[-273.154f64, 100.0, 1.0, 42.0]).unwrap();
    let name = sl.name().unwrap().to_owned();
    let shown = format!("{sl:?}");
    assert!(shown.contains(&name), "{shown}");
    assert!(
        matches!(sl.get(4), Err(Error::InvalidArgument(_))),
        "IndexError"
    );
    assert!(matches!(sl.set(4, 2.0), Err(Error::InvalidArgument(_))));
    assert_eq!(sl.len(), 4);
    assert_eq!(sl.get(0).unwrap(), -273.154);
    assert_eq!(sl.to_vec(), [-273.154, 100.0, 1.0, 42.0]);
    sl.set(3, 43.0).unwrap();
    assert_eq!(sl.get(3).unwrap(), 43.0);
    // A second handle on the same list, by name.
    let tethered = ShareableList::<f64>::attach(&name).unwrap();
    tethered.set(3, 880.0).unwrap();
    assert_eq!(sl.get(3).unwrap(), 880.0);
    // Another element type is refused.
    assert!(matches!(
        ShareableList::<u8>::attach(&name),
        Err(AttachError::Foreign(_))
    ));
    // An empty list.
    let empty = ShareableList::<i64>::create(&[]).unwrap();
    assert!(empty.is_empty());
    assert!(empty.get(0).is_err());
    assert_eq!(
        ShareableList::<i64>::attach(empty.name().unwrap())
            .unwrap()
            .len(),
        0
    );
}

fn bump_list(sl: ShareableList<u32>) -> Vec<u32> {
    sl.set(0, sl.get(0).unwrap() + 1).unwrap();
    sl.to_vec()
}

#[test]
fn shareable_list_in_a_child() {
    serial_watchdog(|| {
        for named in [false, true] {
            let values: Vec<u32> = (0..10).collect();
            let sl = if named {
                ShareableList::create(&values)
            } else {
                ShareableList::new(&values)
            }
            .unwrap();
            let p = Builder::new()
                .start_method(StartMethod::Spawn)
                .target(bump_list, (sl,));
            p.start().unwrap();
            let seen = p.join().unwrap();
            assert_eq!(seen[0], 1);
            assert_eq!(&seen[1..], &values[1..]);
        }
    });
}

fn create_and_hang(tx: spindle::multiprocessing::Connection<String, ()>) {
    let shm = SharedMemory::create(64).unwrap();
    tx.send(&shm.name().unwrap().to_owned()).unwrap();
    std::thread::sleep(Duration::from_secs(100));
    drop(shm);
}

#[test]
fn a_killed_creators_segment_is_unlinked() {
    serial_watchdog(|| {
        let (rx, tx) = spindle::multiprocessing::pipe::<(), String>(false).unwrap();
        let p = Builder::new()
            .start_method(StartMethod::Spawn)
            .target(create_and_hang, (tx,));
        p.start().unwrap();
        let name = rx.recv_timeout(LONG).unwrap();
        let pid = p.pid().unwrap();
        p.kill().unwrap();
        assert!(p.join().is_err());
        assert!(eventually(LONG, || !running(pid)));
        // The creator never unlinked it: the next user that attaches finds it orphaned and
        // unlinks it (it keeps its mapping).
        let orphan = SharedMemory::attach(&name).unwrap();
        assert_eq!(orphan.size(), 64);
        assert!(matches!(
            SharedMemory::attach(&name),
            Err(AttachError::NotFound(_))
        ));
    });
}
