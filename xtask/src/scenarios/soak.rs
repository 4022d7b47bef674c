//! Reliability soak: 64 workers making mixed calls (bash, rag, vm screenshots,
//! session create/destroy) for a minute; counts 5xx answers and hung calls,
//! the server's memory before and after, and processes left after shutdown.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{json, Value};

use super::{parallel, Ctx};
use crate::figure::Fig;
use crate::load::{self, Req, Spec};
use crate::procs::{self, ProcId};
use crate::report::{Row, Section};
use crate::server::{Server, ServerSpec};

const WORKERS: usize = 64;
/// Every this many workers one also holds a vm session and takes screenshots.
const VM_EVERY: usize = 8;

pub async fn run(cx: &Ctx<'_>, section: &mut Section) -> anyhow::Result<()> {
    let bash = cx.artifacts.plugin("bash")?;
    let rag = cx.artifacts.plugin("rag").ok();
    let vm = cx.artifacts.plugin("vm").ok();
    let mut spec = ServerSpec::new().plugin("bash", bash);
    let mut backends = vec!["bash"];
    if let Some(rag) = rag {
        spec = spec.plugin("rag", rag).toml(&cx.default_rag_table());
        backends.push("rag");
    }
    if let Some(vm) = vm {
        spec = spec.plugin("vm", vm);
        backends.push("vm");
    }
    let secs = cx.plan.soak.as_secs();
    section.note(format!(
        "{WORKERS} workers for {secs} s, each with its own bash session, one in {VM_EVERY} also with a \
         1280×800 vm session. A worker cycles `bash:run` on its session, `rag:search` (default corpus), \
         then creates a second bash session under another worker id, runs a command in it and destroys \
         it; vm workers take a screenshot every other call instead. Plugins loaded: {}. A call counts \
         as hung when no answer came within 60 s (calls ask for a 30 s timeout). Leftover processes \
         are every process seen under the server during the soak (sampled each second) still alive \
         5 s after `/shutdown` returned and the server exited.",
        backends.join(", ")
    ));
    let server = Server::start(&cx.artifacts.agentflow, &spec).await?;
    let api = server.api();
    api.warmup(&backends).await?;
    let pid = server.pid;
    let rss_before = procs::rss_mib(pid).unwrap_or(f64::NAN);

    let with_vm = vm.is_some();
    parallel(WORKERS, 8, move |w| async move {
        api.create_session(&worker(w), "bash", json!({})).await?;
        if with_vm && w % VM_EVERY == 0 {
            api.create_session(&worker(w), "vm", json!({"screen_size": [1280, 800]}))
                .await?;
        }
        Ok(())
    })
    .await?;

    let seen: Arc<Mutex<BTreeSet<ProcId>>> = Arc::default();
    let sampling = {
        let seen = seen.clone();
        tokio::spawn(async move {
            loop {
                let found = tokio::task::spawn_blocking(move || procs::descendants(pid))
                    .await
                    .unwrap_or_default();
                seen.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(found);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    eprintln!("  {WORKERS} workers for {secs} s");
    let [plain, vm_cycle] = cycles(rag.is_some(), with_vm);
    let scripts = (0..WORKERS)
        .map(|w| {
            let steps = if w % VM_EVERY == 0 { &vm_cycle } else { &plain };
            steps.iter().map(|step| step(w)).collect()
        })
        .collect();
    let spec = Spec::new(WORKERS, Duration::ZERO, cx.plan.soak);
    let outcome = load::run(server.addr, spec, load::scripted(scripts)).await;
    sampling.abort();
    let rss_loaded = procs::rss_mib(pid).unwrap_or(f64::NAN);
    seen.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .extend(procs::descendants(pid));

    parallel(WORKERS, 8, move |w| async move {
        // The run may have stopped between a create and its destroy: ignore "no session".
        let _ = api.destroy_session(&side_worker(w), "bash").await;
        api.destroy_session(&worker(w), "bash").await?;
        if with_vm && w % VM_EVERY == 0 {
            api.destroy_session(&worker(w), "vm").await?;
        }
        Ok(())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = procs::rss_mib(pid).unwrap_or(f64::NAN);
    let stopped = server.stop().await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let seen: Vec<ProcId> = seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .copied()
        .collect();
    let leftovers: Vec<ProcId> = seen.iter().copied().filter(|p| procs::alive(*p)).collect();
    for p in &leftovers {
        eprintln!("  leftover process {}: {}", p.pid, procs::cmdline(p.pid));
    }

    let total = outcome.total();
    let counts: Vec<String> = outcome
        .kinds
        .iter()
        .map(|(k, s)| format!("{k} {}", s.ok + s.errors()))
        .collect();
    section.note(format!("Calls made: {}.", counts.join(", ")));
    let other = total.errors() - total.server_errors() - total.hung;
    section.row(
        Row::new(
            format!("{WORKERS} workers × {secs} s: 5xx responses"),
            Fig::count(total.server_errors()),
        )
        .target("0", total.server_errors() == 0),
    );
    section.row(
        Row::new("hung calls (no answer within 60 s)", Fig::count(total.hung))
            .target("0", total.hung == 0),
    );
    section.row(Row::new(
        "other failed calls (4xx, connection errors)",
        Fig::count(other),
    ));
    if total.errors() > 0 {
        eprintln!("  errors: {:?}", total.samples);
    }
    section.row(Row::new(
        "server resident memory before (warm, no sessions)",
        Fig::mib(rss_before),
    ));
    section.row(
        Row::new(
            "server resident memory at the end of the load",
            Fig::mib(rss_loaded),
        )
        .vs("before", Fig::mib(rss_before)),
    );
    section.row(
        Row::new(
            "server resident memory after destroying the sessions",
            Fig::mib(rss_after),
        )
        .vs("before", Fig::mib(rss_before)),
    );
    section.row(Row::new(
        "processes seen under the server during the soak",
        Fig::count(seen.len() as u64),
    ));
    section.row(
        Row::new(
            "processes left 5 s after shutdown",
            Fig::count(leftovers.len() as u64),
        )
        .target("0", leftovers.is_empty()),
    );
    let code = stopped
        .exit_code
        .map_or_else(|| "killed".to_string(), |c| c.to_string());
    section.row(
        Row::text("server exit after `/shutdown`", format!("exit code {code}"))
            .target("0", stopped.exit_code == Some(0)),
    );
    Ok(())
}

fn worker(w: usize) -> String {
    format!("soak-{w}")
}

/// The worker id of the sessions created and destroyed during the soak.
fn side_worker(w: usize) -> String {
    format!("soak-{w}-side")
}

type Step = fn(usize) -> Req;

/// The call cycles: `[0]` for most workers, `[1]` for vm workers.
fn cycles(rag: bool, vm: bool) -> [Vec<Step>; 2] {
    let search: Step = if rag { search } else { bash_run };
    let plain: Vec<Step> = vec![bash_run, search, create_side, side_run, destroy_side];
    let with_vm: Vec<Step> = if vm {
        vec![
            screenshot,
            bash_run,
            screenshot,
            search,
            screenshot,
            create_side,
            screenshot,
            side_run,
            screenshot,
            destroy_side,
        ]
    } else {
        plain.clone()
    };
    [plain, with_vm]
}

fn execute(kind: &'static str, worker: String, action: &str, params: Value) -> Req {
    Req::post(
        kind,
        "/execute",
        &json!({"worker_id": worker, "action": action, "params": params, "timeout": 30}),
    )
}

fn bash_run(w: usize) -> Req {
    execute(
        "bash:run",
        worker(w),
        "bash:run",
        json!({"command": "echo hi; ls / | wc -l"}),
    )
}

fn search(w: usize) -> Req {
    execute(
        "rag:search",
        worker(w),
        "rag:search",
        json!({"query": "Which ESA probe photographed Halley's Comet?", "top_k": 5}),
    )
}

fn screenshot(w: usize) -> Req {
    execute("vm:screenshot", worker(w), "vm:screenshot", json!({}))
}

fn create_side(w: usize) -> Req {
    Req::post(
        "session create/destroy",
        "/session/create",
        &json!({"worker_id": side_worker(w), "resource_type": "bash", "config": {}}),
    )
}

fn side_run(w: usize) -> Req {
    execute(
        "bash:run",
        side_worker(w),
        "bash:run",
        json!({"command": "pwd"}),
    )
}

fn destroy_side(w: usize) -> Req {
    Req::post(
        "session create/destroy",
        "/session/destroy",
        &json!({"worker_id": side_worker(w), "resource_type": "bash"}),
    )
}
