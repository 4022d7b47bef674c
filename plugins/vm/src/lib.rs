//! The AgentFlow `vm` plugin: every session is a real X11 desktop (its own
//! Xvfb, optionally a window manager and startup programs) driven through
//! XTest, captured as PNG with the pointer drawn in, and described as an XML
//! window tree.
//!
//! # Sandbox
//!
//! Every program a session starts (the window manager and each `programs`
//! command line) runs in a bubblewrap sandbox of its session, built by the
//! `agentflow-sandbox` crate (its docs list what is and is not isolated): its
//! own user, PID, IPC, UTS, cgroup and (unless `sandbox.network = "host"`)
//! network namespaces; the host's `/usr`, `/etc`, `/opt` read-only and nothing
//! else of the host's filesystem; a private `/tmp`; a seccomp deny list; the
//! session's cgroup limits (memory, processes, CPU, tmpfs size; clients may
//! tighten them with the session config's `limits`); and, when the server
//! runs as root, the unprivileged host user `sandbox.uid`/`gid` (65534 by
//! default), `nobody` inside too. What the programs see of the session:
//!
//! * its directory, read-write at its host path: their working directory
//!   (`cwd` must be relative to it, or lie inside it) and `HOME`; a disk of
//!   its own (`limits.disk_bytes`), which also holds the session's writable
//!   layers over `/usr` and `/opt` (`/etc` stays read-only);
//! * the display's socket file `/tmp/.X11-unix/X<N>` (only this session's)
//!   and the session's Xauthority file, read-only. The abstract X socket is
//!   out of reach in the sandbox's network namespace: clients use the file.
//! * an environment of `PATH`, `HOME`, `LANG`, `DISPLAY`, `XAUTHORITY`, the
//!   session marker and the session's `env`; nothing of the server's.
//!
//! Xvfb itself runs outside the sandbox, as the server's user. A program's
//! background processes live until the session ends, as without a sandbox
//! (see `programs.rs`).
//!
//! The operator provides bubblewrap (`bwrap` 0.8+, Debian `bubblewrap`),
//! unprivileged user namespaces, cgroups the server may create groups in,
//! loop devices for the disks, and a `run_dir` the sandbox's user can pass
//! through (created 0711); `network = "egress"` is refused (bash only); warmup
//! fails with one line naming what is missing. `[plugins.vm.config.sandbox]`
//! takes the sandbox crate's `SandboxConfig`; `isolation = "none"` runs the
//! programs as the server's user without a sandbox (a warning at warmup and in
//! the hidden `info` tool, which reports the sandbox, the session's limits and
//! its PID namespace).
//!
//! # Screen video
//!
//! A session config with `"record_video": true` and `video_path` (an
//! absolute path; an AgentFlow host sets it inside the session's trajectory
//! and refuses it from clients) records the display with `ffmpeg` (Debian
//! `ffmpeg`) for the session's life, finished cleanly at cleanup
//! (`video.rs`).
//!
//! # Processes
//!
//! Processes are forked by a per-session spawner thread with
//! `PR_SET_PDEATHSIG`, so nothing a session started outlives the session or
//! the host: sandboxed programs die with their bubblewrap (`--die-with-parent`,
//! a PID namespace per program) and cleanup kills what is left in the
//! session's cgroup before it stops Xvfb. Without a sandbox the session gets
//! one PID namespace (where allowed, `pid_namespace`) with Xvfb as its init.

mod capture;
mod config;
mod connection;
mod desktop;
mod display;
mod error;
mod input;
mod keymap;
mod keys;
mod params;
mod programs;
mod session;
mod shm;
mod spawner;
mod sys;
mod tree;
mod video;
mod xauth;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use plugin_api::{
    export_plugin, CallContext, NoParams, Plugin, PluginError, PluginInfo, SessionModel, Tools,
};
use sandbox::{Sandbox, SandboxStatus};
use serde_json::{json, Value};

pub use capture::{encode_png, encode_png_with, Screenshot};
pub use config::{PluginConfig, SessionConfig};
pub use desktop::Desktop;
pub use error::VmError;
pub use input::Button;
pub use keymap::SPARE_IDLE;
pub use programs::SESSION_ENV;
pub use session::VmSession;

use error::VmResult;
use params::*;

/// Most wheel clicks one `scroll` call may send.
const MAX_SCROLL_CLICKS: i64 = 10_000;

/// Slice of sleep between deadline checks in `wait`.
const WAIT_SLICE: Duration = Duration::from_millis(20);

