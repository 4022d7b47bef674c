//! Starting and stopping the server: config, plugins, listener, reaper, shutdown.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::ServeArgs;
use crate::config::Config;
use crate::core::{secs, Core};
use crate::shutdown::ShutdownHandle;
use crate::web::{self, AppState};

pub fn run(args: ServeArgs) -> ExitCode {
    // Still the only thread: the environment may change.
    let passive = crate::openmp::prefer_passive_wait();
    init_logging();
    if passive {
        tracing::info!(
            "{}=passive: OpenMP threads of plugins sleep when idle (set the variable to choose otherwise)",
            crate::openmp::WAIT_POLICY
        );
    }
    let config = match load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("agentflow: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(1024)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agentflow: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(serve(config)) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("agentflow: {e}");
            1
        }
    };
    // Plugin threads that ignore cancellation must not keep the process alive.
    std::process::exit(code)
}

pub(crate) fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn load_config(args: &ServeArgs) -> Result<Config, String> {
    let mut config = if args.config.exists() {
        Config::load(&args.config).map_err(|e| e.to_string())?
    } else if args.config.as_os_str() == "plugins.toml" {
        tracing::warn!("no plugins.toml in the current directory; using defaults");
        Config::parse("", std::path::Path::new(".")).map_err(|e| e.to_string())?
    } else {
        return Err(format!(
            "config file {} does not exist",
            args.config.display()
        ));
    };
    if let Some(h) = &args.host {
        config.server.host = h.clone();
    }
    if let Some(p) = args.port {
        config.server.port = p;
    }
    if let Some(d) = &args.plugin_dir {
        config.server.plugin_dir = d.clone();
    }
    if config.server.auth_token.is_empty() {
        config.server.auth_token = std::env::var("AGENTFLOW_TOKEN").unwrap_or_default();
    }
    Ok(config)
}

async fn serve(config: Config) -> Result<(), String> {
    let addr: SocketAddr = format!("{}:{}", config.server.host, config.server.port)
        .parse()
        .or_else(|_| {
            std::net::ToSocketAddrs::to_socket_addrs(&(
                config.server.host.as_str(),
                config.server.port,
            ))
            .ok()
            .and_then(|mut a| a.next())
            .ok_or(())
        })
        .map_err(|()| {
            format!(
                "key 'server.host': cannot resolve address '{}'",
                config.server.host
            )
        })?;
    if !addr.ip().is_loopback()
        && config.server.auth_token.is_empty()
        && !config.server.allow_unauthenticated_remote
    {
        return Err(format!(
            "refusing to listen on {addr} without a token: anyone who can reach it could run commands. \
             Set server.auth_token (or AGENTFLOW_TOKEN), bind 127.0.0.1, or set \
             server.allow_unauthenticated_remote = true to do it deliberately"
        ));
    }
    for (name, plugin) in &config.plugins {
        for warning in plugin.isolation_warnings() {
            tracing::warn!(plugin = %name, "{warning}");
        }
    }
    let core = Core::new(config);
    // Watch before the startup scan, so a file dropped in meanwhile is not missed.
    let _watcher = crate::watcher::start(core.clone());
    core.load_startup_plugins().await;

    let mut signals = crate::shutdown::Signals::install();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(address = %local, "listening");
    // Scripts and tests read this line to find the port.
    println!("agentflow listening on http://{local}");

    let shutdown = ShutdownHandle::default();
    let inflight = Arc::new(web::drain::InFlight::default());
    let state = AppState {
        core: core.clone(),
        shutdown: shutdown.clone(),
        inflight: inflight.clone(),
        idempotency: Default::default(),
    };
    // Peers over one web layer; the native surface answers for what the others do not claim.
    let surfaces = vec![
        crate::compat::surface(),
        crate::mcp::surface(core.clone()),
        crate::native::surface(),
    ];
    let app = web::app(state, surfaces);
    let (stop_serving, serving_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(async move {
        // Answers written in several pieces (an MCP answer is an SSE stream)
        // must not wait for the client's delayed ACK: without NODELAY each
        // such answer stalled about 40 ms (Nagle's algorithm).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = serving_stopped.await;
            })
            .await
    });
    tokio::spawn(core.clone().reap_idle_sessions());
    tokio::spawn(core.clone().keep_trajectories());
    tokio::spawn(warm_at_startup(core.clone()));

    let stop = tokio::select! {
        r = shutdown.wait(&mut signals) => r,
        r = &mut server => return Err(format!("server stopped unexpectedly: {r:?}")),
    };
    tracing::info!(
        force = stop.force,
        cleanup_sessions = stop.cleanup_sessions,
        "shutting down"
    );
    // Draining: new work is refused with 503 and `/ready` says so, while the
    // listener stays open for calls in flight to finish (web/drain.rs).
    core.begin_shutdown();
    let grace = secs(core.config.server.shutdown_grace);
    let drain = if stop.force {
        Duration::from_millis(300)
    } else {
        grace
    };
    let in_flight = inflight.count();
    if in_flight > 0 {
        tracing::info!(
            in_flight,
            "draining: waiting up to {:.1}s for calls in flight",
            drain.as_secs_f64()
        );
    }
    if !inflight.idle(drain).await {
        tracing::warn!(
            in_flight = inflight.count(),
            "in-flight requests did not finish within {:.1}s; stopping anyway",
            drain.as_secs_f64()
        );
    }
    let _ = stop_serving.send(());
    // Open connections are idle now (or their calls overran the grace).
    let _ = tokio::time::timeout(Duration::from_millis(500), &mut server).await;
    let cleaned = core.stop(stop.cleanup_sessions).await;
    tracing::info!(sessions_cleaned = cleaned, "stopped");
    Ok(())
}

async fn warm_at_startup(core: Arc<Core>) {
    let names = core.config.server.warmup.clone();
    if names.is_empty() {
        core.startup_warmup_done();
        return;
    }
    let names = if names.iter().any(|n| n == "*") {
        None
    } else {
        Some(names)
    };
    for (name, r) in core.warmup(names).await {
        if let Some(e) = r.error {
            tracing::warn!(plugin = %name, error = %e, "startup warmup failed; a later /warmup or call retries");
        }
    }
    core.startup_warmup_done();
    tracing::info!("startup warmup done; ready");
}
