"""Makes the data of the Faiss benchmark (`cargo xtask bench --only faiss`):
N synthetic unit vectors of 384 dimensions (seeded numpy, so every run and
machine gets the same ones), written by the Python `faiss` package as
IndexFlatIP, IndexHNSWFlat and IndexIVFFlat files, a smaller IndexFlatIP of
the first N/10 vectors, and query vectors from the same distribution.

Usage: faiss_bench_data.py DIR N

Nothing is redone when DIR/manifest.json already describes these parameters
(the benchmark keeps DIR under the target directory, so a second run reuses
it). The manifest records how long each index took to build.

The vectors are clustered, not uniform on the sphere: each is a random one of
1024 unit centres plus Gaussian noise, normalised (cosine to its centre about
0.6, like the spread of sentence embeddings around a topic). Uniform random
vectors in 384 dimensions have no neighbourhood structure at all, which no
real embedding set looks like and which makes HNSW and IVF meaningless.
"""
import json
import os
import sys
import time

import faiss
import numpy as np

DIMS = 384
SEED = 20261203
CENTRES = 1024
# Noise per coordinate: |noise| is about 1.33, so cos(vector, centre) is about 0.6.
NOISE = 1.33 / np.sqrt(DIMS)
QUERIES = 1000
WARM_QUERIES = 20
# HNSW: M = 16 links per node and faiss's default efConstruction of 40, the
# cheapest usual setting: 1M x 384 took 11 minutes on the 2-core machine of
# BENCHMARKS.md while other builds ran (on a 100k sample M = 32 took 2.2x as
# long, efConstruction 64 2.7x); efSearch 64 is stored in the file.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 64
# IVF: about sqrt(N) lists, trained on 64 vectors per list; 16 probed per query.
IVF_NLIST = 1024
IVF_TRAIN = 64 * IVF_NLIST
IVF_NPROBE = 16
CHUNK = 100_000
# Bumped whenever anything above changes, so old caches are not reused.
VERSION = 1


def params(n):
    return {
        "version": VERSION,
        "vectors": n,
        "dims": DIMS,
        "seed": SEED,
        "centres": CENTRES,
        "queries": QUERIES,
        "warm_queries": WARM_QUERIES,
        "hnsw_m": HNSW_M,
        "hnsw_ef_construction": HNSW_EF_CONSTRUCTION,
        "hnsw_ef_search": HNSW_EF_SEARCH,
        "ivf_nlist": IVF_NLIST,
        "ivf_train": IVF_TRAIN,
        "ivf_nprobe": IVF_NPROBE,
        "small_vectors": n // 10,
    }


def sample(rng, centres, n):
    """n vectors of the clustered distribution, as float32 unit vectors."""
    x = centres[rng.integers(0, len(centres), n)]
    x += rng.standard_normal((n, DIMS), dtype=np.float32) * np.float32(NOISE)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def write(index, path):
    faiss.write_index(index, path + ".tmp")
    os.replace(path + ".tmp", path)


def log(text):
    print(f"faiss_bench_data: {text}", file=sys.stderr, flush=True)


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    os.makedirs(out, exist_ok=True)
    manifest_path = os.path.join(out, "manifest.json")
    wanted = params(n)
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            if json.load(f).get("params") == wanted:
                log(f"reusing {out}")
                return
    rng = np.random.default_rng(SEED)
    centres = rng.standard_normal((CENTRES, DIMS), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    queries = sample(rng, centres, QUERIES)
    warm = sample(rng, centres, WARM_QUERIES)
    x = np.empty((n, DIMS), dtype=np.float32)
    for start in range(0, n, CHUNK):
        end = min(n, start + CHUNK)
        x[start:end] = sample(rng, centres, end - start)
    log(f"generated {n} x {DIMS} vectors")
    queries.astype("<f4").tofile(os.path.join(out, "queries.f32"))
    warm.astype("<f4").tofile(os.path.join(out, "warm.f32"))

    built = {}

    def timed(name, make):
        started = time.perf_counter()
        index = make()
        write(index, os.path.join(out, name + ".index"))
        built[name] = time.perf_counter() - started
        log(f"{name}: built and written in {built[name]:.1f} s")

    def flat(count):
        index = faiss.IndexFlatIP(DIMS)
        index.add(x[:count])
        return index

    def ivf():
        quantizer = faiss.IndexFlatIP(DIMS)
        index = faiss.IndexIVFFlat(quantizer, DIMS, IVF_NLIST, faiss.METRIC_INNER_PRODUCT)
        train = x[np.random.default_rng(SEED + 1).choice(n, min(n, IVF_TRAIN), replace=False)]
        index.train(train)
        index.add(x)
        index.nprobe = IVF_NPROBE
        return index

    def hnsw():
        index = faiss.IndexHNSWFlat(DIMS, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        for start in range(0, n, CHUNK):
            index.add(x[start : start + CHUNK])
            log(f"hnsw: {min(n, start + CHUNK)} of {n} added")
        index.hnsw.efSearch = HNSW_EF_SEARCH
        return index

    timed("flat", lambda: flat(n))
    timed("flat_small", lambda: flat(n // 10))
    timed("ivf", ivf)
    timed("hnsw", hnsw)
    manifest = {
        "params": wanted,
        "faiss_version": faiss.__version__,
        "threads": faiss.omp_get_max_threads(),
        "build_seconds": built,
        "built_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        # Build times depend on what else ran on the machine meanwhile.
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    with open(manifest_path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(manifest_path + ".tmp", manifest_path)


if __name__ == "__main__":
    main()
