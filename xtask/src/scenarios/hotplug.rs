//! Hot-plug: from renaming a built plugin into the plugin directory of a
//! running server to its first successful `/execute` after `/warmup`, against
//! a cold start of a server with that plugin already in place.

use std::time::{Duration, Instant};

use anyhow::ensure;
use serde_json::json;

use super::{median, Ctx};
use crate::figure::Fig;
use crate::report::{Row, Section};
use crate::server::{Server, ServerSpec};

/// How long the host may take to list a new file before the row is a TODO.
const DISCOVERY_LIMIT: Duration = Duration::from_secs(30);
/// Time given to a fresh server before the file arrives.
const SETTLE: Duration = Duration::from_secs(1);

pub async fn run(cx: &Ctx<'_>, section: &mut Section) -> anyhow::Result<()> {
    let lib = cx.artifacts.plugin("bash")?;
    section.note(format!(
        "A server starts with an empty plugin directory and runs for a second; then \
         the bash plugin is copied into the directory under a hidden name and renamed \
         into place; the clock starts at the rename. The client \
         polls `GET /warmup/status` every 10 ms until the file is listed, then calls \
         `POST /warmup {{\"backends\": [\"bash\"]}}` and `bash:run \"echo hi\"`. The \
         baseline starts a server with the plugin already in its directory and times \
         spawn → listening → `/warmup` → the same call. Medians of {} rounds, a new \
         server each.",
        cx.plan.repeats
    ));
    let mut total = Vec::new();
    let mut listed = Vec::new();
    let mut cold = Vec::new();
    for _ in 0..cx.plan.repeats {
        let server = Server::start(&cx.artifacts.agentflow, &ServerSpec::new()).await?;
        // A running server, not one still setting up its directory watch.
        server.api().get("/warmup/status").await?;
        tokio::time::sleep(SETTLE).await;
        let round = hot_plug(&server, lib).await;
        server.stop().await?;
        match round? {
            Some((seen, done)) => {
                listed.push(seen);
                total.push(done);
            }
            None => {
                section.row(Row::text(
                    "TODO hot-plug: rename → first successful `/execute`",
                    format!(
                        "not measured: the host did not list the new file in `/warmup/status` within {} s",
                        DISCOVERY_LIMIT.as_secs()
                    ),
                ));
                return Ok(());
            }
        }
        cold.push(cold_start(cx, lib).await?);
    }
    let cold = Fig::duration(median(&mut cold));
    section.row(
        Row::new(
            "hot-plug: rename → first successful `/execute`",
            Fig::duration(median(&mut total)),
        )
        .vs("cold start → first `/execute`", cold),
    );
    section.row(Row::new(
        "of which rename → listed in `/warmup/status`",
        Fig::duration(median(&mut listed)),
    ));
    Ok(())
}

/// One hot-plug round: `(time until listed, time until the first call succeeded)`,
/// or `None` when the host never lists the file.
async fn hot_plug(
    server: &Server,
    lib: &std::path::Path,
) -> anyhow::Result<Option<(Duration, Duration)>> {
    let api = server.api();
    let dir = server.plugin_dir();
    let staged = dir.join(".libagentflow_bash.so.tmp");
    std::fs::copy(lib, &staged)?;
    let started = Instant::now();
    std::fs::rename(&staged, dir.join("libagentflow_bash.so"))?;
    let listed = loop {
        let status = api.get("/warmup/status").await?;
        if status["data"]["backends"].get("bash").is_some() {
            break started.elapsed();
        }
        if started.elapsed() > DISCOVERY_LIMIT {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    api.warmup(&["bash"]).await?;
    first_call(server).await?;
    Ok(Some((listed, started.elapsed())))
}

/// The baseline: spawn a server with bash in place, warm it, first call.
async fn cold_start(cx: &Ctx<'_>, lib: &std::path::Path) -> anyhow::Result<Duration> {
    let server = Server::start(
        &cx.artifacts.agentflow,
        &ServerSpec::new().plugin("bash", lib),
    )
    .await?;
    server.api().warmup(&["bash"]).await?;
    first_call(&server).await?;
    let took = server.spawned.elapsed();
    server.stop().await?;
    Ok(took)
}

async fn first_call(server: &Server) -> anyhow::Result<()> {
    let r = server
        .api()
        .execute("bench-hotplug", "bash:run", json!({"command": "echo hi"}))
        .await?;
    ensure!(r["data"]["stdout"] == "hi\n", "bash:run answered {r}");
    Ok(())
}
