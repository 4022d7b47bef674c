//! Indexing and searching through the tools, in every mode, across reopening.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use agentflow_rag::RagPlugin;
use common::*;
use plugin_api::Plugin;
use serde_json::json;

#[test]
fn indexed_documents_are_found_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = warm_with_model(&dir.path().join("index"), json!({}));
    let answer = ok(
        &plugin,
        "index",
        json!({"documents": passages_as_documents()}),
    );
    assert_eq!(answer["indexed"], 6);
    assert_eq!(answer["total"], 6);

    for mode in ["bm25", "dense", "hybrid"] {
        let mut top1 = 0;
        let mut top3 = 0;
        for (id, _, _, question) in PASSAGES {
            let result = ok(
                &plugin,
                "search",
                json!({"query": question, "top_k": 3, "mode": mode}),
            );
            let ids = hit_ids(&result);
            top1 += usize::from(ids.first().map(String::as_str) == Some(id));
            top3 += usize::from(ids.iter().any(|i| i == id));
        }
        println!("paraphrased questions, mode {mode}: hit@1 {top1}/6, hit@3 {top3}/6");
        if mode != "bm25" {
            // The questions share few words with their passages: only
            // embeddings can match them reliably.
            assert!(top1 >= 5, "mode {mode}: hit@1 {top1}/6");
        }
    }

    // A query with exact words is found by BM25, and the result has the documented shape.
    let result = ok(
        &plugin,
        "search",
        json!({"query": "Bartolomeo Cristofori", "mode": "bm25", "top_k": 2}),
    );
    assert_eq!(result["query"], "Bartolomeo Cristofori");
    assert_eq!(hit_ids(&result)[0], "piano");
    let hit = &result["results"][0];
    assert_eq!(hit["title"], "Piano");
    assert!(hit["content"].as_str().unwrap().contains("Cristofori"));
    assert!(hit["score"].as_f64().unwrap() > 0.0);
    let context = result["context"].as_str().unwrap();
    assert!(
        context.starts_with("[Piano]\nThe piano is a keyboard instrument"),
        "{context}"
    );
    let hits = result["results"].as_array().unwrap().len();
    assert_eq!(context.matches("\n---\n").count(), hits - 1);

    // Default mode with the model installed is hybrid; default top_k is 10.
    let result = ok(&plugin, "search", json!({"query": "volcano in Sicily"}));
    assert_eq!(result["mode"], "hybrid");
    assert_eq!(hit_ids(&result)[0], "volcano");
    assert_eq!(hit_ids(&result).len(), 6);
}

#[test]
fn same_id_replaces_and_missing_id_is_generated() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = warm_with_model(&dir.path().join("index"), json!({}));
    ok(
        &plugin,
        "index",
        json!({"documents": [{"id": "d1", "title": "Old", "content": "The zebra crossing is painted white."}]}),
    );
    let answer = ok(
        &plugin,
        "index",
        json!({"documents": [
            {"id": "d1", "title": "New", "text": "Giraffes have long necks to reach acacia leaves."},
            {"content": "An untitled note about quokkas smiling."},
            {"id": 42, "content": "Numeric ids are kept as text."}
        ]}),
    );
    assert_eq!(answer["indexed"], 3);
    assert_eq!(
        answer["total"], 3,
        "the replaced document must not stay behind: {answer}"
    );
    let ids: Vec<String> = answer["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids[0], "d1");
    assert!(ids[1].starts_with("auto-"), "{ids:?}");
    assert_eq!(ids[2], "42");

    for mode in ["bm25", "dense", "hybrid"] {
        let result = ok(
            &plugin,
            "search",
            json!({"query": "zebra crossing painted", "mode": mode, "top_k": 10}),
        );
        assert!(
            !result["context"].as_str().unwrap().contains("zebra"),
            "mode {mode}: the replaced text is still found: {result}"
        );
        let result = ok(
            &plugin,
            "search",
            json!({"query": "giraffe necks", "mode": mode, "top_k": 1}),
        );
        assert_eq!(hit_ids(&result), ["d1"], "mode {mode}");
        assert_eq!(result["results"][0]["title"], "New");
    }
    let result = ok(
        &plugin,
        "search",
        json!({"query": "quokkas", "mode": "bm25"}),
    );
    assert_eq!(hit_ids(&result), [ids[1].clone()]);
    // Untitled hits appear as bare text in the context.
    assert_eq!(result["context"], "An untitled note about quokkas smiling.");

    // Indexing the same untitled text again keeps one copy (content-derived id).
    let again = ok(
        &plugin,
        "index",
        json!({"documents": [{"content": "An untitled note about quokkas smiling."}]}),
    );
    assert_eq!(again["total"], 3);
    assert_eq!(again["ids"][0], ids[1].as_str());
}

#[test]
fn reopened_index_keeps_documents_and_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    {
        let plugin = warm_with_model(&path, json!({}));
        ok(
            &plugin,
            "index",
            json!({"documents": passages_as_documents()}),
        );
        plugin.shutdown();
    }
    let plugin = warm_with_model(&path, json!({}));
    let stats = ok(&plugin, "stats", json!({}));
    assert_eq!(stats["documents"], 6, "{stats}");
    assert_eq!(stats["dense"]["documents"], 6, "{stats}");
    assert!(stats["index_size_bytes"].as_u64().unwrap() > 0);
    let (id, _, _, question) = PASSAGES[3];
    for mode in ["bm25", "dense", "hybrid"] {
        let result = ok(
            &plugin,
            "search",
            json!({"query": question, "mode": mode, "top_k": 3}),
        );
        assert!(
            hit_ids(&result).iter().any(|i| i == id),
            "mode {mode}: {result}"
        );
    }
}

