# CPython's side of the tour's exchange sections: the same exchange, measured here and now.
# Usage: python3 -c SCRIPT queue N | pipe N | shared N WORKERS ; prints the seconds taken.
import multiprocessing as mp
import sys
import time


def producer(q, n):
    for i in range(n):
        q.put(("item", i))
    q.put(None)


def consumer(q, out):
    total = 0
    while True:
        item = q.get()
        if item is None:
            break
        total += item[1]
    out.put(total)


def ponger(conn):
    while True:
        msg = conn.recv()
        if msg == "stop":
            return
        conn.send(msg.replace("ping", "pong"))


def worker(arr, lo, hi, total):
    s = sum(arr[lo:hi])
    with total.get_lock():
        total.value += s


def main(mode, n, workers=4):
    ctx = mp.get_context("fork")
    t0 = time.perf_counter()
    if mode == "queue":
        q, out = ctx.Queue(), ctx.Queue()
        c = ctx.Process(target=consumer, args=(q, out))
        p = ctx.Process(target=producer, args=(q, n))
        c.start(); p.start()
        p.join()
        total = out.get()
        c.join()
        assert total == n * (n - 1) // 2
    elif mode == "pipe":
        parent, child = ctx.Pipe()
        p = ctx.Process(target=ponger, args=(child,))
        p.start()
        for i in range(n):
            parent.send(f"ping {i}")
            assert parent.recv() == f"pong {i}"
        parent.send("stop")
        p.join()
    else:
        arr = ctx.Array("q", range(n), lock=False)
        total = ctx.Value("q", 0)
        ws = [ctx.Process(target=worker, args=(arr, k * n // workers, (k + 1) * n // workers, total))
              for k in range(workers)]
        for w in ws: w.start()
        for w in ws: w.join()
        assert total.value == n * (n - 1) // 2
    print(time.perf_counter() - t0)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *(int(a) for a in sys.argv[3:]))
