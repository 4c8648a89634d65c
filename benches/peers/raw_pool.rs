//! The limit of a process pool's data path: workers forked once, each with a Unix socket
//! pair; the parent sends chunks of `u64`s as raw little-endian bytes and reads the squares
//! back the same way. No framing beyond a length, no serialisation, no supervisor: one
//! parent thread per worker writes a chunk and reads its answer, and the parent places the
//! values in order.
//!
//! The workers are started with spindle's `fork_target` (the start is not what is measured:
//! they are started once); everything after is plain reads and writes.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use spindle::multiprocessing::{Builder, Process};

use crate::workloads::square;

/// A raw fork pool of `workers` processes.
pub(crate) struct RawPool {
    workers: Vec<(UnixStream, Process<u64>)>,
}

impl std::fmt::Debug for RawPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawPool({} workers)", self.workers.len())
    }
}

/// The worker: reads `[count: u32][count × u64]`, answers `[count × u64]` squared; a count of
/// 0 or the end of the stream ends it.
fn serve(mut sock: UnixStream) -> u64 {
    let mut served = 0;
    let mut len = [0u8; 4];
    let mut buf = Vec::new();
    while sock.read_exact(&mut len).is_ok() {
        let n = u32::from_le_bytes(len) as usize;
        if n == 0 {
            break;
        }
        buf.resize(n * 8, 0);
        if sock.read_exact(&mut buf).is_err() {
            break;
        }
        for c in buf.chunks_exact_mut(8) {
            let x = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            c.copy_from_slice(&square(x).to_le_bytes());
        }
        if sock.write_all(&buf).is_err() {
            break;
        }
        served += n as u64;
    }
    served
}

impl RawPool {
    pub(crate) fn new(workers: usize) -> spindle::Result<RawPool> {
        let mut out = Vec::new();
        for _ in 0..workers {
            let (ours, theirs) = UnixStream::pair()?;
            let p = Builder::new()
                .daemon(true)
                .fork_target(move || serve(theirs));
            p.start()?;
            out.push((ours, p));
        }
        Ok(RawPool { workers: out })
    }

    /// The squares of `0..n` in order, in chunks of `chunk` items spread over the workers.
    pub(crate) fn map(&mut self, n: u64, chunk: usize) -> std::io::Result<Vec<u64>> {
        let mut out = vec![0u64; n as usize];
        let w = self.workers.len();
        let chunks: Vec<&mut [u64]> = out.chunks_mut(chunk.max(1)).collect();
        // Worker k takes chunks k, k + w, k + 2w, ...
        let mut per_worker: Vec<Vec<(u64, &mut [u64])>> = (0..w).map(|_| Vec::new()).collect();
        for (i, c) in chunks.into_iter().enumerate() {
            per_worker[i % w].push(((i * chunk) as u64, c));
        }
        std::thread::scope(|s| {
            let mut handles = Vec::new();
            for ((sock, _), jobs) in self.workers.iter_mut().zip(per_worker) {
                handles.push(s.spawn(move || -> std::io::Result<()> {
                    let mut buf = Vec::new();
                    for (first, dst) in jobs {
                        buf.clear();
                        buf.extend_from_slice(&(dst.len() as u32).to_le_bytes());
                        for x in first..first + dst.len() as u64 {
                            buf.extend_from_slice(&x.to_le_bytes());
                        }
                        sock.write_all(&buf)?;
                        let bytes = &mut buf[..dst.len() * 8];
                        sock.read_exact(bytes)?;
                        for (v, c) in dst.iter_mut().zip(bytes.chunks_exact(8)) {
                            *v = u64::from_le_bytes(c.try_into().expect("8 bytes"));
                        }
                    }
                    Ok(())
                }));
            }
            handles
                .into_iter()
                .try_for_each(|h| h.join().expect("a raw pool thread panicked"))
        })?;
        Ok(out)
    }
}

impl Drop for RawPool {
    fn drop(&mut self) {
        for (sock, p) in &mut self.workers {
            let _ = sock.write_all(&0u32.to_le_bytes());
            let _ = p.join();
        }
    }
}
