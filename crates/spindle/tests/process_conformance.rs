//! One conformance suite for `Process`, instantiated for every start method.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use spindle::multiprocessing::{Builder, Process, StartMethod};

mod common;
use common::watchdog;

static MARK: AtomicU64 = AtomicU64::new(1);

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn read_mark() -> u64 {
    MARK.load(Ordering::SeqCst)
}

fn boom(msg: String) -> u32 {
    panic!("child says {msg}")
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn big(n: usize) -> Vec<u8> {
    vec![7u8; n]
}

fn die_by_signal() -> u32 {
    std::process::abort()
}

fn who() -> (String, u32, Option<u32>) {
    let me = spindle::multiprocessing::current_process();
    let parent = spindle::multiprocessing::parent_process().map(|p| p.pid());
    (me.name().to_owned(), me.pid(), parent)
}

fn exit_with(code: i32) -> u32 {
    std::process::exit(code)
}

macro_rules! conformance {
    ($modname:ident, $method:expr) => {
        mod $modname {
            use super::*;

            fn builder() -> Builder {
                Builder::new().start_method($method)
            }

            #[test]
            fn runs_a_function_and_returns_its_value() {
                watchdog(|| {
                    let p = builder().target(add, (40, 2));
                    assert_eq!(p.start_method(), $method);
                    p.start().unwrap();
                    assert!(p.pid().is_some());
                    assert_eq!(p.join().unwrap(), 42);
                    assert_eq!(p.exitcode(), Some(0));
                    assert!(!p.is_alive());
                    // The value is taken once.
                    assert!(matches!(p.join(), Err(spindle::Error::InvalidState(_))));
                });
            }

            #[test]
            fn closures_without_captures_and_zero_arguments() {
                watchdog(|| {
                    let p = builder().target(|| String::from("no args"), ());
                    p.start().unwrap();
                    assert_eq!(p.join().unwrap(), "no args");
                    let p = builder().target(|x: i32, y: i32, z: i32| x * y * z, (2, 3, 4));
                    p.start().unwrap();
                    assert_eq!(p.join().unwrap(), 24);
                });
            }

            #[test]
            fn inherited_state_only_under_fork() {
                watchdog(|| {
                    MARK.store(99, Ordering::SeqCst);
                    let p = builder().target(read_mark, ());
                    p.start().unwrap();
                    let seen = p.join().unwrap();
                    if $method == StartMethod::Fork {
                        assert_eq!(seen, 99, "a forked child sees the parent's memory");
                    } else {
                        assert_eq!(seen, 1, "a {} child starts from a clean image", $method);
                    }
                });
            }

            #[test]
            fn panic_is_exit_code_one_and_a_task_error() {
                watchdog(|| {
                    let p = builder().target(boom, ("hello".to_string(),));
                    p.start().unwrap();
                    let pid = p.pid().unwrap();
                    let err = p.join().unwrap_err();
                    let task = err.as_task().expect("a task error");
                    assert!(task.is_panic(), "{err:?}");
                    assert_eq!(task.panic_message(), Some("child says hello"));
                    assert_eq!(task.pid(), Some(pid));
                    assert_eq!(p.exitcode(), Some(1));
                });
            }

            #[test]
            fn signal_death_is_minus_the_signal() {
                watchdog(|| {
                    let p = builder().target(die_by_signal, ());
                    p.start().unwrap();
                    let err = p.join().unwrap_err();
                    assert!(err.as_task().unwrap().is_worker_died(), "{err:?}");
                    assert_eq!(p.exitcode(), Some(-6)); // SIGABRT
                    assert_eq!(err.as_task().unwrap().exitcode(), Some(-6));
                });
            }

            #[test]
            fn exit_without_value_reports_its_code() {
                watchdog(|| {
                    let p = builder().target(exit_with, (7,));
                    p.start().unwrap();
                    let err = p.join().unwrap_err();
                    assert_eq!(err.as_task().unwrap().exitcode(), Some(7), "{err:?}");
                    assert_eq!(p.exitcode(), Some(7));
                });
            }

            #[test]
            fn join_timeout_keeps_the_child_and_its_value() {
                watchdog(|| {
                    let p = builder().target(sleep_ms, (400,));
                    p.start().unwrap();
                    assert!(matches!(
                        p.join_timeout(Duration::from_millis(20)),
                        Err(spindle::Error::Timeout)
                    ));
                    assert!(p.is_alive());
                    assert_eq!(p.exitcode(), None);
                    assert_eq!(p.join().unwrap(), 400);
                    assert!(!p.is_alive());
                });
            }

            #[test]
            fn large_result_does_not_deadlock() {
                watchdog(|| {
                    let n = 10 << 20;
                    let p = builder().target(big, (n,));
                    p.start().unwrap();
                    let v = p.join().unwrap();
                    assert_eq!(v.len(), n);
                    assert!(v.iter().all(|b| *b == 7));
                });
            }

            #[test]
            fn terminate_and_kill_a_sleeping_child() {
                watchdog(|| {
                    let p = builder().target(sleep_ms, (60_000,));
                    p.start().unwrap();
                    p.terminate().unwrap();
                    assert!(p.join().unwrap_err().as_task().unwrap().is_worker_died());
                    assert_eq!(p.exitcode(), Some(-15));
                    let p = builder().target(sleep_ms, (60_000,));
                    p.start().unwrap();
                    p.kill().unwrap();
                    assert!(p.join().is_err());
                    assert_eq!(p.exitcode(), Some(-9));
                    // Signalling a finished child is a no-op.
                    p.kill().unwrap();
                    p.terminate().unwrap();
                });
            }

            #[test]
            fn identity_in_the_child() {
                watchdog(|| {
                    let p = builder().name("worker-a").target(who, ());
                    p.start().unwrap();
                    let (name, pid, parent) = p.join().unwrap();
                    assert_eq!(name, "worker-a");
                    assert_eq!(Some(pid), p.pid());
                    assert_eq!(parent, Some(std::process::id()));
                });
            }

            #[test]
            fn lifecycle_misuse_is_a_typed_error() {
                watchdog(|| {
                    let p = builder().target(add, (1, 2));
                    assert!(matches!(p.join(), Err(spindle::Error::InvalidState(_))));
                    assert!(matches!(p.kill(), Err(spindle::Error::InvalidState(_))));
                    assert_eq!(p.exitcode(), None);
                    assert!(!p.is_alive());
                    p.start().unwrap();
                    assert!(matches!(p.start(), Err(spindle::Error::InvalidState(_))));
                    assert_eq!(p.join().unwrap(), 3);
                    p.close().unwrap();
                    assert!(matches!(p.join(), Err(spindle::Error::InvalidState(_))));
                    let running = builder().target(sleep_ms, (60_000,));
                    running.start().unwrap();
                    assert!(matches!(
                        running.close(),
                        Err(spindle::Error::InvalidState(_))
                    ));
                    running.kill().unwrap();
                    let _ = running.join();
                    running.close().unwrap();
                });
            }

            #[test]
            fn started_from_a_short_lived_thread_survives_it() {
                watchdog(|| {
                    let p = std::thread::spawn(|| {
                        let p = builder().target(sleep_ms, (300,));
                        p.start().unwrap();
                        p
                    })
                    .join()
                    .unwrap();
                    // The starting thread has exited; the child must still be running.
                    std::thread::sleep(Duration::from_millis(50));
                    assert!(p.is_alive());
                    assert_eq!(p.join().unwrap(), 300);
                });
            }
        }
    };
}

conformance!(spawn, StartMethod::Spawn);
conformance!(fork, StartMethod::Fork);
conformance!(forkserver, StartMethod::Forkserver);

#[test]
fn fork_target_runs_capturing_closures_only_under_fork() {
    watchdog(|| {
        let data: Vec<u32> = (1..=3).collect();
        let p = Builder::new().fork_target(move || data.iter().sum::<u32>());
        assert_eq!(p.start_method(), StartMethod::Fork);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 6);
        let s = String::from("x");
        let p = Builder::new()
            .start_method(StartMethod::Spawn)
            .fork_target(move || s.len());
        assert!(matches!(p.start(), Err(spindle::Error::InvalidArgument(_))));
    });
}