/// The vm plugin: what warmup established; sessions are [`VmSession`]s.
pub struct VmPlugin {
    settings: Settings,
}

/// The plugin's config and its prepared sandbox.
struct Settings {
    config: PluginConfig,
    /// `None` with `sandbox.isolation = "none"`.
    sandbox: Option<Sandbox>,
    /// Disks for sessions' directories (`None` without a sandbox or with
    /// `disk_bytes = 0`).
    disks: Option<Arc<sandbox::Disks>>,
}

impl VmPlugin {
    /// What warmup established.
    fn settings(&self) -> &Settings {
        &self.settings
    }
}

impl Settings {
    /// What `info` shows about the sandbox.
    fn sandbox_status(&self) -> SandboxStatus {
        self.sandbox
            .as_ref()
            .map_or_else(SandboxStatus::none, Sandbox::status)
    }

    /// Creates a session: its sandbox (limits checked), then its desktop.
    fn start_session(&self, id: &str, cfg: &SessionConfig) -> Result<VmSession, PluginError> {
        let confinement = match &self.sandbox {
            Some(sandbox) => {
                let limits = sandbox
                    .config()
                    .limits
                    .tightened_by(&cfg.limits)
                    .map_err(PluginError::invalid_params)?;
                let session = sandbox.session(limits, None).map_err(|e| {
                    PluginError::unavailable(format!("cannot create the session's sandbox: {e}"))
                })?;
                Some(session::Confinement {
                    sandbox: session,
                    owner: sandbox.owner(),
                    disks: self.disks.clone(),
                })
            }
            None if !cfg.limits.is_null() => {
                return Err(PluginError::invalid_params(
                    "session config limits: this server runs vm programs without a sandbox \
                     (sandbox.isolation = \"none\"), so no limits can be applied",
                ))
            }
            None => None,
        };
        Ok(VmSession::create(id, &self.config, confinement, cfg)?)
    }
}

impl Plugin for VmPlugin {
    type Session = VmSession;

    fn info() -> PluginInfo {
        PluginInfo::new(
            "vm",
            env!("CARGO_PKG_VERSION"),
            "A virtual X11 desktop per session (Xvfb): screenshots, mouse, keyboard, window tree",
            SessionModel::PerWorker,
        )
    }

    fn tools() -> Tools<Self> {
        register(Tools::new())
    }

    fn warmup(config: &Value) -> Result<Self, PluginError> {
        let mut cfg = PluginConfig::parse(config)?;
        if display::find_in_path(&cfg.xvfb, None).is_none() {
            return Err(display::missing_xvfb(&cfg.xvfb).into());
        }
        if cfg.sandbox.network == sandbox::Network::Egress {
            // Each program has a network namespace of its own: one slirp4netns
            // each is not worth it until someone needs it.
            return Err(PluginError::invalid_params(
                "sandbox.network = \"egress\" is not supported by the vm plugin (use \"none\" \
                 or \"host\")",
            ));
        }
        let sandbox = Sandbox::from_config("vm", &cfg.sandbox)
            .map_err(|e| PluginError::unavailable(e.to_string()))?;
        let owner = sandbox.as_ref().and_then(Sandbox::owner);
        cfg.run_dir = session::prepare_run_dir(&cfg.run_dir, owner).map_err(|e| {
            PluginError::unavailable(format!(
                "run_dir '{}' cannot be used: {e}",
                cfg.run_dir.display()
            ))
        })?;
        session::sweep_stale_dirs(&cfg.run_dir);
        let disks = match &sandbox {
            Some(sandbox) => sandbox
                .disks(&cfg.run_dir.join(".disks"))
                .map_err(|e| PluginError::unavailable(e.to_string()))?
                .map(Arc::new),
            None => None,
        };
        Ok(Self {
            settings: Settings {
                config: cfg,
                sandbox,
                disks,
            },
        })
    }

    fn initialize(&self, session_id: &str, config: &Value) -> Result<VmSession, PluginError> {
        let settings = self.settings();
        let cfg = SessionConfig::parse(config)?;
        settings.start_session(session_id, &cfg)
    }

    fn cleanup(&self, session: &VmSession) -> Result<(), PluginError> {
        session.close();
        Ok(())
    }
}

export_plugin!(VmPlugin);

type Cx<'a> = CallContext<'a, VmSession>;

/// Runs `f` on the call's session desktop, honouring the call's deadline.
fn on_desktop<T>(
    cx: &Cx<'_>,
    f: impl FnOnce(&mut Desktop) -> VmResult<T>,
) -> Result<T, PluginError> {
    let session = cx.session()?;
    let check = || cx.check().map_err(VmError::from);
    Ok(session.with_desktop(&check, f)?)
}

