//! Trajectories through the real server: recorded bash and vm sessions
//! (real Xvfb, real ffmpeg), their logs, export, the viewer page in real
//! headless Chromium, durability across SIGKILL, the size cap, retention.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use agentflow_e2e::{eventually, Reply, Server};
use base64::Engine as _;
use serde_json::{json, Value};

const TOKEN: &str = "trajectory-test-token";
const MAGENTA: [u8; 3] = [0xff, 0x00, 0xff];
/// The viewer's colours of a step's left border (`viewer.html`).
const OK_GREEN: [u8; 3] = [0x1a, 0x7f, 0x37];
const ERROR_RED: [u8; 3] = [0xcf, 0x22, 0x2e];

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn start(trajectory_dir: &Path, plugins: &[&str], extra: &[&str]) -> Server {
    let mut b = Server::builder()
        .server(&format!("auth_token = \"{TOKEN}\""))
        .server(&format!(
            "trajectory_dir = \"{}\"",
            trajectory_dir.display()
        ));
    for p in plugins {
        b = b.plugin(p);
    }
    for line in extra {
        b = b.server(line);
    }
    b.start()
}

fn post(s: &Server, path: &str, body: Value) -> Reply {
    let auth = bearer();
    s.send("POST", path, &[("Authorization", &auth)], Some(body))
}

fn call(s: &Server, worker: &str, action: &str, params: Value) -> Reply {
    post(
        s,
        "/execute",
        json!({"worker_id": worker, "action": action, "params": params}),
    )
}

fn get(s: &Server, path: &str) -> (u16, Vec<u8>) {
    let auth = bearer();
    s.get_bytes(path, &[("Authorization", &auth)])
}

