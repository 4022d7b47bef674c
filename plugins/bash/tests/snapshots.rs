//! Snapshots and forks of sessions, with the real sandbox: what a restored
//! session carries (files, `$HOME`, its writable layers, the shell's state),
//! that restored sessions are independent of each other and of the source,
//! what is left behind, dropping snapshots, errors, and that nothing stays
//! mounted.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use agentflow_bash::BashPlugin;
use common::*;
use plugin_api::testkit::{Kit, Session};
use plugin_api::{ErrorKind, Plugin, PluginInfo};
use serde_json::json;

type S<'k> = Session<'k, BashPlugin>;

/// Runs `command`, which must succeed (return code 0); returns its stdout.
fn run(kit: &Kit<BashPlugin>, s: &S<'_>, command: &str) -> String {
    let out = kit
        .call(s, "run", json!({ "command": command }))
        .unwrap_or_else(|e| panic!("run {command:?} failed: {e:?}"));
    assert_eq!(out["return_code"], 0, "{command:?}: {out}");
    out["stdout"].as_str().unwrap_or_default().to_string()
}

/// The return code and stdout of `command`.
fn try_run(kit: &Kit<BashPlugin>, s: &S<'_>, command: &str) -> (i64, String) {
    let out = kit
        .call(s, "run", json!({ "command": command }))
        .unwrap_or_else(|e| panic!("run {command:?} failed: {e:?}"));
    let rc = out["return_code"].as_i64().unwrap_or(-1);
    (rc, out["stdout"].as_str().unwrap_or_default().to_string())
}

fn session_dir(kit: &Kit<BashPlugin>, s: &S<'_>) -> String {
    let info = kit.call(s, "info", json!({})).expect("info");
    info["session_dir"].as_str().unwrap_or_default().to_string()
}

/// Lines of `/proc/self/mountinfo` and `losetup -a` naming `root`.
fn mounted_under(root: &Path) -> Vec<String> {
    let root = root.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let loops = std::process::Command::new("losetup")
        .arg("-a")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    mounts
        .lines()
        .chain(loops.lines())
        .filter(|line| line.contains(&root))
        .map(str::to_string)
        .collect()
}

/// Waits until the plugin's pool of ready disks is full again (it refills
/// in the background after a session took one), so that mounts can be
/// compared.
fn pool_settled(root: &Path) {
    let pool = root.join(".disks");
    let ready = || {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        mounts
            .lines()
            .filter_map(|line| line.split(' ').nth(4))
            .filter(|point| Path::new(point).parent() == Some(pool.as_path()))
            .count()
    };
    // The pool's disks and the sessions': steady once the pool is refilled.
    let mut last = ready();
    assert!(
        eventually(10, || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let now = ready();
            let steady = now == last;
            last = now;
            steady
        }),
        "the disk pool does not settle"
    );
}

/// Drops the harness (plugin shutdown) and checks that no mount or loop
/// device of its workspace root is left.
fn assert_nothing_left(h: Harness) {
    let root = h.root.clone();
    drop(h);
    assert!(
        eventually(10, || mounted_under(&root).is_empty()),
        "left mounted: {:#?}",
        mounted_under(&root)
    );
}

/// Frozen images and their mount points in the harness's snapshot directory.
fn frozen_files(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root.join(".snapshots")) else {
        return Vec::new();
    };
    entries.flatten().map(|e| e.path()).collect()
}

/// Sets a session up: files in the workspace and in $HOME, a program under
/// /usr/local (its writable layer), a subdirectory as working directory,
/// variables, a function, an alias, shell options.
fn set_up(kit: &Kit<BashPlugin>, s: &S<'_>) {
    run(
        kit,
        s,
        "mkdir -p proj/sub && echo hello > proj/file.txt && echo gone-later > proj/doomed.txt \
         && echo home > ~/.myrc && mkdir -p /usr/local/bin \
         && printf '#!/bin/sh\\necho tool-ok\\n' > /usr/local/bin/mytool \
         && chmod +x /usr/local/bin/mytool",
    );
    run(
        kit,
        s,
        "cd proj/sub; export EXP='exported value'; SV=$'shell\\nvar'; declare -a ARR=(a 'b c'); \
         declare -i NUM=41; greet() { echo \"hi $1\"; }; shopt -s expand_aliases; \
         alias say='echo aliased'; set -o pipefail; umask 027; export PATH=\"$HOME/bin:$PATH\"",
    );
}

