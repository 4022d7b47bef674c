//! Bad params, bad corpora, bad index paths and a missing model: each a clear
//! error or warning, never a crash.

mod common;

use std::io::Write;

use agentflow_rag::RagPlugin;
use common::*;
use plugin_api::{ErrorKind, Plugin};
use serde_json::json;

/// A BM25-only plugin (model disabled) over a fresh index with the test passages.
fn bm25_plugin(dir: &std::path::Path) -> plugin_api::testkit::Kit<RagPlugin> {
    let plugin = warm(json!({"index_path": dir.join("index"), "dense": false})).unwrap();
    ok(
        &plugin,
        "index",
        json!({"documents": passages_as_documents()}),
    );
    plugin
}

#[test]
fn bad_search_params_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = bm25_plugin(dir.path());
    let m = err(
        &plugin,
        "search",
        json!({"query": "   "}),
        ErrorKind::InvalidParams,
    );
    assert!(m.contains("query") && m.contains("empty"), "{m}");
    for k in [0, -3, 1001, 1_000_000_000] {
        let m = err(
            &plugin,
            "search",
            json!({"query": "cat", "top_k": k}),
            ErrorKind::InvalidParams,
        );
        assert!(
            m.contains("top_k") && m.contains(&k.to_string()) && m.contains("1..=1000"),
            "{m}"
        );
    }
    let m = err(
        &plugin,
        "search",
        json!({"query": "cat", "mode": "fuzzy"}),
        ErrorKind::InvalidParams,
    );
    assert!(m.contains("fuzzy"), "{m}");
    let m = err(
        &plugin,
        "search",
        json!({"top_k": 3}),
        ErrorKind::InvalidParams,
    );
    assert!(m.contains("query"), "{m}");
    let long = "a".repeat(10_001);
    let m = err(
        &plugin,
        "search",
        json!({"query": long}),
        ErrorKind::InvalidParams,
    );
    assert!(m.contains("at most 10000"), "{m}");

    let m = err(
        &plugin,
        "batch_search",
        json!({"queries": []}),
        ErrorKind::InvalidParams,
    );
    assert!(m.contains("queries"), "{m}");
    let m = err(
        &plugin,
        "batch_search",
        json!({"queries": ["cat", ""]}),
        ErrorKind::InvalidParams,
    );
    assert!(m.contains("queries[1]"), "{m}");

    // Query syntax characters are plain text, and a query of only punctuation finds nothing.
    let result = ok(
        &plugin,
        "search",
        json!({"query": "title:(\"cat AND -mouse", "mode": "bm25"}),
    );
    assert!(result["results"].is_array());
    let result = ok(&plugin, "search", json!({"query": "?!...", "mode": "bm25"}));
    assert_eq!(result["results"], json!([]));
    assert_eq!(result["context"], "");
    // The largest top_k is accepted.
    ok(&plugin, "search", json!({"query": "cat", "top_k": 1000}));
}

#[test]
fn documents_without_text_are_rejected_whole() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = bm25_plugin(dir.path());
    let m = err(
        &plugin,
        "index",
        json!({"documents": []}),
        ErrorKind::InvalidParams,
    );
    assert!(m.contains("documents"), "{m}");
    let m = err(
        &plugin,
        "index",
        json!({"documents": [{"id": "ok", "content": "fine"}, {"id": "x", "title": "No text", "content": "  "}]}),
        ErrorKind::InvalidParams,
    );
    assert!(
        m.contains("documents[1]") && m.contains("'x'") && m.contains("no text"),
        "{m}"
    );
    let m = err(
        &plugin,
        "index",
        json!({"documents": [{"id": "", "content": "a"}]}),
        ErrorKind::InvalidParams,
    );
    assert!(m.contains("documents[0].id"), "{m}");
    // Nothing of a rejected call was written.
    assert_eq!(ok(&plugin, "stats", json!({}))["documents"], 6);
}

#[test]
fn without_the_model_bm25_works_and_dense_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = bm25_plugin(dir.path());
    let result = ok(&plugin, "search", json!({"query": "Neil Armstrong Moon"}));
    assert_eq!(
        result["mode"], "bm25",
        "bm25 is the default without a model"
    );
    assert_eq!(hit_ids(&result)[0], "moon");
    for mode in ["dense", "hybrid"] {
        let m = err(
            &plugin,
            "search",
            json!({"query": "moon", "mode": mode}),
            ErrorKind::Unavailable,
        );
        assert!(
            m.contains(mode) && m.contains("dense = false") && m.contains("bm25"),
            "{m}"
        );
    }
    let stats = ok(&plugin, "stats", json!({}));
    assert_eq!(stats["modes"], json!(["bm25"]));
    assert_eq!(stats["model"]["status"], "disabled");
}

#[test]
fn documents_indexed_without_the_model_get_embeddings_later() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    {
        let plugin = bm25_plugin(dir.path());
        plugin.shutdown();
    }
    let plugin = warm_with_model(&path, json!({}));
    let stats = ok(&plugin, "stats", json!({}));
    assert_eq!(stats["dense"]["documents"], 6, "{stats}");
    let (id, _, _, question) = PASSAGES[0];
    let result = ok(
        &plugin,
        "search",
        json!({"query": question, "mode": "dense", "top_k": 1}),
    );
    assert_eq!(hit_ids(&result), [id]);
}

