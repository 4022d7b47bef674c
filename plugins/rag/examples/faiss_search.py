"""The Python side of the Faiss benchmark (`cargo xtask bench --only faiss`):
the same work as `faiss_search.rs` beside it, with the Python `faiss`
package, opening the index the way the AgentFlow Python server's rag backend
does (memory-mapped and read-only, falling back to reading it).

Usage: faiss_search.py INDEX QUERIES.f32 WARM.f32 K FIRST COUNT LABELS_OUT

Prints one JSON line with the same fields as faiss_search.rs.
"""
import json
import sys
import time

import faiss
import numpy as np


def memory(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def main():
    index_path, queries_path, warm_path = sys.argv[1:4]
    k, first, count = (int(a) for a in sys.argv[4:7])
    labels_out = sys.argv[7]
    rss_before = memory("VmRSS:")
    started = time.perf_counter()
    mapped = True
    try:
        index = faiss.read_index(index_path, faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError:
        mapped = False
        index = faiss.read_index(index_path)
    open_seconds = time.perf_counter() - started
    rss_open = memory("VmRSS:")
    queries = np.fromfile(queries_path, dtype="<f4").reshape(-1, index.d)
    warm = np.fromfile(warm_path, dtype="<f4").reshape(-1, index.d)
    for i in range(len(warm)):
        index.search(warm[i : i + 1], k)
    latencies_us = []
    labels = np.empty((count, k), dtype="<i8")
    for i in range(count):
        query = queries[first + i : first + i + 1]
        started = time.perf_counter()
        _, found = index.search(query, k)
        latencies_us.append((time.perf_counter() - started) * 1e6)
        labels[i] = found[0]
    labels.tofile(labels_out)
    print(
        json.dumps(
            {
                "kind": type(faiss.downcast_index(index)).__name__,
                "vectors": index.ntotal,
                "dims": index.d,
                "mmap_flag": mapped,
                "open_seconds": open_seconds,
                "latencies_us": latencies_us,
                "rss_before_kib": rss_before,
                "rss_after_open_kib": rss_open,
                "rss_kib": memory("VmRSS:"),
                "peak_rss_kib": memory("VmHWM:"),
                "faiss_version": faiss.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
