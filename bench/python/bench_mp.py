#!/usr/bin/env python3
"""forklab-bench, Python side: the benchmark's operations in `multiprocessing`
(fork start method), printing JSON.

    python3 bench_mp.py [--quick] [--runs N] [--only lock,pool_cpu]
        prints {"python": VERSION, "results": {"lock": [v1, v2, ...], ...}}
    python3 bench_mp.py --serve [--quick]
        what `cargo run --release -p forklab-bench` uses: prints {"python": VERSION},
        then for each row key read on stdin prints one line
        {"op": KEY, "value": V} or {"op": KEY, "error": MESSAGE}.

Units as in the Rust table: spawn and pipe_rtt in microseconds per operation,
pipe_64k in MiB/s, queues in messages/s, lock in operations/s, array_fill in
elements/s, pool_tiny in tasks/s, pool_cpu as a speed-up (serial time / pool time).
Rows marked pinned run their two processes one per CPU (os.sched_setaffinity),
as the Rust side does. Children wait at a start gate (a pipe closed by the parent),
so the timed section does not include the forks that set a row up.
"""

import json
import multiprocessing
import os
import sys
import time

ctx = multiprocessing.get_context("fork")

NCPU = len(os.sched_getaffinity(0))
ALL_CPUS = set(range(os.cpu_count() or 1)) & os.sched_getaffinity(0) or {0}

SMALL = 16
BIG = 64 * 1024

# Python's counts are smaller than Rust's on the slow rows: every row is a rate or a
# time per operation, so the counts do not enter the ratios.
FULL = dict(spawns=100, round_trips=5000, big_messages=500, queue_messages=20000,
            increments=100000, array_len=10_000_000, tiny_tasks=100_000, cpu_tasks=48)
QUICK = dict(spawns=20, round_trips=1000, big_messages=200, queue_messages=5000,
             increments=20000, array_len=2_000_000, tiny_tasks=100_000, cpu_tasks=16)

CPU_ROUNDS = 60_000


def pin(cpu):
    os.sched_setaffinity(0, {sorted(ALL_CPUS)[cpu % len(ALL_CPUS)]})


def unpin():
    os.sched_setaffinity(0, ALL_CPUS)


def noop():
    pass


def tiny(x):
    return x * x


def cpu_task(seed):
    x = seed
    for _ in range(CPU_ROUNDS):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
    return x


class Gate:
    """Children wait in `wait()` until the parent calls `open()`."""

    def __init__(self):
        self.r, self.w = os.pipe()

    def wait(self):  # in a child
        os.close(self.w)
        os.read(self.r, 1)

    def open(self):  # in the parent, after starting the children
        os.close(self.r)
        os.close(self.w)


def gated(cpu, gate, work, *args):
    pin(cpu)
    gate.wait()
    work(*args)


def run_gated(jobs):
    """jobs: list of (cpu, work, args). Returns the time from opening the gate until
    every child is joined."""
    gate = Gate()
    procs = [ctx.Process(target=gated, args=(cpu, gate, work) + tuple(args))
             for cpu, work, args in jobs]
    for p in procs:
        p.start()
    start = time.perf_counter()
    gate.open()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - start
    bad = [p.exitcode for p in procs if p.exitcode != 0]
    if bad:
        raise RuntimeError(f"child exit codes {bad}")
    return elapsed


def spawn(s):
    n = s["spawns"]
    start = time.perf_counter()
    for _ in range(n):
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"exit code {p.exitcode}")
    return (time.perf_counter() - start) * 1e6 / n


def echo(conn, other):
    other.close()
    while True:
        msg = conn.recv()
        if msg is None:
            break
        conn.send(msg)


def pipe_rtt(s):
    n = s["round_trips"]
    ours, theirs = ctx.Pipe()
    gate = Gate()
    p = ctx.Process(target=gated, args=(1, gate, echo, theirs, ours))
    p.start()
    theirs.close()
    pin(0)
    try:
        gate.open()
        msg = bytes(SMALL)
        ours.send(msg)
        ours.recv()  # warm-up: the child is running
        start = time.perf_counter()
        for _ in range(n):
            ours.send(msg)
            msg = ours.recv()
        elapsed = time.perf_counter() - start
        ours.send(None)
    finally:
        unpin()
    p.join()
    return elapsed * 1e6 / n


def write_big(w, r, n):
    r.close()
    msg = b"\x5a" * BIG
    for _ in range(n):
        w.send(msg)


def pipe_64k(s):
    n = s["big_messages"]
    r, w = ctx.Pipe(duplex=False)
    gate = Gate()
    p = ctx.Process(target=gated, args=(1, gate, write_big, w, r, n))
    p.start()
    w.close()
    pin(0)
    try:
        gate.open()
        got = 1
        msg = r.recv()
        start = time.perf_counter()
        for _ in range(n - 1):
            msg = r.recv()
            got += 1
        elapsed = time.perf_counter() - start
    finally:
        unpin()
    p.join()
    if got != n or len(msg) != BIG:
        raise RuntimeError(f"received {got} of {n}")
    return (n - 1) * BIG / elapsed / (1024 * 1024)