/// Checks what `set_up` made, in a session whose directory is `dir`.
fn check_carried(kit: &Kit<BashPlugin>, s: &S<'_>, dir: &str) {
    assert_eq!(run(kit, s, "pwd"), format!("{dir}/proj/sub\n"));
    assert_eq!(run(kit, s, "echo \"$HOME\""), format!("{dir}\n"));
    assert_eq!(
        run(kit, s, "cat ../file.txt ~/.myrc && mytool"),
        "hello\nhome\ntool-ok\n"
    );
    assert_eq!(
        run(kit, s, "echo \"$EXP|$SV|${ARR[1]}|$((NUM + 1))\""),
        "exported value|shell\nvar|b c|42\n"
    );
    assert_eq!(
        run(kit, s, "bash -c 'echo \"${EXP}|${SV:-not exported}\"'"),
        "exported value|not exported\n"
    );
    assert_eq!(run(kit, s, "greet you"), "hi you\n");
    assert_eq!(run(kit, s, "say it"), "aliased it\n");
    assert_eq!(
        run(kit, s, "set -o | grep -w pipefail | tr -s ' \\t' ' '"),
        "pipefail on\n"
    );
    assert_eq!(run(kit, s, "umask"), "0027\n");
    assert_eq!(
        run(kit, s, "echo \"${PATH%%:*}\""),
        format!("{dir}/bin\n"),
        "paths under the old directory moved to the new one"
    );
}

#[test]
fn the_capability_is_declared() {
    assert!(BashPlugin::info().has(PluginInfo::SNAPSHOTS));
}

#[test]
fn a_snapshot_restores_files_and_shell_state_eight_ways_independently() {
    if !is_root() {
        eprintln!("skipped: disks and writable layers need root");
        return;
    }
    let h = Harness::new();
    let kit = h.kit();
    let source = kit.session(json!({})).expect("session");
    let source_dir = session_dir(kit, &source);
    set_up(kit, &source);
    let report = kit.snapshot(&source, "setup-0a1b2c3d").expect("snapshot");
    assert_eq!(report["left_behind"], json!([]), "{report}");
    assert!(report["bytes"].as_u64().unwrap_or(0) > 0, "{report}");
    assert!(report["took_ms"].is_u64(), "{report}");

    let restored: Vec<S<'_>> = std::thread::scope(|scope| {
        let forks: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| kit.restore("setup-0a1b2c3d", json!({}))))
            .collect();
        forks
            .into_iter()
            .map(|f| f.join().expect("no panic").expect("restore"))
            .collect()
    });
    let dirs: Vec<String> = restored.iter().map(|s| session_dir(kit, s)).collect();
    for (s, dir) in restored.iter().zip(&dirs) {
        assert_ne!(dir, &source_dir);
        check_carried(kit, s, dir);
        let quiet = kit.call(s, "run", json!({"command": "true"})).expect("run");
        assert_eq!(
            quiet["stderr"], "",
            "no error of the restore reaches the user"
        );
        assert_eq!(quiet["shell_restarted"], false);
    }

    // Writes in one are seen by none of the others, nor by the source.
    let (first, second) = (&restored[0], &restored[1]);
    run(
        kit,
        first,
        "echo mine > ../mine.txt && echo changed > ../file.txt && rm ../doomed.txt \
         && rm /usr/local/bin/mytool && echo extra > ~/.myrc2 && export EXP=first",
    );
    assert_eq!(run(kit, first, "cat ../file.txt"), "changed\n");
    assert_eq!(
        run(kit, first, &format!("cat {source_dir}/proj/file.txt")),
        "changed\n",
        "the source's path shows the restored session's own workspace"
    );
    for s in restored.iter().skip(1).chain(std::iter::once(&source)) {
        assert_eq!(
            run(
                kit,
                s,
                "cat ../file.txt ../doomed.txt && mytool && echo \"$EXP\""
            ),
            "hello\ngone-later\ntool-ok\nexported value\n"
        );
        assert_eq!(
            try_run(kit, s, "ls ../mine.txt ~/.myrc2 2>/dev/null").0,
            2,
            "files one restored session made are not in another"
        );
    }
    // The source goes on, and its later writes reach no restored session.
    run(kit, &source, "echo later > ../later.txt && SV=changed");
    assert_eq!(try_run(kit, second, "test -e ../later.txt").0, 1);
    assert_eq!(run(kit, second, "echo \"$SV\""), "shell\nvar\n");
    check_carried_source(kit, &source, &source_dir);

    drop(restored);
    drop(source);
    assert_nothing_left(h);
}

