//! Retries that are safe: a request with an `Idempotency-Key` runs once; its
//! retries get the first answer (waiting for it while it runs).

use std::time::Duration;

use agentflow_e2e::Server;
use serde_json::json;

fn server() -> Server {
    Server::builder().plugin("fixture").start()
}

#[test]
fn a_create_retried_five_times_makes_one_session() {
    let s = server();
    let body = json!({"worker_id": "w-retry", "resource_type": "fixture"});
    let key = [("Idempotency-Key", "create-7f3a")];
    let answers: Vec<_> = std::thread::scope(|scope| {
        let jobs: Vec<_> = (0..5)
            .map(|_| scope.spawn(|| s.send("POST", "/session/create", &key, Some(body.clone()))))
            .collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect()
    });
    let first = &answers[0].body;
    assert_eq!(answers[0].status, 200, "{first}");
    for a in &answers {
        // The very same answer: same session, same request id.
        assert_eq!(&a.body, first);
    }
    let replayed = answers
        .iter()
        .filter(|a| a.header("idempotent-replayed") == Some("true"))
        .count();
    assert_eq!(replayed, 4);
    let (_, listed) = s.post("/session/list", json!({"worker_id": "w-retry"}));
    assert_eq!(listed["data"]["count"], 1, "{listed}");
    // A sixth retry later still gets it.
    let again = s.send("POST", "/session/create", &key, Some(body));
    assert_eq!(&again.body, first);
}

#[test]
fn a_retry_while_the_call_runs_waits_for_its_answer() {
    let s = server();
    let key = [("Idempotency-Key", "sleep-1")];
    let body =
        json!({"worker_id": "w-slow", "action": "fixture:sleep", "params": {"seconds": 1.5}});
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| s.send("POST", "/execute", &key, Some(body.clone())));
        std::thread::sleep(Duration::from_millis(400));
        let second = s.send("POST", "/execute", &key, Some(body.clone()));
        (first.join().unwrap(), second)
    });
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.header("idempotent-replayed"), None);
}

#[test]
fn the_same_key_with_another_request_is_refused() {
    let s = server();
    let key = [("Idempotency-Key", "k-1")];
    let a = s.send(
        "POST",
        "/execute",
        &key,
        Some(json!({"worker_id": "w", "action": "fixture:echo", "params": {"text": "a"}})),
    );
    assert_eq!(a.status, 200);
    let b = s.send(
        "POST",
        "/execute",
        &key,
        Some(json!({"worker_id": "w", "action": "fixture:echo", "params": {"text": "b"}})),
    );
    assert_eq!(
        (b.status, b.body["code"].as_u64()),
        (400, Some(1002)),
        "{}",
        b.body
    );
    assert!(b.body["message"]
        .as_str()
        .unwrap()
        .contains("Idempotency-Key"));
    // Without a key, the same request runs each time.
    let body = json!({"worker_id": "w", "action": "fixture:echo", "params": {"text": "a"}});
    let (_, x) = s.post("/execute", body.clone());
    let (_, y) = s.post("/execute", body);
    assert_ne!(x["meta"]["request_id"], y["meta"]["request_id"]);
}
