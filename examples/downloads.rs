//! The notes' "Multithreading Concurrency Example": five simulated 2-second downloads, one
//! thread each; they finish in about 2 s instead of 10 s.
//!
//! ```python
//! for f in files:
//!     t = threading.Thread(target=download_file, args=(f,))
//!     threads.append(t)
//!     t.start()
//! for t in threads:
//!     t.join()
//! print("All files downloaded!")
//! ```
#![allow(unreachable_pub, dead_code)]

use std::time::Duration;

use spindle::threading::Thread;

fn download_file(file_id: u32, pause: Duration) {
    println!("Downloading file {file_id}...");
    std::thread::sleep(pause); // Simulate download delay
    println!("File {file_id} downloaded!");
}

/// Runs the example; `pause` is the length of the notes' `time.sleep(2)`.
pub fn run(pause: Duration) -> spindle::Result<()> {
    let files = [1, 2, 3, 4, 5];
    let mut threads = Vec::new();

    // Start threads for multiple downloads
    for f in files {
        let mut t = Thread::new(move || download_file(f, pause));
        t.start()?;
        threads.push(t);
    }

    // Wait for all threads to finish
    for mut t in threads {
        t.join()?;
    }

    println!("All files downloaded!");
    Ok(())
}

fn main() -> spindle::Result<()> {
    run(spindle_examples::seconds(2.0))
}