#[test]
fn batch_search_answers_each_query_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = warm_with_model(&dir.path().join("index"), json!({}));
    ok(
        &plugin,
        "index",
        json!({"documents": passages_as_documents()}),
    );
    let questions: Vec<&str> = PASSAGES.iter().map(|p| p.3).collect();
    for mode in ["bm25", "dense", "hybrid"] {
        let answer = ok(
            &plugin,
            "batch_search",
            json!({"queries": questions, "top_k": 2, "mode": mode}),
        );
        assert_eq!(answer["count"], 6);
        let results = answer["results"].as_array().unwrap();
        let contexts = answer["contexts"].as_array().unwrap();
        assert_eq!((results.len(), contexts.len()), (6, 6));
        for (i, question) in questions.iter().enumerate() {
            // Each batch entry equals the single search of the same query.
            // (Scores may differ in the last bits: a batch pads queries to a common length.)
            let single = ok(
                &plugin,
                "search",
                json!({"query": question, "top_k": 2, "mode": mode}),
            );
            assert_eq!(
                hit_ids(&json!({"results": results[i]})),
                hit_ids(&single),
                "mode {mode}, query {i}"
            );
            assert_eq!(contexts[i], single["context"]);
            for (a, b) in results[i]
                .as_array()
                .unwrap()
                .iter()
                .zip(single["results"].as_array().unwrap())
            {
                let (a, b) = (a["score"].as_f64().unwrap(), b["score"].as_f64().unwrap());
                assert!(
                    (a - b).abs() < 1e-4,
                    "mode {mode}, query {i}: scores {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn searches_never_see_half_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = Arc::new(warm_with_model(&dir.path().join("index"), json!({})));
    const BATCH: usize = 5;
    const BATCHES: usize = 8;
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (plugin, done) = (plugin.clone(), done.clone());
        std::thread::spawn(move || {
            for b in 0..BATCHES {
                let documents: Vec<_> = (0..BATCH)
                    .map(|i| json!({"id": format!("b{b}-{i}"), "content": format!("marmalade batch {b} item {i} about oranges")}))
                    .collect();
                ok(&plugin, "index", json!({"documents": documents}));
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut searches = 0;
    let mut seen_growth = Vec::new();
    loop {
        let finished = done.load(Ordering::SeqCst);
        for mode in ["bm25", "dense", "hybrid"] {
            let result = ok(
                &plugin,
                "search",
                json!({"query": "marmalade oranges", "mode": mode, "top_k": 1000}),
            );
            let n = hit_ids(&result).len();
            assert_eq!(
                n % BATCH,
                0,
                "mode {mode} saw {n} documents: part of a commit"
            );
            seen_growth.push(n);
            searches += 1;
        }
        if finished {
            break;
        }
    }
    writer.join().unwrap();
    println!("{searches} searches ran during indexing; sizes seen: {seen_growth:?}");
    assert_eq!(*seen_growth.last().unwrap(), BATCH * BATCHES);
}

#[test]
fn stats_reports_model_sizes_and_modes() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = warm_with_model(&dir.path().join("index"), json!({"top_k": 4}));
    ok(
        &plugin,
        "index",
        json!({"documents": passages_as_documents()}),
    );
    let stats = ok(&plugin, "stats", json!({}));
    assert_eq!(stats["documents"], 6);
    assert_eq!(stats["model"]["dims"], 384);
    assert_eq!(stats["model"]["max_tokens"], 256);
    assert_eq!(stats["modes"], json!(["hybrid", "bm25", "dense"]));
    assert_eq!(stats["default_mode"], "hybrid");
    assert_eq!(stats["dense"]["matrix_bytes"], 6 * 384 * 4);
    let result = ok(&plugin, "search", json!({"query": "anything at all"}));
    assert_eq!(hit_ids(&result).len(), 4, "config top_k is the default");
    // `stats` is hidden from listings but callable.
    let hidden: Vec<_> = RagPlugin::tools()
        .infos()
        .into_iter()
        .filter(|t| t.hidden)
        .map(|t| t.name)
        .collect();
    assert_eq!(hidden, ["stats"]);
}

#[test]
fn dense_scores_match_the_sentence_transformers_reference() {
    // Cosine similarities of all-MiniLM-L6-v2 as sentence-transformers computes
    // them (its semantic-search example publishes 0.7553 for the first pair;
    // the rest from a numpy re-implementation of the same pipeline).
    let reference = [
        ("bread", "A man is eating a piece of bread.", 0.755337),
        ("baby", "The girl is carrying a baby.", -0.104958),
        ("monkey", "A monkey is playing drums.", 0.047603),
        (
            "gorilla",
            "Someone in a gorilla costume is playing a set of drums.",
            0.063007,
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let plugin = warm_with_model(&dir.path().join("index"), json!({}));
    let documents: Vec<_> = reference
        .iter()
        .map(|(id, text, _)| json!({"id": id, "content": text}))
        .collect();
    ok(&plugin, "index", json!({"documents": documents}));
    let result = ok(
        &plugin,
        "search",
        json!({"query": "A man is eating food.", "mode": "dense", "top_k": 4}),
    );
    let hits = result["results"].as_array().unwrap();
    assert_eq!(hits.len(), 4);
    for (id, _, expected) in reference {
        let hit = hits.iter().find(|h| h["id"] == id).unwrap();
        let score = hit["score"].as_f64().unwrap();
        assert!(
            (score - expected).abs() < 1e-3,
            "{id}: cosine {score}, sentence-transformers {expected}"
        );
    }
    assert_eq!(hit_ids(&result)[0], "bread");
}
