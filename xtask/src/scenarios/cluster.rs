//! Many hosts: what nginx in front of a host costs (trivial `/execute` at
//! c=64 through `deploy/nginx/agentflow.conf.template` against the same host
//! directly, interleaved), and the per-host capacity a planner needs: bash and
//! vm sessions per GiB of memory at idle, calls per second per core.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use hyper::header::{HeaderName, HeaderValue};
use serde_json::json;

use super::{parallel, Ctx};
use crate::client::envelope_ok;
use crate::figure::Fig;
use crate::load::{self, Req};
use crate::report::{Row, Section};
use crate::server::{Server, ServerSpec};

const CONCURRENCY: usize = 64;
/// Idle sessions created to measure memory per session.
const BASH_SESSIONS: usize = 50;
/// Clients (each with its own session) for bash calls per core.
const BASH_CLIENTS: usize = 8;

pub async fn run(cx: &Ctx<'_>, section: &mut Section) -> anyhow::Result<()> {
    balancer_cost(cx, section).await?;
    capacity(cx, section).await
}

async fn balancer_cost(cx: &Ctx<'_>, section: &mut Section) -> anyhow::Result<()> {
    let nginx = Nginx::find().context("nginx is not installed (scripts/setup.sh installs it)")?;
    let fixture = cx.artifacts.plugin("fixture")?;
    let server = Server::start(
        &cx.artifacts.agentflow,
        &ServerSpec::new().plugin("fixture", fixture),
    )
    .await?;
    let api = server.api();
    api.warmup(&["fixture"]).await?;
    for w in 0..CONCURRENCY {
        api.create_session(&worker(w), "fixture", json!({})).await?;
    }
    let balancer = nginx.start(
        &cx.root.join("deploy/nginx/agentflow.conf.template"),
        server.addr.port(),
    )?;
    section.note(format!(
        "Trivial tool `fixture:echo` (as in Host overhead), each of {CONCURRENCY} clients \
         with its own worker, session and `X-Worker-ID` header, sent straight to one host \
         and through nginx ({}) configured by `deploy/nginx/agentflow.conf.template` with \
         that host as its only upstream; the two alternate in {} slices. On this \
         {}-core machine nginx, the host and the load generator share the cores, so the \
         ratio is an upper bound on the balancer's cost.",
        nginx.version(),
        cx.plan.rounds,
        cx.machine.cores
    ));
    let reqs: Vec<Req> = (0..CONCURRENCY).map(|w| echo(&worker(w))).collect();
    let load = load::per_worker(reqs);
    let targets = [(server.addr, load.clone()), (balancer.addr(), load)];
    let p = cx.plan;
    let mut measured = load::interleaved_on(&targets, CONCURRENCY, p.warmup, p.window, p.rounds)
        .await
        .into_iter();
    let (Some(direct), Some(through)) = (measured.next(), measured.next()) else {
        bail!("the load generator returned too few results");
    };
    direct.require_no_errors("direct")?;
    through.require_no_errors("through nginx")?;
    let (d, t) = (direct.total(), through.total());
    let d_rate = Fig::rate(direct.total_rate(), "req/s");
    let d_p99 = Fig::ms(d.latency_ms(0.99));
    let base = format!("direct c={CONCURRENCY}");
    section.row(Row::new(
        format!("`/execute` direct c={CONCURRENCY} throughput"),
        d_rate,
    ));
    section.row(Row::new(
        format!("`/execute` direct c={CONCURRENCY} p99"),
        d_p99,
    ));
    section.row(
        Row::new(
            format!("`/execute` through nginx c={CONCURRENCY} throughput"),
            Fig::rate(through.total_rate(), "req/s"),
        )
        .vs(&base, d_rate),
    );
    section.row(
        Row::new(
            format!("`/execute` through nginx c={CONCURRENCY} p99"),
            Fig::ms(t.latency_ms(0.99)),
        )
        .vs(&base, d_p99),
    );
    section.row(Row::new(
        "trivial `/execute` per core (direct, c=64)",
        Fig::rate(direct.total_rate() / cx.machine.cores as f64, "req/s"),
    ));
    drop(balancer);
    server.stop().await?;
    Ok(())
}

