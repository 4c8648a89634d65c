//! The notes' "Quick Example" (Multithreading): two threads each sleep 2 s; run together they
//! take about 2 s, not 4 s.
//!
//! ```python
//! t1 = threading.Thread(target=worker, args=("A",))
//! t2 = threading.Thread(target=worker, args=("B",))
//! t1.start(); t2.start()
//! t1.join(); t2.join()
//! print("All threads done!")
//! ```
#![allow(unreachable_pub, dead_code)]

use std::time::Duration;

use spindle::threading::Thread;

fn worker(name: &str, pause: Duration) {
    println!("Thread {name} starting");
    std::thread::sleep(pause); // time.sleep(2)
    println!("Thread {name} finished");
}

/// Runs the example; `pause` is the length of the notes' `time.sleep(2)`.
pub fn run(pause: Duration) -> spindle::Result<()> {
    // Create threads
    let mut t1 = Thread::new(move || worker("A", pause));
    let mut t2 = Thread::new(move || worker("B", pause));

    // Start threads
    t1.start()?;
    t2.start()?;

    // Wait for threads to finish
    t1.join()?;
    t2.join()?;

    println!("All threads done!");
    Ok(())
}

fn main() -> spindle::Result<()> {
    run(spindle_examples::seconds(2.0))
}
