//! Shared memory across processes: `SharedMemory` (anonymous and named), `ShareableList`,
//! `Value` and `Array`; a segment gone after its users exit and after they are all SIGKILLed
//! at once; a truncated or shrunk named segment refused at attach (a typed error, no SIGBUS).
//!
//! Behaviours ported from CPython's `_test_multiprocessing` (`_TestSharedMemory`:
//! `test_shared_memory_basics`, `test_shared_memory_across_processes`,
//! `test_shared_memory_ShareableList_basics`; `_TestValue`, `_TestArray`).

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use spindle::multiprocessing::shared_memory::{AttachError, ShareableList, SharedMemory};
use spindle::multiprocessing::sharedctypes::{Array, Value};
use spindle::multiprocessing::Builder;

mod common;

use common::serial_watchdog as watchdog;

fn shm_exists(name: &str) -> bool {
    std::path::Path::new("/dev/shm").join(name).exists()
}

#[test]
fn named_segment_across_processes_and_unlinked_by_its_creator() {
    watchdog(|| {
        let mut shm = SharedMemory::create(4096).unwrap();
        let name = shm.name().unwrap().to_owned();
        assert!(shm.size() >= 4096);
        shm.buf_mut()[..6].copy_from_slice(b"parent");
        let n = name.clone();
        let p = Builder::new().fork_target(move || {
            let mut other = SharedMemory::attach(&n).unwrap();
            let seen = other.buf()[..6].to_vec();
            other.buf_mut()[..5].copy_from_slice(b"child");
            seen
        });
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), b"parent");
        assert_eq!(&shm.buf()[..5], b"child");
        assert!(shm_exists(&name));
        drop(shm);
        assert!(!shm_exists(&name), "the creator's drop unlinks the name");
        assert!(matches!(
            SharedMemory::attach(&name),
            Err(AttachError::NotFound(_))
        ));
    });
}

#[test]
fn a_dead_creators_segment_is_unlinked_by_the_next_user() {
    watchdog(|| {
        let name = format!("spindle-test-orphan-{}", std::process::id());
        let n = name.clone();
        let ready = spindle::multiprocessing::synchronize::Event::new().unwrap();
        let r = ready.clone();
        let p = Builder::new().daemon(true).fork_target(move || {
            let _shm = SharedMemory::create_named(&n, 100).unwrap();
            r.set();
            std::thread::sleep(Duration::from_secs(60));
        });
        p.start().unwrap();
        assert!(ready.wait_timeout(Duration::from_secs(10)));
        p.kill().unwrap();
        let _ = p.join();
        assert!(shm_exists(&name), "SIGKILL left the name behind");
        // The next user attaches (the data is still reachable) and removes the name.
        let shm = SharedMemory::attach(&name).unwrap();
        assert_eq!(shm.size(), 100);
        assert!(!shm_exists(&name));
    });
}

#[test]
fn a_truncated_or_shrunk_named_segment_is_refused_at_attach() {
    watchdog(|| {
        let shm = SharedMemory::create(1 << 20).unwrap();
        let name = shm.name().unwrap().to_owned();
        // Another process of the same user shrinks it behind our back.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/dev/shm/{name}"))
            .unwrap();
        file.set_len(4096).unwrap();
        match SharedMemory::attach(&name) {
            Err(AttachError::Truncated { size, expected, .. }) => {
                assert_eq!(size, 4096);
                assert!(expected > size);
            }
            other => panic!("expected Truncated, got {other:?}"),
        }
        file.set_len(10).unwrap();
        assert!(matches!(
            SharedMemory::attach(&name),
            Err(AttachError::Foreign(_) | AttachError::Truncated { .. })
        ));
        // A file that is not a spindle segment.
        let foreign = format!("spindle-test-foreign-{}", std::process::id());
        std::fs::write(format!("/dev/shm/{foreign}"), vec![0u8; 4096]).unwrap();
        assert!(matches!(
            SharedMemory::attach(&foreign),
            Err(AttachError::Foreign(_))
        ));
        std::fs::remove_file(format!("/dev/shm/{foreign}")).unwrap();
        assert!(matches!(
            SharedMemory::attach("../etc/passwd"),
            Err(AttachError::Io(_))
        ));
    });
}

