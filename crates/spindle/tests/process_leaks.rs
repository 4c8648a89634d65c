//! Many sequential starts leave no zombie, no extra open descriptor and no extra thread (the
//! fork server and the one spare child it keeps forked ahead aside).
//! One test in its own binary, so that no neighbour's children or descriptors interfere.

use spindle::multiprocessing::{active_children, bench, Builder, StartMethod};

mod common;
use common::{children_of, fd_count, watchdog_for};

fn id(x: u32) -> u32 {
    x
}

/// The open descriptors but the two of each spare the fork server keeps forked ahead (their
/// number follows the pace of the starts).
fn settled_fd_count() -> usize {
    let spares = bench::forkserver_spares().len();
    fd_count() - 2 * spares
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn thousands_of_starts_leave_nothing_behind() {
    watchdog_for(std::time::Duration::from_secs(120), || {
        // Warm up: the fork server, its connection and the launcher thread live for good.
        for m in StartMethod::ALL {
            let p = Builder::new().start_method(m).target(id, (0,));
            p.start().unwrap();
            p.join().unwrap();
        }
        let fds = settled_fd_count();
        let threads_before = threads();
        let me = std::process::id();
        let server = bench::forkserver_pid().expect("fork server running");
        for (m, n) in [
            (StartMethod::Forkserver, 1000),
            (StartMethod::Fork, 1000),
            (StartMethod::Spawn, 200),
        ] {
            for i in 0..n {
                let p = Builder::new().start_method(m).target(id, (i,));
                p.start().unwrap();
                assert_eq!(p.join().unwrap(), i);
                drop(p);
                if i % 250 == 0 {
                    assert_eq!(
                        settled_fd_count(),
                        fds,
                        "{m}: descriptors leak after {i} starts"
                    );
                }
            }
            // Dropped without join: reaped by Drop as well.
            for i in 0..20 {
                let p = Builder::new().start_method(m).target(id, (i,));
                p.start().unwrap();
            }
            assert_eq!(settled_fd_count(), fds, "{m}: descriptors leak");
            // Besides the server, the spares it forked ahead are children of ours.
            let spares = bench::forkserver_spares();
            assert!((1..=4).contains(&spares.len()), "{spares:?}");
            assert_eq!(
                children_of(me)
                    .iter()
                    .filter(|(p, _)| *p != server && !spares.contains(p))
                    .count(),
                0,
                "{m}: children left"
            );
            assert_eq!(
                children_of(server),
                vec![],
                "{m}: fork server's children left"
            );
            assert!(active_children().is_empty());
        }
        assert_eq!(threads(), threads_before, "threads leak");
        assert_eq!(
            bench::forkserver_pid(),
            Some(server),
            "the same fork server served every start"
        );
    });
}
