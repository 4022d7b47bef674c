"""Builds Faiss indexes with the Python `faiss` package (faiss-cpu, installed
by scripts/setup.sh) from vectors the rag plugin computed, and records what
Python Faiss answers for the query vectors, so the test `faiss_index.rs` can
check that the plugin, reading the same files through libfaiss, answers the
same. Usage: make_indexes.py DIR DIMS K (DIR holds passages.f32, queries.f32).
"""
import json
import os
import sys

import faiss
import numpy as np

out, dims, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
passages = np.fromfile(os.path.join(out, "passages.f32"), dtype="<f4").reshape(-1, dims)
queries = np.fromfile(os.path.join(out, "queries.f32"), dtype="<f4").reshape(-1, dims)

indexes = {}
indexes["flat_ip"] = faiss.IndexFlatIP(dims)
indexes["flat_l2"] = faiss.IndexFlatL2(dims)
indexes["hnsw"] = faiss.IndexHNSWFlat(dims, 16, faiss.METRIC_INNER_PRODUCT)
quantizer = faiss.IndexFlatIP(dims)
ivf = faiss.IndexIVFFlat(quantizer, dims, 8, faiss.METRIC_INNER_PRODUCT)
ivf.train(passages)
# Not the default of 1: the plugin must use what the file says.
ivf.nprobe = 4
indexes["ivf_flat"] = ivf

answers = {}
for name, index in indexes.items():
    index.add(passages)
    faiss.write_index(index, os.path.join(out, name + ".index"))
    scores, labels = index.search(queries, k)
    answers[name] = {"labels": labels.tolist(), "scores": scores.tolist()}

# Three identical vectors: any query finds all three (malformed-line test).
tiny = faiss.IndexFlatIP(dims)
tiny.add(np.ones((3, dims), dtype="float32") / np.sqrt(dims))
faiss.write_index(tiny, os.path.join(out, "tiny.index"))
# The wrong size for the plugin's model (dimension-mismatch test).
small = faiss.IndexFlatIP(16)
small.add(np.eye(16, dtype="float32"))
faiss.write_index(small, os.path.join(out, "small.index"))

with open(os.path.join(out, "python_answers.json"), "w") as f:
    json.dump({"faiss_version": faiss.__version__, "answers": answers}, f)
