//! bash: `bash:run "echo hi"` over HTTP against spawning `bash -c` per call,
//! session create+destroy rate, and 100 concurrent sessions for a while, all
//! sandboxed (the default), beside a server with `isolation = "none"`.

use std::process::{Command, Stdio};

use anyhow::ensure;
use serde_json::{json, Value};

use super::{parallel, Ctx};
use crate::figure::Fig;
use crate::load::{self, Req, Spec};
use crate::report::{Row, Section};
use crate::server::{Server, ServerSpec};
use crate::stats::Outcome;

const MANY_SESSIONS: usize = 100;

pub async fn run(cx: &Ctx<'_>, section: &mut Section) -> anyhow::Result<()> {
    let lib = cx.artifacts.plugin("bash")?;
    let server = Server::start(
        &cx.artifacts.agentflow,
        &ServerSpec::new().plugin("bash", lib),
    )
    .await?;
    let api = server.api();
    api.warmup(&["bash"]).await?;
    section.note(format!(
        "Plugin defaults (every session in a bubblewrap sandbox with its own cgroup); the \
         `isolation = \"none\"` figures come from a second server in the same run. The baseline spawns \
         `bash -c \"echo hi\"` per call from the benchmark process and reads its output; \
         the two alternate in {} slices. \
         The {MANY_SESSIONS}-session run gives each client its own worker and session \
         and lasts {} s.",
        cx.plan.rounds,
        cx.plan.endurance.as_secs()
    ));

    let worker = "bench-bash-0";
    api.create_session(worker, "bash", json!({})).await?;
    let first = api
        .execute(worker, "bash:run", json!({"command": "echo hi"}))
        .await?;
    ensure!(
        first["data"]["stdout"] == "hi\n"
            && first["meta"]["temporary_session"] == Value::Bool(false),
        "bash:run on the session answered {first}"
    );

    eprintln!("  bash:run c=1 and the bash -c baseline");
    let (run1, spawned) = run_against_spawn(cx, &server, worker).await?;
    let (r, s) = (run1.total(), spawned.total());
    let spawn_rate = Fig::rate(spawned.total_rate(), "calls/s");
    let run_rate = Fig::rate(run1.total_rate(), "calls/s");
    section.row(
        Row::new(
            "`bash:run \"echo hi\"` explicit session c=1 throughput",
            run_rate,
        )
        .vs("`bash -c` spawn", spawn_rate),
    );
    section.row(
        Row::new("`bash:run \"echo hi\"` c=1 p50", Fig::ms(r.latency_ms(0.5)))
            .vs("`bash -c` spawn p50", Fig::ms(s.latency_ms(0.5))),
    );
    section.row(
        Row::new(
            "`bash:run \"echo hi\"` c=1 p99",
            Fig::ms(r.latency_ms(0.99)),
        )
        .vs("`bash -c` spawn p99", Fig::ms(s.latency_ms(0.99))),
    );

    eprintln!("  session create+destroy");
    let cycles = load::run(
        server.addr,
        cx.spec(1),
        load::cycle(vec![create_req(), destroy_req()]),
    )
    .await;
    cycles.require_no_errors("bash session create/destroy")?;
    let per_sec = cycles.rate("create").min(cycles.rate("destroy"));
    section.row(
        Row::new(
            "bash session create+destroy c=1",
            Fig::rate(per_sec, "cycles/s"),
        )
        .vs("`bash -c` spawn", spawn_rate),
    );
    section.row(
        Row::new(
            "bash session create p50",
            Fig::ms(cycles.kind("create").latency_ms(0.5)),
        )
        .vs("`bash -c` spawn p50", Fig::ms(s.latency_ms(0.5))),
    );

    eprintln!("  session create, first bash:run, destroy (sandbox and isolation = none)");
    let sandboxed = create_run_destroy(server.addr, cx).await?;
    let unsandboxed = unsandboxed(cx, lib).await?;
    let (sc, uc) = (sandboxed.kind("create"), unsandboxed.cycle.kind("create"));
    let (sr, ur) = (sandboxed.kind("run"), unsandboxed.cycle.kind("run"));
    section.note(
        "`isolation = \"none\"` answers `bash:run` slower than the sandbox: without a PID \
         namespace each call scans the host's `/proc` for the session's processes.",
    );
    for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
        let create = Fig::ms(sc.latency_ms(q));
        let mut row = Row::new(format!("sandboxed session create {name}"), create)
            .vs("isolation none", Fig::ms(uc.latency_ms(q)));
        if q == 0.5 {
            row = row.target("< 30 ms", sc.latency_ms(q) < 30.0);
        }
        section.row(row);
        section.row(
            Row::new(format!("sandboxed session create {name}"), create)
                .vs(&format!("`bash -c` spawn {name}"), Fig::ms(s.latency_ms(q))),
        );
        section.row(
            Row::new(
                format!("first `bash:run` after create {name}, sandboxed"),
                Fig::ms(sr.latency_ms(q)),
            )
            .vs("isolation none", Fig::ms(ur.latency_ms(q))),
        );
        let u = unsandboxed.run.total();
        let mut row = Row::new(
            format!("`bash:run \"echo hi\"` c=1 {name}, sandboxed"),
            Fig::ms(r.latency_ms(q)),
        )
        .vs("isolation none", Fig::ms(u.latency_ms(q)));
        if q == 0.5 {
            row = row.target("< 1 ms", r.latency_ms(q) < 1.0);
        }
        section.row(row);
    }

    eprintln!(
        "  {MANY_SESSIONS} sessions for {} s",
        cx.plan.endurance.as_secs()
    );
    parallel(MANY_SESSIONS, 8, move |w| async move {
        api.create_session(&many_worker(w), "bash", json!({}))
            .await
            .map(drop)
    })
    .await?;
    let spec = Spec::new(MANY_SESSIONS, cx.plan.warmup, cx.plan.endurance);
    let reqs = (0..MANY_SESSIONS)
        .map(|w| run_req(&many_worker(w)))
        .collect();
    let many = load::run(server.addr, spec, load::per_worker(reqs)).await;
    let m = many.total();
    section.row(
        Row::new(
            format!(
                "{MANY_SESSIONS} sessions × `bash:run` for {} s: errors",
                cx.plan.endurance.as_secs()
            ),
            Fig::count(m.errors()),
        )
        .target("0", m.errors() == 0),
    );
    section.note(format!(
        "The {MANY_SESSIONS}-session run made {} calls.",
        m.ok + m.errors()
    ));
    section.row(
        Row::new(
            format!("{MANY_SESSIONS} sessions: throughput"),
            Fig::rate(many.total_rate(), "calls/s"),
        )
        .vs("c=1", run_rate),
    );
    section.row(
        Row::new(
            format!("{MANY_SESSIONS} sessions: p99"),
            Fig::ms(m.latency_ms(0.99)),
        )
        .vs("c=1 p99", Fig::ms(r.latency_ms(0.99))),
    );
    if m.errors() > 0 {
        eprintln!("  errors: {:?}", m.samples);
    }
    if let Some(bytes) = idle_session_memory(server.pid) {
        section.row(Row::new(
            "memory per idle sandboxed session (its cgroup's usage)",
            Fig::mib(bytes / (1024.0 * 1024.0)),
        ));
    }
    parallel(MANY_SESSIONS, 8, move |w| async move {
        api.destroy_session(&many_worker(w), "bash").await
    })
    .await?;
    server.stop().await?;
    Ok(())
}