/// The source's state after its snapshot (but for `SV`, changed since).
fn check_carried_source(kit: &Kit<BashPlugin>, s: &S<'_>, dir: &str) {
    assert_eq!(run(kit, s, "pwd"), format!("{dir}/proj/sub\n"));
    assert_eq!(run(kit, s, "greet src; say src"), "hi src\naliased src\n");
    assert_eq!(run(kit, s, "cat ../file.txt && mytool"), "hello\ntool-ok\n");
}

#[test]
fn a_restored_session_can_be_snapshotted_in_turn() {
    if !is_root() {
        eprintln!("skipped: disks and writable layers need root");
        return;
    }
    let h = Harness::new();
    let kit = h.kit();
    let source = kit.session(json!({})).expect("session");
    let source_dir = session_dir(kit, &source);
    set_up(kit, &source);
    kit.snapshot(&source, "gen1-00000001").expect("snapshot");
    let middle = kit.restore("gen1-00000001", json!({})).expect("restore");
    let middle_dir = session_dir(kit, &middle);
    run(
        kit,
        &middle,
        "rm ../doomed.txt && echo second > ../second.txt && echo v2 > /usr/local/bin/version \
         && cd .. && G2=yes",
    );
    let report = kit.snapshot(&middle, "gen2-00000002").expect("snapshot");
    assert!(report["bytes"].as_u64().unwrap_or(0) > 0, "{report}");
    drop(middle);
    drop(source);
    kit.plugin().drop_snapshot("gen1-00000001").expect("drop");

    let last = kit.restore("gen2-00000002", json!({})).expect("restore");
    let dir = session_dir(kit, &last);
    assert_eq!(run(kit, &last, "pwd"), format!("{dir}/proj\n"));
    assert_eq!(
        run(
            kit,
            &last,
            "cat file.txt second.txt /usr/local/bin/version ~/.myrc && mytool && echo $G2 && greet again"
        ),
        "hello\nsecond\nv2\nhome\ntool-ok\nyes\nhi again\n"
    );
    assert_eq!(
        try_run(kit, &last, "test -e doomed.txt").0,
        1,
        "a file deleted before the second snapshot stays deleted"
    );
    for former in [&source_dir, &middle_dir] {
        assert_eq!(
            run(kit, &last, &format!("cat {former}/proj/second.txt")),
            "second\n",
            "every former directory leads to the workspace"
        );
    }
    drop(last);
    assert_nothing_left(h);
}

