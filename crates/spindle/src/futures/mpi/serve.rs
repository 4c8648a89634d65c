//! A worker rank: answer `HELLO`, run `TASKS`, stop at `STOP`.
//!
//! Items run on the thread that called `start` (normally `main`, with its large stack), each
//! through the trampoline its offset names (the process pool's: decode the argument, call the
//! function, encode the value), inside `panic::catch`: a panic becomes that item's outcome,
//! with this rank's pid, rank and host, and the next item runs. Between messages the worker
//! looks for the next one without blocking for [`SPIN`](super::manager::SPIN) after the last,
//! then naps up to 1 ms (an idle worker does not hold a core).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::comm::{self, Comm, Lost};
use super::manager::{Nap, ANOTHER_BUILD};
use super::wire::{self, Hello, Ready, TaskSegment, Writer};
use crate::error::{Error, Result};
use crate::multiprocessing::pool::protocol::{self as pw, read_varint};
use crate::multiprocessing::pool::Hook;
use crate::sys::image::{self, EntryFn};

/// The longest nap of an idle worker.
const IDLE_NAP: Duration = Duration::from_millis(1);

/// What a worker knows about itself.
struct Worker<'c> {
    comm: &'c Comm,
    rank: u32,
    host: String,
    pid: u32,
    /// Rank 0's build identity, once greeted.
    identity: Option<Vec<u8>>,
    entries: HashMap<i64, std::result::Result<EntryFn, String>>,
}

/// Serves rank 0 until it says `STOP`.
///
/// # Errors
///
/// A malformed message from rank 0 (the caller ends the job: rank 0 would wait forever).
pub(super) fn serve(comm: &Comm) -> Result<()> {
    let _ = HOST.set(comm::host());
    crate::sys::proc::at_exit(exit_while_serving);
    SERVING.store(true, Ordering::Release);
    let r = serve_loop(comm);
    SERVING.store(false, Ordering::Release);
    r
}

/// This worker serves (a process exit now is a task's doing).
static SERVING: AtomicBool = AtomicBool::new(false);
static HOST: OnceLock<String> = OnceLock::new();

/// At exit: a worker that leaves while it serves (a task called `exit`) says which rank it is,
/// since the job ends with it.
fn exit_while_serving() {
    if SERVING.load(Ordering::Acquire) {
        eprintln!(
            "spindle: MPI rank {} on {} (pid {}) exits while it serves rank 0 (a task called \
             exit?): without a fault-tolerant MPI the whole job ends with it",
            super::MpiPoolExecutor::current_rank().map_or(-1, i64::from),
            HOST.get().map_or("?", String::as_str),
            crate::sys::proc::getpid()
        );
    }
}

fn serve_loop(comm: &Comm) -> Result<()> {
    let mut w = Worker {
        comm,
        rank: comm.rank(),
        host: comm::host(),
        pid: crate::sys::proc::getpid(),
        identity: None,
        entries: HashMap::new(),
    };
    let mut nap = Nap::new();
    loop {
        let Some((_, tag, bytes)) = comm.poll(Some(0)) else {
            nap.idle_sleep(Some(IDLE_NAP));
            continue;
        };
        match tag {
            wire::TAG_HELLO => w.hello(&bytes)?,
            wire::TAG_TASKS => {
                let out = w.tasks(&bytes)?;
                comm.send(0, wire::TAG_RESULTS, &out);
            }
            wire::TAG_STOP => return Ok(()),
            other => {
                return Err(Error::Protocol(format!(
                    "unexpected message tag {other} from rank 0"
                )))
            }
        }
        nap.reset();
    }
}

/// Ends the job because rank 0's messages cannot be read (rank 0 would wait forever).
pub(super) fn give_up(comm: &Comm, e: &Error) -> ! {
    let why = Lost::Protocol(e.to_string());
    eprintln!(
        "spindle: MPI rank {} on {} cannot serve rank 0: {why}. Aborting every rank (exit \
         code {}).",
        comm.rank(),
        comm::host(),
        super::manager::EXIT_RANK_LOST
    );
    comm.abort(super::manager::EXIT_RANK_LOST)
}

