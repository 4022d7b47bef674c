//! The real rag plugin over HTTP: searching the shipped corpus, indexing,
//! and durability across a SIGKILL and restart.

use std::path::Path;

use agentflow_e2e::Server;
use serde_json::{json, Value};

fn corpus() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/rag/corpus/default.jsonl")
        .display()
        .to_string()
}

fn rag_server(index: &Path) -> Server {
    Server::builder()
        .plugin("rag")
        .toml(&format!(
            "[plugins.rag.config]\nindex_path = \"{}\"\ncorpus_path = \"{}\"",
            index.display(),
            corpus()
        ))
        .start()
}

fn search(s: &Server, query: &str, mode: &str) -> Value {
    let (code, body) = s.execute(
        "w",
        "rag:search",
        json!({"query": query, "top_k": 5, "mode": mode}),
    );
    assert_eq!(code, 200, "{body}");
    body["data"].clone()
}

#[test]
fn searches_answer_from_the_shipped_corpus_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let s = rag_server(&dir.path().join("index"));
    let questions = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/rag/corpus/questions.jsonl"),
    )
    .unwrap();
    let first: Value = serde_json::from_str(questions.lines().next().unwrap()).unwrap();
    for mode in ["bm25", "dense", "hybrid"] {
        let data = search(&s, first["question"].as_str().unwrap(), mode);
        let ids: Vec<&str> = data["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert!(
            ids.contains(&first["answer_id"].as_str().unwrap()),
            "{mode}: {ids:?}"
        );
        assert_eq!(data["query"], first["question"]);
        let context = data["context"].as_str().unwrap();
        assert!(
            context.starts_with('[') && context.contains("\n---\n"),
            "{context}"
        );
    }
    // The forms agents emit resolve too; bad params name the field.
    let (code, _) = s.execute("w", "rag_search", json!({"query": "volcano"}));
    assert_eq!(code, 200);
    let (code, body) = s.execute("w", "rag:search", json!({"query": "volcano", "top_k": 0}));
    assert_eq!((code, body["code"].clone()), (400, json!(1002)), "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("top_k"),
        "{body}"
    );
}

#[test]
fn indexed_documents_survive_a_sigkill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    let mut s = rag_server(&index);
    let (code, body) = s.execute(
        "w",
        "rag:index",
        json!({"documents": [{"id": "zz-1", "title": "Quokka Facts", "content": "The quokka zorblat is a marsupial from Rottnest Island."}]}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["indexed"], 1);
    s.signal("KILL");
    s.wait_exit(std::time::Duration::from_secs(10));
    drop(s);
    let s = rag_server(&index);
    let data = search(&s, "quokka zorblat", "bm25");
    assert_eq!(data["results"][0]["id"], "zz-1", "{data}");
    assert_eq!(data["results"][0]["title"], "Quokka Facts");
}
