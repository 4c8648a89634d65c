//! The notes' "Queues & Pipes → exchange data", as a producer and a consumer process over a
//! `Queue`.
//!
//! ```python
//! def producer(q, n):
//!     for i in range(n):
//!         q.put(("item", i))
//!     q.put(None)
//!
//! def consumer(q, out):
//!     total = 0
//!     while (item := q.get()) is not None:
//!         total += item[1]
//!     out.put(total)
//! ```
//!
//! Rust's version needs no `None` sentinel: the consumer gets the producer's end of stream
//! when the producer (its sending handle) is gone, even if it was killed.
#![allow(unreachable_pub, dead_code)]

use spindle::multiprocessing::queues::{GetError, Queue};
use spindle::multiprocessing::Builder;

/// Sends `n` items from a producer process to a consumer process through a queue; returns
/// the sum of the items' numbers the consumer reports.
pub fn run(n: u64) -> spindle::Result<u64> {
    // Both children are forked, and each takes along the end it uses. The producer goes
    // first: once it has started, the parent's copy of the sending end is gone (it moved into
    // the producer's closure), so the consumer, forked next, inherits no sending end and sees
    // the end of stream when the producer finishes. (A forked child inherits every descriptor
    // its parent holds at that moment, as in Python.)
    let (tx, rx) = Queue::<(String, u64)>::new()?.split()?;
    let (report_tx, report_rx) = Queue::<u64>::new()?.split()?;

    let producer = Builder::new().name("producer").fork_target(move || {
        for i in 0..n {
            tx.put(("item".to_string(), i))
                .expect("the consumer is there");
        }
    });
    producer.start()?;

    let consumer = Builder::new().name("consumer").fork_target(move || {
        let mut total = 0;
        loop {
            match rx.get() {
                Ok((_label, i)) => total += i,
                Err(GetError::Disconnected) => break, // every producer is gone
                Err(e) => panic!("consumer: {e}"),
            }
        }
        report_tx.put(total).expect("the parent is listening");
    });
    consumer.start()?;

    producer.join()?;
    consumer.join()?;
    let total = report_rx.get()?;
    println!("the consumer added up {n} items: {total}");
    Ok(total)
}

fn main() -> spindle::Result<()> {
    let n = if std::env::var_os("SPINDLE_QUICK").is_some() {
        10_000
    } else {
        100_000
    };
    let total = run(n)?;
    assert_eq!(total, n * (n - 1) / 2);
    Ok(())
}