fn register(tools: Tools<VmPlugin>) -> Tools<VmPlugin> {
    tools
        .tool(
            "screenshot",
            "Capture the whole screen (pointer included) as a base64 PNG.",
            |_, cx: &Cx<'_>, _: NoParams| {
                let shot = on_desktop(cx, |d| d.screenshot())?;
                Ok(json!({
                    "image": base64::engine::general_purpose::STANDARD.encode(&shot.png),
                    "width": shot.width,
                    "height": shot.height,
                    "format": "png",
                }))
            },
        )
        .read_only()
        .tool(
            "click",
            "Move the pointer to (x, y) and click a mouse button (left, right or middle).",
            |_, cx: &Cx<'_>, p: ClickParams| {
                on_desktop(cx, |d| {
                    let (x, y) = d.point(("x", p.x), ("y", p.y))?;
                    d.click(x, y, p.button, 1)
                })?;
                Ok(json!({"clicked": [p.x, p.y], "button": p.button.name()}))
            },
        )
        .tool(
            "double_click",
            "Double-click the left button at (x, y).",
            |_, cx: &Cx<'_>, p: PointParams| {
                on_desktop(cx, |d| {
                    let (x, y) = d.point(("x", p.x), ("y", p.y))?;
                    d.click(x, y, Button::Left, 2)
                })?;
                Ok(json!({"clicked": [p.x, p.y]}))
            },
        )
        .tool(
            "right_click",
            "Right-click at (x, y), or where the pointer is when both are omitted.",
            |_, cx: &Cx<'_>, p: OptionalPointParams| {
                let at = on_desktop(cx, |d| {
                    let (x, y) = match (p.x, p.y) {
                        (Some(x), Some(y)) => d.point(("x", x), ("y", y))?,
                        (None, None) => d.pointer()?,
                        (x, y) => {
                            return Err(VmError::invalid(format!(
                                "give both x and y or neither (got x={}, y={})",
                                x.map_or("none".into(), |v| v.to_string()),
                                y.map_or("none".into(), |v| v.to_string())
                            )))
                        }
                    };
                    d.click(x, y, Button::Right, 1)?;
                    Ok((x, y))
                })?;
                Ok(json!({"clicked": [at.0, at.1]}))
            },
        )
        .tool(
            "move",
            "Move the pointer to (x, y).",
            |_, cx: &Cx<'_>, p: PointParams| {
                on_desktop(cx, |d| {
                    let (x, y) = d.point(("x", p.x), ("y", p.y))?;
                    d.move_to(x, y)?;
                    d.sync()
                })?;
                Ok(json!({"position": [p.x, p.y]}))
            },
        )
        .tool(
            "drag",
            "Press the left button at (start_x, start_y), move to (end_x, end_y), release.",
            |_, cx: &Cx<'_>, p: DragParams| {
                on_desktop(cx, |d| {
                    let from = d.point(("start_x", p.start_x), ("start_y", p.start_y))?;
                    let to = d.point(("end_x", p.end_x), ("end_y", p.end_y))?;
                    d.drag(from, to)
                })?;
                Ok(json!({"from": [p.start_x, p.start_y], "to": [p.end_x, p.end_y]}))
            },
        )
        .tool(
            "scroll",
            "Scroll the mouse wheel at (x, y): positive clicks scroll up, negative scroll down.",
            |_, cx: &Cx<'_>, p: ScrollParams| {
                if p.clicks.abs() > MAX_SCROLL_CLICKS {
                    return Err(PluginError::invalid_params(format!(
                        "clicks={} is too large (at most {MAX_SCROLL_CLICKS} either way)",
                        p.clicks
                    )));
                }
                let check = || cx.check().map_err(VmError::from);
                on_desktop(cx, |d| {
                    let (x, y) = d.point(("x", p.x), ("y", p.y))?;
                    d.scroll(x, y, p.clicks, &check)
                })?;
                Ok(json!({"position": [p.x, p.y], "clicks": p.clicks}))
            },
        )
        .tool(
            "mouse_down",
            "Press a mouse button where the pointer is (and keep it pressed).",
            |_, cx: &Cx<'_>, p: ButtonParams| {
                on_desktop(cx, |d| {
                    d.button(p.button.number(), true)?;
                    d.sync()
                })?;
                Ok(json!({"button": p.button.name()}))
            },
        )
        .tool(
            "mouse_up",
            "Release a mouse button where the pointer is.",
            |_, cx: &Cx<'_>, p: ButtonParams| {
                on_desktop(cx, |d| {
                    d.button(p.button.number(), false)?;
                    d.sync()
                })?;
                Ok(json!({"button": p.button.name()}))
            },
        )
        .tool(
            "type",
            "Type text into the focused window (any Unicode; newline presses Enter).",
            |_, cx: &Cx<'_>, p: TypeParams| {
                let check = || cx.check().map_err(VmError::from);
                on_desktop(cx, |d| d.type_text(&p.text, &check))?;
                let length = p.text.chars().count();
                Ok(json!({"typed": p.text, "length": length}))
            },
        )
        .tool(
            "key",
            "Press and release one key by pyautogui name (enter, tab, esc, ctrl, f5, …) or character.",
            |_, cx: &Cx<'_>, p: KeyParams| {
                on_desktop(cx, |d| {
                    let keys = d.resolve_keys(std::slice::from_ref(&p.key), "key")?;
                    d.chord(&keys)
                })?;
                Ok(json!({"key": p.key}))
            },
        )
        .tool(
            "key_down",
            "Press a key (by pyautogui name) and keep it pressed.",
            |_, cx: &Cx<'_>, p: KeyParams| {
                on_desktop(cx, |d| {
                    let keys = d.resolve_keys(std::slice::from_ref(&p.key), "key")?;
                    keys.iter().try_for_each(|&k| d.key_down(k))?;
                    d.sync()
                })?;
                Ok(json!({"key": p.key}))
            },
        )
        .tool(
            "key_up",
            "Release a key (by pyautogui name).",
            |_, cx: &Cx<'_>, p: KeyParams| {
                on_desktop(cx, |d| {
                    let keys = d.resolve_keys(std::slice::from_ref(&p.key), "key")?;
                    keys.iter().try_for_each(|&k| d.key_up(k))?;
                    d.sync()
                })?;
                Ok(json!({"key": p.key}))
            },
        )
        .tool(
            "hotkey",
            "Press keys in order and release them in reverse order, e.g. [\"ctrl\", \"c\"].",
            |_, cx: &Cx<'_>, p: HotkeyParams| {
                if p.keys.is_empty() {
                    return Err(PluginError::invalid_params("keys is empty: give at least one key name"));
                }
                on_desktop(cx, |d| {
                    let keys = d.resolve_keys(&p.keys, "keys")?;
                    d.chord(&keys)
                })?;
                Ok(json!({"keys": p.keys}))
            },
        )
        .tool(
            "wait",
            "Wait the given number of seconds.",
            |_, cx: &Cx<'_>, p: WaitParams| {
                if !p.seconds.is_finite() || p.seconds < 0.0 {
                    return Err(PluginError::invalid_params(format!(
                        "seconds={} must be a number of seconds >= 0",
                        p.seconds
                    )));
                }
                cx.session()?.ensure_alive()?;
                let end = std::time::Instant::now() + Duration::from_secs_f64(p.seconds.min(86_400.0));
                loop {
                    cx.check()?;
                    let left = end.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    std::thread::sleep(left.min(WAIT_SLICE));
                }
                Ok(json!({"waited": p.seconds}))
            },
        )
        .tool(
            "accessibility_tree",
            "The window tree as XML: role, name, class, screen position, size and mapped state of every window.",
            |_, cx: &Cx<'_>, _: NoParams| {
                let xml = on_desktop(cx, |d| d.accessibility_tree())?;
                Ok(json!({"accessibility_tree": xml}))
            },
        )
        .read_only()
        .hidden_tool(
            "info",
            "How this session's programs are isolated (sandbox, limits, PID namespace), its display and directory.",
            |plugin: &VmPlugin, cx: &Cx<'_>, _: NoParams| {
                let settings = plugin.settings();
                let session = cx.session()?;
                let status = settings.sandbox_status();
                let (width, height) = session.screen_size();
                Ok(json!({
                    "isolation": status.isolation,
                    "sandbox": status,
                    "session_limits": session.sandbox_limits(),
                    "pid_namespace": session.has_pid_namespace(),
                    "display": format!(":{}", session.display()),
                    "screen_size": [width, height],
                    "session_dir": session.dir().display().to_string(),
                    "run_dir": settings.config.run_dir.display().to_string(),
                    "xvfb": settings.config.xvfb,
                }))
            },
        )
        .read_only()
        // Answers from memory: the host may run it without a thread hand-off.
        .non_blocking()
}
