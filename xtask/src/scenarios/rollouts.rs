//! RL rollouts on bash: forking a session with 200 MB of changed files 16
//! ways (time and disk) beside creating 16 fresh sessions and beside copying
//! the files 16 times with `cp -a`; and the cost of polling a background
//! process (`bash:output`) beside `bash:run "echo hi"`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde_json::json;

use super::{median, parallel, Ctx};
use crate::client::envelope_ok;
use crate::figure::Fig;
use crate::load::{self, Req};
use crate::report::{Row, Section};
use crate::server::{Server, ServerSpec};

const FORKS: usize = 16;
const CHANGED_MB: usize = 200;

pub async fn run(cx: &Ctx<'_>, section: &mut Section) -> anyhow::Result<()> {
    let lib = cx.artifacts.plugin("bash")?;
    let root = tempfile::Builder::new()
        .prefix("agentflow-bench-rollouts-")
        .tempdir()?;
    chmod_711(root.path())?;
    let server = Server::start(
        &cx.artifacts.agentflow,
        &ServerSpec::new().plugin("bash", lib).toml(&format!(
            "[plugins.bash.config]\nworkspace_root = \"{}\"",
            root.path().display()
        )),
    )
    .await?;
    server.api().warmup(&["bash"]).await?;
    polling(cx, section, &server).await?;
    forking(cx, section, &server, root.path()).await?;
    server.stop().await?;
    Ok(())
}

async fn polling(cx: &Ctx<'_>, section: &mut Section, server: &Server) -> anyhow::Result<()> {
    let api = server.api();
    let w = "bench-poll";
    api.create_session(w, "bash", json!({})).await?;
    let started = api
        .execute(
            w,
            "bash:start",
            json!({"command": "while sleep 0.05; do echo tick; done"}),
        )
        .await?;
    let id = started["data"]["id"]
        .as_str()
        .context("bash:start gave no id")?
        .to_string();
    let poll = Req::post(
        "output",
        "/execute",
        &json!({"worker_id": w, "action": "bash:output", "params": {"id": id}}),
    )
    .check(envelope_ok);
    let run = Req::post(
        "run",
        "/execute",
        &json!({"worker_id": w, "action": "bash:run", "params": {"command": "echo hi"}}),
    )
    .check(envelope_ok);
    let p = cx.plan;
    let loads = [load::cycle(vec![poll]), load::cycle(vec![run])];
    let mut measured = load::interleaved(server.addr, 1, p.warmup, p.window, p.rounds, &loads)
        .await
        .into_iter();
    let (Some(o), Some(r)) = (measured.next(), measured.next()) else {
        bail!("the load generator returned too few results");
    };
    o.require_no_errors("bash:output")?;
    r.require_no_errors("bash:run")?;
    section.note(format!(
        "Polling: one client alternates, in {} slices, between `bash:output` of a background \
         loop printing a line every 50 ms and `bash:run \"echo hi\"` in the same session.",
        p.rounds
    ));
    let base = "`bash:run \"echo hi\"`";
    let (os, rs) = (o.total(), r.total());
    section.row(
        Row::new("`bash:output` c=1 p50", Fig::ms(os.latency_ms(0.5)))
            .vs(base, Fig::ms(rs.latency_ms(0.5))),
    );
    section.row(
        Row::new(
            "`bash:output` c=1 throughput",
            Fig::rate(o.total_rate(), "calls/s"),
        )
        .vs(base, Fig::rate(r.total_rate(), "calls/s")),
    );
    api.destroy_session(w, "bash").await
}

