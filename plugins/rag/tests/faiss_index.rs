//! Bring-your-own data, as AgentFlow's Python server has it: Faiss index files
//! written by the Python `faiss` package from this plugin's own embeddings of
//! the shipped corpus, and the corpus as a JSONL file read lazily. The plugin,
//! reading the same files through libfaiss, must answer what Python Faiss
//! answers for the same query vectors.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use agentflow_rag::{embed_texts, TextKind};
use common::*;
use plugin_api::ErrorKind;
use serde_json::{json, Value};

const K: usize = 10;

/// Indexes and Python's answers, made once per test run (encoding the corpus
/// is the slow part) under cargo's per-target temporary directory.
struct Shared {
    dir: PathBuf,
    /// Each passage's `id`, by passage number.
    ids: Vec<String>,
    questions: Vec<String>,
    python: Value,
    dims: usize,
}

fn model_config() -> Value {
    json!({"index_path": "unused"})
}

/// One test's view: the shared indexes and its own copy of the corpus (its
/// offsets file and BM25 index are written beside it).
struct Data {
    shared: &'static Shared,
    dir: tempfile::TempDir,
    corpus: PathBuf,
}

impl std::ops::Deref for Data {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        self.shared
    }
}

fn prepare() -> Data {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    let shared = SHARED.get_or_init(make_shared);
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("wiki.jsonl");
    std::fs::copy(corpus_file("default.jsonl"), &corpus).unwrap();
    Data {
        shared,
        dir,
        corpus,
    }
}

fn make_shared() -> Shared {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rag-faiss-index-test");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let lines: Vec<Value> = std::fs::read_to_string(corpus_file("default.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids = lines
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    let texts: Vec<String> = lines
        .iter()
        .map(|v| {
            format!(
                "{}\n{}",
                v["title"].as_str().unwrap_or(""),
                v["contents"].as_str().unwrap()
            )
        })
        .collect();
    let questions: Vec<String> = std::fs::read_to_string(corpus_file("questions.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["question"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let passages = embed_texts(&model_config(), &refs, TextKind::Passage).unwrap_or_else(|e| {
        panic!(
            "these tests need the embedding model ({}): {}",
            agentflow_rag::INSTALL_HINT,
            e.message
        )
    });
    let refs: Vec<&str> = questions.iter().map(String::as_str).collect();
    let queries = embed_texts(&model_config(), &refs, TextKind::Query).unwrap();
    let dims = passages[0].len();
    write_f32(&dir.join("passages.f32"), &passages);
    write_f32(&dir.join("queries.f32"), &queries);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faiss/make_indexes.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&dir)
        .arg(dims.to_string())
        .arg(K.to_string())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{} failed (the Python faiss-cpu and numpy packages are installed by scripts/setup.sh): {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let python: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("python_answers.json")).unwrap())
            .unwrap();
    Shared {
        dir,
        ids,
        questions,
        python,
        dims,
    }
}

fn write_f32(path: &Path, vectors: &[Vec<f32>]) {
    let bytes: Vec<u8> = vectors
        .iter()
        .flatten()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    std::fs::write(path, bytes).unwrap();
}

impl Shared {
    fn index(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.index"))
    }
}

impl Data {
    fn warm(
        &self,
        name: &str,
        extra: Value,
    ) -> Result<plugin_api::testkit::Kit<agentflow_rag::RagPlugin>, plugin_api::PluginError> {
        let mut config = json!({
            "index_path": self.index(name),
            "corpus_path": self.corpus,
            "bm25_path": self.dir.path().join("bm25"),
        });
        config
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        warm(config)
    }
}

#[test]
fn faiss_indexes_from_python_answer_like_python_faiss() {
    let data = prepare();
    for name in ["flat_ip", "flat_l2", "hnsw", "ivf_flat"] {
        let plugin = data
            .warm(name, json!({"bm25": false}))
            .unwrap_or_else(|e| panic!("{name}: warmup failed: {}", e.message));
        let stats = ok(&plugin, "stats", json!({}));
        assert_eq!(stats["index"]["vectors"], data.ids.len(), "{name}: {stats}");
        assert_eq!(stats["index"]["dims"], data.dims);
        assert_eq!(stats["corpus"]["loaded"], "lazily");
        assert_eq!(stats["default_mode"], "dense", "no BM25: {stats}");
        let expected_type = match name {
            "flat_ip" | "flat_l2" => "IndexFlat",
            "hnsw" => "IndexHNSWFlat",
            _ => "IndexIVFFlat",
        };
        assert!(
            stats["index"]["type"]
                .as_str()
                .unwrap()
                .starts_with(expected_type),
            "{name}: {stats}"
        );
        if name == "ivf_flat" {
            assert_eq!(
                stats["index"]["search_knob"]["nprobe"], 4,
                "the file's nprobe: {stats}"
            );
        }
        let answer = ok(
            &plugin,
            "batch_search",
            json!({"queries": data.questions, "top_k": K, "mode": "dense"}),
        );
        let python = &data.python["answers"][name];
        for (q, hits) in answer["results"].as_array().unwrap().iter().enumerate() {
            let ours: Vec<&str> = hits
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["id"].as_str().unwrap())
                .collect();
            let theirs: Vec<&str> = python["labels"][q]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| data.ids[l.as_u64().unwrap() as usize].as_str())
                .collect();
            assert_eq!(ours, theirs, "{name}: question {q} '{}'", data.questions[q]);
            // Alone, a question gets what it got in the batch: exact search
            // takes the same matrix-product path for one query as for many.
            let alone = ok(
                &plugin,
                "search",
                json!({"query": data.questions[q], "top_k": K, "mode": "dense"}),
            );
            assert_eq!(
                hit_ids(&alone),
                ours,
                "{name}: question {q} alone vs in a batch"
            );
            for (hit, score) in hits
                .as_array()
                .unwrap()
                .iter()
                .zip(python["scores"][q].as_array().unwrap())
            {
                let (a, b) = (hit["score"].as_f64().unwrap(), score.as_f64().unwrap());
                assert!(
                    (a - b).abs() < 1e-4,
                    "{name}: question {q}: score {a} vs Python's {b}"
                );
            }
        }
    }
}

