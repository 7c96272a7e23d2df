#!/usr/bin/env python3
"""What a commit's write pattern costs at fdatasync on this disk.

Usage: python3 sync_patterns.py [DIR] (default: target/rivet-bench/db). Writes a 550 MiB
scratch file in DIR, then prints median fdatasync times for: N scattered 4 KiB pages vs N
contiguous pages; a single-key commit's data pages as Rivet writes them (a 3-page run plus 3
scattered pages) vs LMDB's (5 scattered pages), each followed by a synced meta-page write;
and the same two patterns again while the whole file is mapped and read through the map.
The numbers behind BENCHMARKS.md's "what the measurements show" column.
"""
import mmap
import os
import random
import statistics
import sys
import time

DIR = sys.argv[1] if len(sys.argv) > 1 else "target/rivet-bench/db"
SIZE = 550 << 20
PAGE = 4096
os.makedirs(DIR, exist_ok=True)
path = os.path.join(DIR, "sync-patterns.scratch")
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
if os.fstat(fd).st_size < SIZE:
    chunk = os.urandom(1 << 20)
    for i in range(SIZE >> 20):
        os.pwrite(fd, chunk, i << 20)
    os.fsync(fd)
npages = SIZE // PAGE
page = os.urandom(PAGE)


def median_sync(write, reps):
    times = []
    for _ in range(reps):
        write()
        t = time.perf_counter()
        os.fdatasync(fd)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


print(f"disk under test: {DIR}")
for n in (1, 6, 32, 200, 1600):
    reps = 5 if n >= 200 else 50
    scattered = median_sync(
        lambda: [os.pwrite(fd, page, o * PAGE) for o in sorted(random.sample(range(npages), n))],
        reps,
    )
    start = random.randrange(npages - n)
    contiguous = median_sync(lambda: os.pwrite(fd, page * n, start * PAGE), reps)
    print(f"{n:5} pages: scattered {scattered:9.0f} us   contiguous {contiguous:9.0f} us")


def commit(data_writes):
    def run():
        data_writes()
        t = time.perf_counter()
        os.fdatasync(fd)
        d = time.perf_counter() - t
        os.pwrite(fd, page, PAGE)  # the meta page
        os.fdatasync(fd)
        return d
    return run


rivet_like = commit(lambda: (os.pwrite(fd, page * 3, 5 * PAGE),
                             [os.pwrite(fd, page, o * PAGE)
                              for o in sorted(random.sample(range(10, npages), 3))]))
lmdb_like = commit(lambda: (os.pwrite(fd, page, 4 * PAGE),
                            [os.pwrite(fd, page, o * PAGE)
                             for o in sorted(random.sample(range(10, npages), 4))]))


def report(label):
    for name, f in (("3-page run + 3 scattered (Rivet)", rivet_like),
                    ("5 scattered (LMDB)", lmdb_like)):
        d = statistics.median(f() for _ in range(300)) * 1e6
        print(f"{label}: data sync of {name}: {d:.0f} us")


report("unmapped")
m = mmap.mmap(fd, SIZE, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
sum(m[i] for i in range(0, SIZE, PAGE))  # populate every page table entry
report("mapped  ")
m.close()
os.close(fd)
os.remove(path)