#[test]
fn processes_are_left_behind_and_listed() {
    if !is_root() {
        eprintln!("skipped: disks and writable layers need root");
        return;
    }
    let h = Harness::new();
    let kit = h.kit();
    let source = kit.session(json!({})).expect("session");
    let started = kit
        .call(&source, "start", json!({"command": "sleep 1000"}))
        .expect("start");
    run(kit, &source, "sleep 999 >/dev/null 2>&1 &");
    // Both have exec'd sleep (a moment before, they are bash).
    run(
        kit,
        &source,
        "for i in $(seq 100); do [ \"$(pgrep -x sleep | wc -l)\" = 2 ] && break; sleep 0.05; done",
    );
    let report = kit.snapshot(&source, "procs-12345678").expect("snapshot");
    let left = report["left_behind"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let commands: Vec<&str> = left.iter().filter_map(|p| p["command"].as_str()).collect();
    assert!(commands.contains(&"sleep 1000"), "{report}");
    assert!(commands.contains(&"sleep 999"), "{report}");
    let background = left.iter().find(|p| p["command"] == "sleep 1000");
    assert_eq!(
        background.map(|p| &p["id"]),
        Some(&started["id"]),
        "{report}"
    );
    assert!(
        left.iter().all(|p| p["pid"].as_i64().unwrap_or(0) > 1),
        "{report}"
    );

    let restored = kit.restore("procs-12345678", json!({})).expect("restore");
    let listed = kit
        .call(&restored, "processes", json!({}))
        .expect("processes");
    assert_eq!(listed["processes"], json!([]), "{listed}");
    assert_eq!(
        try_run(kit, &restored, "pgrep -x sleep").0,
        1,
        "no process was carried"
    );
    // The source's processes are untouched.
    assert_eq!(run(kit, &source, "pgrep -x sleep | wc -l"), "2\n");
    drop(restored);
    drop(source);
    assert_nothing_left(h);
}

#[test]
fn dropping_a_snapshot_keeps_restored_sessions_and_frees_its_files_after_them() {
    if !is_root() {
        eprintln!("skipped: disks and writable layers need root");
        return;
    }
    let h = Harness::new();
    let kit = h.kit();
    let source = kit.session(json!({})).expect("session");
    run(
        kit,
        &source,
        "head -c 1048576 /dev/urandom > blob && md5sum blob > sum",
    );
    kit.snapshot(&source, "dropme-aabbccdd").expect("snapshot");
    let first = kit.restore("dropme-aabbccdd", json!({})).expect("restore");
    let second = kit.restore("dropme-aabbccdd", json!({})).expect("restore");
    drop(source);
    kit.plugin().drop_snapshot("dropme-aabbccdd").expect("drop");
    let err = kit
        .restore("dropme-aabbccdd", json!({}))
        .err()
        .expect("a dropped snapshot cannot be restored");
    assert_eq!(err.kind, ErrorKind::InvalidParams, "{err:?}");
    assert!(
        !frozen_files(&h.root).is_empty(),
        "the files stay while restored sessions use them"
    );
    for s in [&first, &second] {
        assert_eq!(run(kit, s, "md5sum -c --quiet sum && echo ok"), "ok\n");
        run(kit, s, "echo more >> blob2");
    }
    kit.end(first).expect("end");
    assert!(!frozen_files(&h.root).is_empty(), "one still uses them");
    assert_eq!(
        run(kit, &second, "md5sum -c --quiet sum && echo ok"),
        "ok\n"
    );
    kit.end(second).expect("end");
    assert_eq!(frozen_files(&h.root), Vec::<PathBuf>::new());
    assert_nothing_left(h);
}

#[test]
fn shutdown_removes_every_frozen_file() {
    if !is_root() {
        eprintln!("skipped: disks and writable layers need root");
        return;
    }
    let h = Harness::new();
    let kit = h.kit();
    let source = kit.session(json!({})).expect("session");
    run(kit, &source, "echo kept > f");
    kit.snapshot(&source, "kept-11111111").expect("snapshot");
    kit.snapshot(&source, "kept-22222222").expect("snapshot");
    assert_eq!(frozen_files(&h.root).len(), 4, "two images, two mounts");
    let restored = kit.restore("kept-22222222", json!({})).expect("restore");
    kit.plugin().shutdown();
    assert_eq!(frozen_files(&h.root), Vec::<PathBuf>::new());
    assert_eq!(
        run(kit, &restored, "cat f"),
        "kept\n",
        "the kernel keeps what a running session stands on"
    );
    drop(restored);
    drop(source);
    assert_nothing_left(h);
}

#[test]
fn restore_errors_are_clear_and_leave_nothing() {
    if !is_root() {
        eprintln!("skipped: disks and writable layers need root");
        return;
    }
    let h = Harness::new();
    let kit = h.kit();
    let entries = |root: &Path| -> Vec<PathBuf> {
        let mut all: Vec<PathBuf> = std::fs::read_dir(root)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        all.sort();
        all
    };
    pool_settled(&h.root);
    let mounts_before = mounted_under(&h.root).len();
    let dirs_before = entries(&h.root);
    let err = kit
        .restore("nope-12345678", json!({}))
        .err()
        .expect("an unknown snapshot");
    assert_eq!(err.kind, ErrorKind::InvalidParams, "{err:?}");
    assert!(err.message.contains("'nope-12345678'"), "{}", err.message);

    let source = kit.session(json!({"env": {"A": "1"}})).expect("session");
    run(kit, &source, "echo x > f");
    kit.snapshot(&source, "cfg-12345678").expect("snapshot");
    let err = kit
        .snapshot(&source, "cfg-12345678")
        .expect_err("the same id twice");
    assert_eq!(err.kind, ErrorKind::InvalidParams, "{err:?}");
    drop(source);
    pool_settled(&h.root);
    let mounts_with_snapshot = mounted_under(&h.root).len();
    let dirs_with_snapshot = entries(&h.root);
    for (config, field) in [
        (
            json!({"limits": {"memory_bytes": 1u64 << 50}}),
            "limits.memory_bytes",
        ),
        (json!({"image": "nope"}), "image"),
        (json!({"cwd": "../../etc"}), "cwd"),
    ] {
        let err = kit
            .restore("cfg-12345678", config.clone())
            .err()
            .unwrap_or_else(|| panic!("{config} must be refused"));
        assert_eq!(err.kind, ErrorKind::InvalidParams, "{config}: {err:?}");
        assert!(err.message.contains(field), "{config}: {}", err.message);
        pool_settled(&h.root);
        assert!(
            eventually(10, || mounted_under(&h.root).len() == mounts_with_snapshot),
            "{config}: {:#?}",
            mounted_under(&h.root)
        );
        assert_eq!(entries(&h.root), dirs_with_snapshot, "{config}");
    }

    // A restore may tighten limits and change the environment.
    let restored = kit
        .restore(
            "cfg-12345678",
            json!({"env": {"A": "1", "SEED": "7"}, "limits": {"processes": 64}}),
        )
        .expect("restore");
    let info = kit.call(&restored, "info", json!({})).expect("info");
    assert_eq!(info["session_limits"]["processes"], 64, "{info}");
    assert_eq!(
        run(kit, &restored, "bash -c 'echo $A $SEED' && cat f"),
        "1 7\nx\n"
    );
    drop(restored);
    kit.plugin().drop_snapshot("cfg-12345678").expect("drop");
    pool_settled(&h.root);
    assert!(
        eventually(10, || mounted_under(&h.root).len() == mounts_before),
        "{mounts_before}: {:#?}",
        mounted_under(&h.root)
    );
    assert_eq!(entries(&h.root), dirs_before);
    assert_nothing_left(h);
}

#[test]
fn what_a_killed_server_froze_is_removed_at_the_next_start() {
    if !is_root() {
        eprintln!("skipped: loop devices need root");
        return;
    }
    let root = std::env::temp_dir().join(format!("agentflow-bash-stale-{}", std::process::id()));
    let frozen = root.join(".snapshots");
    std::fs::create_dir_all(&frozen).expect("mkdir");
    // A server that no longer runs: a pid that just ended.
    let dead = std::process::Command::new("true")
        .spawn()
        .and_then(|mut c| c.wait().map(|_| c.id()))
        .expect("true");
    let sh = |script: &str| {
        let status = std::process::Command::new("sh")
            .args(["-c", script])
            .current_dir(&frozen)
            .status()
            .expect("sh");
        assert!(status.success(), "{script}");
    };
    // One frozen copy mounted, one attached to a loop device only (killed
    // between attaching and mounting).
    sh(&format!(
        "truncate -s 16M {dead}-0-0.img {dead}-0-1.img && mkfs.ext4 -q {dead}-0-0.img \
         && mkdir {dead}-0-0.mnt && mount -o loop,ro {dead}-0-0.img {dead}-0-0.mnt \
         && losetup -f -r {dead}-0-1.img"
    ));
    assert_eq!(
        mounted_under(&frozen).len(),
        3,
        "{:#?}",
        mounted_under(&frozen)
    );
    let kit = Kit::<BashPlugin>::warm(json!({ "workspace_root": root })).expect("warmup");
    assert!(
        eventually(10, || mounted_under(&frozen).is_empty()),
        "{:#?}",
        mounted_under(&frozen)
    );
    assert_eq!(frozen_files(&root), Vec::<PathBuf>::new());
    drop(kit);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn without_the_sandbox_snapshots_are_unsupported() {
    let h = Harness::with_config(json!({"sandbox": {"isolation": "none"}}));
    let kit = h.kit();
    let s = kit.session(json!({})).expect("session");
    let err = kit.snapshot(&s, "none-12345678").expect_err("unsupported");
    assert_eq!(err.kind, ErrorKind::Unsupported, "{err:?}");
    assert!(err.message.contains("isolation"), "{}", err.message);
}

/// The benchmark, measured by hand: `cargo test -p agentflow-bash
/// --test snapshots -- --ignored --nocapture`. Forks a session with 200 MB
/// of changed files 16 ways (snapshot, then 16 restores at once) and prints
/// the time and the disk the fork took on the workspace root.
#[test]
#[ignore = "a measurement (200 MB of files), run by hand"]
fn fork_sixteen_ways_with_200_mb_changed() {
    let h = Harness::new();
    let kit = h.kit();
    let source = kit.session(json!({})).expect("session");
    run(
        kit,
        &source,
        "mkdir -p data && for i in $(seq 1 200); do head -c 1048576 /dev/urandom > data/f$i; done",
    );
    let disk = |root: &Path| -> f64 {
        let out = std::process::Command::new("du")
            .args(["-s", "-x", "--block-size=1"])
            .arg(root)
            .output()
            .expect("du");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0)
    };
    for round in 0..3 {
        let before = disk(&h.root);
        let disks_before = disk(&h.root.join(".disks"));
        let t = Instant::now();
        let id = format!("fork{round}-0000000{round}");
        let report = kit.snapshot(&source, &id).expect("snapshot");
        let snapshot_took = t.elapsed();
        let forks: Vec<S<'_>> = std::thread::scope(|scope| {
            let jobs: Vec<_> = (0..16)
                .map(|_| scope.spawn(|| kit.restore(&id, json!({}))))
                .collect();
            jobs.into_iter()
                .map(|j| j.join().expect("no panic").expect("restore"))
                .collect()
        });
        let took = t.elapsed();
        let grown = disk(&h.root) - before;
        // Session disks: the source's image grows when the freeze writes its
        // files out (they were in memory), the 16 new disks barely.
        let disks_grown = disk(&h.root.join(".disks")) - disks_before;
        println!(
            "round {round}: snapshot {:.0} ms ({report}), fork 1 → 16 {:.0} ms, disk {:.1} MiB \
             = {:.3} × one copy, of which session disks {:.1} MiB",
            snapshot_took.as_secs_f64() * 1000.0,
            took.as_secs_f64() * 1000.0,
            grown / 1048576.0,
            grown / (200.0 * 1048576.0),
            disks_grown / 1048576.0
        );
        let sizes = "du -s --apparent-size --block-size=1M data/ | cut -f1";
        assert_eq!(run(kit, &forks[15], sizes), run(kit, &source, sizes));
        println!(
            "du -sm data: source {}, fork {}",
            run(kit, &source, "du -sm data | cut -f1").trim(),
            run(kit, &forks[15], "du -sm data | cut -f1").trim()
        );
        drop(forks);
        kit.plugin().drop_snapshot(&id).expect("drop");
    }
}
