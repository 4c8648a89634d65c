//! A counter incremented under a process-shared lock by two processes at once (issue #13's
//! scoreboard): spindle's `Value` under its own lock, beside a bare robust pthread mutex and
//! CPython's `Value` under its lock.

use std::time::Instant;

use spindle::multiprocessing::sharedctypes::Value;
use spindle::multiprocessing::synchronize::{Event, Lock};
use spindle::multiprocessing::Builder;

use crate::harness::{Measurement, Plan};
use crate::peers::{cpython, raw_ipc};
use crate::report::thousands;
use crate::scoreboard::{Contender, Group, NotMeasured, Options, Progress};
use crate::workloads::repeat_timed;

const VALUE: &str = "spindle Value under its lock";
const LOCK: &str = "spindle Lock + raw Value";

/// The locked-counter group.
pub(crate) fn group(opts: &Options) -> Group {
    let count = opts.size(200_000, 1_000_000);
    let py_count = opts.size(20_000, 100_000);
    let plan = Plan {
        max_reps: opts.plan().reps.max(10),
        ..opts.plan()
    };
    let py_reps = opts.size(3, 5) as usize;
    let python = opts.python.clone();
    let args = vec![
        "lock".to_string(),
        py_count.to_string(),
        py_reps.to_string(),
    ];
    Group::new("ipc-lock", "locked counter from 2 processes")
        .note(format!(
            "Two forked processes, already running, each add 1 to a shared counter {} times \
             ({} for CPython), each addition under the lock; figures are per addition \
             (increments/s = 1 / the figure). spindle Value: `Value::new(0u64)` and its \
             `get_lock()` (a robust RLock, as Python's default), `set(get() + 1)` under \
             `lock()`. Lock + raw Value: a `Lock` and a `Value::new_raw`. robust pthread mutex: \
             `pthread_mutex_lock` / `unlock` of a robust process-shared mutex in shared memory \
             around a plain increment, compared with spindle's `Lock` (the same kind of mutex; \
             the `RLock` row adds its owner and depth words). CPython: `with v.get_lock(): \
             v.value += 1`, compared with spindle's `Value` under its own (re-entrant) lock, \
             as Python's.",
            thousands(count),
            thousands(py_count)
        ))
        .contender(Contender::subject(VALUE, move |p| {
            spindle_counter(count, plan, p, false)
        }))
        .contender(Contender::subject(LOCK, move |p| {
            spindle_counter(count, plan, p, true)
        }))
        .contender(
            Contender::peer("robust pthread mutex (raw)", move |p| {
                repeat_timed(plan, 2 * count, &p, || raw_ipc::robust_mutex_counter(count))
            })
            .versus(LOCK)
            .aim(
                0.7,
                "the locked counter at least 0.7× a robust pthread mutex",
            ),
        )
        .contender(
            Contender::peer("CPython Value under its lock", move |_| {
                cpython::ipc(&python, &args, "times_s", py_reps, 2 * py_count)
            })
            .versus(VALUE)
            .aim(15.0, "the locked counter at least 15× CPython's"),
        )
}

fn spindle_counter(
    count: u64,
    plan: Plan,
    p: Progress,
    plain_lock: bool,
) -> Result<Measurement, NotMeasured> {
    repeat_timed(plan, 2 * count, &p, || {
        let value = if plain_lock {
            Value::new_raw(0u64)
        } else {
            Value::new(0u64)
        }
        .map_err(|e| e.to_string())?;
        let lock = Lock::new().map_err(|e| e.to_string())?;
        let go = Event::new().map_err(|e| e.to_string())?;
        let mut kids = Vec::new();
        for _ in 0..2 {
            let (v, l, go) = (value.clone(), lock.clone(), go.clone());
            let k = Builder::new().fork_target(move || {
                go.wait();
                for _ in 0..count {
                    if plain_lock {
                        let _g = l.lock().map_err(|e| e.to_string())?;
                        v.set(v.get() + 1);
                    } else {
                        let _g = v
                            .get_lock()
                            .ok_or("no lock")?
                            .lock()
                            .map_err(|e| e.to_string())?;
                        v.set(v.get() + 1);
                    }
                }
                Ok::<(), String>(())
            });
            k.start().map_err(|e| e.to_string())?;
            kids.push(k);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
        let t0 = Instant::now();
        go.set();
        for k in kids {
            k.join().map_err(|e| e.to_string())??;
        }
        let took = t0.elapsed();
        if value.get() != 2 * count {
            return Err(format!("lost increments: {}", value.get()));
        }
        Ok(took)
    })
}