fn create(s: &Server, worker: &str, rt: &str, config: Value) -> String {
    let r = post(
        s,
        "/session/create",
        json!({"worker_id": worker, "resource_type": rt, "config": config}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"]["session_id"].as_str().unwrap().to_string()
}

/// The lines of a trajectory log.
fn log_lines(s: &Server, session: &str) -> Vec<Value> {
    let (status, bytes) = get(s, &format!("/trajectory/{session}"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is one JSON object"))
        .collect()
}

fn steps(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["type"] == "step").collect()
}

fn list(s: &Server, worker: &str) -> Vec<Value> {
    let (status, bytes) = get(s, &format!("/trajectory/list?worker_id={worker}"));
    assert_eq!(status, 200);
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    body["data"]["trajectories"].as_array().unwrap().clone()
}

/// RGB pixels of a PNG, with its width.
fn rgb(png_bytes: &[u8]) -> (usize, usize, Vec<[u8; 3]>) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let channels = info.color_type.samples();
    let pixels = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| match channels {
            1 | 2 => [p[0], p[0], p[0]],
            _ => [p[0], p[1], p[2]],
        })
        .collect();
    (info.width as usize, info.height as usize, pixels)
}

fn decode_b64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

fn magenta_share(png_bytes: &[u8]) -> f64 {
    let (_, _, px) = rgb(png_bytes);
    px.iter().filter(|p| **p == MAGENTA).count() as f64 / px.len() as f64
}

/// Frames of a video, as ffprobe (Debian's ffmpeg) decodes them.
fn video_frames(path: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe (Debian package ffmpeg; scripts/setup.sh installs it)");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// A screenshot of `url` taken by real headless Chromium, once the page's
/// requests are done.
fn chromium_screenshot(url: &str, work: &Path) -> Vec<u8> {
    let out = work.join("viewer.png");
    let result = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--force-device-scale-factor=1",
            "--window-size=1280,2400",
            "--virtual-time-budget=20000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            work.join("profile").display()
        ))
        .arg(format!("--screenshot={}", out.display()))
        .arg(url)
        .stdout(Stdio::null())
        .output()
        .expect("chromium (Debian package chromium; scripts/setup.sh installs it)");
    assert!(
        out.exists(),
        "chromium took no screenshot: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    std::fs::read(out).unwrap()
}

/// Runs of `colour` down the column where the step borders are.
fn border_runs(width: usize, pixels: &[[u8; 3]], colour: [u8; 3]) -> usize {
    let left = pixels
        .iter()
        .enumerate()
        .filter(|(_, p)| **p == OK_GREEN || **p == ERROR_RED)
        .map(|(i, _)| i % width)
        .min()
        .expect("no step borders on the page");
    let column = left + 3;
    let mut runs = 0;
    let mut inside = false;
    for row in pixels.chunks(width) {
        let here = row[column] == colour;
        if here && !inside {
            runs += 1;
        }
        inside = here;
    }
    runs
}

#[test]
fn recorded_sessions_are_logged_exported_viewed_and_survive_sigkill() {
    let work = tempfile::tempdir().unwrap();
    let traj = work.path().join("trajectories");
    let mut s = start(&traj, &["bash", "vm"], &[]);

    // The data needs the token; the viewer page (which holds none) does not.
    assert_eq!(s.get_bytes("/trajectory/list", &[]).0, 401);

    // bash: a success, a refused call, and a call through /api/v1.
    let bash = create(&s, "w", "bash", json!({"record": true}));
    let r = call(&s, "w", "bash:run", json!({"command": "echo one"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(&s, "w", "bash:run", json!({"command": 5}));
    assert_eq!(r.status, 400, "{}", r.body);
    let auth = bearer();
    let r = s.send(
        "POST",
        "/api/v1/execute",
        &[("Authorization", &auth), ("X-Request-Id", "join-me-1")],
        Some(json!({"worker_id": "w", "action": "bash:run", "params": {"command": "echo two"}})),
    );
    assert_eq!(r.body["meta"]["trace_id"], "join-me-1", "{}", r.body);

    // vm: a magenta desktop, its screen recorded to video.
    let vm = create(
        &s,
        "w",
        "vm",
        json!({"record": true, "record_video": true, "screen_size": [320, 240],
               "programs": ["xterm -bg '#ff00ff' -geometry 200x100+0+0"]}),
    );
    let mut expected: Vec<(&str, bool)> = Vec::new();
    let mut shots: Vec<String> = Vec::new();
    let mut shoot = |expected: &mut Vec<(&str, bool)>| {
        let r = call(&s, "w", "vm:screenshot", json!({}));
        assert_eq!(r.status, 200, "{}", r.body);
        expected.push(("vm:screenshot", true));
        let image = r.body["data"]["image"].as_str().unwrap().to_string();
        shots.push(image.clone());
        image
    };
    assert!(
        eventually(Duration::from_secs(30), || magenta_share(&decode_b64(
            &shoot(&mut expected)
        )) > 0.5),
        "the xterm never covered the screen"
    );
    // Nothing moves: the same frame again, which is stored once.
    shoot(&mut expected);
    let (a, b) = (&shots[shots.len() - 2], &shots[shots.len() - 1]);
    assert_eq!(a, b, "two screenshots of a still screen differ");
    let r = call(&s, "w", "vm:click", json!({"x": 5000, "y": 10}));
    assert_eq!(r.status, 400, "{}", r.body);
    expected.push(("vm:click", false));
    let r = call(&s, "w", "vm:click", json!({"x": 10, "y": 10}));
    assert_eq!(r.status, 200, "{}", r.body);
    expected.push(("vm:click", true));
    std::thread::sleep(Duration::from_millis(1500));
    let r = post(
        &s,
        "/session/destroy",
        json!({"worker_id": "w", "resource_type": "vm"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // The vm log: the calls in order, with results, screenshots as files.
    let lines = log_lines(&s, &vm);
    assert_eq!(lines[0]["type"], "session");
    assert_eq!(lines[0]["schema"], 1);
    assert_eq!(lines[0]["session_id"], vm.as_str());
    let vm_steps = steps(&lines);
    let got: Vec<(&str, bool)> = vm_steps
        .iter()
        .map(|st| (st["action"].as_str().unwrap(), st["ok"] == true))
        .collect();
    assert_eq!(got, expected);
    for (i, st) in vm_steps.iter().enumerate() {
        assert_eq!(st["seq"], i + 1);
        assert!(st["request_id"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(st["duration_ms"].as_f64().is_some(), "{st}");
    }
    let files: Vec<&str> = vm_steps
        .iter()
        .filter(|st| st["action"] == "vm:screenshot")
        .map(|st| {
            assert_eq!(st["images"][0]["pointer"], "/image");
            assert_eq!(st["result"]["image"], st["images"][0]["file"]);
            assert_eq!(st["result"]["width"], 320);
            st["images"][0]["file"].as_str().unwrap()
        })
        .collect();
    assert_eq!(files.len(), shots.len());
    assert_eq!(files[files.len() - 1], files[files.len() - 2]);
    let bad = vm_steps.iter().find(|st| st["ok"] == false).unwrap();
    assert_eq!(bad["error"]["code"], "invalid_params");
    assert!(bad["error"]["message"].as_str().unwrap().contains("5000"));
    assert_eq!(
        vm_steps[vm_steps.len() - 1]["result"]["clicked"],
        json!([10, 10])
    );
    let end = lines.last().unwrap();
    assert_eq!(
        (
            end["type"].as_str(),
            end["steps"].as_u64(),
            end["video"].as_str()
        ),
        (Some("end"), Some(vm_steps.len() as u64), Some("screen.mp4"))
    );

    // The export unpacks to the same log, the screenshots as they were
    // answered (each distinct one once), and a playable video.
    let (status, tgz) = get(&s, &format!("/trajectory/{vm}/export"));
    assert_eq!(status, 200);
    let unpacked = work.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    std::fs::write(work.path().join("t.tar.gz"), &tgz).unwrap();
    let tar = Command::new("tar")
        .arg("-xzf")
        .arg(work.path().join("t.tar.gz"))
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(tar.success());
    let root = unpacked.join(&vm);
    assert_eq!(
        std::fs::read(root.join("trajectory.jsonl")).unwrap(),
        get(&s, &format!("/trajectory/{vm}")).1
    );
    for (shot, file) in shots.iter().zip(&files) {
        assert_eq!(&std::fs::read(root.join(file)).unwrap(), &decode_b64(shot));
        let (status, served) = get(&s, &format!("/trajectory/{vm}/{file}"));
        assert_eq!((status, &served), (200, &decode_b64(shot)));
    }
    let distinct: BTreeSet<&String> = shots.iter().collect();
    let stored = std::fs::read_dir(root.join("images")).unwrap().count();
    assert_eq!(
        stored,
        distinct.len(),
        "identical screenshots are stored once"
    );
    assert!(
        video_frames(&root.join("screen.mp4")) >= 5,
        "the screen video has too few frames"
    );

    // The viewer in real headless Chromium: the steps (one border per step,
    // green or red) and the screenshots (magenta) are on the page.
    let (status, _) = s.get_bytes(&format!("/trajectory/{vm}/view"), &[]);
    assert_eq!(status, 200, "the viewer page itself needs no token");
    let url = format!("{}/trajectory/{vm}/view#token={TOKEN}", s.base);
    let (width, _, pixels) = rgb(&chromium_screenshot(&url, work.path()));
    let magenta = pixels.iter().filter(|p| **p == MAGENTA).count();
    assert!(
        magenta > 320 * 240 / 2,
        "the screenshot is not on the page ({magenta} magenta pixels)"
    );
    let oks = expected.iter().filter(|(_, ok)| *ok).count();
    assert_eq!(
        border_runs(width, &pixels, OK_GREEN),
        oks,
        "successful steps shown"
    );
    assert_eq!(
        border_runs(width, &pixels, ERROR_RED),
        expected.len() - oks,
        "failed steps shown"
    );

    // The bash log: errors and /api/v1 trace ids are steps too.
    let lines = log_lines(&s, &bash);
    let bash_steps = steps(&lines);
    assert_eq!(bash_steps.len(), 3);
    assert_eq!(bash_steps[0]["result"]["stdout"], "one\n");
    assert_eq!(bash_steps[1]["ok"], false);
    assert_eq!(bash_steps[1]["error"]["code"], "invalid_params");
    assert_eq!(bash_steps[1]["params"]["command"], 5);
    assert_eq!(bash_steps[2]["trace_id"], "join-me-1");
    assert_eq!(bash_steps[2]["surface"], "api_v1");

    let listed = list(&s, "w");
    assert_eq!(listed.len(), 2);
    let entry = |id: &str| {
        listed
            .iter()
            .find(|t| t["session_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (
            entry(&vm)["live"].clone(),
            entry(&vm)["steps"].clone(),
            entry(&vm)["video"].clone()
        ),
        (json!(false), json!(vm_steps.len()), json!(true))
    );
    assert_eq!(entry(&bash)["live"], true);

    // An acknowledged call survives the host being killed right after it.
    let r = call(&s, "w", "bash:run", json!({"command": "echo last words"}));
    assert_eq!(r.status, 200, "{}", r.body);
    s.kill();
    // Warming bash at start removes the killed host's session disks; the
    // test waits for it, so no mount outlives the test.
    let s = start(&traj, &["bash"], &["warmup = [\"bash\"]"]);
    assert!(agentflow_e2e::eventually(
        std::time::Duration::from_secs(30),
        || s.send("GET", "/ready", &[], None).status == 200
    ));
    let lines = log_lines(&s, &bash);
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "step", "a killed host writes no end line");
    assert_eq!(last["seq"], 4);
    assert_eq!(last["result"]["stdout"], "last words\n");
    let listed = list(&s, "w");
    let after = listed
        .iter()
        .find(|t| t["session_id"] == bash.as_str())
        .unwrap();
    assert_eq!(
        (
            after["live"].clone(),
            after["ended_at"].clone(),
            after["steps"].clone()
        ),
        (json!(false), Value::Null, json!(4))
    );
    let auth = bearer();
    let r = s.send(
        "DELETE",
        &format!("/trajectory/{bash}"),
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get(&s, &format!("/trajectory/{bash}")).0, 404);
}

#[test]
fn the_size_cap_marks_the_log_and_retention_deletes_ended_trajectories() {
    let work = tempfile::tempdir().unwrap();
    let traj: PathBuf = work.path().join("trajectories");
    let s = start(
        &traj,
        &["bash"],
        &["trajectory_max_bytes = 4096", "trajectory_max_age = 1"],
    );
    let capped = create(&s, "w", "bash", json!({"record": true}));
    let calls = 12;
    for _ in 0..calls {
        let r = call(
            &s,
            "w",
            "bash:run",
            json!({"command": "printf 'x%.0s' $(seq 400)"}),
        );
        assert_eq!(r.status, 200, "calls go on past the cap: {}", r.body);
    }
    let lines = log_lines(&s, &capped);
    let recorded = steps(&lines).len();
    assert!((1..calls).contains(&recorded), "{recorded} steps recorded");
    let marker = lines.last().unwrap();
    assert_eq!(marker["type"], "cap_reached");
    assert_eq!(marker["seq"], recorded + 1);
    let bytes: usize = lines.iter().map(|l| l.to_string().len() + 1).sum();
    assert!(bytes <= 4096 + 200, "the log is {bytes} bytes");
    let entry = list(&s, "w").remove(0);
    assert_eq!(
        (entry["capped"].clone(), entry["steps"].clone()),
        (json!(true), json!(recorded))
    );

    // Another worker's session stays recorded (and kept) while it lives.
    let live = create(&s, "w2", "bash", json!({"record": true}));
    assert_eq!(
        call(&s, "w2", "bash:run", json!({"command": "true"})).status,
        200
    );
    let r = post(
        &s,
        "/session/destroy",
        json!({"worker_id": "w", "resource_type": "bash"}),
    );
    assert_eq!(r.status, 200);
    let end = log_lines(&s, &capped).pop().unwrap();
    assert_eq!(end["type"], "end");
    assert_eq!(end["unrecorded_steps"], calls - recorded);

    // Ended and older than trajectory_max_age: deleted; the live one stays.
    assert!(
        eventually(Duration::from_secs(10), || list(&s, "w").is_empty()),
        "retention kept an old trajectory"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let kept = list(&s, "w2");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["session_id"], live.as_str());
}
