//! Trajectories: what recording a session costs — `bash:run "echo hi"` and
//! `vm:screenshot` on a recorded session beside an unrecorded one of the
//! same server, in alternating slices — and the disk 1,000 vm steps take
//! with screenshots stored once by content hash, against every frame stored.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{ensure, Context};
use serde_json::{json, Value};

use super::Ctx;
use crate::figure::Fig;
use crate::load::{self, Req};
use crate::report::{Row, Section};
use crate::server::{Server, ServerSpec};

const SCREEN: (u32, u32) = (1280, 800);
/// Pointer positions the disk run cycles through (a blank desktop: the
/// pointer is what changes between frames).
const POSITIONS: [(u32, u32); 5] = [(100, 100), (400, 300), (700, 500), (1000, 200), (200, 700)];
const DISK_STEPS: usize = 1000;

pub async fn run(cx: &Ctx<'_>, section: &mut Section) -> anyhow::Result<()> {
    let bash = cx.artifacts.plugin("bash")?;
    let vm = cx.artifacts.plugin("vm")?;
    let spec = ServerSpec::new().plugin("bash", bash).plugin("vm", vm);
    let server = Server::start(&cx.artifacts.agentflow, &spec).await?;
    let api = server.api();
    api.warmup(&["bash", "vm"]).await?;
    section.note(format!(
        "Each figure is a session created with `\"record\": true` beside one without, on \
         the same server (plugin defaults, trajectories in the server's runtime directory \
         on the machine's disk), measured at c=1 in {} alternating slices. Recording \
         appends each step to the session's log with write(2) before answering; a \
         screenshot's base64 is decoded, hashed (SHA-256) and stored as a PNG file unless \
         that frame is stored already. The disk run records {DISK_STEPS} steps on a \
         {}×{} desktop with nothing on it: {} × (`vm:move` to one of {} positions, \
         `vm:screenshot`), so frames repeat; 'every frame stored' is the same log with one \
         file per screenshot step.",
        cx.plan.rounds,
        SCREEN.0,
        SCREEN.1,
        DISK_STEPS / 2,
        POSITIONS.len(),
    ));

    eprintln!("  bash:run recorded and not");
    for (worker, record) in [("bench-traj-bash-on", true), ("bench-traj-bash-off", false)] {
        api.create_session(worker, "bash", json!({"record": record}))
            .await?;
    }
    let run = |w: &str| {
        Req::post(
            "run",
            "/execute",
            &json!({"worker_id": w, "action": "bash:run", "params": {"command": "echo hi"}}),
        )
    };
    compare(
        cx,
        &server,
        section,
        "`bash:run \"echo hi\"`",
        "calls/s",
        [run("bench-traj-bash-on"), run("bench-traj-bash-off")],
    )
    .await?;

    eprintln!("  vm:screenshot recorded and not");
    for (worker, record) in [("bench-traj-vm-on", true), ("bench-traj-vm-off", false)] {
        api.create_session(
            worker,
            "vm",
            json!({"record": record, "screen_size": [SCREEN.0, SCREEN.1]}),
        )
        .await?;
    }
    let shot = |w: &str| {
        Req::post(
            "screenshot",
            "/execute",
            &json!({"worker_id": w, "action": "vm:screenshot", "params": {}}),
        )
    };
    compare(
        cx,
        &server,
        section,
        &format!("`vm:screenshot` {}×{}", SCREEN.0, SCREEN.1),
        "shots/s",
        [shot("bench-traj-vm-on"), shot("bench-traj-vm-off")],
    )
    .await?;

    eprintln!("  disk per {DISK_STEPS} vm steps");
    let worker = "bench-traj-vm-disk";
    let created = api
        .create_session(
            worker,
            "vm",
            json!({"record": true, "screen_size": [SCREEN.0, SCREEN.1]}),
        )
        .await?;
    let session = created["data"]["session_id"]
        .as_str()
        .context("no session id")?
        .to_string();
    for i in 0..DISK_STEPS / 2 {
        let (x, y) = POSITIONS[i % POSITIONS.len()];
        api.execute(worker, "vm:move", json!({"x": x, "y": y}))
            .await?;
        api.execute(worker, "vm:screenshot", json!({})).await?;
    }
    api.destroy_session(worker, "vm").await?;
    let dir = server
        .dir
        .path()
        .join("runtime/trajectories")
        .join(&session);
    let disk = tokio::task::spawn_blocking(move || disk_use(&dir)).await??;
    ensure!(
        disk.steps == DISK_STEPS,
        "the trajectory has {} steps, not {DISK_STEPS}",
        disk.steps
    );
    let per_1000 = |bytes: u64| bytes as f64 / (1024.0 * 1024.0) * 1000.0 / DISK_STEPS as f64;
    section.row(
        Row::new(
            format!(
                "disk per 1,000 vm steps ({}×{}), frames stored once",
                SCREEN.0, SCREEN.1
            ),
            Fig::mib(per_1000(disk.log + disk.distinct)),
        )
        .vs(
            "every frame stored",
            Fig::mib(per_1000(disk.log + disk.every)),
        ),
    );
    section.note(format!(
        "The disk run stored {} distinct frames for {} screenshots; its log is {:.1} KiB.",
        disk.files,
        DISK_STEPS / 2,
        disk.log as f64 / 1024.0
    ));
    server.stop().await?;
    Ok(())
}

