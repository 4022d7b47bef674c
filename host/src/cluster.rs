//! `agentflow cluster status --hosts …`: one table of many hosts, made by
//! asking each its `/ready` (state, workers, sessions) and `/warmup/status`
//! (plugins). No central state: the hosts are the truth, asked in parallel.
//!
//! The client is hyper's (already in the build through axum), one connection
//! per request: a status command needs no pool.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use axum::http::{header, Method, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use crate::cli::ClusterStatusArgs;

/// What one host said, or why it said nothing.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    host: String,
    node: String,
    state: String,
    workers: String,
    sessions: String,
    plugins: String,
    millis: u128,
}

pub fn status(args: ClusterStatusArgs) -> ExitCode {
    let token = args
        .token
        .or_else(|| std::env::var("AGENTFLOW_TOKEN").ok())
        .unwrap_or_default();
    let hosts: Vec<String> = args
        .hosts
        .iter()
        .flat_map(|h| h.split(','))
        .map(|h| h.trim().trim_end_matches('/').to_string())
        .filter(|h| !h.is_empty())
        .collect();
    if hosts.is_empty() {
        eprintln!("agentflow: --hosts names no host (e.g. --hosts http://10.0.0.1:18890,http://10.0.0.2:18890)");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agentflow: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let timeout = Duration::from_secs_f64(args.timeout.clamp(0.1, 600.0));
    let rows: Vec<Row> = runtime.block_on(async {
        let asks: Vec<_> = hosts
            .iter()
            .map(|h| tokio::spawn(ask(h.clone(), token.clone(), timeout)))
            .collect();
        let mut rows = Vec::with_capacity(asks.len());
        for (ask, host) in asks.into_iter().zip(&hosts) {
            rows.push(
                ask.await
                    .unwrap_or_else(|e| unreachable_row(host, &e.to_string(), 0)),
            );
        }
        rows
    });
    print!("{}", table(&rows));
    if rows.iter().all(|r| r.state == "ready") {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn unreachable_row(host: &str, why: &str, millis: u128) -> Row {
    Row {
        host: host.to_string(),
        node: "-".into(),
        state: format!("unreachable: {why}"),
        workers: "-".into(),
        sessions: "-".into(),
        plugins: "-".into(),
        millis,
    }
}

async fn ask(host: String, token: String, timeout: Duration) -> Row {
    let started = Instant::now();
    let ready = get(&host, "/ready", &token, timeout).await;
    let plugins = get(&host, "/warmup/status", &token, timeout).await;
    let millis = started.elapsed().as_millis();
    let (node, ready) = match ready {
        Ok(r) => r,
        Err(why) => return unreachable_row(&host, &why, millis),
    };
    let count = |key: &str| {
        ready
            .get(key)
            .and_then(Value::as_u64)
            .map_or("-".to_string(), |n| n.to_string())
    };
    Row {
        host: host.clone(),
        node,
        state: ready["status"].as_str().unwrap_or("?").to_string(),
        workers: count("active_workers"),
        sessions: count("total_sessions"),
        plugins: match plugins {
            Ok((_, body)) => plugin_summary(&body),
            Err(why) => format!("? ({why})"),
        },
        millis,
    }
}

/// `bash:warm vm:warm rag:loaded` from a `/warmup/status` envelope.
fn plugin_summary(body: &Value) -> String {
    let Some(backends) = body["data"]["backends"].as_object() else {
        return format!("? ({})", body["message"].as_str().unwrap_or("no backends"));
    };
    let parts: Vec<String> = backends
        .iter()
        .map(|(name, b)| {
            let state = if b["warmed_up"] == true {
                "warm"
            } else if let Some(e) = b["error"].as_str().filter(|e| !e.is_empty()) {
                return format!("{name}:error({})", e.chars().take(40).collect::<String>());
            } else {
                b["state"].as_str().unwrap_or("?")
            };
            format!("{name}:{state}")
        })
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(" ")
    }
}

/// GETs `path` from `host`: the answering node's name and the JSON body.
async fn get(
    host: &str,
    path: &str,
    token: &str,
    timeout: Duration,
) -> Result<(String, Value), String> {
    let uri: Uri = format!("{host}{path}")
        .parse()
        .map_err(|e| format!("bad address '{host}': {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("'{host}': only http:// addresses are supported"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("'{host}' has no host:port"))?
        .clone();
    let port = authority.port_u16().unwrap_or(80);
    let work = async {
        let stream = TcpStream::connect((authority.host(), port))
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(header::HOST, authority.as_str());
        if !token.is_empty() {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
        let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let node = res
            .headers()
            .get("x-agentflow-node")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string();
        let status = res.status();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let json: Value = serde_json::from_slice(&body)
            .map_err(|_| format!("HTTP {status}: not a JSON answer"))?;
        if status == 401 {
            return Err("401: send the host's token (--token or AGENTFLOW_TOKEN)".into());
        }
        Ok((node, json))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("no answer within {:.1}s", timeout.as_secs_f64()))?
}

/// The rows as an aligned text table with a totals line.
fn table(rows: &[Row]) -> String {
    let header = [
        "HOST", "NODE", "STATE", "WORKERS", "SESSIONS", "MS", "PLUGINS",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.host.clone(),
                r.node.clone(),
                r.state.clone(),
                r.workers.clone(),
                r.sessions.clone(),
                r.millis.to_string(),
                r.plugins.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for c in &cells {
        for (w, cell) in widths.iter_mut().zip(c) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |c: &[String]| {
        let mut out = String::new();
        for (i, (cell, w)) in c.iter().zip(widths).enumerate() {
            if i + 1 == c.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&header.map(String::from));
    for c in &cells {
        out.push_str(&line(c));
    }
    let sum = |f: fn(&Row) -> &String| -> u64 {
        rows.iter().filter_map(|r| f(r).parse::<u64>().ok()).sum()
    };
    let ready = rows.iter().filter(|r| r.state == "ready").count();
    out.push_str(&format!(
        "{ready} of {} hosts ready; {} workers, {} sessions\n",
        rows.len(),
        sum(|r| &r.workers),
        sum(|r| &r.sessions)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_table_aligns_columns_and_totals_the_ready_hosts() {
        let rows = vec![
            Row {
                host: "http://a:1".into(),
                node: "host-1".into(),
                state: "ready".into(),
                workers: "3".into(),
                sessions: "4".into(),
                plugins: "bash:warm".into(),
                millis: 2,
            },
            unreachable_row("http://b:2", "connection refused", 1),
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("HOST"));
        // Columns line up: NODE starts at the same offset in every row.
        let at = lines[0].find("NODE").unwrap();
        assert_eq!(&lines[1][at..at + 6], "host-1");
        assert!(lines[2].contains("unreachable: connection refused"));
        assert_eq!(lines[3], "1 of 2 hosts ready; 3 workers, 4 sessions");
    }

    #[test]
    fn plugins_read_as_name_and_state() {
        let body = json!({"data": {"backends": {
            "bash": {"warmed_up": true, "state": "ready"},
            "rag": {"warmed_up": false, "state": "loaded", "error": null},
            "vm": {"warmed_up": false, "state": "failed", "error": "Xvfb not found"}
        }}});
        assert_eq!(
            plugin_summary(&body),
            "bash:warm rag:loaded vm:error(Xvfb not found)"
        );
    }
}
