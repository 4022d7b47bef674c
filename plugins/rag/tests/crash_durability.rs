//! Once `index` has answered, its documents survive the process being
//! SIGKILLed. The child is this test binary re-run in a special mode: it
//! indexes batches and prints `ACK <batch>` after each `index` call returned.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use serde_json::json;

const CHILD_ENV: &str = "RAG_CRASH_TEST_INDEX";
const BATCH: usize = 4;
const ACKED_BEFORE_KILL: usize = 3;

fn batch_documents(b: usize) -> serde_json::Value {
    let docs: Vec<_> = (0..BATCH)
        .map(|i| json!({"id": format!("crash-{b}-{i}"), "title": format!("Batch {b}"), "content": format!("pelican survival log batch {b} entry {i}")}))
        .collect();
    json!(docs)
}

/// The child: index batches forever, acknowledging each one on stdout.
#[test]
#[ignore = "child process of sigkill_after_ack_keeps_documents"]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        println!("crash_child only runs as the child of sigkill_after_ack_keeps_documents");
        return;
    };
    let plugin = warm_with_model(std::path::Path::new(&path), json!({}));
    for b in 0.. {
        ok(&plugin, "index", json!({"documents": batch_documents(b)}));
        println!("ACK {b}");
    }
}

#[test]
fn sigkill_after_ack_keeps_documents() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.starts_with("ACK ") {
            acked += 1;
            if acked == ACKED_BEFORE_KILL {
                // SIGKILL: no destructor, no flush, no clean shutdown; the child
                // is already working on the next batch.
                child.kill().unwrap();
                break;
            }
        }
    }
    let status = child.wait().unwrap();
    assert_eq!(
        acked, ACKED_BEFORE_KILL,
        "the child stopped early: {status}"
    );
    println!("killed the child after {acked} acknowledged index calls ({status})");

    let plugin = warm_with_model(&path, json!({}));
    let stats = ok(&plugin, "stats", json!({}));
    let total = stats["documents"].as_u64().unwrap() as usize;
    assert!(total >= ACKED_BEFORE_KILL * BATCH, "{stats}");
    assert_eq!(total % BATCH, 0, "a batch was half written: {stats}");
    assert_eq!(
        stats["dense"]["documents"].as_u64().unwrap() as usize,
        total,
        "every document has its embedding"
    );
    for b in 0..ACKED_BEFORE_KILL {
        for mode in ["bm25", "dense"] {
            let result = ok(
                &plugin,
                "search",
                json!({"query": format!("pelican survival log batch {b}"), "mode": mode, "top_k": 1000}),
            );
            let ids = hit_ids(&result);
            for i in 0..BATCH {
                let id = format!("crash-{b}-{i}");
                assert!(
                    ids.contains(&id),
                    "mode {mode}: acknowledged {id} lost after SIGKILL"
                );
            }
        }
    }
    // The reopened index takes writes again (the dead child's lock is gone).
    let answer = ok(
        &plugin,
        "index",
        json!({"documents": [{"id": "after", "content": "written after the crash"}]}),
    );
    assert_eq!(answer["total"].as_u64().unwrap() as usize, total + 1);
}