/// The inode of an anonymous segment, and whether any process among `pids` still maps it or
/// holds its descriptor.
fn still_used(ino: u64, pids: &[u32]) -> bool {
    pids.iter().any(|pid| {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        let mapped = maps.lines().any(|l| {
            l.split_whitespace()
                .nth(4)
                .and_then(|i| i.parse::<u64>().ok())
                == Some(ino)
        });
        let held = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.flatten().any(|e| {
                    std::fs::metadata(e.path())
                        .map(|m| m.ino() == ino)
                        .unwrap_or(false)
                })
            })
            .unwrap_or(false);
        mapped || held
    })
}

fn inode_of_mapping(marker: &str) -> u64 {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .find(|l| l.contains(marker))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|i| i.parse::<u64>().ok())
        .expect("the segment is mapped here")
}

#[test]
fn an_anonymous_segment_is_gone_after_all_users_exit_or_are_killed_at_once() {
    watchdog(|| {
        for kill in [false, true] {
            let mut shm = Some(SharedMemory::new(1 << 16).unwrap());
            shm.as_mut().unwrap().buf_mut()[0] = 1;
            let ino = inode_of_mapping("memfd:spindle-shared-memory");
            let mut kids = Vec::new();
            for i in 0..3u8 {
                let mut mine = shm.as_ref().unwrap().share().unwrap();
                let p = Builder::new().daemon(true).fork_target(move || {
                    mine.buf_mut()[1 + i as usize] = 1;
                    if kill {
                        std::thread::sleep(Duration::from_secs(60));
                    }
                });
                p.start().unwrap();
                kids.push(p);
            }
            let pids: Vec<u32> = kids.iter().filter_map(|p| p.pid()).collect();
            if kill {
                // Wait until every child has written, then kill them all at once.
                let seen = shm.as_ref().unwrap();
                assert!(common::eventually(Duration::from_secs(10), || seen.buf()
                    [1..4]
                    == [1, 1, 1]));
                shm = None;
                for p in &kids {
                    p.kill().unwrap();
                }
            }
            for p in kids {
                let _ = p.join();
            }
            let mut all = pids.clone();
            all.push(std::process::id());
            if !kill {
                assert!(still_used(ino, &all), "the parent still holds it");
                assert_eq!(shm.as_ref().unwrap().buf()[..4], [1, 1, 1, 1]);
                shm = None;
            }
            assert!(shm.is_none());
            assert!(
                !still_used(ino, &all),
                "kill={kill}: the segment outlived its users"
            );
        }
    });
}

#[test]
fn shareable_list_value_and_array_across_processes() {
    watchdog(|| {
        let list = ShareableList::create(&[1i64, -2, 3]).unwrap();
        let name = list.name().unwrap().to_owned();
        let counter = Value::new(0u64).unwrap();
        let mut arr = Array::<f64>::zeroed(1000).unwrap();
        let mut kids = Vec::new();
        for k in 0..2usize {
            let (name, counter) = (name.clone(), counter.clone());
            let mut a = arr.share().unwrap();
            let p = Builder::new().fork_target(move || {
                let l = ShareableList::<i64>::attach(&name).unwrap();
                l.set(k, l.get(k).unwrap() * 10).unwrap();
                for _ in 0..1000 {
                    counter.fetch_add(1);
                }
                // Each child fills its half of the array.
                for (i, x) in a.as_mut_slice()[k * 500..(k + 1) * 500]
                    .iter_mut()
                    .enumerate()
                {
                    *x = (k * 500 + i) as f64;
                }
                let lock = counter.get_lock().unwrap();
                let _g = lock.lock().unwrap();
                counter.set(counter.get() + 1);
            });
            p.start().unwrap();
            kids.push(p);
        }
        for p in kids {
            p.join().unwrap();
        }
        assert_eq!(list.to_vec(), [10, -20, 3]);
        assert_eq!(counter.get(), 2002);
        assert_eq!(
            arr.as_slice().iter().sum::<f64>(),
            (0..1000).sum::<i32>() as f64
        );
        arr.as_mut_slice()[0] = 5.0;
        assert_eq!(arr.as_slice()[0], 5.0);
        assert!(list.get(3).is_err());
        assert!(matches!(
            ShareableList::<f32>::attach(&name),
            Err(AttachError::Foreign(_))
        ));
    });
}
