"""CPython's asyncio (and a 100-thread ThreadPoolExecutor) on the scoreboard's asyncio rows.

Usage: python3 cpython_asyncio.py WORKLOAD ARGS...

  sleepers-time N MS REPS WARMUP MODE
      N tasks each sleeping MS milliseconds, all at once; one wall time per repetition.
      MODE: `tasks` (asyncio.gather of N create_task'ed coroutines) or `threads100`
      (a ThreadPoolExecutor(100) mapping time.sleep over N items, 100 at a time).
  sleepers-memory N MS MODE
      The same once, in this fresh interpreter: the peak resident memory it adds (VmHWM after,
      reset to the current VmRSS just before, through /proc/self/clear_refs).
  gather N REPS WARMUP
      asyncio.gather of N trivial coroutines (each returns its index), as Python wraps them:
      one task each; the sum is checked.
  run-in-executor N REPS WARMUP WORKERS KIND
      N times `await loop.run_in_executor(executor, square, i)`, one at a time, on a
      ThreadPoolExecutor (KIND `thread`) or a fork ProcessPoolExecutor (`process`) of WORKERS.

Prints one line of JSON: {"workload": ..., "python": "3.11.2", "times_s": [...]} or, for
memory, {"bytes": [...]}. `spindle bench` embeds this file and runs it with `python3 -c`.
"""

import asyncio
import json
import multiprocessing
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor


def square(x):
    return x * x


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError("no " + field)


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


async def sleep_tasks(n, secs):
    tasks = [asyncio.create_task(asyncio.sleep(secs)) for _ in range(n)]
    await asyncio.gather(*tasks)


def sleep_threads(n, secs):
    with ThreadPoolExecutor(max_workers=100) as ex:
        list(ex.map(time.sleep, [secs] * n))


def sleepers_time(n, ms, reps, warmup, mode):
    secs = ms / 1000.0
    times = []
    for rep in range(warmup + reps):
        start = time.perf_counter()
        if mode == "tasks":
            asyncio.run(sleep_tasks(n, secs))
        else:
            sleep_threads(n, secs)
        took = time.perf_counter() - start
        if rep >= warmup:
            times.append(took)
    return {"times_s": times}


def sleepers_memory(n, ms, mode):
    secs = ms / 1000.0

    async def measured():
        before = status_kib("VmRSS")
        reset_peak()
        await sleep_tasks(n, secs)
        return status_kib("VmHWM") - before

    if mode == "tasks":
        added = asyncio.run(measured())
    else:
        before = status_kib("VmRSS")
        reset_peak()
        sleep_threads(n, secs)
        added = status_kib("VmHWM") - before
    return {"bytes": [max(added, 0) * 1024]}


async def trivial(i):
    return i


def gather(n, reps, warmup):
    async def once():
        return sum(await asyncio.gather(*(trivial(i) for i in range(n))))

    expected = n * (n - 1) // 2
    times = []
    for rep in range(warmup + reps):

        async def timed():
            start = time.perf_counter()
            got = await once()
            return got, time.perf_counter() - start

        got, took = asyncio.run(timed())
        if got != expected:
            raise RuntimeError(f"wrong sum {got} != {expected}")
        if rep >= warmup:
            times.append(took)
    return {"times_s": times}


def run_in_executor(n, reps, warmup, workers, kind):
    if kind == "thread":
        ex = ThreadPoolExecutor(max_workers=workers)
    else:
        ex = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
    expected = sum(i * i for i in range(n))

    async def once():
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        total = 0
        for i in range(n):
            total += await loop.run_in_executor(ex, square, i)
        return total, time.perf_counter() - start

    times = []
    with ex:
        for rep in range(warmup + reps):
            got, took = asyncio.run(once())
            if got != expected:
                raise RuntimeError(f"wrong sum {got} != {expected}")
            if rep >= warmup:
                times.append(took)
    return {"times_s": times}


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    w, a = argv[1], argv[2:]
    try:
        if w == "sleepers-time" and len(a) == 5:
            out = sleepers_time(int(a[0]), int(a[1]), int(a[2]), int(a[3]), a[4])
        elif w == "sleepers-memory" and len(a) == 3:
            out = sleepers_memory(int(a[0]), int(a[1]), a[2])
        elif w == "gather" and len(a) == 3:
            out = gather(int(a[0]), int(a[1]), int(a[2]))
        elif w == "run-in-executor" and len(a) == 5:
            out = run_in_executor(int(a[0]), int(a[1]), int(a[2]), int(a[3]), a[4])
        else:
            sys.stderr.write(__doc__)
            return 2
    except ValueError as e:
        sys.stderr.write(f"bad argument: {e}\n")
        return 2
    out["workload"] = w
    out["python"] = platform.python_version()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
