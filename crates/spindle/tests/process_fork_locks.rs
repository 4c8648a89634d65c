//! A forked child must never inherit a lock held by a thread that does not exist in it.
//! spindle takes its locks (and stdout's) across `fork()`; these tests hold such a lock on
//! another thread at the moment of the fork and show the child still runs to the end.
//! Its own binary: it holds process-wide locks.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::watchdog;
use spindle::multiprocessing::{self, StartMethod};

fn print_and_return() -> u32 {
    println!("a forked child prints");
    7
}

fn identity_in_child() -> String {
    multiprocessing::current_process().name().to_owned()
}

#[test]
fn a_fork_child_does_not_inherit_a_held_stdout_lock() {
    watchdog(|| {
        let (held_tx, held_rx) = mpsc::channel();
        let holder = thread::spawn(move || {
            let guard = std::io::stdout().lock();
            held_tx.send(()).unwrap();
            // Long enough that the fork below is asked for while the lock is held.
            thread::sleep(Duration::from_millis(200));
            drop(guard);
        });
        held_rx.recv().unwrap();
        let p = multiprocessing::get_context(StartMethod::Fork)
            .process()
            .target(print_and_return, ());
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 7);
        holder.join().unwrap();
    });
}

#[test]
fn fork_children_started_while_other_threads_use_spindle_all_finish() {
    watchdog(|| {
        // Other threads keep taking spindle's process and thread locks while forks happen.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let busy: Vec<_> = (0..2)
            .map(|_| {
                let stop = std::sync::Arc::clone(&stop);
                thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = multiprocessing::current_process();
                        let _ = multiprocessing::active_children();
                        let _ = spindle::threading::active_count();
                    }
                })
            })
            .collect();
        for i in 0..200 {
            let p = multiprocessing::get_context(StartMethod::Fork)
                .process()
                .name(format!("forked-{i}"))
                .target(identity_in_child, ());
            p.start().unwrap();
            assert_eq!(p.join().unwrap(), format!("forked-{i}"));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in busy {
            t.join().unwrap();
        }
    });
}
