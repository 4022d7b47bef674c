//! `POST /execute/stream`: chunks as the tool produces them, then the
//! `/execute` envelope; a client that goes away cancels the call.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use agentflow_e2e::{bash_server_at, eventually, Server};
use serde_json::{json, Value};

/// One server-sent event, and when it arrived.
struct Event {
    name: String,
    data: Value,
    at: Duration,
}

/// Opens the stream; returns a reader positioned at the first event.
fn open(s: &Server, body: Value) -> (u16, String, BufReader<Box<dyn std::io::Read + Send + Sync>>) {
    let res = ureq::post(&format!("{}/execute/stream", s.base))
        .send_json(body)
        .expect("the stream opens");
    let status = res.status();
    let kind = res.header("content-type").unwrap_or_default().to_string();
    (status, kind, BufReader::new(res.into_reader()))
}

/// Reads the next event (`None` at the end of the stream).
fn next_event(reader: &mut impl BufRead, started: Instant) -> Option<Event> {
    let (mut name, mut data) = (String::new(), String::new());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if !data.is_empty() {
                let data = serde_json::from_str(&data).expect("event data is JSON");
                return Some(Event {
                    name,
                    data,
                    at: started.elapsed(),
                });
            }
            continue;
        }
        if let Some(v) = line.strip_prefix("event:") {
            name = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim_start());
        }
    }
}

/// Every event to the end of the stream.
fn all_events(reader: &mut impl BufRead, started: Instant) -> Vec<Event> {
    std::iter::from_fn(|| next_event(reader, started)).collect()
}

#[test]
fn chunks_arrive_as_they_are_made_then_the_envelope() {
    let s = Server::builder().plugin("fixture").start();
    let started = Instant::now();
    let (status, kind, mut reader) = open(
        &s,
        json!({"worker_id": "w-stream", "action": "fixture:ticks", "params": {"count": 8, "interval_ms": 100}}),
    );
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/event-stream"), "{kind}");
    let events = all_events(&mut reader, started);
    let (result, chunks) = events.split_last().expect("events");
    assert_eq!(result.name, "result");
    assert_eq!(result.data["code"], 0, "{}", result.data);
    let texts: Vec<&str> = chunks
        .iter()
        .map(|c| {
            assert_eq!(c.name, "chunk");
            assert_eq!(c.data["stream"], "stdout");
            c.data["text"].as_str().unwrap()
        })
        .collect();
    let expected: Vec<String> = (1..=8).map(|n| format!("tick {n}\n")).collect();
    assert_eq!(texts, expected);
    // The whole output is in the envelope too, as /execute gives it.
    assert_eq!(result.data["data"]["stdout"], expected.concat());
    assert_eq!(result.data["meta"]["tool"], "ticks");
    // Incremental: the first line came while the other seven were still to come.
    assert!(
        chunks[0].at + Duration::from_millis(400) < result.at,
        "first chunk at {:?}, result at {:?}",
        chunks[0].at,
        result.at
    );
}

#[test]
fn an_error_is_the_result_event_carrying_the_error_envelope() {
    let s = Server::builder().plugin("fixture").start();
    let (status, _, mut reader) = open(
        &s,
        json!({"worker_id": "w", "action": "fixture:fail", "params": {}}),
    );
    assert_eq!(status, 200);
    let e = next_event(&mut reader, Instant::now()).expect("a result");
    assert_eq!(e.name, "result");
    assert_eq!(e.data["code"], 2001, "{}", e.data);
    // A call that can be refused before it runs is refused before any
    // stream, with the status `/execute` would answer: a body that cannot
    // be a call, params that fail the tool's schema (naming the field).
    let err = ureq::post(&format!("{}/execute/stream", s.base)).send_json(json!({"action": 5}));
    match err {
        Err(ureq::Error::Status(400, _)) => {}
        other => panic!("{other:?}"),
    }
    let err = ureq::post(&format!("{}/execute/stream", s.base)).send_json(
        json!({"worker_id": "w", "action": "fixture:ticks", "params": {"count": "many", "interval_ms": 10}}),
    );
    match err {
        Err(ureq::Error::Status(400, r)) => {
            let body: serde_json::Value = r.into_json().unwrap();
            assert_eq!(body["code"], 1002, "{body}");
            assert!(
                body["message"].as_str().unwrap().contains("count"),
                "{body}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_client_that_goes_away_cancels_the_call() {
    let s = Server::builder().plugin("fixture").start();
    let marker = s.dir.path().join("cancelled");
    let (_, _, mut reader) = open(
        &s,
        json!({"worker_id": "w-gone", "action": "fixture:ticks",
               "params": {"count": 300, "interval_ms": 100, "marker": marker}}),
    );
    let first = next_event(&mut reader, Instant::now()).expect("a first chunk");
    assert_eq!(first.name, "chunk");
    drop(reader);
    assert!(
        eventually(Duration::from_secs(10), || marker.exists()),
        "the call went on after its client left"
    );
}

#[test]
fn a_bash_command_streams_its_lines_over_http() {
    let root = tempfile::tempdir().unwrap();
    let s = bash_server_at(root.path());
    let started = Instant::now();
    let (_, _, mut reader) = open(
        &s,
        json!({"worker_id": "w-bash", "action": "bash:run",
               "params": {"command": "for i in 1 2 3 4 5 6; do echo line $i; sleep 0.1; done"}}),
    );
    let events = all_events(&mut reader, started);
    let (result, chunks) = events.split_last().expect("events");
    assert_eq!(result.name, "result");
    assert_eq!(result.data["code"], 0, "{}", result.data);
    let streamed: String = chunks
        .iter()
        .map(|c| c.data["text"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, result.data["data"]["stdout"].as_str().unwrap());
    assert!(chunks.len() >= 3, "lines came in {} chunks", chunks.len());
    assert!(chunks[0].at + Duration::from_millis(300) < result.at);
}
