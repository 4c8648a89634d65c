"""CPython's concurrent.futures.ThreadPoolExecutor on the scoreboard's workloads.

Usage: python3 cpython_futures.py WORKLOAD N REPS WARMUP WORKERS

WORKLOAD is one of
  round-trip  N times: executor.submit(square, i).result()
  map         sum(executor.map(square, range(N)))

One executor with WORKERS threads serves every repetition. WARMUP untimed repetitions run
first (they also start the executor's threads, which CPython creates lazily), then REPS timed
ones. Prints one line of JSON on stdout:

  {"workload": "map", "n": 10000, "workers": 2, "python": "3.11.7", "times_s": [0.11, ...]}

`spindle bench` runs this file (embedded in the binary) with `python3 -c`, so that it works
from any directory; it can also be run by hand.
"""

import json
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def square(x):
    return x * x


def round_trip(executor, n):
    total = 0
    for i in range(n):
        total += executor.submit(square, i).result()
    return total


def map_squares(executor, n):
    return sum(executor.map(square, range(n)))


WORKLOADS = {"round-trip": round_trip, "map": map_squares}


def main(argv):
    if len(argv) != 6 or argv[1] not in WORKLOADS:
        sys.stderr.write(__doc__)
        return 2
    try:
        n, reps, warmup, workers = (int(a) for a in argv[2:])
    except ValueError:
        sys.stderr.write("N, REPS, WARMUP and WORKERS must be integers\n")
        return 2
    if n < 1 or reps < 1 or warmup < 0 or workers < 1:
        sys.stderr.write("N, REPS and WORKERS must be at least 1, WARMUP at least 0\n")
        return 2
    run = WORKLOADS[argv[1]]
    expected = sum(i * i for i in range(n))
    times = []
    with ThreadPoolExecutor(max_workers=workers) as executor:
        for rep in range(warmup + reps):
            start = time.perf_counter()
            got = run(executor, n)
            took = time.perf_counter() - start
            if got != expected:
                sys.stderr.write(f"wrong result: {got} != {expected}\n")
                return 1
            if rep >= warmup:
                times.append(took)
    print(json.dumps({
        "workload": argv[1],
        "n": n,
        "workers": workers,
        "python": platform.python_version(),
        "times_s": times,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
