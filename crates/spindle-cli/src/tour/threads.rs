//! The notes' thread sections: "Thread", "Multithreading" (the Quick Example), the
//! "Multithreading Concurrency Example" and "Using ThreadPoolExecutor".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use spindle::threading::{self, Thread};
use spindle_examples::{downloads, thread_pool_executor, threads};

use super::{timed, Pace, Section, Timing};

pub(super) fn sections() -> Vec<Section> {
    vec![
        Section {
            title: "Thread",
            claim: "Smallest unit of execution inside a process; shares memory with other threads in the same process.",
            source: None,
            names: &[
                ("threading.Thread", "spindle::threading::Thread"),
                ("threading.current_thread()", "spindle::threading::current_thread()"),
                ("threading.active_count()", "spindle::threading::active_count()"),
            ],
            run: thread_basics,
        },
        Section {
            title: "Multithreading: Quick Example",
            claim: "Both threads run together → total time ≈ 2s, not 4s.",
            source: Some("examples/threads.rs"),
            names: &[("t.start() / t.join()", "Thread::start / Thread::join")],
            run: |pace| {
                let ((), measured) = timed(|| threads::run(pace.sleep(2.0)))?;
                Ok(vec![Timing {
                    label: "measured".into(),
                    measured,
                    compare: vec![("the notes say ≈", pace.sleep(2.0)), ("one after another", pace.sleep(4.0))],
                }])
            },
        },
        Section {
            title: "Multithreading Concurrency Example",
            claim: "5 file downloads run concurrently. Instead of waiting 10s (sequential), it finishes in ~2s.",
            source: Some("examples/downloads.rs"),
            names: &[("threading.Thread(target=download_file, args=(f,))", "Thread::new(move || download_file(f))")],
            run: |pace| {
                let ((), measured) = timed(|| downloads::run(pace.sleep(2.0)))?;
                Ok(vec![Timing {
                    label: "measured".into(),
                    measured,
                    compare: vec![("the notes say ~", pace.sleep(2.0)), ("one after another", pace.sleep(10.0))],
                }])
            },
        },
        Section {
            title: "Using ThreadPoolExecutor",
            claim: "Runs 5 downloads using a pool of 3 threads. Efficient and simpler than managing threads manually.",
            source: Some("examples/thread_pool_executor.rs"),
            names: &[
                ("concurrent.futures.ThreadPoolExecutor", "spindle::futures::ThreadPoolExecutor"),
                ("executor.map(fn, items)", "executor.map(fn, items)? (ordered, lazy)"),
            ],
            run: |pace| {
                let (seen, measured) = timed(|| thread_pool_executor::run(pace.sleep(2.0)))?;
                println!(
                    "at most {} downloads ran at once; {} had started when the first finished (max_workers = 3)",
                    seen.most_at_once, seen.started_before_first_finished
                );
                if seen.most_at_once > 3 || seen.started_before_first_finished > 3 {
                    return Err(spindle::Error::InvalidState(
                        "more downloads ran at once than the pool's 3 workers",
                    ));
                }
                Ok(vec![Timing {
                    label: "measured (3 workers)".into(),
                    measured,
                    compare: vec![
                        ("5 tasks / 3 workers = 2 rounds", pace.sleep(4.0)),
                        ("one after another", pace.sleep(10.0)),
                    ],
                }])
            },
        },
    ]
}

/// Shows what a thread is: the main thread's identity, and a thread that writes to memory the
/// main thread then reads.
fn thread_basics(_pace: &Pace) -> spindle::Result<Vec<Timing>> {
    let me = threading::current_thread();
    println!("this is {} (ident {})", me.name(), threading::get_ident());
    let shared = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&shared);
    let mut t = Thread::builder().name("writer").target(move || {
        let me = threading::current_thread();
        seen.store(42, Ordering::SeqCst);
        (
            me.name().to_owned(),
            threading::get_ident(),
            threading::active_count(),
        )
    })?;
    t.start()?;
    let (name, ident, active) = t.join()?;
    println!("{name} (ident {ident}) ran beside it: {active} threads were active");
    println!(
        "it wrote 42 to shared memory; the main thread reads {}",
        shared.load(Ordering::SeqCst)
    );
    Ok(Vec::new())
}
