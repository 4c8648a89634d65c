//! Messages through a queue or a pipe between processes: 64 B, 4 KiB and 1 MiB messages,
//! one producer and one consumer, and four and four (issue #13's scoreboard).
//!
//! Every contender moves the same count of messages of the same size from forked producer
//! children to consumers; the children are started and waiting on an event before the clock
//! starts, so the figures are the exchange alone. Each repetition checks the bytes received.

use std::sync::Arc;
use std::time::Instant;

use spindle::multiprocessing::connection::pipe_with_capacity;
use spindle::multiprocessing::queues::Queue;
use spindle::multiprocessing::synchronize::Event;
use spindle::multiprocessing::{Builder, Process};

use crate::harness::{Measurement, Plan};
use crate::peers::{cpython, raw_ipc};
use crate::report::thousands;
use crate::scoreboard::{Contender, Group, NotMeasured, Options, Progress};
use crate::workloads::repeat_timed;

const QUEUE_1: &str = "spindle Queue 1→1";
const QUEUE_4: &str = "spindle Queue 4→4";
const PIPE_1: &str = "spindle Pipe 1→1";

/// A message: bytes that travel as one postcard byte string (not one varint per byte),
/// cheap to clone for the next put.
#[derive(Clone)]
pub(crate) struct Payload(pub(crate) Arc<Vec<u8>>);

impl serde::Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Payload, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_byte_buf(V).map(|v| Payload(Arc::new(v)))
    }
}

/// The three stream groups.
pub(crate) fn groups(opts: &Options) -> Vec<Group> {
    vec![
        group(
            opts,
            64,
            opts.size(50_000, 400_000),
            opts.size(20_000, 50_000),
        ),
        group(
            opts,
            4096,
            opts.size(20_000, 100_000),
            opts.size(10_000, 20_000),
        ),
        group(opts, 1 << 20, opts.size(100, 500), opts.size(50, 200)),
    ]
}

fn label(size: usize) -> String {
    if size >= 1 << 20 {
        format!("{} MiB", size >> 20)
    } else if size >= 1024 {
        format!("{} KiB", size >> 10)
    } else {
        format!("{size} B")
    }
}

fn group(opts: &Options, size: usize, count: u64, py_count: u64) -> Group {
    let plan = Plan {
        max_reps: opts.plan().reps.max(20),
        ..opts.plan()
    };
    let py_reps = opts.size(3, 5) as usize;
    let python = opts.python.clone();
    let l = label(size);
    let mut g = Group::new(
        &format!("ipc-stream-{}", l.replace(' ', "")),
        &format!("messages of {l} between processes"),
    )
    .note(format!(
        "{} messages of {l} per repetition ({} for CPython) from forked producers to \
         consumers, started and waiting before the clock starts; figures are per message \
         (MB/s = {size} B / the figure). 4→4: four producers and four consumers on one queue. \
         spindle's queues and pipes have the default 1 MiB ring, 4 MiB for 1 MiB messages (so \
         that they travel through the ring rather than out of line: `Queue::builder() \
         .capacity(..)`, `pipe_with_capacity`). \
         spindle: `Queue::put` / `get` of a byte string, `Connection::send` / `recv`. raw \
         socketpair: one `write` per message into a bare AF_UNIX stream socket pair, \
         `read_exact` per message. CPython: `multiprocessing.Queue`, `SimpleQueue` and \
         `Pipe(duplex=False)` with `send_bytes`, fork start method.",
        thousands(count),
        thousands(py_count)
    ))
    .contender(Contender::subject(QUEUE_1, move |p| {
        spindle_queue(size, count, 1, plan, p)
    }))
    .contender(Contender::subject(QUEUE_4, move |p| {
        spindle_queue(size, count, 4, plan, p)
    }))
    .contender(Contender::subject(PIPE_1, move |p| {
        spindle_pipe(size, count, plan, p)
    }));
    let raw = Contender::peer("raw socketpair 1→1", move |p| {
        repeat_timed(plan, count, &p, || raw_ipc::socketpair_stream(size, count))
    })
    .versus(QUEUE_1);
    g = if size >= 1 << 20 {
        g.contender(raw.aim(0.8, "at least 0.8× a bare socketpair's MB/s at 1 MiB"))
    } else {
        g.contender(raw)
    };
    let py = |kind: &str, n: usize| {
        let python = python.clone();
        let args: Vec<String> = vec![
            "stream".into(),
            kind.into(),
            size.to_string(),
            py_count.to_string(),
            n.to_string(),
            n.to_string(),
            py_reps.to_string(),
            "1".into(),
        ];
        move |_p: Progress| cpython::ipc(&python, &args, "times_s", py_reps, py_count)
    };
    let cq = Contender::peer("CPython Queue 1→1", py("queue", 1)).versus(QUEUE_1);
    g = if size == 64 {
        g.contender(cq.aim(
            10.0,
            "Queue at 64 B at least 10× CPython's multiprocessing.Queue",
        ))
    } else {
        g.contender(cq)
    };
    g.contender(Contender::peer("CPython Queue 4→4", py("queue", 4)).versus(QUEUE_4))
        .contender(Contender::peer("CPython SimpleQueue 1→1", py("simplequeue", 1)).versus(QUEUE_1))
        .contender(Contender::peer("CPython Pipe 1→1", py("pipe", 1)).versus(PIPE_1))
}

