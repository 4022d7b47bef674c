//! The store without a server: retention by total size, and what a writer
//! leaves when it closes.

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::{Call, Origin, Plan, SessionInfo, Trajectories};
use crate::config::ServerConfig;

fn store(dir: &std::path::Path, max_total: u64) -> Trajectories {
    Trajectories::new(&ServerConfig {
        trajectory_dir: dir.to_path_buf(),
        trajectory_max_total_bytes: max_total,
        ..ServerConfig::default()
    })
}

/// Opens a trajectory for `id` and records one call with `filler` bytes of output.
fn record(t: &Trajectories, id: &str, filler: usize) -> std::sync::Arc<super::Writer> {
    let info = SessionInfo {
        session_id: id,
        session_name: id,
        worker_id: "w",
        resource_type: "bash",
        temporary: false,
        node: "",
    };
    let plan = Plan {
        record: true,
        video: false,
    };
    let w = t.open(&info, plan, &mut json!({})).unwrap();
    let result = serde_json::value::to_raw_value(&json!({"stdout": "x".repeat(filler)})).unwrap();
    w.append(&Call {
        action: "bash:run",
        params: &Value::Null,
        started_at: SystemTime::now(),
        duration_ms: 1.0,
        origin: &Origin::default(),
        outcome: Ok(&result),
    })
    .unwrap();
    w
}

#[test]
fn retention_by_total_size_deletes_the_oldest_ended_first_and_never_a_live_one() {
    let dir = tempfile_dir("size");
    let t = store(&dir, 25_000);
    let live = record(&t, "live_1", 10_000);
    for id in ["old_1", "old_2", "old_3"] {
        let w = record(&t, id, 10_000);
        t.close(&w);
        // File times must tell them apart.
        std::thread::sleep(Duration::from_millis(20));
    }
    // 4 × ~10 KB over a 25 KB budget: the two oldest ended ones go.
    let deleted = t.sweep();
    assert_eq!(deleted, ["old_1", "old_2"]);
    let left: Vec<_> = t
        .list(None)
        .unwrap()
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    assert!(left.contains(&"live_1".to_string()) && left.contains(&"old_3".to_string()));
    assert_eq!(left.len(), 2);
    t.close(&live);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_closed_trajectory_counts_its_steps_and_a_session_config_is_checked() {
    let dir = tempfile_dir("close");
    let t = store(&dir, 0);
    assert!(t.sweep().is_empty(), "no limits: nothing is deleted");
    let w = record(&t, "s_1", 10);
    t.close(&w);
    let s = t.summary("s_1").unwrap();
    assert_eq!((s.steps, s.live, s.ended_at.is_some()), (1, false, true));
    let mut config = json!({"record": true, "env": {}});
    let plan = t.plan(&mut config).unwrap();
    assert!(plan.record && !plan.video);
    assert_eq!(config, json!({"env": {}}), "plugins never see 'record'");
    let e = t.plan(&mut json!({"record": "yes"})).unwrap_err();
    assert!(e.to_string().contains("config.record"), "{e}");
    let e = t
        .plan(&mut json!({"record_video": true, "video_path": "/etc/x"}))
        .unwrap_err();
    assert!(e.to_string().contains("video_path"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "agentflow-traj-{name}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
