//! The notes' "Using ThreadPoolExecutor": five 2-second downloads on a pool of three threads.
//!
//! ```python
//! with ThreadPoolExecutor(max_workers=3) as executor:
//!     results = executor.map(download_file, files)
//! for result in results:
//!     print(result)
//! ```
#![allow(unreachable_pub, dead_code)]

use std::time::Duration;

use spindle::futures::ThreadPoolExecutor;

fn download_file(file_id: u32, pause: Duration) -> String {
    println!("Downloading file {file_id}...");
    std::thread::sleep(pause);
    format!("File {file_id} downloaded!")
}

/// Runs the example; `pause` is the length of the notes' `time.sleep(2)`.
pub fn run(pause: Duration) -> spindle::Result<()> {
    let files = vec![1, 2, 3, 4, 5];

    // `with ThreadPoolExecutor(...) as executor:` — dropping the executor shuts it down.
    let executor = ThreadPoolExecutor::builder().max_workers(3).build()?;
    let results = executor.map(move |f| download_file(f, pause), files)?;

    for result in results {
        println!("{}", result?);
    }
    Ok(())
}

fn main() -> spindle::Result<()> {
    run(spindle_examples::seconds(2.0))
}
