//! The ring's paths in one process: in place, encoded aside and wrapped, padded to the end,
//! out of line; the counts never include fillers.

use super::*;

fn item(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

#[test]
fn every_size_round_trips_through_a_small_ring() {
    // A 4 KiB ring: items up to 2 KiB inline (in place, or aside and wrapped, or after a
    // filler), larger ones out of line.
    let q = Queue::<Vec<u8>>::builder().capacity(4096).build().unwrap();
    let mut seed = 0u8;
    for round in 0..400usize {
        let sizes = [round % 3000, (round * 7) % 1500, 5, 2047, 2100];
        for &len in &sizes {
            seed = seed.wrapping_add(1);
            q.put(item(len, seed)).unwrap();
            assert_eq!(q.qsize(), 1);
            assert_eq!(
                q.get().unwrap(),
                item(len, seed),
                "round {round}, len {len}"
            );
            assert_eq!(q.qsize(), 0);
        }
    }
}

#[test]
fn several_items_in_flight_keep_their_order_and_count() {
    let q = Queue::<Vec<u8>>::builder().capacity(8192).build().unwrap();
    let mut next_put = 0u32;
    let mut next_get = 0u32;
    for round in 0..300u32 {
        for _ in 0..(round % 5) {
            let len = (next_put as usize * 131) % 1800;
            if q.put_nowait(item(len, next_put as u8)).is_ok() {
                next_put += 1;
            }
        }
        assert_eq!(q.qsize(), (next_put - next_get) as usize);
        for _ in 0..(round % 3) {
            if let Ok(v) = q.get_nowait() {
                let len = (next_get as usize * 131) % 1800;
                assert_eq!(v, item(len, next_get as u8));
                next_get += 1;
            }
        }
    }
    while let Ok(v) = q.get_nowait() {
        let len = (next_get as usize * 131) % 1800;
        assert_eq!(v, item(len, next_get as u8));
        next_get += 1;
    }
    assert_eq!(next_get, next_put);
    assert!(q.empty());
}

#[test]
fn joinable_counts_ignore_fillers() {
    let q = JoinableQueue::<Vec<u8>>::new().unwrap();
    let small = Queue::<Vec<u8>>::builder().capacity(4096).build().unwrap();
    for i in 0..50 {
        small.put(item(1000 + i, 0)).unwrap();
        let _ = small.get().unwrap();
        q.put(item(i, 1)).unwrap();
        q.get().unwrap();
        q.task_done().unwrap();
    }
    q.join_timeout(Duration::from_millis(10)).unwrap();
    assert_eq!(small.qsize(), 0);
}

#[test]
fn a_segment_smaller_than_the_header_is_refused_not_a_panic() {
    // What a hostile peer could hand over: a valid descriptor of a one-byte segment.
    let shared = ring::Shared::from_parts_for_test(
        crate::multiprocessing::shared_memory::Segment::new("tiny", 1).unwrap(),
    );
    assert!(matches!(shared.validate(), Err(Error::Protocol(_))));
    shared.end_closed(); // what dropping a handle over it does: nothing, and no panic
}
