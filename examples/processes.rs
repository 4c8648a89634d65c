//! The notes' "Example: Creating Processes": two processes each sleep 2 s; they run in
//! parallel, so the whole takes about 2 s instead of 4 s.
//!
//! ```python
//! p1 = multiprocessing.Process(target=worker, args=("A",))
//! p2 = multiprocessing.Process(target=worker, args=("B",))
//! p1.start(); p2.start()
//! p1.join(); p2.join()
//! print("All processes done!")
//! ```
//!
//! No `if __name__ == "__main__":` guard is needed: a spawned child is entered before `main`.
//! The start method is the default (forkserver) or the first argument:
//! `cargo run -p spindle-examples --example processes -- spawn`.
#![allow(unreachable_pub, dead_code)]

use std::time::Duration;

use spindle::multiprocessing::{self, StartMethod};

fn worker(name: String, pause: Duration) {
    println!("Process {name} starting");
    std::thread::sleep(pause); // time.sleep(2)
    println!("Process {name} finished");
}

/// Runs the example with start method `method`; `pause` is the notes' `time.sleep(2)`.
pub fn run(method: StartMethod, pause: Duration) -> spindle::Result<()> {
    let ctx = multiprocessing::get_context(method);
    let p1 = ctx.process().target(worker, ("A".to_owned(), pause));
    let p2 = ctx.process().target(worker, ("B".to_owned(), pause));

    p1.start()?;
    p2.start()?;

    p1.join()?;
    p2.join()?;

    println!("All processes done!");
    Ok(())
}

fn main() -> spindle::Result<()> {
    let method = match std::env::args().nth(1) {
        Some(name) => name.parse()?,
        None => multiprocessing::get_start_method(),
    };
    run(method, spindle_examples::seconds(2.0))
}
