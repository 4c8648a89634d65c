//! The notes' "Multithreading Concurrency Example" with coroutines instead of threads: five
//! simulated 2-second downloads on one thread, taking turns at their `await`; they finish in
//! about 2 s instead of 10 s.
//!
//! ```python
//! async def download_file(file_id):
//!     print(f"Downloading file {file_id}...")
//!     await asyncio.sleep(2)  # Simulate download delay
//!     print(f"File {file_id} downloaded!")
//!     return file_id
//!
//! async def main():
//!     return await asyncio.gather(*(download_file(f) for f in [1, 2, 3, 4, 5]))
//!
//! asyncio.run(main())
//! print("All files downloaded!")
//! ```
#![allow(unreachable_pub, dead_code)]

use std::time::Duration;

use spindle::asyncio;

async fn download_file(file_id: u32, pause: Duration) -> spindle::Result<u32> {
    println!("Downloading file {file_id}...");
    asyncio::sleep(pause).await; // Simulate download delay
    println!("File {file_id} downloaded!");
    Ok(file_id)
}

/// Runs the example; `pause` is the length of the notes' `time.sleep(2)`. Returns the file
/// ids in the order given (`gather` keeps the input order, whatever order they finish in).
pub fn run(pause: Duration) -> spindle::Result<Vec<u32>> {
    let files = [1, 2, 3, 4, 5];
    let done =
        asyncio::run(
            async move { asyncio::gather(files.map(|f| download_file(f, pause))).await },
        )??;
    println!("All files downloaded!");
    Ok(done)
}

fn main() -> spindle::Result<()> {
    run(spindle_examples::seconds(2.0)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Five downloads on one thread, waiting at once: all five are in their sleep together
    /// (counted, not timed), and the ids come back in input order.
    #[test]
    fn five_coroutines_wait_together() {
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (n, m) = (Arc::clone(&now), Arc::clone(&most));
        asyncio::run(async move {
            let coros = (0..5).map(|i| {
                let (n, m) = (Arc::clone(&n), Arc::clone(&m));
                async move {
                    m.fetch_max(n.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    asyncio::sleep(Duration::from_millis(20)).await;
                    n.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, spindle::Error>(i)
                }
            });
            asyncio::gather(coros).await
        })
        .unwrap()
        .unwrap();
        assert_eq!(most.load(Ordering::SeqCst), 5);
        assert_eq!(run(Duration::from_millis(20)).unwrap(), [1, 2, 3, 4, 5]);
    }
}
