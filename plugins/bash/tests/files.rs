//! `write_file` / `read_file`: binary-safe transfer, and no way out of the
//! session's directory.

mod common;

use base64::Engine as _;
use common::*;
use plugin_api::ErrorKind;
use serde_json::json;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn binary_files_round_trip_through_the_shell() {
    let h = Harness::new();
    let s = h.session("binary", json!({}));
    let all_bytes: Vec<u8> = (0..=255).collect();
    let written = h
        .call(
            &s,
            "write_file",
            json!({"path": "data/all.bin", "content": b64(&all_bytes), "encoding": "base64"}),
        )
        .unwrap();
    assert_eq!(written["size"], 256);
    // The shell sees exactly those bytes...
    assert_eq!(
        h.run(
            &s,
            "od -An -tx1 data/all.bin | tr -d ' \\n' | md5sum | cut -c1-8"
        )["stdout"],
        h.run(
            &s,
            "printf '%s' $(printf '%02x' $(seq 0 255)) | md5sum | cut -c1-8"
        )["stdout"]
    );
    // ...and a file the shell makes comes back byte for byte.
    h.run(&s, "cat data/all.bin data/all.bin > data/twice.bin");
    let read = h
        .call(&s, "read_file", json!({"path": "data/twice.bin"}))
        .unwrap();
    assert_eq!(read["encoding"], "base64");
    assert_eq!(read["size"], 512);
    assert_eq!(read["truncated"], false);
    assert_eq!(
        read["content"],
        b64(&[all_bytes.clone(), all_bytes].concat())
    );
    let dir = h.call(&s, "info", json!({})).unwrap()["session_dir"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(written["path"], format!("{dir}/data/all.bin"));
    assert_eq!(read["path"], format!("{dir}/data/twice.bin"));
}

#[test]
fn text_files_are_utf8_and_reads_can_be_cut() {
    let h = Harness::new();
    let s = h.session("text", json!({}));
    h.call(
        &s,
        "write_file",
        json!({"path": "notes.txt", "content": "héllo wörld\n"}),
    )
    .unwrap();
    assert_eq!(h.run(&s, "cat notes.txt")["stdout"], "héllo wörld\n");
    let read = h
        .call(&s, "read_file", json!({"path": "notes.txt"}))
        .unwrap();
    assert_eq!(
        (read["content"].as_str(), read["encoding"].as_str()),
        (Some("héllo wörld\n"), Some("utf8"))
    );
    // Cutting inside 'é' (2 bytes) drops the half character instead of switching to base64.
    let read = h
        .call(
            &s,
            "read_file",
            json!({"path": "notes.txt", "max_bytes": 2}),
        )
        .unwrap();
    assert_eq!(read["content"], "h");
    assert_eq!(read["encoding"], "utf8");
    assert_eq!(read["truncated"], true);
    assert_eq!(read["size"], 14);
    // Absolute paths inside the session work; the shell's cwd does not matter.
    h.run(&s, "mkdir -p deep && cd deep");
    let dir = h.call(&s, "info", json!({})).unwrap()["session_dir"]
        .as_str()
        .unwrap()
        .to_string();
    let read = h
        .call(&s, "read_file", json!({"path": format!("{dir}/notes.txt")}))
        .unwrap();
    assert_eq!(read["size"], 14);
}

#[test]
fn paths_leading_outside_are_refused_by_name() {
    let h = Harness::new();
    let s = h.session("escape", json!({}));
    h.run(&s, "mkdir sub && ln -s /etc etc-link && ln -s ../.. sub/up && ln -s sub inner-link && echo ok > sub/file");
    for path in [
        "../outside.txt",
        "/etc/passwd",
        "sub/../../x",
        "etc-link/passwd",
        "sub/up/etc/passwd",
        "/proc/self/root/etc/passwd",
    ] {
        for (tool, params) in [
            ("read_file", json!({"path": path})),
            ("write_file", json!({"path": path, "content": "x"})),
        ] {
            let err = h.call(&s, tool, params).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidParams, "{tool} {path}: {err:?}");
            assert!(
                err.message.contains(path),
                "{tool}: the message names the path: {}",
                err.message
            );
        }
    }
    assert!(!std::path::Path::new("/etc/x").exists());
    // Links that stay inside are fine.
    let read = h
        .call(&s, "read_file", json!({"path": "inner-link/file"}))
        .unwrap();
    assert_eq!(read["content"], "ok\n");
}

#[test]
fn bad_file_params_are_invalid_params() {
    let h = Harness::with_config(json!({"file_limit_bytes": 8}));
    let s = h.session("file-params", json!({}));
    let cases = [
        (
            "write_file",
            json!({"path": "a", "content": "not base64!", "encoding": "base64"}),
            "content",
        ),
        (
            "write_file",
            json!({"path": "a", "content": "more than eight bytes"}),
            "content",
        ),
        ("read_file", json!({"path": "missing.txt"}), "missing.txt"),
        ("read_file", json!({"path": "."}), "."),
        (
            "read_file",
            json!({"path": "a", "max_bytes": 9}),
            "max_bytes",
        ),
    ];
    for (tool, params, named) in cases {
        let err = h.call(&s, tool, params.clone()).unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::InvalidParams,
            "{tool} {params}: {err:?}"
        );
        assert!(
            err.message.contains(named),
            "{tool} {params}: {}",
            err.message
        );
    }
    // A FIFO would block a reader forever: it is refused, not read.
    h.run(&s, "mkfifo pipe");
    let err = h
        .call(&s, "read_file", json!({"path": "pipe"}))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidParams);
}