#[test]
fn malformed_corpus_lines_are_skipped_and_the_rest_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.jsonl");
    let mut file = std::fs::File::create(&corpus).unwrap();
    writeln!(
        file,
        r#"{{"id": "a", "title": "Alpha", "contents": "The first good line about lighthouses."}}"#
    )
    .unwrap();
    writeln!(file, "{{ this is not json").unwrap();
    writeln!(file, r#"{{"id": "b", "title": "No text"}}"#).unwrap();
    writeln!(file, r#"["an", "array"]"#).unwrap();
    writeln!(file).unwrap();
    writeln!(
        file,
        r#"{{"id": 3, "text": "A numeric id and the text field, about windmills."}}"#
    )
    .unwrap();
    // JSON escapes (\" and \n) inside the line, so no format string.
    file.write_all(
        br#"{"id": "d", "contents": "\"Quoted Title\"\nFlashRAG style contents about canals."}"#,
    )
    .unwrap();
    file.write_all(b"\n").unwrap();
    file.write_all(b"\xff\xfe not utf-8\n").unwrap();
    writeln!(file, r#"{{"id": "a", "title": "Alpha", "contents": "A repeated id replaces the first line: lighthouses again."}}"#).unwrap();
    drop(file);

    let plugin = warm(
        json!({"index_path": dir.path().join("index"), "corpus_path": corpus, "dense": false}),
    )
    .unwrap();
    assert_eq!(ok(&plugin, "stats", json!({}))["documents"], 3);
    let result = ok(&plugin, "search", json!({"query": "lighthouses"}));
    assert_eq!(hit_ids(&result), ["a"]);
    assert!(result["results"][0]["content"]
        .as_str()
        .unwrap()
        .contains("again"));
    assert_eq!(
        hit_ids(&ok(&plugin, "search", json!({"query": "windmills"}))),
        ["3"]
    );
    let result = ok(&plugin, "search", json!({"query": "canals"}));
    assert_eq!(
        result["context"],
        "[Quoted Title]\nFlashRAG style contents about canals."
    );
}

#[test]
fn unusable_paths_fail_warmup_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let e = warm(json!({"index_path": file, "dense": false}))
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{}", e.message);
    assert!(e.message.contains("a-file"), "{}", e.message);

    let under_file = file.join("index");
    let e = warm(json!({"index_path": under_file, "dense": false}))
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{}", e.message);
    assert!(e.message.contains("cannot be read"), "{}", e.message);

    let busy = dir.path().join("not-an-index");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "mine").unwrap();
    let e = warm(json!({"index_path": busy, "dense": false}))
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(e.message.contains("not empty"), "{}", e.message);
    assert!(
        busy.join("notes.txt").exists(),
        "a user's directory is never overwritten"
    );

    let e = warm(json!({"index_path": dir.path().join("i"), "corpus_path": dir.path().join("missing.jsonl"), "dense": false}))
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(e.message.contains("missing.jsonl"), "{}", e.message);

    let e = warm(json!({"index_path": dir.path().join("j"), "model_path": dir.path()}))
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::InvalidParams);
    assert!(
        e.message.contains("model_path") && e.message.contains("model.safetensors"),
        "{}",
        e.message
    );

    let e = warm(json!({"index_path": dir.path().join("k"), "top_k": 0}))
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::InvalidParams);
    let e = warm(json!({"index_path": dir.path().join("k"), "colour": "red"}))
        .err()
        .unwrap();
    assert!(e.message.contains("colour"), "{}", e.message);
}

#[test]
fn second_writer_on_the_same_index_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = bm25_plugin(dir.path());
    let e = warm(json!({"index_path": dir.path().join("index"), "dense": false}))
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(e.message.contains("locked"), "{}", e.message);
}

#[test]
fn cancelled_or_late_index_call_writes_nothing() {
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, SystemTime};

    let dir = tempfile::tempdir().unwrap();
    let plugin = bm25_plugin(dir.path());
    let params = json!({"documents": [{"id": "late", "content": "should never be stored"}]});
    let cancelled = AtomicBool::new(true);
    let future = SystemTime::now() + Duration::from_secs(60);
    let cx = plugin_api::CallContext::new(None, "", "w1", &cancelled, future);
    let e = RagPlugin::tools()
        .call(plugin.plugin(), &cx, "index", params.clone())
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Cancelled, "{}", e.message);

    let live = AtomicBool::new(false);
    let past = SystemTime::now() - Duration::from_secs(1);
    let cx = plugin_api::CallContext::new(None, "", "w1", &live, past);
    let e = RagPlugin::tools()
        .call(plugin.plugin(), &cx, "index", params)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{}", e.message);

    assert_eq!(ok(&plugin, "stats", json!({}))["documents"], 6);
    let result = ok(&plugin, "search", json!({"query": "never stored"}));
    assert!(!hit_ids(&result).contains(&"late".to_string()));
}
