//! The notes' "Queues & Pipes → exchange data" and "Shared memory → share state safely":
//! a producer and a consumer over a `Queue`, a `Pipe` ping-pong, and workers summing slices of
//! a shared `Array` — each timed beside the same exchange run in CPython here and now (the
//! script is `exchange.py` beside this file, run with `python3`).

use std::time::Duration;

use spindle_examples::{pipe, queue, shared_array};

use super::{timed, Section, Timing};

const CPYTHON: &str = include_str!("exchange.py");

pub(super) fn sections() -> Vec<Section> {
    vec![
        Section {
            title: "Queues & Pipes: a producer and a consumer",
            claim: "Queues & Pipes → exchange data.",
            source: Some("examples/queue.rs"),
            names: &[
                (
                    "multiprocessing.Queue()",
                    "spindle::multiprocessing::queues::Queue::new()",
                ),
                (
                    "q.put(x) / q.get()",
                    "q.put(x) / q.get() (typed, with end of stream)",
                ),
            ],
            run: |pace| {
                let n = pace.work(200_000.0).max(1_000);
                let (_, measured) = timed(|| queue::run(n))?;
                Ok(vec![timing(
                    "measured",
                    measured,
                    "CPython, same exchange",
                    &["queue", &n.to_string()],
                )])
            },
        },
        Section {
            title: "Queues & Pipes: a Pipe ping-pong",
            claim: "Pipe() gives two connected ends; each can send and receive.",
            source: Some("examples/pipe.rs"),
            names: &[
                ("multiprocessing.Pipe()", "connection::pipe::<S, R>(true)"),
                ("conn.send(x) / conn.recv()", "conn.send(&x) / conn.recv()"),
            ],
            run: |pace| {
                let n = pace.work(20_000.0).max(200);
                let (_, measured) = timed(|| pipe::run(n))?;
                Ok(vec![timing(
                    "measured",
                    measured,
                    "CPython, same exchange",
                    &["pipe", &n.to_string()],
                )])
            },
        },
        Section {
            title: "Shared memory: workers summing slices of an Array",
            claim: "Shared memory → share state safely.",
            source: Some("examples/shared_array.rs"),
            names: &[
                (
                    "multiprocessing.Array(\"q\", n)",
                    "sharedctypes::Array::<u64>::zeroed(n)",
                ),
                (
                    "multiprocessing.Value(\"q\", 0)",
                    "sharedctypes::Value::new(0u64)",
                ),
                (
                    "with total.get_lock():",
                    "let _held = total.get_lock()?.lock()?;",
                ),
            ],
            run: |pace| {
                let n = pace.work(10_000_000.0).max(100_000) as usize;
                let (_, measured) = timed(|| shared_array::run(n, 4))?;
                Ok(vec![timing(
                    "measured",
                    measured,
                    "CPython, same exchange",
                    &["shared", &n.to_string(), "4"],
                )])
            },
        },
    ]
}

/// The measured time beside CPython's, run now; without `python3`, the measured time alone.
fn timing(label: &str, measured: Duration, py_label: &'static str, args: &[&str]) -> Timing {
    let compare = match cpython(args) {
        Some(d) => vec![(py_label, d)],
        None => {
            println!(
                "{}",
                crate::style::dim("  (python3 not available: no CPython timing)")
            );
            Vec::new()
        }
    };
    Timing {
        label: label.to_owned(),
        measured,
        compare,
    }
}

fn cpython(args: &[&str]) -> Option<Duration> {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(CPYTHON)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let secs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}
