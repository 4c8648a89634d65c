//! terminate and kill of a stuck child that ignores SIGTERM, for every start method.

use std::time::Duration;

use spindle::multiprocessing::{Builder, StartMethod};

mod common;
use common::{eventually, watchdog};

fn ignore_term_and_sleep(marker: String) -> u32 {
    // SAFETY: SIG_IGN is a valid disposition for SIGTERM; no memory is touched.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    std::fs::write(&marker, b"ready").unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn terminate_does_not_stop_a_child_that_ignores_it_and_kill_does() {
    watchdog(|| {
        for m in StartMethod::ALL {
            let marker =
                std::env::temp_dir().join(format!("spindle-term-{}-{m}", std::process::id()));
            let _ = std::fs::remove_file(&marker);
            let p = Builder::new().start_method(m).target(
                ignore_term_and_sleep,
                (marker.to_string_lossy().into_owned(),),
            );
            p.start().unwrap();
            assert!(
                eventually(Duration::from_secs(10), || marker.exists()),
                "{m}: child never got ready"
            );
            p.terminate().unwrap();
            assert!(
                matches!(
                    p.join_timeout(Duration::from_millis(200)),
                    Err(spindle::Error::Timeout)
                ),
                "{m}"
            );
            assert!(p.is_alive(), "{m}: SIGTERM was ignored");
            p.kill().unwrap();
            let err = p.join().unwrap_err();
            assert!(err.as_task().unwrap().is_worker_died(), "{m}: {err:?}");
            assert_eq!(p.exitcode(), Some(-9), "{m}");
            let _ = std::fs::remove_file(&marker);
        }
    });
}