/// Create, first call, destroy, over and over, one client.
async fn create_run_destroy(
    addr: std::net::SocketAddr,
    cx: &Ctx<'_>,
) -> anyhow::Result<crate::stats::Outcome> {
    let cycles = load::run(
        addr,
        cx.spec(1),
        load::cycle(vec![create_req(), run_req(CYCLE_WORKER), destroy_req()]),
    )
    .await;
    cycles.require_no_errors("bash create, run, destroy")?;
    Ok(cycles)
}

/// What a server with `isolation = "none"` answers.
struct Unsandboxed {
    run: Outcome,
    cycle: Outcome,
}

async fn unsandboxed(cx: &Ctx<'_>, lib: &std::path::Path) -> anyhow::Result<Unsandboxed> {
    let server = Server::start(
        &cx.artifacts.agentflow,
        &ServerSpec::new()
            .plugin("bash", lib)
            .toml("[plugins.bash.config.sandbox]\nisolation = \"none\""),
    )
    .await?;
    let api = server.api();
    api.warmup(&["bash"]).await?;
    let worker = "bench-bash-none";
    api.create_session(worker, "bash", json!({})).await?;
    let run = load::run(
        server.addr,
        cx.spec(1),
        load::per_worker(vec![run_req(worker)]),
    )
    .await;
    run.require_no_errors("bash:run with isolation none")?;
    let cycle = create_run_destroy(server.addr, cx).await?;
    server.stop().await?;
    Ok(Unsandboxed { run, cycle })
}