#[test]
fn hybrid_over_a_faiss_index_builds_bm25_once_and_batches_concurrent_searches() {
    let data = prepare();
    let config = json!({"batch_trigger": 4, "batch_max_wait_ms": 50});
    let plugin = data.warm("flat_ip", config.clone()).unwrap();
    let stats = ok(&plugin, "stats", json!({}));
    assert_eq!(stats["default_mode"], "hybrid");
    assert_eq!(stats["bm25"]["passages"], data.ids.len());
    assert!(data.dir.path().join("bm25/corpus.json").is_file());
    let offsets = data.dir.path().join("wiki.offsets");
    assert_eq!(
        std::fs::metadata(&offsets).unwrap().len(),
        8 * data.ids.len() as u64
    );
    assert_eq!(stats["corpus"]["offsets"], "written");

    // The same answer through hybrid as through the Python server's context format.
    let hit = ok(
        &plugin,
        "search",
        json!({"query": "How tall is Olympus Mons above the surrounding plains?"}),
    );
    assert_eq!(hit["mode"], "hybrid");
    assert_eq!(hit["results"][0]["id"], "astronomy-1");
    assert!(
        hit["context"]
            .as_str()
            .unwrap()
            .starts_with("[Olympus Mons]\nOlympus Mons, a shield volcano"),
        "{hit}"
    );
    let bm25 = ok(
        &plugin,
        "search",
        json!({"query": "Olympus Mons", "mode": "bm25", "top_k": 1}),
    );
    assert_eq!(bm25["results"][0]["id"], "astronomy-1");

    // Eight searches at once share batches (observable in the counters).
    let plugin = Arc::new(plugin);
    let threads: Vec<_> = data.questions[..8]
        .iter()
        .map(|q| {
            let (plugin, q) = (plugin.clone(), q.clone());
            std::thread::spawn(move || ok(&plugin, "search", json!({"query": q, "mode": "dense"})))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap()["results"].as_array().unwrap().len(), 10);
    }
    let batching = ok(&plugin, "stats", json!({}))["batching"].clone();
    assert_eq!(batching["queries"], 9, "{batching}");
    assert!(
        batching["largest_batch"].as_u64().unwrap() > 1,
        "no two searches shared a batch: {batching}"
    );

    // Writing is refused with the reason; nothing else breaks.
    let message = err(
        &plugin,
        "index",
        json!({"documents": [{"content": "x"}]}),
        ErrorKind::Unsupported,
    );
    assert!(message.contains("read-only"), "{message}");
    drop(plugin);

    // A second start finds both the offsets and the BM25 index.
    let again = data.warm("flat_ip", json!({})).unwrap();
    let stats = ok(&again, "stats", json!({}));
    assert_eq!(stats["corpus"]["offsets"], "found");
    assert_eq!(stats["bm25"]["passages"], data.ids.len());
}

#[test]
fn wrong_model_truncated_index_and_malformed_lines_get_clear_errors() {
    let data = prepare();
    let e = data
        .warm("small", json!({}))
        .err()
        .expect("a 16-dim index with a 384-dim model");
    assert!(
        e.message.contains("makes 384-dimensional vectors")
            && e.message.contains("holds 16-dimensional ones"),
        "{}",
        e.message
    );
    assert!(!e.message.contains('\n'), "one line: {}", e.message);

    let truncated = data.dir.path().join("truncated.index");
    let whole = std::fs::read(data.index("hnsw")).unwrap();
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let e = warm(json!({"index_path": truncated, "corpus_path": data.corpus}))
        .err()
        .expect("a truncated index");
    assert!(
        e.message.contains("is not a readable Faiss index"),
        "{}",
        e.message
    );
    assert!(e.message.contains("truncated.index"), "{}", e.message);
    // A Faiss file name that does not exist is not taken for a new index directory.
    let missing = data.dir.path().join("missing.index");
    let e = warm(json!({"index_path": missing, "corpus_path": data.corpus}))
        .err()
        .expect("a missing index file");
    assert!(e.message.contains("does not exist"), "{}", e.message);
    assert!(!missing.exists());

    // Three passages, the second not JSON: a search that reaches it names it.
    let corpus = data.dir.path().join("bad.jsonl");
    std::fs::write(
        &corpus,
        "{\"contents\": \"one\"}\n{oops\n{\"contents\": \"three\"}\n",
    )
    .unwrap();
    let plugin =
        warm(json!({"index_path": data.index("tiny"), "corpus_path": corpus, "bm25": false}))
            .unwrap();
    assert_eq!(
        ok(&plugin, "stats", json!({}))["corpus"]["malformed_lines"],
        1
    );
    let message = err(
        &plugin,
        "search",
        json!({"query": "anything", "top_k": 3}),
        ErrorKind::Unavailable,
    );
    assert!(
        message.contains("passage 1") && message.contains("not valid JSON"),
        "{message}"
    );
    assert!(message.contains("bad.jsonl"), "{message}");
}
