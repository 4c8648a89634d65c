"""CPython's multiprocessing.Process on the scoreboard's process workloads.

Usage: python3 cpython_processes.py start METHOD REPS WARMUP
       python3 cpython_processes.py idle-rss METHOD COUNT
       python3 cpython_processes.py server-rss

METHOD is a start method: fork, spawn or forkserver.

start       WARMUP untimed, then REPS timed starts of an empty task, each
            `ctx.Process(target=empty)`, `start()`, `join()`, timed one by one; the warm-up
            starts what CPython starts once (the fork server, the resource tracker).
idle-rss    COUNT times: start a child whose target sets an Event and then sleeps, wait for
            the event, let it settle for 50 ms, read the child's private memory
            (Private_Clean + Private_Dirty of /proc/PID/smaps_rollup), kill and join it.
server-rss  start and join one empty forkserver child (so that the server runs), let it
            settle, then read the private memory of the fork server process once.

Prints one line of JSON on stdout, {"times_s": [...]} or {"bytes": [...]}, with the
interpreter's version.

`spindle bench` writes this file (embedded in its binary) to a temporary directory and runs it
by path, so that spawn and forkserver children import it to find `empty`, as they would
import a user's program.
"""

import json
import multiprocessing
import platform
import sys
import time

SETTLE_S = 0.05


def empty():
    pass


def idle(ready):
    ready.set()
    time.sleep(3600)


def private_rss(pid):
    total_kib = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total_kib += int(line.split()[1])
    return total_kib * 1024


def start(ctx, reps, warmup):
    times = []
    for rep in range(warmup + reps):
        t0 = time.perf_counter()
        p = ctx.Process(target=empty)
        p.start()
        p.join()
        took = time.perf_counter() - t0
        if p.exitcode != 0:
            raise SystemExit(f"the empty child exited with {p.exitcode}")
        if rep >= warmup:
            times.append(took)
    return {"times_s": times}


def idle_rss(ctx, count):
    sizes = []
    for _ in range(count):
        ready = ctx.Event()
        p = ctx.Process(target=idle, args=(ready,), daemon=True)
        p.start()
        try:
            if not ready.wait(30):
                raise SystemExit("the idle child did not start within 30 s")
            time.sleep(SETTLE_S)
            sizes.append(private_rss(p.pid))
        finally:
            p.kill()
            p.join()
    return {"bytes": sizes}


def server_rss():
    ctx = multiprocessing.get_context("forkserver")
    p = ctx.Process(target=empty)
    p.start()
    p.join()
    from multiprocessing import forkserver
    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    if pid is None:
        raise SystemExit("no fork server pid (a CPython without forkserver._forkserver_pid)")
    time.sleep(SETTLE_S)
    return {"bytes": [private_rss(pid)]}


def main(argv):
    try:
        mode = argv[1]
        if mode == "server-rss" and len(argv) == 2:
            out = server_rss()
        elif mode in ("start", "idle-rss"):
            method = argv[2]
            if method not in multiprocessing.get_all_start_methods():
                raise ValueError(f"unknown start method {method!r}")
            ctx = multiprocessing.get_context(method)
            if mode == "start" and len(argv) == 5:
                reps, warmup = int(argv[3]), int(argv[4])
                if reps < 1 or warmup < 0:
                    raise ValueError("REPS must be at least 1, WARMUP at least 0")
                out = start(ctx, reps, warmup)
            elif mode == "idle-rss" and len(argv) == 4:
                count = int(argv[3])
                if count < 1:
                    raise ValueError("COUNT must be at least 1")
                out = idle_rss(ctx, count)
            else:
                raise ValueError("wrong number of arguments")
        else:
            raise ValueError("unknown mode")
    except (IndexError, ValueError) as e:
        sys.stderr.write(f"{__doc__}\nerror: {e}\n")
        return 2
    out["python"] = platform.python_version()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
