"""CPython's multiprocessing exchange and sharing on the scoreboard's IPC workloads.

Usage: python3 cpython_ipc.py stream KIND SIZE COUNT PRODUCERS CONSUMERS REPS WARMUP
       python3 cpython_ipc.py pingpong KIND COUNT REPS WARMUP
       python3 cpython_ipc.py shm MIB REPS
       python3 cpython_ipc.py lock COUNT REPS

stream    KIND is queue, simplequeue or pipe (pipe: 1 producer, 1 consumer). Each repetition
          starts PRODUCERS and CONSUMERS children (fork), which wait on an Event; the timed
          part sets it and ends when every consumer has reported how many bytes-sized
          messages it took (COUNT messages of SIZE bytes in all; a consumer stops at a None
          per producer... for pipe at COUNT). Prints the time per repetition.
pingpong  KIND is pipe (one duplex Pipe) or queues (two Queues): COUNT round trips of a small
          int with one child, timed after the child is running.
shm       `shared_memory.SharedMemory` of MIB MiB: the time to fill a fresh segment (first
          touch), to fill it again (pages faulted), and to sum it as 64-bit integers
          (memoryview.cast("Q")); prints {"first_touch_s", "fill_s", "sum_s"} medians' inputs.
lock      a `multiprocessing.Value("q")` incremented COUNT times under its lock by each of 2
          children (fork), timed from an Event to both joined; checks 2*COUNT.

Prints one line of JSON on stdout, with the interpreter's version.
"""

import json
import multiprocessing as mp
import platform
import sys
import time


def producer(q, go, size, count, kind):
    payload = b"x" * size
    go.wait()
    if kind == "pipe":
        for _ in range(count):
            q.send_bytes(payload)
        return
    for _ in range(count):
        q.put(payload)


def consumer(q, go, kind, count, done):
    go.wait()
    got = 0
    if kind == "pipe":
        for _ in range(count):
            got += len(q.recv_bytes())
    else:
        while True:
            item = q.get()
            if item is None:
                break
            got += len(item)
    done.put(got)


def stream(kind, size, count, producers, consumers, reps, warmup):
    ctx = mp.get_context("fork")
    times = []
    per_producer = count // producers
    for rep in range(warmup + reps):
        go = ctx.Event()
        done = ctx.SimpleQueue()
        q = None
        if kind == "pipe":
            r, w = ctx.Pipe(duplex=False)
            prods = [ctx.Process(target=producer, args=(w, go, size, count, kind))]
            cons = [ctx.Process(target=consumer, args=(r, go, kind, count, done))]
        else:
            q = ctx.Queue() if kind == "queue" else ctx.SimpleQueue()
            prods = [ctx.Process(target=producer, args=(q, go, size, per_producer, kind))
                     for _ in range(producers)]
            cons = [ctx.Process(target=consumer, args=(q, go, kind, 0, done))
                    for _ in range(consumers)]
        for p in prods + cons:
            p.start()
        t0 = time.perf_counter()
        go.set()
        if q is not None:
            # Every item is in before the ends: one None per consumer after the producers.
            for p in prods:
                p.join()
            for _ in cons:
                q.put(None)
        total = sum(done.get() for _ in cons)
        took = time.perf_counter() - t0
        for p in prods + cons:
            p.join()
        expect = size * (count if kind == "pipe" else per_producer * producers)
        if total != expect:
            raise SystemExit(f"consumers took {total} bytes, expected {expect}")
        if rep >= warmup:
            times.append(took)
    return {"times_s": times}


def echo_pipe(conn):
    while True:
        x = conn.recv()
        if x is None:
            return
        conn.send(x + 1)


def echo_queues(inq, outq):
    while True:
        x = inq.get()
        if x is None:
            return
        outq.put(x + 1)


def pingpong(kind, count, reps, warmup):
    ctx = mp.get_context("fork")
    times = []
    if kind == "pipe":
        a, b = ctx.Pipe()
        p = ctx.Process(target=echo_pipe, args=(b,))
        send, recv = a.send, a.recv
    else:
        inq, outq = ctx.Queue(), ctx.Queue()
        p = ctx.Process(target=echo_queues, args=(inq, outq))
        send, recv = inq.put, outq.get
    p.start()
    send(0)
    recv()
    for rep in range(warmup + reps):
        t0 = time.perf_counter()
        for i in range(count):
            send(i)
            if recv() != i + 1:
                raise SystemExit("wrong echo")
        took = time.perf_counter() - t0
        if rep >= warmup:
            times.append(took)
    send(None)
    p.join()
    return {"times_s": times}


def shm(mib, reps):
    from multiprocessing import shared_memory
    size = mib << 20
    chunk = b"\x01" * (1 << 20)
    first, fill, summ = [], [], []
    for _ in range(reps):
        seg = shared_memory.SharedMemory(create=True, size=size)
        try:
            buf = seg.buf
            for phase in (first, fill):
                t0 = time.perf_counter()
                for off in range(0, size, 1 << 20):
                    buf[off:off + (1 << 20)] = chunk
                phase.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            view = buf.cast("Q")
            total = sum(view)
            summ.append(time.perf_counter() - t0)
            view.release()
            del buf
            if total != (size // 8) * 0x0101010101010101:
                raise SystemExit("wrong sum")
        finally:
            seg.close()
            seg.unlink()
    return {"first_touch_s": first, "fill_s": fill, "sum_s": summ}


def increment(v, go, count):
    go.wait()
    for _ in range(count):
        with v.get_lock():
            v.value += 1


def lock(count, reps):
    ctx = mp.get_context("fork")
    times = []
    for _ in range(reps):
        v = ctx.Value("q", 0)
        go = ctx.Event()
        kids = [ctx.Process(target=increment, args=(v, go, count)) for _ in range(2)]
        for k in kids:
            k.start()
        t0 = time.perf_counter()
        go.set()
        for k in kids:
            k.join()
        times.append(time.perf_counter() - t0)
        if v.value != 2 * count:
            raise SystemExit("lost increments")
    return {"times_s": times}


def main(argv):
    try:
        mode, args = argv[1], [int(a) if a.isdigit() else a for a in argv[2:]]
        if mode == "stream" and len(args) == 7:
            out = stream(*args)
        elif mode == "pingpong" and len(args) == 4:
            out = pingpong(*args)
        elif mode == "shm" and len(args) == 2:
            out = shm(*args)
        elif mode == "lock" and len(args) == 2:
            out = lock(*args)
        else:
            raise ValueError("unknown mode or wrong number of arguments")
    except (IndexError, ValueError, TypeError) as e:
        sys.stderr.write(f"{__doc__}\nerror: {e}\n")
        return 2
    out["python"] = platform.python_version()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