fn spindle_queue(
    size: usize,
    count: u64,
    pairs: u64,
    plan: Plan,
    p: Progress,
) -> Result<Measurement, NotMeasured> {
    let payload = Payload(Arc::new(vec![7u8; size]));
    repeat_timed(plan, count, &p, || {
        // A 1 MiB message travels inline (in shared memory) in a ring of at least 2 MiB; the
        // default 1 MiB ring would send it out of line, as a sealed memfd.
        let ring = if size >= 1 << 20 { 4 << 20 } else { 1 << 20 };
        let q = Queue::<Payload>::builder()
            .capacity(ring)
            .build()
            .map_err(|e| e.to_string())?;
        let go = Event::new().map_err(|e| e.to_string())?;
        let per = count / pairs;
        let mut producers = Vec::new();
        for _ in 0..pairs {
            let (tx, go, payload) = (
                q.sender().map_err(|e| e.to_string())?,
                go.clone(),
                payload.clone(),
            );
            let child = Builder::new().fork_target(move || {
                go.wait();
                for _ in 0..per {
                    tx.put(payload.clone()).map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            });
            child.start().map_err(|e| e.to_string())?;
            producers.push(child);
        }
        let rx = q.receiver().map_err(|e| e.to_string())?;
        drop(q);
        let mut consumers: Vec<Process<Result<u64, String>>> = Vec::new();
        if pairs > 1 {
            for _ in 0..pairs {
                let (rx, go) = (rx.clone_handle().map_err(|e| e.to_string())?, go.clone());
                let child = Builder::new().fork_target(move || {
                    go.wait();
                    let mut got = 0u64;
                    for _ in 0..per {
                        got += rx.get().map_err(|e| e.to_string())?.0.len() as u64;
                    }
                    Ok(got)
                });
                child.start().map_err(|e| e.to_string())?;
                consumers.push(child);
            }
        }
        let t0 = Instant::now();
        go.set();
        let mut got = 0u64;
        if pairs == 1 {
            for _ in 0..count {
                got += rx.get().map_err(|e| e.to_string())?.0.len() as u64;
            }
        } else {
            for c in consumers {
                got += c.join().map_err(|e| e.to_string())??;
            }
        }
        for p in producers {
            p.join().map_err(|e| e.to_string())??;
        }
        let took = t0.elapsed();
        if got != per * pairs * size as u64 {
            return Err(format!("consumers took {got} bytes"));
        }
        Ok(took)
    })
}

fn spindle_pipe(
    size: usize,
    count: u64,
    plan: Plan,
    p: Progress,
) -> Result<Measurement, NotMeasured> {
    let payload = Payload(Arc::new(vec![7u8; size]));
    repeat_timed(plan, count, &p, || {
        // As for the queues: a 4 MiB ring for 1 MiB messages.
        let ring = if size >= 1 << 20 { 4 << 20 } else { 1 << 20 };
        let (reader, writer) =
            pipe_with_capacity::<(), Payload>(false, ring).map_err(|e| e.to_string())?;
        let go = Event::new().map_err(|e| e.to_string())?;
        let (g2, payload) = (go.clone(), payload.clone());
        let child = Builder::new().fork_target(move || {
            g2.wait();
            for _ in 0..count {
                writer.send(&payload).map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        });
        child.start().map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        go.set();
        let mut got = 0u64;
        for _ in 0..count {
            got += reader.recv().map_err(|e| e.to_string())?.0.len() as u64;
        }
        let took = t0.elapsed();
        child.join().map_err(|e| e.to_string())??;
        if got != count * size as u64 {
            return Err(format!("the reader took {got} bytes"));
        }
        Ok(took)
    })
}
