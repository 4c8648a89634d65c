//! The notes' process sections: "Process", "Spawn", "Fork" and "Example: Creating Processes".

use std::sync::atomic::{AtomicU64, Ordering};

use spindle::multiprocessing::{self, StartMethod};
use spindle_examples::processes;

use super::{timed, Pace, Section, Timing};

pub(super) fn sections() -> Vec<Section> {
    vec![
        Section {
            title: "Process",
            claim: "An independent program running in memory: its own memory, CPU and resources.",
            source: None,
            names: &[
                ("multiprocessing.Process", "spindle::multiprocessing::Process"),
                ("multiprocessing.current_process()", "spindle::multiprocessing::current_process()"),
                ("os.cpu_count()", "spindle::multiprocessing::cpu_count()"),
            ],
            run: process_basics,
        },
        Section {
            title: "Spawn and Fork",
            claim: "spawn starts a fresh process with no inherited state; fork copies the parent's memory into the child.",
            source: None,
            names: &[
                ("multiprocessing.get_context(\"spawn\")", "get_context(StartMethod::Spawn)"),
                ("multiprocessing.get_context(\"fork\")", "get_context(StartMethod::Fork)"),
                ("multiprocessing.get_context(\"forkserver\")", "get_context(StartMethod::Forkserver)"),
            ],
            run: inherited_state,
        },
        Section {
            title: "Example: Creating Processes",
            claim: "Runs in parallel → ~2s instead of ~4s.",
            source: Some("examples/processes.rs"),
            names: &[("multiprocessing.Process(target=worker, args=(\"A\",))", "ctx.process().target(worker, (\"A\", pause))")],
            run: |pace| {
                let mut timings = Vec::new();
                for method in StartMethod::ALL {
                    println!("{}", crate::style::dim(&format!("  [start method: {method}]")));
                    let ((), measured) = timed(|| processes::run(method, pace.sleep(2.0)))?;
                    timings.push(Timing {
                        label: format!("measured ({method})"),
                        measured,
                        compare: vec![("the notes say ~", pace.sleep(2.0)), ("one after another", pace.sleep(4.0))],
                    });
                }
                Ok(timings)
            },
        },
    ]
}

fn child_identity() -> (String, u32, Option<u32>) {
    let me = multiprocessing::current_process();
    let parent = multiprocessing::parent_process().map(|p| p.pid());
    (me.name().to_owned(), me.pid(), parent)
}

fn process_basics(_pace: &Pace) -> spindle::Result<Vec<Timing>> {
    let me = multiprocessing::current_process();
    println!(
        "this is {} (pid {}), on a machine with {} CPUs",
        me.name(),
        me.pid(),
        multiprocessing::cpu_count()
    );
    let p = multiprocessing::Process::new(child_identity, ());
    p.start()?;
    let (name, pid, parent) = p.join()?;
    println!(
        "a child ran as {name} (pid {pid}), parent pid {parent:?}, exit code {:?}",
        p.exitcode()
    );
    Ok(Vec::new())
}

/// Set in the parent before any child starts; what each child sees of it shows what it inherited.
static MARKER: AtomicU64 = AtomicU64::new(0);

fn read_marker() -> u64 {
    MARKER.load(Ordering::SeqCst)
}

fn inherited_state(_pace: &Pace) -> spindle::Result<Vec<Timing>> {
    MARKER.store(42, Ordering::SeqCst);
    println!("the parent sets a static to 42, then starts one child per method that reads it:");
    let mut timings = Vec::new();
    for method in StartMethod::ALL {
        let p = multiprocessing::get_context(method)
            .process()
            .target(read_marker, ());
        let (seen, took) = timed(|| {
            p.start()?;
            p.join()
        })?;
        let verdict = if seen == 42 {
            "a copy of the parent's memory"
        } else {
            "a fresh process, nothing inherited"
        };
        println!("  {method:<11} child sees {seen:>2}: {verdict}");
        timings.push(Timing {
            label: format!("start + join ({method})"),
            measured: took,
            compare: Vec::new(),
        });
    }
    Ok(timings)
}
