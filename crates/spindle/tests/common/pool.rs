//! Shared by the pool tests: the start-method switch and cross-process evidence helpers.
#![allow(dead_code, unused_macros)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Every pool suite, written once, instantiated for each start method. (Until the `boot`
/// branch's `handles.rs` was merged, the spawn and forkserver instances carried an `ignore`
/// here: their workers receive their channel as a descriptor in their arguments.)
macro_rules! per_start_method {
    ($suite:ident) => {
        $suite!(fork, Fork, []);
        $suite!(spawn, Spawn, []);
        $suite!(forkserver, Forkserver, []);
    };
}

/// A scratch directory removed on drop.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(tag: &str) -> Scratch {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("spindle-pool-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    pub(crate) fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }

    /// Files in the directory.
    pub(crate) fn count(&self) -> usize {
        std::fs::read_dir(&self.0).map(|d| d.count()).unwrap_or(0)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A barrier across processes: creates `dir/NAME` and waits (at most `limit`) until `n`
/// files exist there. Returns whether all `n` arrived: only tasks running at the same time
/// can all pass.
pub(crate) fn arrive_and_wait(dir: &str, name: &str, n: usize, limit: Duration) -> bool {
    std::fs::write(Path::new(dir).join(name), b"").unwrap();
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0) >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}
