//! The notes' "Using ThreadPoolExecutor": five 2-second downloads on a pool of three threads.
//!
//! ```python
//! with ThreadPoolExecutor(max_workers=3) as executor:
//!     results = executor.map(download_file, files)
//! for result in results:
//!     print(result)
//! ```
//!
//! `max_workers=3` bounds what runs at once: three downloads start, and the fourth only when
//! one of them has finished. [`run`] also counts it, for the tour and the tests.
#![allow(unreachable_pub, dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use spindle::futures::ThreadPoolExecutor;

fn download_file(file_id: u32, pause: Duration) -> String {
    println!("Downloading file {file_id}...");
    std::thread::sleep(pause);
    format!("File {file_id} downloaded!")
}

/// What [`run`] saw of the downloads' concurrency (not in the notes' code: counted around it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The most downloads running at once.
    pub most_at_once: usize,
    /// How many downloads had started when the first one finished.
    pub started_before_first_finished: usize,
}

/// Runs the example; `pause` is the length of the notes' `time.sleep(2)`.
pub fn run(pause: Duration) -> spindle::Result<Seen> {
    let files = vec![1, 2, 3, 4, 5];
    let counts = Arc::new(Counts::default());
    let c = Arc::clone(&counts);

    // `with ThreadPoolExecutor(...) as executor:` — dropping the executor shuts it down.
    let executor = ThreadPoolExecutor::builder().max_workers(3).build()?;
    let results = executor.map(move |f| c.around(|| download_file(f, pause)), files)?;

    for result in results {
        println!("{}", result?);
    }
    Ok(counts.seen())
}

/// Downloads running now, the most at once, started so far, started when the first finished.
#[derive(Default)]
struct Counts {
    running: AtomicUsize,
    most: AtomicUsize,
    started: AtomicUsize,
    at_first_finish: AtomicUsize,
}

impl Counts {
    fn around<T>(&self, download: impl FnOnce() -> T) -> T {
        self.started.fetch_add(1, Ordering::SeqCst);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        let out = download();
        self.running.fetch_sub(1, Ordering::SeqCst);
        let started = self.started.load(Ordering::SeqCst);
        let _ =
            self.at_first_finish
                .compare_exchange(0, started, Ordering::SeqCst, Ordering::SeqCst);
        out
    }

    fn seen(&self) -> Seen {
        Seen {
            most_at_once: self.most.load(Ordering::SeqCst),
            started_before_first_finished: self.at_first_finish.load(Ordering::SeqCst),
        }
    }
}

fn main() -> spindle::Result<()> {
    run(spindle_examples::seconds(2.0)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The notes' "pool of 3 threads": three downloads at once at most, and at most three
    /// started before the first one finished.
    #[test]
    fn three_workers_run_three_downloads_at_once_at_most() {
        for _ in 0..3 {
            let seen = run(Duration::from_millis(30)).unwrap();
            assert_eq!(seen.most_at_once, 3, "{seen:?}");
            assert!(seen.started_before_first_finished <= 3, "{seen:?}");
        }
    }
}