async fn capacity(cx: &Ctx<'_>, section: &mut Section) -> anyhow::Result<()> {
    section.note(format!(
        "Capacity: sessions per GiB is the drop in the machine's `MemAvailable` while \
         {BASH_SESSIONS} idle bash sessions (sandboxed, the default) or {} idle vm \
         sessions (1920×1080, one screenshot each) are open, so it counts everything a \
         session holds: host memory, the sandbox's processes, Xvfb, kernel memory of its \
         mounts and disk; reclaimable page cache is not counted. bash calls per core: \
         `bash:run \"true\"` by {BASH_CLIENTS} clients, each in its own session, divided \
         by the machine's {} cores.",
        cx.plan.vm_memory_sessions * 2,
        cx.machine.cores
    ));
    let bash = cx.artifacts.plugin("bash")?;
    let server = Server::start(
        &cx.artifacts.agentflow,
        &ServerSpec::new().plugin("bash", bash),
    )
    .await?;
    let api = server.api();
    api.warmup(&["bash"]).await?;
    let per_gib = sessions_per_gib(BASH_SESSIONS, |k| async move {
        api.create_session(&format!("cap-bash-{k}"), "bash", json!({}))
            .await
            .map(drop)
    })
    .await?;
    section.row(Row::new(
        "bash sessions per GiB at idle",
        Fig::count(per_gib as u64),
    ));

    let reqs: Vec<Req> = (0..BASH_CLIENTS)
        .map(|k| {
            Req::post(
                "bash:run",
                "/execute",
                &json!({"worker_id": format!("cap-bash-{k}"), "action": "bash:run", "params": {"command": "true"}}),
            )
            .check(envelope_ok)
        })
        .collect();
    let o = load::run(server.addr, cx.spec(BASH_CLIENTS), load::per_worker(reqs)).await;
    o.require_no_errors("bash:run true")?;
    section.row(Row::new(
        "`bash:run \"true\"` per core",
        Fig::rate(o.total_rate() / cx.machine.cores as f64, "calls/s"),
    ));
    server.stop().await?;

    let vm = cx.artifacts.plugin("vm")?;
    let server =
        Server::start(&cx.artifacts.agentflow, &ServerSpec::new().plugin("vm", vm)).await?;
    let api = server.api();
    api.warmup(&["vm"]).await?;
    let n = cx.plan.vm_memory_sessions * 2;
    let per_gib = sessions_per_gib(n, |k| async move {
        let w = format!("cap-vm-{k}");
        api.create_session(&w, "vm", json!({})).await?;
        api.execute(&w, "vm:screenshot", json!({})).await.map(drop)
    })
    .await?;
    section.row(Row::new(
        "vm sessions per GiB at idle (1920×1080)",
        Fig::count(per_gib as u64),
    ));
    server.stop().await?;
    Ok(())
}

/// Opens `n` sessions with `open` (four at a time) and divides a GiB by the
/// drop in `MemAvailable` per session, measured after things settle.
async fn sessions_per_gib<F, Fut>(n: usize, open: F) -> anyhow::Result<f64>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = mem_available_mib()?;
    parallel(n, 4, open).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = mem_available_mib()?;
    let per_session = (before - after) / n as f64;
    ensure!(
        per_session > 0.0,
        "MemAvailable did not drop while {n} sessions opened ({before:.0} → {after:.0} MiB): \
         something else freed memory meanwhile"
    );
    Ok(1024.0 / per_session)
}

fn mem_available_mib() -> anyhow::Result<f64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    let kib: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no MemAvailable in /proc/meminfo")?;
    Ok(kib / 1024.0)
}

fn worker(w: usize) -> String {
    format!("bench-lb-{w}")
}

fn echo(worker: &str) -> Req {
    let mut r = Req::post(
        "execute",
        "/execute",
        &json!({"worker_id": worker, "action": "fixture:echo", "params": {"text": "hi"}}),
    )
    .check(envelope_ok);
    if let Ok(v) = HeaderValue::from_str(worker) {
        r.headers = Arc::new([(HeaderName::from_static("x-worker-id"), v)]);
    }
    r
}

/// The nginx program.
struct Nginx(PathBuf);

/// A running nginx, stopped when dropped.
struct Balancer {
    nginx: PathBuf,
    prefix: tempfile::TempDir,
    port: u16,
}

impl Nginx {
    fn find() -> Option<Nginx> {
        ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .map(Nginx)
    }

    fn version(&self) -> String {
        std::process::Command::new(&self.0)
            .arg("-v")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stderr)
                    .trim()
                    .replace("nginx version: ", "")
            })
            .unwrap_or_else(|_| "nginx".into())
    }

    /// Starts nginx from the template with `upstream` as its only host.
    fn start(&self, template: &Path, upstream: u16) -> anyhow::Result<Balancer> {
        let prefix = tempfile::Builder::new()
            .prefix("agentflow-nginx-")
            .tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let text = std::fs::read_to_string(template)
            .with_context(|| format!("reading {}", template.display()))?;
        // Placeholders are filled outside comments only (the comments name them).
        let config: Vec<String> = text
            .lines()
            .map(|l| {
                if l.trim_start().starts_with('#') {
                    return l.to_string();
                }
                l.replace("@PREFIX@", &prefix.path().display().to_string())
                    .replace("@LISTEN@", &format!("127.0.0.1:{port}"))
                    .replace("@UPSTREAMS@", &format!("server 127.0.0.1:{upstream};"))
            })
            .collect();
        let conf = prefix.path().join("nginx.conf");
        std::fs::write(&conf, config.join("\n"))?;
        let out = std::process::Command::new(&self.0)
            .arg("-p")
            .arg(prefix.path())
            .arg("-c")
            .arg(&conf)
            .output()?;
        ensure!(out.status.success(), "nginx did not start: {out:?}");
        let b = Balancer {
            nginx: self.0.clone(),
            prefix,
            port,
        };
        // It listens once the master has written its pid file.
        for _ in 0..100 {
            if b.prefix.path().join("nginx.pid").exists() {
                return Ok(b);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("nginx wrote no pid file")
    }
}

impl Balancer {
    fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let conf = self.prefix.path().join("nginx.conf");
        let _ = std::process::Command::new(&self.nginx)
            .arg("-p")
            .arg(self.prefix.path())
            .arg("-c")
            .arg(&conf)
            .args(["-s", "stop"])
            .output();
        std::thread::sleep(Duration::from_millis(200));
    }
}