impl Worker<'_> {
    fn hello(&mut self, bytes: &[u8]) -> Result<()> {
        let hello: Hello = wire::decode(bytes)?;
        let ours = image::build_identity();
        let init = if hello.identity != ours {
            Err(format!(
                "{ANOTHER_BUILD} of the program than rank 0 (build {}, rank 0's {}): every \
                 rank must run the same binary",
                show(ours),
                show(&hello.identity)
            ))
        } else {
            self.identity = Some(hello.identity);
            match hello.init {
                None => Ok(()),
                Some((offset, args)) => match image::entry_at(offset, ours) {
                    Ok(entry) => Hook::Entry(entry, Arc::new(args)).run(),
                    Err(e) => Err(e),
                },
            }
        };
        let ready = Ready {
            pid: self.pid,
            host: self.host.clone(),
            init,
        };
        self.comm.send(0, wire::TAG_READY, &wire::encode(&ready)?);
        Ok(())
    }

    fn entry(&mut self, offset: i64) -> std::result::Result<EntryFn, String> {
        let identity = self.identity.as_deref();
        self.entries
            .entry(offset)
            .or_insert_with(|| match identity {
                Some(id) => image::entry_at(offset, id),
                None => Err("a task came before rank 0's HELLO".into()),
            })
            .clone()
    }

    /// Runs every segment of a `TASKS` message; returns the `RESULTS` message.
    fn tasks(&mut self, bytes: &[u8]) -> Result<Vec<u8>> {
        let (seq, segments, mut r) = wire::open(bytes)?;
        let mut w = Writer::new(seq, 64 + bytes.len());
        for _ in 0..segments {
            let seg = wire::task_segment(&mut r)?;
            let began = Instant::now();
            let at = w.begin_result_segment();
            let entry = self.entry(seg.entry);
            self.run_segment(&entry, seg, w.out())?;
            let ns = began.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
            w.end_result_segment(at, seg.count, ns);
        }
        Ok(w.finish())
    }

    /// Runs the items of one segment, appending one tagged outcome each.
    fn run_segment(
        &self,
        entry: &std::result::Result<EntryFn, String>,
        seg: TaskSegment<'_>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let (mut at, mut done) = (0usize, 0u32);
        while done < seg.count {
            // One catch for a run of items: a panic ends the run at its item, which is
            // reported as panicked, and the next run starts after it.
            let mut tag_at = out.len();
            let run = crate::panic::catch(|| {
                run_items(entry, seg, &mut at, &mut done, &mut tag_at, &mut *out)
            });
            match run {
                Ok(r) => r?,
                Err(report) => {
                    out.truncate(tag_at);
                    let report = report
                        .with_pid(self.pid)
                        .with_rank(self.rank, self.host.clone());
                    out.push(pw::TAG_PANIC);
                    if pw::append(&report, out).is_err() {
                        out.truncate(tag_at);
                        codec_failure("the panic report cannot be encoded", out);
                    }
                    done += 1;
                }
            }
        }
        Ok(())
    }
}

/// Runs items `done..count`; a panic unwinds out with `done` and `at` naming the item that
/// panicked (and the one after it).
fn run_items(
    entry: &std::result::Result<EntryFn, String>,
    seg: TaskSegment<'_>,
    at: &mut usize,
    done: &mut u32,
    tag_at: &mut usize,
    out: &mut Vec<u8>,
) -> Result<()> {
    while *done < seg.count {
        let rest = seg.items.get(*at..).unwrap_or_default();
        let (len, used) = read_varint(rest)?;
        let item = rest
            .get(used..used.saturating_add(len as usize))
            .ok_or_else(|| Error::Protocol("an item runs past its segment".into()))?;
        *at += used + item.len();
        *tag_at = out.len();
        match entry {
            Ok(f) => {
                out.push(0);
                let tag = f(item, out);
                out[*tag_at] = tag;
            }
            Err(why) => codec_failure(why, out),
        }
        *done += 1;
    }
    Ok(())
}

/// Appends an item's failure with `message`.
fn codec_failure(message: &str, out: &mut Vec<u8>) {
    out.push(pw::TAG_CODEC);
    // A string always encodes.
    let _ = pw::append(message, out);
}

fn show(id: &[u8]) -> String {
    let (kind, bytes) = id.split_at(id.len().min(3));
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}{hex}", String::from_utf8_lossy(kind))
}
