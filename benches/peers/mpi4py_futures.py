"""mpi4py.futures' rows of the MPI scoreboard (benches/mpi_board.rs), on the same sizes and
task as spindle's. Run as ``mpiexec -n 3 python -m mpi4py.futures THIS REPS``: rank 0 runs this
file with ``MPIPoolExecutor`` over the 2 other ranks. Prints ``ROW name ns-per-task``."""

import sys
import time

from mpi4py.futures import MPIPoolExecutor

N = 100_000
# mpi4py.futures moves a task one by one at ~5,000/s: 100,000 would take ~20 s per row.
N_SINGLE = 10_000
TRIPS = 2_000


def square(n):
    return n * n


def row(name, seconds, ops):
    print(f"ROW {name} {seconds / ops * 1e9:.1f}", flush=True)


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with MPIPoolExecutor() as ex:
        sum(ex.map(square, range(1000), chunksize=100))
        for _ in range(reps):
            t = time.perf_counter()
            fs = [ex.submit(square, i) for i in range(N_SINGLE)]
            total = sum(f.result() for f in fs)
            row("mpi4py.submit", time.perf_counter() - t, N_SINGLE)
            assert total == sum(i * i for i in range(N_SINGLE))

            t = time.perf_counter()
            total = sum(ex.map(square, range(N_SINGLE), chunksize=1))
            row("mpi4py.map.c1", time.perf_counter() - t, N_SINGLE)

            t = time.perf_counter()
            total = sum(ex.map(square, range(N), chunksize=1000))
            row("mpi4py.map.c1000", time.perf_counter() - t, N)
            assert total == sum(i * i for i in range(N))

            t = time.perf_counter()
            for i in range(TRIPS):
                assert ex.submit(square, i).result() == i * i
            row("mpi4py.round_trip", time.perf_counter() - t, TRIPS)


if __name__ == "__main__":
    main()
