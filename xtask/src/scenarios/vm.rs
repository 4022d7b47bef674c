//! vm: session start to first screenshot, screenshot latency by screen size,
//! input actions per second, memory per session, and 20 sessions taking
//! screenshots for a while.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{median, parallel, Ctx};
use crate::figure::Fig;
use crate::load::{self, Req, Spec};
use crate::procs;
use crate::report::{Row, Section};
use crate::server::{Server, ServerSpec};

const SIZES: [(u32, u32); 2] = [(1280, 800), (1920, 1080)];
const MANY_SESSIONS: usize = 20;
/// Screen of the input-action and many-session runs.
const SMALL: (u32, u32) = (1280, 800);

pub async fn run(cx: &Ctx<'_>, section: &mut Section) -> anyhow::Result<()> {
    let vm = cx.artifacts.plugin("vm")?;
    let fixture = cx.artifacts.plugin("fixture")?;
    let spec = ServerSpec::new()
        .plugin("vm", vm)
        .plugin("fixture", fixture);
    let server = Server::start(&cx.artifacts.agentflow, &spec).await?;
    let api = server.api();
    api.warmup(&["vm", "fixture"]).await?;
    section.note(format!(
        "Plugin defaults (Xvfb per session, no window manager or programs: the desktop is \
         blank, so PNG encoding is at its cheapest). Screenshots are whole-screen PNGs, \
         base64 in JSON. Start-up figures are medians of {} sessions after an untimed one. \
         Input actions cycle `vm:move`, `vm:click`, `vm:key` on a {}×{} session; their \
         baseline is `fixture:echo` on an explicit session of the same server (the host's \
         own cost per call), measured in alternating slices with them. Memory per session \
         is the growth of the proportional set size (PSS) of the server and all its \
         processes (Xvfb included), per session, after one screenshot each at the default \
         1920×1080.",
        cx.plan.repeats, SMALL.0, SMALL.1
    ));

    eprintln!("  bare Xvfb start and session start to first screenshot");
    // One untimed round first: the very first Xvfb start of a boot is much slower
    // (font and keymap caches), and it is the steady state that matters.
    bare_xvfb_start(1920, 1080).await?;
    first_screenshot(&server, "bench-vm-first-warm").await?;
    let mut bare = Vec::new();
    let mut first = Vec::new();
    for k in 0..cx.plan.repeats {
        bare.push(bare_xvfb_start(1920, 1080).await?);
        first.push(first_screenshot(&server, &format!("bench-vm-first-{k}")).await?);
    }
    let first_ms = Fig::duration(median(&mut first));
    section.row(
        Row::new("session create → first screenshot (1920×1080)", first_ms)
            .vs("bare Xvfb start to ready", Fig::duration(median(&mut bare))),
    );

    let mut small_rate = Fig::rate(0.0, "shots/s");
    for (w, h) in SIZES {
        let worker = format!("bench-vm-{w}x{h}");
        api.create_session(&worker, "vm", json!({"screen_size": [w, h]}))
            .await?;
        let shot = api.execute(&worker, "vm:screenshot", json!({})).await?;
        ensure!(
            shot["data"]["width"] == w && shot["data"]["height"] == h,
            "a {w}×{h} session answered a {}×{} screenshot",
            shot["data"]["width"],
            shot["data"]["height"]
        );
        eprintln!("  screenshots at {w}×{h}");
        let shots = load::per_worker(vec![screenshot_req(&worker)]);
        let o = load::run(server.addr, cx.spec(1), shots).await;
        o.require_no_errors(&format!("screenshots at {w}×{h}"))?;
        let s = o.total();
        section.row(
            Row::new(
                format!("`vm:screenshot` {w}×{h} p50"),
                Fig::ms(s.latency_ms(0.5)),
            )
            .vs("CPU reference", cx.cpu_ms()),
        );
        section.row(
            Row::new(
                format!("`vm:screenshot` {w}×{h} p99"),
                Fig::ms(s.latency_ms(0.99)),
            )
            .vs("CPU reference", cx.cpu_ms()),
        );
        if (w, h) == SMALL {
            small_rate = Fig::rate(o.total_rate(), "shots/s");
        }
    }

    eprintln!("  input actions");
    let small = format!("bench-vm-{}x{}", SMALL.0, SMALL.1);
    let inputs = input_reqs(&small);
    api.create_session("bench-vm-echo", "fixture", json!({}))
        .await?;
    let echo = Req::post(
        "echo",
        "/execute",
        &json!({"worker_id": "bench-vm-echo", "action": "fixture:echo", "params": {"text": "hi"}}),
    );
    let p = cx.plan;
    let loads = [load::cycle(inputs), load::per_worker(vec![echo])];
    let mut measured = load::interleaved(server.addr, 1, p.warmup, p.window, p.rounds, &loads)
        .await
        .into_iter();
    let (Some(actions), Some(floor)) = (measured.next(), measured.next()) else {
        anyhow::bail!("the load generator returned too few results");
    };
    actions.require_no_errors("vm input actions")?;
    floor.require_no_errors("fixture:echo")?;
    section.row(
        Row::new(
            "input actions (move, click, key) c=1",
            Fig::rate(actions.total_rate(), "actions/s"),
        )
        .vs(
            "`fixture:echo` c=1",
            Fig::rate(floor.total_rate(), "calls/s"),
        ),
    );

    eprintln!("  memory per session");
    section.row(Row::new(
        "memory per session (1920×1080)",
        Fig::mib(memory_per_session(&server, cx.plan.vm_memory_sessions).await?),
    ));

    eprintln!(
        "  {MANY_SESSIONS} sessions for {} s",
        cx.plan.endurance.as_secs()
    );
    parallel(MANY_SESSIONS, 4, move |w| async move {
        api.create_session(
            &many_worker(w),
            "vm",
            json!({"screen_size": [SMALL.0, SMALL.1]}),
        )
        .await
        .map(drop)
    })
    .await?;
    let spec = Spec::new(MANY_SESSIONS, cx.plan.warmup, cx.plan.endurance);
    let many = load::run(
        server.addr,
        spec,
        load::per_worker(
            (0..MANY_SESSIONS)
                .map(|w| screenshot_req(&many_worker(w)))
                .collect(),
        ),
    )
    .await;
    let m = many.total();
    let secs = cx.plan.endurance.as_secs();
    section.row(
        Row::new(
            format!(
                "{MANY_SESSIONS} sessions × screenshots ({}×{}) for {secs} s: errors",
                SMALL.0, SMALL.1
            ),
            Fig::count(m.errors()),
        )
        .target("0", m.errors() == 0),
    );
    section.note(format!(
        "The {MANY_SESSIONS}-session run took {} screenshots.",
        m.ok + m.errors()
    ));
    section.row(
        Row::new(
            format!("{MANY_SESSIONS} sessions: throughput"),
            Fig::rate(many.total_rate(), "shots/s"),
        )
        .vs("one session c=1", small_rate),
    );
    if m.errors() > 0 {
        eprintln!("  errors: {:?}", m.samples);
    }
    server.stop().await?;
    Ok(())
}