/// Average memory charged to the bash session cgroups of server `pid`
/// (cgroup v1 `memory.usage_in_bytes` or v2 `memory.current`).
fn idle_session_memory(pid: u32) -> Option<f64> {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let (dir, file) = own.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            Some((
                std::path::Path::new("/sys/fs/cgroup/memory")
                    .join(path)
                    .join("agentflow"),
                "memory.usage_in_bytes",
            ))
        } else if controllers.is_empty() {
            let parent = std::path::Path::new(path).parent()?.to_path_buf();
            Some((
                std::path::Path::new("/sys/fs/cgroup")
                    .join(parent)
                    .join("agentflow"),
                "memory.current",
            ))
        } else {
            None
        }
    })?;
    let prefix = format!("bash-{pid}-");
    let usages: Vec<f64> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter_map(|e| std::fs::read_to_string(e.path().join(file)).ok())
        .filter_map(|text| text.trim().parse::<f64>().ok())
        .collect();
    (!usages.is_empty()).then(|| usages.iter().sum::<f64>() / usages.len() as f64)
}

/// `bash:run` over HTTP and the `bash -c` baseline in alternating slices.
async fn run_against_spawn(
    cx: &Ctx<'_>,
    server: &Server,
    worker: &str,
) -> anyhow::Result<(Outcome, Outcome)> {
    let rounds = cx.plan.rounds.max(1);
    let slice = cx.plan.window / rounds as u32;
    let mut totals: Option<(Outcome, Outcome)> = None;
    for round in 0..rounds {
        let warm = if round == 0 {
            cx.plan.warmup
        } else {
            cx.plan.warmup / 5
        };
        let http = load::run(
            server.addr,
            Spec::new(1, warm, slice),
            load::per_worker(vec![run_req(worker)]),
        )
        .await;
        http.require_no_errors("bash:run c=1")?;
        let local = load::run_local(warm, slice, spawn_bash).await?;
        match totals.as_mut() {
            Some((h, l)) => {
                h.absorb(http);
                l.absorb(local);
            }
            None => totals = Some((http, local)),
        }
    }
    totals.ok_or_else(|| anyhow::anyhow!("no rounds ran"))
}

fn many_worker(w: usize) -> String {
    format!("bench-many-{w}")
}

fn run_req(worker: &str) -> Req {
    Req::post(
        "run",
        "/execute",
        &json!({"worker_id": worker, "action": "bash:run", "params": {"command": "echo hi"}}),
    )
}

const CYCLE_WORKER: &str = "bench-bash-cycle";

fn create_req() -> Req {
    Req::post(
        "create",
        "/session/create",
        &json!({"worker_id": CYCLE_WORKER, "resource_type": "bash", "config": {}}),
    )
}

fn destroy_req() -> Req {
    Req::post(
        "destroy",
        "/session/destroy",
        &json!({"worker_id": CYCLE_WORKER, "resource_type": "bash"}),
    )
}

/// The baseline: what a backend that spawns a shell per call pays.
fn spawn_bash() -> anyhow::Result<()> {
    let out = Command::new("bash")
        .args(["-c", "echo hi"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()?;
    ensure!(
        out.status.success() && out.stdout == b"hi\n",
        "bash -c answered {out:?}"
    );
    Ok(())
}
