// A C ABI over the few Faiss calls the rag plugin makes. Debian's libfaiss-dev
// ships the C++ library without Faiss's own C API, so this file is that API's
// small subset: read an index file, describe it, search it. No C++ exception
// crosses it: each call returns a status and writes the message into `err`.
#include <faiss/Index.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/index_io.h>
#include <faiss/utils/distances.h>

#include <cxxabi.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <typeinfo>

namespace {
void put_error(char* err, size_t len, const char* message) {
    if (err && len > 0) {
        std::snprintf(err, len, "%s", message);
    }
}
// Exact (flat) search computes inner products or L2 distances one query at a
// time below `distance_compute_blas_threshold` queries (Faiss's default 20)
// and in one matrix product per block of vectors from there on. The rag
// plugin's query batches are mostly smaller than 20, and a batch of any size
// then cost a full scan of the vectors per query. With the product for every
// search and larger database blocks, a flat search of 1M x 384 vectors on
// the 2-core machine of BENCHMARKS.md took (ms per query, batch 1/8/32; timed
// by hand with both cores) 486/240/26 with Faiss's defaults and 188/31/8.9
// with these; BENCHMARKS.md, "rag over a Faiss index", has what that does to
// `rag:search` throughput. `query_bs` bounds the block of products Faiss
// allocates per search: query_bs x database_bs floats (32 MiB here, against
// 1 GiB for Faiss's 4096-query default at this database block). Process-wide
// Faiss settings: set once, before the first index is read, so no search
// runs while they change.
void tune_exact_search() {
    static std::once_flag once;
    std::call_once(once, [] {
        faiss::distance_compute_blas_threshold = 1;
        faiss::distance_compute_blas_query_bs = 64;
        faiss::distance_compute_blas_database_bs = 131072;
    });
}
}  // namespace

extern "C" {

// Reads the index at `path`; `mmap` asks Faiss to map what it can (the
// inverted lists of IVF indexes) instead of reading it. NULL on error.
void* agentflow_faiss_read(const char* path, int mmap, char* err, size_t len) {
    try {
        tune_exact_search();
        int flags = mmap ? (faiss::IO_FLAG_MMAP | faiss::IO_FLAG_READ_ONLY) : 0;
        return faiss::read_index(path, flags);
    } catch (const std::exception& e) {
        put_error(err, len, e.what());
    } catch (...) {
        put_error(err, len, "unknown C++ exception");
    }
    return nullptr;
}

void agentflow_faiss_free(void* index) {
    delete static_cast<faiss::Index*>(index);
}

int64_t agentflow_faiss_dims(const void* index) {
    return static_cast<const faiss::Index*>(index)->d;
}

int64_t agentflow_faiss_ntotal(const void* index) {
    return static_cast<const faiss::Index*>(index)->ntotal;
}

// 0: inner product, 1: L2, other values: Faiss's MetricType.
int agentflow_faiss_metric(const void* index) {
    return static_cast<int>(static_cast<const faiss::Index*>(index)->metric_type);
}

// The index's C++ class, e.g. "faiss::IndexHNSWFlat", into `out`.
void agentflow_faiss_kind(const void* index, char* out, size_t len) {
    const faiss::Index* idx = static_cast<const faiss::Index*>(index);
    int status = 0;
    char* name = abi::__cxa_demangle(typeid(*idx).name(), nullptr, nullptr, &status);
    put_error(out, len, status == 0 && name ? name : typeid(*idx).name());
    std::free(name);
}

// The search-time knob of the index's family: efSearch (HNSW) or nprobe
// (IVF); -1 for a family without one.
int64_t agentflow_faiss_get_knob(const void* index) {
    const faiss::Index* idx = static_cast<const faiss::Index*>(index);
    if (auto hnsw = dynamic_cast<const faiss::IndexHNSW*>(idx)) {
        return hnsw->hnsw.efSearch;
    }
    if (auto ivf = dynamic_cast<const faiss::IndexIVF*>(idx)) {
        return static_cast<int64_t>(ivf->nprobe);
    }
    return -1;
}

// Sets that knob; 0 when the index has none.
int agentflow_faiss_set_knob(void* index, int64_t value) {
    faiss::Index* idx = static_cast<faiss::Index*>(index);
    if (auto hnsw = dynamic_cast<faiss::IndexHNSW*>(idx)) {
        hnsw->hnsw.efSearch = static_cast<int>(value);
        return 1;
    }
    if (auto ivf = dynamic_cast<faiss::IndexIVF*>(idx)) {
        ivf->nprobe = static_cast<size_t>(value);
        return 1;
    }
    return 0;
}

// `n` queries of `dims` floats each; `k` results per query into `distances`
// and `labels` (n * k each). 0 on success.
int agentflow_faiss_search(const void* index, int64_t n, const float* queries, int64_t k,
                           float* distances, int64_t* labels, char* err, size_t len) {
    try {
        static_cast<const faiss::Index*>(index)->search(n, queries, k, distances, labels);
        return 0;
    } catch (const std::exception& e) {
        put_error(err, len, e.what());
    } catch (...) {
        put_error(err, len, "unknown C++ exception");
    }
    return -1;
}
}