fn many_worker(w: usize) -> String {
    format!("bench-vm-many-{w}")
}

fn screenshot_req(worker: &str) -> Req {
    Req::post(
        "screenshot",
        "/execute",
        &json!({"worker_id": worker, "action": "vm:screenshot", "params": {}}),
    )
}

fn input_reqs(worker: &str) -> Vec<Req> {
    [
        ("vm:move", json!({"x": 200, "y": 150})),
        ("vm:click", json!({"x": 400, "y": 300, "button": "left"})),
        ("vm:key", json!({"key": "a"})),
    ]
    .into_iter()
    .map(|(action, params)| {
        Req::post(
            "input",
            "/execute",
            &json!({"worker_id": worker, "action": action, "params": params}),
        )
    })
    .collect()
}

/// Create a session, take one screenshot, destroy it: the time to the screenshot.
async fn first_screenshot(server: &Server, worker: &str) -> anyhow::Result<Duration> {
    let api = server.api();
    let started = Instant::now();
    api.create_session(worker, "vm", json!({})).await?;
    let shot = api.execute(worker, "vm:screenshot", json!({})).await?;
    let took = started.elapsed();
    ensure!(
        shot["data"]["image"]
            .as_str()
            .is_some_and(|i| !i.is_empty()),
        "vm:screenshot answered no image"
    );
    api.destroy_session(worker, "vm").await?;
    Ok(took)
}

/// The baseline of session start: Xvfb alone, from spawn until it reports its display.
async fn bare_xvfb_start(w: u32, h: u32) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut child = tokio::process::Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-nolisten",
            "tcp",
            "-screen",
            "0",
            &format!("{w}x{h}x24"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start Xvfb for the baseline")?;
    let stdout = child.stdout.take().context("Xvfb stdout")?;
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(15),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .context("Xvfb did not report a display")??;
    let took = started.elapsed();
    ensure!(
        line.trim().parse::<u32>().is_ok(),
        "Xvfb reported {line:?} instead of a display number"
    );
    child.kill().await?;
    Ok(took)
}

/// PSS growth of the server's process tree per session.
async fn memory_per_session(server: &Server, n: usize) -> anyhow::Result<f64> {
    let api = server.api();
    let pid = server.pid;
    let before = tokio::task::spawn_blocking(move || procs::tree_pss_mib(pid)).await?;
    for k in 0..n {
        let worker = format!("bench-vm-mem-{k}");
        api.create_session(&worker, "vm", json!({})).await?;
        api.execute(&worker, "vm:screenshot", json!({})).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = tokio::task::spawn_blocking(move || procs::tree_pss_mib(pid)).await?;
    for k in 0..n {
        api.destroy_session(&format!("bench-vm-mem-{k}"), "vm")
            .await?;
    }
    Ok((after - before) / n.max(1) as f64)
}