async fn forking(
    cx: &Ctx<'_>,
    section: &mut Section,
    server: &Server,
    root: &Path,
) -> anyhow::Result<()> {
    let api = server.api();
    let src = "bench-fork-src";
    api.create_session(src, "bash", json!({})).await?;
    let made = api
        .post(
            "/execute",
            json!({"worker_id": src, "action": "bash:run", "timeout": 600,
                   "params": {"command": format!(
                       "mkdir -p data && for i in $(seq 1 {CHANGED_MB}); do head -c 1048576 /dev/urandom > data/f$i; done && cat data/* | wc -c"
                   )}}),
        )
        .await?;
    let bytes = (CHANGED_MB * 1024 * 1024).to_string();
    ensure!(
        made["data"]["stdout"].as_str().map(str::trim) == Some(bytes.as_str()),
        "the source session did not get its {CHANGED_MB} MB: {made}"
    );
    let mut fork_times = Vec::new();
    let mut fork_disk = 0.0;
    for round in 0..cx.plan.repeats.clamp(1, 3) {
        let targets: Vec<String> = (0..FORKS)
            .map(|i| format!("bench-fork-{round}-{i}"))
            .collect();
        let before = disk_bytes(root)?;
        let t = Instant::now();
        let forked = api
            .post(
                "/session/fork",
                json!({"worker_id": src, "resource_type": "bash", "target_worker_ids": targets}),
            )
            .await?;
        fork_times.push(t.elapsed());
        ensure!(
            forked["data"]["created"] == FORKS,
            "the fork answered {forked}"
        );
        fork_disk = disk_bytes(root)? - before;
        let seen = api
            .execute(
                &targets[FORKS - 1],
                "bash:run",
                json!({"command": "cat data/* | wc -c"}),
            )
            .await?;
        ensure!(
            seen["data"]["stdout"].as_str().map(str::trim) == Some(bytes.as_str()),
            "a fork does not see the source's files: {seen}"
        );
        for t in &targets {
            api.destroy_session(t, "bash").await?;
        }
        let name = forked["data"]["snapshot"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        api.post("/snapshot/delete", json!({"name": name})).await?;
    }
    let fork_time = median(&mut fork_times);

    // Baseline: 16 fresh sessions, without the files.
    let t = Instant::now();
    parallel(FORKS, FORKS, |i| async move {
        api.create_session(&format!("bench-fresh-{i}"), "bash", json!({}))
            .await
            .map(drop)
    })
    .await?;
    let fresh = t.elapsed();
    // Baseline: the files copied 16 times on the host's disk.
    let (copy_time, copy_disk) = tokio::task::spawn_blocking(copies).await??;

    let one_copy = (CHANGED_MB * 1024 * 1024) as f64;
    section.note(format!(
        "Forking: a session writes {CHANGED_MB} MB of random files (1 MiB each) into its \
         workspace, then `/session/fork` makes {FORKS} sessions from it; time is the median \
         of {} forks (each answered with every session made, and one of them checked to see \
         the files), disk is the growth of the bash workspace root (allocated blocks, `du`) \
         over the fork, snapshot included. Baselines from the same run: creating {FORKS} fresh \
         sessions at once, and `cp -a` of the same files {FORKS} times on the host's disk.",
        fork_times.len()
    ));
    section.row(
        Row::new(
            format!("fork 1 → {FORKS}, {CHANGED_MB} MB changed"),
            Fig::duration(fork_time),
        )
        .vs(&format!("{FORKS} fresh sessions"), Fig::duration(fresh))
        .target("well under 2 s", fork_time < Duration::from_millis(1500)),
    );
    section.row(
        Row::new(
            format!("fork 1 → {FORKS} disk, ÷ one copy"),
            Fig::mib(fork_disk / 1048576.0),
        )
        .vs("one copy", Fig::mib(one_copy / 1048576.0))
        .target("< 1.2×", fork_disk < 1.2 * one_copy),
    );
    section.row(
        Row::new(format!("`cp -a` × {FORKS}"), Fig::duration(copy_time))
            .vs("fork", Fig::duration(fork_time)),
    );
    section.row(
        Row::new(
            format!("`cp -a` × {FORKS} disk"),
            Fig::mib(copy_disk / 1048576.0),
        )
        .vs("one copy", Fig::mib(one_copy / 1048576.0)),
    );
    Ok(())
}

/// `cp -a` of CHANGED_MB of files, FORKS times: time and disk.
fn copies() -> anyhow::Result<(Duration, f64)> {
    let dir = tempfile::Builder::new()
        .prefix("agentflow-bench-cp-")
        .tempdir()?;
    let src = dir.path().join("src");
    std::fs::create_dir(&src)?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "for i in $(seq 1 {CHANGED_MB}); do head -c 1048576 /dev/urandom > {}/f$i; done",
            src.display()
        ))
        .status()?;
    ensure!(status.success(), "could not write the files to copy");
    let _ = Command::new("sync").status();
    let before = disk_bytes(dir.path())?;
    let t = Instant::now();
    for i in 0..FORKS {
        let status = Command::new("cp")
            .arg("-a")
            .arg(&src)
            .arg(dir.path().join(format!("copy-{i}")))
            .status()?;
        ensure!(status.success(), "cp -a failed");
    }
    let took = t.elapsed();
    Ok((took, disk_bytes(dir.path())? - before))
}

/// Allocated bytes under `dir` on its own filesystem (`du -x`): session disks
/// count by their image files, not again through their mounts.
fn disk_bytes(dir: &Path) -> anyhow::Result<f64> {
    let out = Command::new("du")
        .args(["-s", "-x", "--block-size=1"])
        .arg(dir)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse::<f64>().ok())
        .with_context(|| format!("du {} said {text:?}", dir.display()))
}

fn chmod_711(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))?;
    Ok(())
}