/// A recorded session's load beside an unrecorded one's: throughput and p50 rows.
async fn compare(
    cx: &Ctx<'_>,
    server: &Server,
    section: &mut Section,
    what: &str,
    unit: &'static str,
    [on, off]: [Req; 2],
) -> anyhow::Result<()> {
    let p = cx.plan;
    let loads = [load::per_worker(vec![on]), load::per_worker(vec![off])];
    let mut measured = load::interleaved(server.addr, 1, p.warmup, p.window, p.rounds, &loads)
        .await
        .into_iter();
    let (Some(on), Some(off)) = (measured.next(), measured.next()) else {
        anyhow::bail!("the load generator returned too few results");
    };
    on.require_no_errors(&format!("{what} recorded"))?;
    off.require_no_errors(&format!("{what} not recorded"))?;
    let ratio = on.total_rate() / off.total_rate().max(1e-9);
    section.row(
        Row::new(
            format!("{what} recorded c=1 throughput"),
            Fig::rate(on.total_rate(), unit),
        )
        .vs("not recorded", Fig::rate(off.total_rate(), unit))
        .target("≥ 0.8×", ratio >= 0.8),
    );
    section.row(
        Row::new(
            format!("{what} recorded c=1 p50"),
            Fig::ms(on.total().latency_ms(0.5)),
        )
        .vs("not recorded", Fig::ms(off.total().latency_ms(0.5))),
    );
    Ok(())
}

/// Bytes of a closed trajectory: its log, its image files, and what the
/// images would take stored once per step that shows one.
struct Disk {
    steps: usize,
    log: u64,
    files: usize,
    distinct: u64,
    every: u64,
}

fn disk_use(dir: &Path) -> anyhow::Result<Disk> {
    let log_path = dir.join("trajectory.jsonl");
    let text = std::fs::read_to_string(&log_path)
        .with_context(|| format!("read {}", log_path.display()))?;
    let mut sizes = BTreeMap::new();
    for e in std::fs::read_dir(dir.join("images"))? {
        let e = e?;
        sizes.insert(
            format!("images/{}", e.file_name().to_string_lossy()),
            e.metadata()?.len(),
        );
    }
    let (mut steps, mut every) = (0, 0);
    let mut used = BTreeSet::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line)?;
        if v["type"] != "step" {
            continue;
        }
        steps += 1;
        for image in v["images"].as_array().into_iter().flatten() {
            let file = image["file"].as_str().unwrap_or_default().to_string();
            every += sizes
                .get(&file)
                .copied()
                .context("a step names a missing image")?;
            used.insert(file);
        }
    }
    Ok(Disk {
        steps,
        log: text.len() as u64,
        files: sizes.len(),
        distinct: used.iter().filter_map(|f| sizes.get(f)).sum(),
        every,
    })
}