def produce(q, i, n):
    for seq in range(n):
        q.put((i, seq))


def consume(q, results, j):
    count = total = 0
    while True:
        item = q.get()
        if item is None:
            break
        count += 1
        total += item[1]
    results[2 * j] = count
    results[2 * j + 1] = total


def queue(s, producers, consumers):
    n = s["queue_messages"]
    q = ctx.Queue()
    results = ctx.RawArray("q", 2 * consumers)
    gate = Gate()
    prods = [ctx.Process(target=gated, args=(i, gate, produce, q, i, n)) for i in range(producers)]
    cons = [ctx.Process(target=gated, args=(j, gate, consume, q, results, j))
            for j in range(consumers)]
    for p in prods + cons:
        p.start()
    start = time.perf_counter()
    gate.open()
    for p in prods:
        p.join()
    for _ in range(consumers):
        q.put(None)
    for p in cons:
        p.join()
    elapsed = time.perf_counter() - start
    got = sum(results[0::2])
    want_sum = producers * n * (n - 1) // 2
    if got != producers * n or sum(results[1::2]) != want_sum:
        raise RuntimeError(f"received {got} of {producers * n}")
    return producers * n / elapsed


def increment(lock, counter, k):
    for _ in range(k):
        with lock:
            counter.value += 1


def lock(s):
    k = s["increments"]
    lk = ctx.Lock()
    counter = ctx.RawValue("q", 0)
    elapsed = run_gated([(0, increment, (lk, counter, k)), (1, increment, (lk, counter, k))])
    if counter.value != 2 * k:
        raise RuntimeError(f"count {counter.value}, expected {2 * k}")
    return 2 * k / elapsed


def fill(arr, lo, hi):
    for k in range(lo, hi):
        arr[k] = float(k)


def array_fill(s):
    n = s["array_len"]
    arr = ctx.RawArray("d", n)
    elapsed = run_gated([(i, fill, (arr, i * n // 2, (i + 1) * n // 2)) for i in range(2)])
    # A spot check every 1000 elements: a full check in Python takes longer than the fill.
    if any(arr[k] != float(k) for k in range(0, n, 1000)) or arr[n - 1] != float(n - 1):
        raise RuntimeError("wrong array contents")
    return n / elapsed


def pool_tiny(s):
    items = range(s["tiny_tasks"])
    with ctx.Pool(2) as pool:
        start = time.perf_counter()
        out = pool.map(tiny, items)
        elapsed = time.perf_counter() - start
    if out != [tiny(x) for x in items]:
        raise RuntimeError("wrong results")
    return len(items) / elapsed


def pool_cpu(s):
    items = list(range(s["cpu_tasks"]))
    with ctx.Pool(2) as pool:
        start = time.perf_counter()
        out = pool.map(cpu_task, items)
        parallel = time.perf_counter() - start
    start = time.perf_counter()
    serial = [cpu_task(x) for x in items]
    serial_time = time.perf_counter() - start
    if out != serial:
        raise RuntimeError("wrong results")
    return serial_time / parallel


OPS = {
    "spawn": spawn,
    "pipe_rtt": pipe_rtt,
    "pipe_64k": pipe_64k,
    "queue_1_1": lambda s: queue(s, 1, 1),
    "queue_2_2": lambda s: queue(s, 2, 2),
    "lock": lock,
    "array_fill": array_fill,
    "pool_tiny": pool_tiny,
    "pool_cpu": pool_cpu,
}


def measure(key, sizes):
    try:
        return {"op": key, "value": OPS[key](sizes)}
    except Exception as e:  # reported to the Rust side, which shows the row as failed
        return {"op": key, "error": f"{type(e).__name__}: {e}"}
    finally:
        unpin()


def main(argv):
    sizes = QUICK if "--quick" in argv else FULL
    version = sys.version.split()[0]
    if "--serve" in argv:
        print(json.dumps({"python": version}), flush=True)
        for line in sys.stdin:
            key = line.strip()
            if key:
                print(json.dumps(measure(key, sizes)), flush=True)
        return 0
    runs = int(argv[argv.index("--runs") + 1]) if "--runs" in argv else 3
    keys = argv[argv.index("--only") + 1].split(",") if "--only" in argv else list(OPS)
    results = {key: [] for key in keys}
    errors = {}
    for _ in range(runs):
        for key in keys:
            answer = measure(key, sizes)
            if "value" in answer:
                results[key].append(answer["value"])
            else:
                errors[key] = answer["error"]
    print(json.dumps({"python": version, "sizes": sizes, "results": results, "errors": errors},
                     indent=1))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
