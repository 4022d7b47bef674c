//! Measurements for the vm plugin (run with `--release`):
//! session create -> first screenshot, screenshot latency and its parts,
//! PNG settings, input actions per second, Xvfb memory.
//!
//! `cargo run --release -p agentflow-vm --example measure`

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime};

use agentflow_vm::{encode_png_with, VmPlugin, VmSession};
use plugin_api::{CallContext, Plugin, Tools};
use serde_json::{json, Value};

fn call(p: &VmPlugin, tools: &Tools<VmPlugin>, s: &VmSession, tool: &str, params: Value) -> Value {
    let cancel = AtomicBool::new(false);
    let cx = CallContext::new(
        Some(s),
        s.id(),
        "w1",
        &cancel,
        SystemTime::now() + Duration::from_secs(60),
    );
    tools
        .call(p, &cx, tool, params)
        .unwrap_or_else(|e| panic!("{tool}: {e:?}"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let p = VmPlugin::warmup(&json!({})).unwrap();
    let tools = VmPlugin::tools();
    let no_check = || Ok(());

    for (w, h) in [(1280u32, 800u32), (1920, 1080)] {
        println!("== {w}x{h}");
        // Empty desktop: create -> first screenshot.
        let mut firsts = Vec::new();
        for i in 0..5 {
            let t = Instant::now();
            let s = p
                .initialize(&format!("measure-{w}-{i}"), &json!({"screen_size": [w, h]}))
                .unwrap();
            let created = t.elapsed();
            call(&p, &tools, &s, "screenshot", json!({}));
            let first = t.elapsed();
            let t = Instant::now();
            p.cleanup(&s).unwrap();
            firsts.push((ms(created), ms(first), ms(t.elapsed())));
        }
        println!("create / create+first screenshot / cleanup (ms): {firsts:.1?}");

        // A desktop with text on it.
        let s = p
            .initialize(
                &format!("measure-{w}"),
                &json!({"screen_size": [w, h], "programs": [
                    "xterm -geometry 120x50+0+0 -e sh -c 'ls -l /usr/bin | head -60; sleep 600'",
                    "xterm -geometry 100x40-0-0 -e sh -c 'dmesg 2>/dev/null | head -50; cat /etc/services | head -40; sleep 600'",
                ]}),
            )
            .unwrap();
        std::thread::sleep(Duration::from_secs(2));
        let rss_idle = rss_kib(s.xvfb_pid());

        let mut full = Vec::new();
        let mut sizes = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let v = call(&p, &tools, &s, "screenshot", json!({}));
            full.push(ms(t.elapsed()));
            sizes.push(v["image"].as_str().unwrap().len());
        }
        let mut capture = Vec::new();
        let mut rgb = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            rgb = s.with_desktop(&no_check, |d| d.capture_rgb()).unwrap();
            capture.push(ms(t.elapsed()));
        }
        let shm = s.with_desktop(&no_check, |d| Ok(d.uses_shm())).unwrap();
        println!(
            "screenshot tool (capture+cursor+png+base64): median {:.1} ms, base64 {} KiB; capture only (shm={shm}): median {:.1} ms",
            median(full),
            sizes[0] / 1024,
            median(capture)
        );
        for (name, c, f) in [
            ("Fast/Up", png::Compression::Fast, png::Filter::Up),
            ("Fast/Sub", png::Compression::Fast, png::Filter::Sub),
            (
                "Fast/Adaptive",
                png::Compression::Fast,
                png::Filter::Adaptive,
            ),
            (
                "Fast/NoFilter",
                png::Compression::Fast,
                png::Filter::NoFilter,
            ),
            ("Fastest/Up", png::Compression::Fastest, png::Filter::Up),
            (
                "Balanced/Adaptive (crate default)",
                png::Compression::Balanced,
                png::Filter::Adaptive,
            ),
        ] {
            let mut t_enc = Vec::new();
            let mut size = 0;
            for _ in 0..5 {
                let t = Instant::now();
                let shot = encode_png_with(&rgb, w, h, c, f).unwrap();
                t_enc.push(ms(t.elapsed()));
                size = shot.png.len();
            }
            println!(
                "  png {name:<34} median {:>6.1} ms  {:>6} KiB",
                median(t_enc),
                size / 1024
            );
        }

        // Input throughput (each action waits for the server to process it).
        let n = 500;
        let t = Instant::now();
        for i in 0..n {
            call(
                &p,
                &tools,
                &s,
                "move",
                json!({"x": (i * 7) % w, "y": (i * 3) % h}),
            );
        }
        let moves = f64::from(n) / t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..n {
            call(&p, &tools, &s, "click", json!({"x": w - 5, "y": 5}));
        }
        let clicks = f64::from(n) / t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..n {
            call(&p, &tools, &s, "key", json!({"key": "shift"}));
        }
        let keys = f64::from(n) / t.elapsed().as_secs_f64();
        let text: String = "hello world ".repeat(100);
        let t = Instant::now();
        call(&p, &tools, &s, "type", json!({"text": text}));
        let chars = text.len() as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        call(&p, &tools, &s, "type", json!({"text": "é€中ü"}));
        let special = ms(t.elapsed());
        let (borrowed, spares) = s
            .with_desktop(&no_check, |d| Ok(d.borrowed_keycodes()))
            .unwrap();
        println!("spare keycodes: {borrowed} borrowed of {spares}");
        let t = Instant::now();
        let xml = call(&p, &tools, &s, "accessibility_tree", json!({}));
        let tree = ms(t.elapsed());
        println!(
            "input: move {moves:.0}/s, click {clicks:.0}/s, key {keys:.0}/s, type {chars:.0} chars/s; \
             4 chars via spare keycodes {special:.1} ms; accessibility_tree {tree:.1} ms ({} bytes)",
            xml["accessibility_tree"].as_str().unwrap().len()
        );
        println!(
            "Xvfb RSS: {} MiB after start with 2 xterms, {} MiB after the run",
            rss_idle / 1024,
            rss_kib(s.xvfb_pid()) / 1024
        );
        p.cleanup(&s).unwrap();
    }
}
