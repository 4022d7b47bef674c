//! Measures the plugin-time latency of `run "echo hi"` in a session's
//! persistent shell against spawning `bash -c "echo hi"` for each call.
//!
//! `CARGO_TARGET_DIR=... cargo run --release -p agentflow-bash --example latency [-- ROUNDS [ISOLATION]]`

use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime};

use agentflow_bash::BashPlugin;
use plugin_api::{CallContext, Plugin};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args().nth(1).map_or(Ok(1000), |n| n.parse())?;
    let isolation = std::env::args().nth(2).unwrap_or_else(|| "auto".into());
    let root = std::env::temp_dir().join(format!("agentflow-bash-latency-{}", std::process::id()));
    let plugin = BashPlugin::warmup(&json!({ "workspace_root": root, "isolation": isolation }))?;
    let session = plugin.initialize("latency", &json!({}))?;
    let tools = BashPlugin::tools();
    let cancel = AtomicBool::new(false);

    let mut persistent = Vec::with_capacity(rounds);
    for i in 0..rounds + 50 {
        let cx = CallContext::new(
            Some(&session),
            "latency",
            "w1",
            &cancel,
            SystemTime::now() + Duration::from_secs(30),
        );
        let start = Instant::now();
        let result = tools.call(&plugin, &cx, "run", json!({"command": "echo hi"}))?;
        let elapsed = start.elapsed();
        assert_eq!(result["stdout"], "hi\n");
        if i >= 50 {
            persistent.push(elapsed); // the first 50 warm caches up
        }
    }

    let mut spawned = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let output = Command::new("bash").args(["-c", "echo hi"]).output()?;
        spawned.push(start.elapsed());
        assert_eq!(output.stdout, b"hi\n");
    }

    let isolation = tools.call(
        &plugin,
        &CallContext::new(
            Some(&session),
            "latency",
            "w1",
            &cancel,
            SystemTime::now() + Duration::from_secs(30),
        ),
        "info",
        json!({}),
    )?["isolation"]
        .clone();
    println!("rounds: {rounds}, isolation: {isolation}");
    report("persistent shell, run \"echo hi\"", &mut persistent);
    report("spawn bash -c \"echo hi\" per call", &mut spawned);

    plugin.cleanup(&session)?;
    plugin.shutdown();
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "{what:40} median {:>8.1} µs   p90 {:>8.1} µs   p99 {:>8.1} µs",
        at(0.5).as_secs_f64() * 1e6,
        at(0.9).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6
    );
}
