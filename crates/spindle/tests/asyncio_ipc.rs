//! Awaiting spindle's processes and IPC from coroutines: `Process::join_async`,
//! `Queue::get_async` (and `Receiver`, `JoinableQueue`), `Connection::recv_async`. Each is
//! shown not to block the loop (a ticker coroutine keeps counting while it waits), to give
//! the same values and end-of-stream errors as the blocking call, and to leave the object
//! usable when the awaiting coroutine is cancelled.
//!
//! Its own binary: these tests fork.
#![cfg(not(loom))]

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::watchdog_for;
use spindle::asyncio::{self, wait_for};
use spindle::multiprocessing::connection::{pipe, RecvError};
use spindle::multiprocessing::queues::{GetError, JoinableQueue, Queue};
use spindle::multiprocessing::{get_context, Builder, StartMethod};

const LIMIT: Duration = Duration::from_secs(60);

fn nap_then(ms: u64, v: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    v
}

fn big(n: usize) -> Vec<u8> {
    vec![7; n]
}

/// Runs `wait` while a ticker coroutine counts its turns on the same (one-thread) loop;
/// returns the value and the ticks counted before `wait` ended.
fn with_ticks<T, F>(wait: F) -> (T, usize)
where
    F: std::future::Future<Output = T>,
{
    let ticks = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (t, s) = (Arc::clone(&ticks), Arc::clone(&stop));
    asyncio::run(async move {
        let ticker = asyncio::create_task(async move {
            while !s.load(Ordering::SeqCst) {
                t.fetch_add(1, Ordering::SeqCst);
                asyncio::sleep(Duration::from_millis(1)).await;
            }
        })
        .unwrap();
        let v = wait.await;
        let during = ticks.load(Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        ticker.await.unwrap();
        (v, during)
    })
    .unwrap()
}

#[test]
fn join_async_waits_for_a_child_while_the_loop_ticks() {
    watchdog_for(LIMIT, || {
        for method in [StartMethod::Fork, StartMethod::Spawn] {
            let p = get_context(method).process().target(nap_then, (300, 42));
            p.start().unwrap();
            let (v, ticks) = with_ticks(p.join_async());
            assert_eq!(v.unwrap(), 42, "{method}");
            assert!(
                ticks >= 10,
                "{method}: only {ticks} ticks while the child ran"
            );
            // Joined once: the value is gone, as with `join`.
            assert!(p.join().is_err());
        }
    });
}

#[test]
fn join_async_reads_a_value_larger_than_the_socket_buffer() {
    watchdog_for(LIMIT, || {
        let p = get_context(StartMethod::Fork)
            .process()
            .target(big, (8 << 20,));
        p.start().unwrap();
        let v = asyncio::run(p.join_async()).unwrap().unwrap();
        assert_eq!(v.len(), 8 << 20);
        assert!(v.iter().all(|b| *b == 7));
    });
}

#[test]
fn a_cancelled_join_async_leaves_the_value_for_a_later_join() {
    watchdog_for(LIMIT, || {
        let p = get_context(StartMethod::Fork)
            .process()
            .target(nap_then, (100, 5));
        p.start().unwrap();
        let r = asyncio::run(wait_for(p.join_async(), Duration::from_millis(5))).unwrap();
        assert!(r.unwrap_err().is_timeout());
        assert_eq!(p.join().unwrap(), 5);
    });
}

#[test]
fn get_async_waits_for_an_item_from_another_process_and_sees_the_end_of_stream() {
    watchdog_for(LIMIT, || {
        let (tx, rx) = Queue::<String>::new().unwrap().split().unwrap();
        let child = Builder::new().fork_target(move || {
            std::thread::sleep(Duration::from_millis(300));
            tx.put("from the child".to_string()).unwrap();
        });
        child.start().unwrap();
        let (item, ticks) = with_ticks(rx.get_async());
        assert_eq!(item.unwrap(), "from the child");
        assert!(ticks >= 10, "only {ticks} ticks while waiting for the item");
        child.join().unwrap();
        // Every sender is gone with the child (and this process dropped its own end).
        let end = asyncio::run(rx.get_async()).unwrap();
        assert!(matches!(end, Err(GetError::Disconnected)), "{end:?}");
    });
}

#[test]
fn two_coroutines_await_one_queue_and_each_gets_an_item() {
    watchdog_for(LIMIT, || {
        let q = Queue::<u32>::new().unwrap();
        let producer = q.clone_handle().unwrap();
        let child = Builder::new().fork_target(move || {
            std::thread::sleep(Duration::from_millis(100));
            producer.put(1).unwrap();
            producer.put(2).unwrap();
        });
        child.start().unwrap();
        let mut got = asyncio::run(async {
            let (a, b) = (q.get_async(), q.get_async());
            let both = asyncio::gather([Box::pin(a), Box::pin(b)]).await;
            both.map_err(|e| e.to_string())
        })
        .unwrap()
        .unwrap();
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        child.join().unwrap();

        // A get_async cancelled by a timeout takes nothing: the next get has the item.
        let r = asyncio::run(wait_for(q.get_async(), Duration::from_millis(5))).unwrap();
        assert!(r.unwrap_err().is_timeout());
        q.put(3).unwrap();
        assert_eq!(asyncio::run(q.get_async()).unwrap().unwrap(), 3);

        let jq = JoinableQueue::<u8>::new().unwrap();
        jq.put(4).unwrap();
        assert_eq!(asyncio::run(jq.get_async()).unwrap().unwrap(), 4);
    });
}

#[test]
fn recv_async_waits_for_a_message_and_sees_the_end_of_stream() {
    watchdog_for(LIMIT, || {
        let (reader, writer) = pipe::<(), Vec<u64>>(false).unwrap();
        let child = Builder::new().fork_target(move || {
            std::thread::sleep(Duration::from_millis(300));
            writer.send(&vec![1, 2, 3]).unwrap();
        });
        child.start().unwrap();
        let (msg, ticks) = with_ticks(reader.recv_async());
        assert_eq!(msg.unwrap(), [1, 2, 3]);
        assert!(
            ticks >= 10,
            "only {ticks} ticks while waiting for the message"
        );
        child.join().unwrap();
        let end = asyncio::run(reader.recv_async()).unwrap();
        assert!(matches!(end, Err(RecvError::Disconnected)), "{end:?}");
    });
}

#[test]
fn recv_async_on_a_stream_connection() {
    watchdog_for(LIMIT, || {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (a, b): (
            spindle::multiprocessing::Connection<String, String>,
            spindle::multiprocessing::Connection<String, String>,
        ) = (a.into(), b.into());
        let got = asyncio::run(async move {
            let reader = asyncio::create_task(async move { a.recv_async().await })?;
            asyncio::sleep(Duration::from_millis(20)).await;
            b.send(&"over a socket".to_string())?;
            Ok::<_, spindle::Error>(reader.await??)
        })
        .unwrap()
        .unwrap();
        assert_eq!(got, "over a socket");
    });
}

#[test]
fn outside_a_loop_awaiting_ipc_is_an_error_not_a_panic() {
    watchdog_for(LIMIT, || {
        let q = Queue::<u8>::new().unwrap();
        // Polled by hand, outside any runtime.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut get = std::pin::pin!(q.get_async());
        match get.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(Err(GetError::Failed(e))) => {
                assert!(e.to_string().contains("event loop"), "{e}")
            }
            other => panic!("expected an error, got {other:?}"),
        }
    });
}
