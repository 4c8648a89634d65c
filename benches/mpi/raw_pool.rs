//! The limit: a chunked pool over plain MPI point-to-point, no futures, no serde, no manager
//! thread. Rank 0 cuts the input (`u64`s) into chunks and keeps two in flight per worker
//! (`MPI_Isend` of the input's own slices, the chunk's index as the tag); a worker receives a
//! chunk, squares it in place and sends it back; rank 0 receives each answer straight into
//! its place in the output. And the ping-pong: 8 bytes from rank 0 to rank 1 and back.

use std::hint::black_box;
use std::time::{Duration, Instant};

use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use mpi::request::{scope, Request};
use mpi::topology::{Communicator, SimpleCommunicator};

/// The tag that tells a worker to stop (chunk indices stay below it).
const STOP: i32 = 1 << 30;
/// The tag of a ping-pong message.
const PING: i32 = (1 << 30) + 1;

/// Rank 0: squares `input` on the other ranks, `chunk` items per message; returns the time.
pub(crate) fn map(
    world: &SimpleCommunicator,
    input: &[u64],
    chunk: usize,
    out: &mut [u64],
) -> Duration {
    let workers = (world.size() - 1) as usize;
    let chunks: Vec<&[u64]> = input.chunks(chunk).collect();
    let started = Instant::now();
    scope(|sc| {
        let mut pending: Vec<Request<'_, [u64], _>> = Vec::new();
        let mut next = 0usize;
        for _ in 0..2 {
            for w in 1..=workers {
                if next < chunks.len() {
                    let p = world.process_at_rank(w as i32);
                    pending.push(p.immediate_send_with_tag(sc, chunks[next], next as i32));
                    next += 1;
                }
            }
        }
        for _ in 0..chunks.len() {
            let (msg, status) = world.any_process().matched_probe();
            let i = status.tag() as usize;
            let at = i * chunk;
            let len = chunks[i].len();
            msg.matched_receive_into(&mut out[at..at + len]);
            if next < chunks.len() {
                let p = world.process_at_rank(status.source_rank());
                pending.push(p.immediate_send_with_tag(sc, chunks[next], next as i32));
                next += 1;
            }
        }
        for r in pending {
            r.wait_without_status();
        }
    });
    started.elapsed()
}

/// Rank 0: `n` ping-pongs of 8 bytes with rank 1, both in blocking `MPI_Send`/`MPI_Recv`
/// (rank 2 naps); returns the time of one.
pub(crate) fn ping_pong(world: &SimpleCommunicator, n: u32) -> Duration {
    let one = world.process_at_rank(1);
    // The first message tells rank 1 how many follow.
    one.send_with_tag(&[u64::from(n)][..], PING);
    let mut x = [0u64];
    let started = Instant::now();
    for i in 0..n {
        one.send_with_tag(&[u64::from(i)][..], PING);
        one.receive_into(&mut x[..]);
    }
    black_box(x);
    started.elapsed() / n
}

/// Rank 0: tells every worker to stop.
pub(crate) fn stop(world: &SimpleCommunicator) {
    for w in 1..world.size() {
        world.process_at_rank(w).send_with_tag(&[0u64][..], STOP);
    }
}

/// A worker rank: squares chunks and answers pings until told to stop. Between messages it
/// looks with `MPI_Iprobe` and naps (an idle worker leaves the cores to the ranks at work).
pub(crate) fn serve(world: &SimpleCommunicator) {
    let zero = world.process_at_rank(0);
    let mut idle = Instant::now();
    loop {
        let Some((msg, status)) = zero.immediate_matched_probe() else {
            if idle.elapsed() > Duration::from_micros(50) {
                std::thread::sleep(Duration::from_micros(20));
            } else {
                std::thread::yield_now();
            }
            continue;
        };
        let (mut items, _) = (msg, status).matched_receive_vec::<u64>();
        match status.tag() {
            STOP => return,
            PING => {
                let mut x = [0u64];
                for _ in 0..items[0] {
                    zero.receive_into(&mut x[..]);
                    zero.send_with_tag(&x[..], PING);
                }
            }
            tag => {
                for x in items.iter_mut() {
                    *x = black_box(*x) * *x;
                }
                zero.send_with_tag(&items[..], tag);
            }
        }
        idle = Instant::now();
    }
}
