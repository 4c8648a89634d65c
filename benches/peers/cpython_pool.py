"""CPython's multiprocessing.Pool and ProcessPoolExecutor on the scoreboard's pool workloads.

Usage: python3 cpython_pool.py MODE METHOD ARGS...

  map METHOD N CHUNK REPS WARMUP WORKERS      Pool.map(square, range(N), chunksize=CHUNK)
                                              (CHUNK 0: Pool's default), one time per rep
  ppe-map METHOD N CHUNK REPS WARMUP WORKERS  ProcessPoolExecutor.map(square, range(N),
                                              chunksize=CHUNK), consumed in order
  submit METHOD N REPS WARMUP WORKERS         N times executor.submit(square, i), then
                                              wait for all
  apply METHOD N REPS WARMUP WORKERS          N times pool.apply(square, (i,))
  result METHOD N REPS WARMUP WORKERS         N times executor.submit(square, i).result()
  first METHOD REPS                           Pool(2, context) built, then apply(square, (1,)),
                                              one time per rep (the pool is terminated after)
  cpu METHOD TASKS REPS WORKERS               TASKS calls of a ~100 ms CPU-bound function with
                                              Pool.map, chunksize 1
  io METHOD REPS                              Pool(10).map(sleep 0.2 s, range(50)), default
                                              chunksize: the notes' I/O case
  kill METHOD REPS                            a ProcessPoolExecutor task running; SIGKILL of its
                                              worker; time until its future raises
                                              (BrokenProcessPool). Pool never reports it.
  memory METHOD                               in this fresh process: Pool(2, context) with its
                                              workers up; this process's RSS plus each
                                              child's private memory

Prints one line of JSON: {"times_s": [...]} or {"bytes": [...]}, with the version.

The board writes this file to a scratch directory and runs it by path, so that spawn and
forkserver children import it as they would a user's program.
"""

import json
import multiprocessing
import os
import platform
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor, wait


def square(x):
    return x * x


def nap(_):
    time.sleep(0.2)


def sleep_long(_):
    time.sleep(3600)


def whoami(_):
    return os.getpid()


def burn(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def calibrate():
    """The loop length that takes about 100 ms here."""
    n = 100_000
    while True:
        t0 = time.perf_counter()
        burn(n)
        took = time.perf_counter() - t0
        if took > 0.02:
            return int(n * 0.1 / took)
        n *= 2


def private_rss(pid):
    total_kib = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total_kib += int(line.split()[1])
    return total_kib * 1024


def rss(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed_reps(reps, warmup, body):
    times = []
    for rep in range(warmup + reps):
        t0 = time.perf_counter()
        body()
        took = time.perf_counter() - t0
        if rep >= warmup:
            times.append(took)
    return {"times_s": times}


def run(mode, ctx, a):
    if mode == "map":
        n, chunk, reps, warmup, workers = a
        want = sum(i * i for i in range(n))
        with ctx.Pool(workers) as pool:
            def body():
                got = sum(pool.map(square, range(n), chunksize=chunk or None))
                assert got == want
            return timed_reps(reps, warmup, body)
    if mode == "ppe-map":
        n, chunk, reps, warmup, workers = a
        want = sum(i * i for i in range(n))
        with ProcessPoolExecutor(workers, mp_context=ctx) as ex:
            def body():
                got = sum(ex.map(square, range(n), chunksize=max(chunk, 1)))
                assert got == want
            return timed_reps(reps, warmup, body)
    if mode == "submit":
        n, reps, warmup, workers = a
        with ProcessPoolExecutor(workers, mp_context=ctx) as ex:
            def body():
                fs = [ex.submit(square, i) for i in range(n)]
                wait(fs)
                assert sum(f.result() for f in fs) == sum(i * i for i in range(n))
            return timed_reps(reps, warmup, body)
    if mode == "apply":
        n, reps, warmup, workers = a
        with ctx.Pool(workers) as pool:
            def body():
                for i in range(n):
                    assert pool.apply(square, (i,)) == i * i
            return timed_reps(reps, warmup, body)
    if mode == "result":
        n, reps, warmup, workers = a
        with ProcessPoolExecutor(workers, mp_context=ctx) as ex:
            def body():
                for i in range(n):
                    assert ex.submit(square, i).result() == i * i
            return timed_reps(reps, warmup, body)
    if mode == "first":
        (reps,) = a
        times = []
        for rep in range(reps + 1):
            t0 = time.perf_counter()
            pool = ctx.Pool(2)
            assert pool.apply(square, (3,)) == 9
            took = time.perf_counter() - t0
            pool.terminate()
            pool.join()
            if rep >= 1:
                times.append(took)
        return {"times_s": times}
    if mode == "cpu":
        tasks, reps, workers = a
        n = calibrate()
        with ctx.Pool(workers) as pool:
            return timed_reps(reps, 1, lambda: pool.map(burn, [n] * tasks, chunksize=1))
    if mode == "io":
        (reps,) = a
        with ctx.Pool(10) as pool:
            return timed_reps(reps, 1, lambda: pool.map(nap, range(50)))
    if mode == "kill":
        (reps,) = a
        times = []
        for _ in range(reps):
            ex = ProcessPoolExecutor(1, mp_context=ctx)
            pid = ex.submit(whoami, 0).result()
            f = ex.submit(sleep_long, 0)
            time.sleep(0.05)
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            try:
                f.result(timeout=30)
            except Exception:
                pass
            times.append(time.perf_counter() - t0)
            ex.shutdown(wait=True)
        return {"times_s": times}
    if mode == "memory":
        with ctx.Pool(2) as pool:
            pids = set(pool.map(whoami, range(8), chunksize=1))
            time.sleep(0.05)
            total = rss(os.getpid()) + sum(private_rss(p) for p in pids)
        return {"bytes": [total]}
    raise ValueError(f"unknown mode {mode!r}")


def main(argv):
    try:
        mode, method = argv[1], argv[2]
        if method not in multiprocessing.get_all_start_methods():
            raise ValueError(f"unknown start method {method!r}")
        args = [int(x) for x in argv[3:]]
        out = run(mode, multiprocessing.get_context(method), args)
    except (IndexError, ValueError) as e:
        sys.stderr.write(f"{__doc__}\nerror: {e}\n")
        return 2
    out["python"] = platform.python_version()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
