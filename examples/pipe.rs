//! The notes' "Queues & Pipes → exchange data", as a `Pipe` between a parent and a child
//! playing ping-pong.
//!
//! ```python
//! def child(conn):
//!     while (msg := conn.recv()) != "stop":
//!         conn.send(msg.replace("ping", "pong"))
//!
//! parent, child_end = multiprocessing.Pipe()
//! p = multiprocessing.Process(target=child, args=(child_end,)); p.start()
//! for i in range(n):
//!     parent.send(f"ping {i}"); assert parent.recv() == f"pong {i}"
//! parent.send("stop"); p.join()
//! ```
#![allow(unreachable_pub, dead_code)]

use spindle::multiprocessing::connection::pipe;
use spindle::multiprocessing::Builder;

/// `n` round trips of a ping through a duplex pipe with a forked child; returns how many
/// pongs came back.
pub fn run(n: u64) -> spindle::Result<u64> {
    // Typed ends: the parent sends and receives Strings, and so does the child.
    let (parent, child_end) = pipe::<String, String>(true)?;
    let child = Builder::new().name("ponger").fork_target(move || {
        let mut served = 0u64;
        while let Ok(msg) = child_end.recv() {
            if msg == "stop" {
                break;
            }
            child_end
                .send(&msg.replace("ping", "pong"))
                .expect("the parent listens");
            served += 1;
        }
        served
    });
    child.start()?;

    let mut pongs = 0;
    for i in 0..n {
        parent.send(&format!("ping {i}"))?;
        if parent.recv()? == format!("pong {i}") {
            pongs += 1;
        }
    }
    parent.send(&"stop".to_string())?;
    let served = child.join()?;
    println!("{pongs} pongs back for {n} pings (the child served {served})");
    Ok(pongs)
}

fn main() -> spindle::Result<()> {
    let n = if std::env::var_os("SPINDLE_QUICK").is_some() {
        1_000
    } else {
        10_000
    };
    assert_eq!(run(n)?, n);
    Ok(())
}
