//! Bad input is refused with InvalidParams naming the value; the schemas
//! the host validates against describe the params.

mod common;

use common::*;
use plugin_api::{ErrorKind, Plugin};
use serde_json::{json, Value};

fn invalid(
    p: &plugin_api::testkit::Kit<agentflow_vm::VmPlugin>,
    s: &agentflow_vm::VmSession,
    tool: &str,
    params: Value,
    names: &[&str],
) {
    let e = call(p, s, tool, params.clone()).expect_err(&format!("{tool} {params} must fail"));
    assert_eq!(e.kind, ErrorKind::InvalidParams, "{tool} {params}: {e:?}");
    for n in names {
        assert!(
            e.message.contains(n),
            "{tool} {params}: message {:?} should name {n:?}",
            e.message
        );
    }
}

#[test]
fn bad_params_are_invalid_and_named() {
    let p = plugin();
    let s = session(&p, "vm_w1_001_params", json!({"screen_size": [640, 480]}));
    invalid(
        &p,
        &s,
        "click",
        json!({"x": 640, "y": 10}),
        &["x=640", "0..=639"],
    );
    invalid(&p, &s, "click", json!({"x": 10, "y": -1}), &["y=-1"]);
    invalid(
        &p,
        &s,
        "click",
        json!({"x": 10, "y": 10, "button": "side"}),
        &["side"],
    );
    invalid(
        &p,
        &s,
        "double_click",
        json!({"x": 99999, "y": 0}),
        &["x=99999"],
    );
    invalid(&p, &s, "right_click", json!({"x": 5}), &["both", "x=5"]);
    invalid(&p, &s, "move", json!({"x": 0, "y": 480}), &["y=480"]);
    invalid(
        &p,
        &s,
        "drag",
        json!({"start_x": 0, "start_y": 0, "end_x": 700, "end_y": 0}),
        &["end_x=700"],
    );
    invalid(
        &p,
        &s,
        "scroll",
        json!({"x": 1, "y": 1, "clicks": 1_000_000}),
        &["clicks=1000000"],
    );
    invalid(
        &p,
        &s,
        "scroll",
        json!({"x": 1000, "y": 1, "clicks": 1}),
        &["x=1000"],
    );
    invalid(&p, &s, "key", json!({"key": "notakey"}), &["\"notakey\""]);
    invalid(&p, &s, "key", json!({"key": ""}), &["\"\""]);
    invalid(
        &p,
        &s,
        "key_down",
        json!({"key": "hyperdrive"}),
        &["hyperdrive"],
    );
    invalid(&p, &s, "hotkey", json!({"keys": []}), &["keys", "empty"]);
    invalid(
        &p,
        &s,
        "hotkey",
        json!({"keys": ["ctrl", "bogus"]}),
        &["\"bogus\""],
    );
    invalid(
        &p,
        &s,
        "type",
        json!({"text": "a\u{1}b"}),
        &["U+0001", "position 1"],
    );
    // Refused by the schema (minimum 0) before the plugin runs, as the host refuses it.
    invalid(
        &p,
        &s,
        "wait",
        json!({"seconds": -1}),
        &["'seconds'", "minimum"],
    );
    invalid(
        &p,
        &s,
        "click",
        json!({"x": "left", "y": 1}),
        &["'x'", "integer"],
    );
    // Nothing was pressed by the refused hotkey: a plain key still works.
    ok(&p, &s, "key", json!({"key": "a"}));
    assert_eq!(
        ok(&p, &s, "wait", json!({"seconds": 0.01})),
        json!({"waited": 0.01})
    );
    p.cleanup(&s).unwrap();
}

#[test]
fn bad_session_config_is_invalid_and_named() {
    let p = plugin();
    for (cfg, name) in [
        (json!({"screen_size": [0, 480]}), "screen_size"),
        (json!({"screen_size": "big"}), "screen_size"),
        (json!({"programs": "xterm"}), "programs"),
        (json!({"programs": [""]}), "programs[0]"),
        (json!({"env": {"A": {}}}), "env.A"),
        (json!({"cwd": "/nonexistent/dir"}), "/nonexistent/dir"),
    ] {
        let Err(e) = p.initialize("vm_w1_001_badcfg", &cfg) else {
            panic!("{cfg} must be refused");
        };
        assert_eq!(e.kind, ErrorKind::InvalidParams, "{cfg}: {e:?}");
        assert!(
            e.message.contains(name),
            "{cfg}: {:?} should name {name}",
            e.message
        );
    }
}

#[test]
fn tools_and_schemas_match_the_spec() {
    let infos = tools().infos();
    let names: Vec<&str> = infos
        .iter()
        .filter(|t| !t.hidden)
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "screenshot",
            "click",
            "double_click",
            "right_click",
            "move",
            "drag",
            "scroll",
            "mouse_down",
            "mouse_up",
            "type",
            "key",
            "key_down",
            "key_up",
            "hotkey",
            "wait",
            "accessibility_tree"
        ]
    );
    let hidden: Vec<&str> = infos
        .iter()
        .filter(|t| t.hidden)
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(hidden, ["info"]);
    let schema = |n: &str| {
        infos
            .iter()
            .find(|t| t.name == n)
            .unwrap()
            .parameters
            .clone()
    };
    let required = |n: &str| {
        let mut r: Vec<String> = schema(n)["required"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        r.sort();
        r
    };
    assert_eq!(required("click"), ["x", "y"]);
    assert_eq!(required("right_click"), Vec::<String>::new());
    assert_eq!(required("drag"), ["end_x", "end_y", "start_x", "start_y"]);
    assert_eq!(required("scroll"), ["clicks", "x", "y"]);
    assert_eq!(required("type"), ["text"]);
    assert_eq!(required("hotkey"), ["keys"]);
    assert_eq!(required("wait"), ["seconds"]);
    let button = serde_json::to_string(&schema("click")).unwrap();
    for b in ["left", "middle", "right"] {
        assert!(button.contains(&format!("\"{b}\"")), "{button}");
    }
    assert_eq!(schema("wait")["properties"]["seconds"]["minimum"], json!(0));
    assert_eq!(agentflow_vm::VmPlugin::info().name, "vm");
}
