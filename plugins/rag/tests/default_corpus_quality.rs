//! Retrieval quality on the shipped corpus: every labelled question of
//! `corpus/questions.jsonl` should find its passage of `corpus/default.jsonl`.
//! Prints hit@1 and hit@5 per mode.

mod common;

use common::*;
use serde_json::{json, Value};

/// `(question, answer_id)` pairs of the shipped question set.
fn questions() -> Vec<(String, String)> {
    let path = corpus_file("questions.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the shipped question set {} is missing: {e}",
            path.display()
        )
    });
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: bad line {line}: {e}", path.display()));
            let id = match &v["answer_id"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (v["question"].as_str().unwrap_or_default().to_string(), id)
        })
        .collect()
}

#[test]
fn default_corpus_questions_find_their_passages() {
    let corpus = corpus_file("default.jsonl");
    assert!(
        corpus.is_file(),
        "the shipped corpus {} is missing",
        corpus.display()
    );
    let questions = questions();
    assert!(!questions.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let plugin = warm_with_model(&dir.path().join("index"), json!({"corpus_path": corpus}));
    let stats = ok(&plugin, "stats", json!({}));
    println!(
        "default corpus: {} passages, {} questions",
        stats["documents"],
        questions.len()
    );
    assert_eq!(
        stats["dense"]["documents"], stats["documents"],
        "every passage got an embedding"
    );

    let queries: Vec<&str> = questions.iter().map(|(q, _)| q.as_str()).collect();
    let mut report = Vec::new();
    for mode in ["bm25", "dense", "hybrid"] {
        let answer = ok(
            &plugin,
            "batch_search",
            json!({"queries": queries, "top_k": 5, "mode": mode}),
        );
        let mut hit1 = 0usize;
        let mut hit5 = 0usize;
        for ((question, expected), hits) in
            questions.iter().zip(answer["results"].as_array().unwrap())
        {
            let ids: Vec<&str> = hits
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["id"].as_str().unwrap_or_default())
                .collect();
            hit1 += usize::from(ids.first() == Some(&expected.as_str()));
            let found = ids.contains(&expected.as_str());
            hit5 += usize::from(found);
            if !found {
                println!("  {mode}: missed '{question}' (want {expected}, got {ids:?})");
            }
        }
        let n = questions.len() as f64;
        let (h1, h5) = (hit1 as f64 / n, hit5 as f64 / n);
        println!(
            "mode {mode:>6}: hit@1 {h1:.3} ({hit1}/{n})  hit@5 {h5:.3} ({hit5}/{n})",
            n = questions.len()
        );
        report.push((mode, h1, h5));
    }
    for (mode, h1, h5) in report {
        let (min1, min5) = match mode {
            "bm25" => (0.6, 0.8),
            "dense" => (0.6, 0.8),
            _ => (0.7, 0.85),
        };
        assert!(h5 >= min5, "mode {mode}: hit@5 {h5:.3} is below {min5}");
        assert!(h1 >= min1, "mode {mode}: hit@1 {h1:.3} is below {min1}");
    }
}