#[test]
fn process_new_uses_the_default_method() {
    watchdog(|| {
        let p = Process::new(add, (1, 1));
        assert_eq!(
            p.start_method(),
            spindle::multiprocessing::get_start_method()
        );
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 2);
    });
}

#[test]
fn public_types_are_send_and_sync() {
    fn both<T: Send + Sync>() {}
    both::<Process<String>>();
    both::<Builder>();
    both::<spindle::multiprocessing::Context>();
    both::<spindle::multiprocessing::ProcessInfo>();
    both::<StartMethod>();
}

#[test]
fn active_children_lists_running_children_only() {
    watchdog(|| {
        let p = Builder::new().name("lister").target(sleep_ms, (60_000,));
        p.start().unwrap();
        let listed = spindle::multiprocessing::active_children();
        assert!(
            listed
                .iter()
                .any(|c| c.name() == "lister" && Some(c.pid()) == p.pid()),
            "{listed:?}"
        );
        p.kill().unwrap();
        let _ = p.join();
        let listed = spindle::multiprocessing::active_children();
        assert!(!listed.iter().any(|c| c.name() == "lister"), "{listed:?}");
    });
}

#[test]
fn a_forked_child_does_not_list_its_parents_children() {
    watchdog(|| {
        let sibling = Builder::new().daemon(true).target(sleep_ms, (60_000,));
        sibling.start().unwrap();
        assert!(!spindle::multiprocessing::active_children().is_empty());
        let p = Builder::new().fork_target(|| spindle::multiprocessing::active_children().len());
        p.start().unwrap();
        assert_eq!(
            p.join().unwrap(),
            0,
            "the parent's children are not the child's"
        );
        sibling.kill().unwrap();
        let _ = sibling.join();
    });
}

#[test]
fn daemon_children_are_killed_when_dropped() {
    watchdog(|| {
        let p = Builder::new().daemon(true).target(sleep_ms, (60_000,));
        p.start().unwrap();
        let pid = p.pid().unwrap();
        assert!(common::running(pid));
        drop(p);
        assert!(!common::running(pid), "the daemon child is gone and reaped");
    });
}
