//! `run`: state, results, output handling and odd commands.

mod common;

use common::*;
use plugin_api::ErrorKind;
use serde_json::json;

#[test]
fn cd_variables_and_functions_persist_between_calls() {
    let h = Harness::new();
    let s = h.session("persist", json!({}));
    h.run(&s, "mkdir -p work && cd work && export GREETING=hello && NAME=world && greet() { echo \"$GREETING $1\"; }");
    let result = h.run(&s, "greet \"$NAME\"; pwd");
    let dir = h.call(&s, "info", json!({})).unwrap()["session_dir"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(result["stdout"], format!("hello world\n{dir}/work\n"));
    assert_eq!(result["cwd"], format!("{dir}/work"));
    assert_eq!(result["return_code"], 0);
    assert_eq!(result["shell_restarted"], false);
}

#[test]
fn non_zero_exit_is_a_result_with_its_code() {
    let h = Harness::new();
    let s = h.session("codes", json!({}));
    let result = h.run(&s, "echo out; echo err >&2; (exit 42)");
    assert_eq!(result["return_code"], 42);
    assert_eq!(result["stdout"], "out\n");
    assert_eq!(result["stderr"], "err\n");
    assert_eq!(result["timed_out"], false);
    assert_eq!(h.run(&s, "no-such-command-here")["return_code"], 127);
    // A syntax error is the command's problem, not the shell's.
    let result = h.run(&s, "if then fi");
    assert_eq!(result["return_code"], 2);
    assert_eq!(h.run(&s, "echo still here")["stdout"], "still here\n");
}

#[test]
fn commands_with_quotes_newlines_and_heredocs_run_verbatim() {
    let h = Harness::new();
    let s = h.session("quotes", json!({}));
    let command = "printf '%s\\n' \"it's\" 'say \"hi\"' '$HOME' \\\\\ncat <<'EOF'\nline 'one'\n$NOT_EXPANDED\nEOF";
    let result = h.run(&s, command);
    assert_eq!(
        result["stdout"],
        "it's\nsay \"hi\"\n$HOME\n\\\nline 'one'\n$NOT_EXPANDED\n"
    );
}

#[test]
fn a_command_larger_than_a_pipe_buffer_is_delivered_whole() {
    let h = Harness::new();
    let s = h.session("large", json!({}));
    let payload = "x".repeat(300_000);
    let result = h.run(&s, &format!("v='{payload}'; echo ${{#v}}"));
    assert_eq!(result["stdout"], "300000\n");
}

#[test]
fn session_config_sets_cwd_and_env() {
    let h = Harness::new();
    let s = h.session(
        "config",
        json!({"cwd": "project/src", "env": {"GREETING": "bonjour", "LANG": "C"}}),
    );
    let result = h.run(&s, "pwd; echo $GREETING $LANG; [ \"$HOME\" = \"$(cd ../.. && pwd)\" ] && echo home-is-session-dir");
    let stdout = result["stdout"].as_str().unwrap();
    assert!(
        stdout.starts_with('/') && stdout.lines().next().unwrap().ends_with("/project/src"),
        "{stdout}"
    );
    assert!(stdout.contains("bonjour C\n"), "{stdout}");
    assert!(stdout.contains("home-is-session-dir"), "{stdout}");
    // The host's environment (which may hold secrets) is not inherited.
    let exported = h.run(&s, "compgen -e | tr '\\n' ' '");
    assert_eq!(
        exported["stdout"],
        "GREETING HOME LANG PATH PWD SHELL SHLVL TERM "
    );
}

#[test]
fn cwd_dot_is_the_session_directory() {
    let h = Harness::new();
    let s = h.session("dot", json!({"cwd": "."}));
    let dir = h.call(&s, "info", json!({})).unwrap()["session_dir"].clone();
    assert_eq!(h.run(&s, "true")["cwd"], dir);
}

#[test]
fn session_config_errors_name_the_field() {
    let h = Harness::new();
    let err = h
        .plugin_initialize("bad-cwd", json!({"cwd": "../outside"}))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidParams);
    assert!(
        err.message.contains("cwd") && err.message.contains("../outside"),
        "{}",
        err.message
    );
    let err = h
        .plugin_initialize("bad-env", json!({"env": {"PORT": 8080}}))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidParams);
    assert!(err.message.contains("env.PORT"), "{}", err.message);
}

#[test]
fn commands_read_eof_from_stdin_not_the_protocol() {
    let h = Harness::new();
    let s = h.session("stdin", json!({}));
    let result = h.run(
        &s,
        "cat; read line; echo \"read=$? cat-done\"; head -c 10 | wc -c",
    );
    assert_eq!(result["stdout"], "read=1 cat-done\n0\n");
    assert_eq!(h.run(&s, "echo next")["stdout"], "next\n");
}

#[test]
fn invalid_utf8_and_binary_output_are_replaced_lossily() {
    let h = Harness::new();
    let s = h.session("utf8", json!({}));
    let result = h.run(
        &s,
        "printf 'caf\\xc3\\xa9 \\xff\\xfe end\\n'; printf '\\x00\\x01' >&2",
    );
    assert_eq!(result["stdout"], "café \u{fffd}\u{fffd} end\n");
    assert_eq!(result["stderr"], "\u{0}\u{1}");
    assert_eq!(result["truncated"], false);
}

#[test]
fn huge_output_is_capped_and_the_rest_drained() {
    let h = Harness::new();
    let s = h.session("huge", json!({}));
    // 100 MB through `yes | head`: also checks `yes` dies of SIGPIPE quietly
    // (the shell must not inherit the host's ignored SIGPIPE).
    let result = h.run(
        &s,
        "yes | head -c 100000000; head -c 3000000 /dev/zero >&2; echo done-$? >&2",
    );
    assert_eq!(result["truncated"], true);
    assert_eq!(result["return_code"], 0);
    let stdout = result["stdout"].as_str().unwrap();
    assert_eq!(stdout.len(), 1024 * 1024);
    assert!(stdout.starts_with("y\ny\n"));
    let stderr = result["stderr"].as_str().unwrap();
    assert_eq!(stderr.len(), 1024 * 1024, "stderr is capped on its own");
    assert!(!stderr.contains("Broken pipe"));
    // The shell is fine afterwards.
    let result = h.run(&s, "echo small");
    assert_eq!(result["stdout"], "small\n");
    assert_eq!(result["truncated"], false);
}

#[test]
fn output_limit_is_configurable() {
    let h = Harness::with_config(json!({"output_limit_bytes": 10}));
    let s = h.session("limit", json!({}));
    let result = h.run(&s, "echo 0123456789abcdef");
    assert_eq!(result["stdout"], "0123456789");
    assert_eq!(result["truncated"], true);
}

#[test]
fn exit_ends_the_shell_and_a_fresh_one_takes_over() {
    let h = Harness::new();
    let s = h.session("exit", json!({"cwd": "start"}));
    h.run(&s, "export LOST=yes; cd /");
    let result = h.run(&s, "echo bye; exit 3");
    assert_eq!(result["return_code"], 3);
    assert_eq!(result["stdout"], "bye\n");
    assert_eq!(result["shell_restarted"], true);
    assert!(
        result["cwd"].as_str().unwrap().ends_with("/start"),
        "{result}"
    );
    let result = h.run(&s, "echo \"[${LOST-}]\"; pwd");
    assert!(
        result["stdout"].as_str().unwrap().starts_with("[]\n"),
        "{result}"
    );
    assert!(
        result["stdout"].as_str().unwrap().ends_with("/start\n"),
        "{result}"
    );
    assert_eq!(result["shell_restarted"], false);
}

#[test]
fn killing_the_shell_itself_gives_a_result_and_a_working_next_call() {
    for isolation in isolations() {
        let h = Harness::with_config(json!({"sandbox": {"isolation": isolation}}));
        let s = h.session("kill9", json!({}));
        match h.call(&s, "run", json!({"command": "kill -9 $$; echo after"})) {
            // In a sandbox the shell is PID 1 and the kernel ignores the signal.
            Ok(result) if isolation == "bubblewrap" => assert_eq!(result["stdout"], "after\n"),
            Ok(result) => {
                assert_eq!(result["return_code"], 137, "{result}");
                assert_eq!(result["shell_restarted"], true);
            }
            Err(e) => assert_eq!(e.kind, ErrorKind::SessionBroken, "{e:?}"),
        }
        assert_eq!(h.run(&s, "echo alive")["stdout"], "alive\n", "{isolation}");
    }
}

#[test]
fn a_stray_break_or_return_only_ends_the_command() {
    let h = Harness::new();
    let s = h.session("break", json!({}));
    let result = h.run(&s, "X=1; break; echo not-reached");
    assert_eq!(result["stdout"], "");
    let result = h.run(&s, "return 2>/dev/null; echo \"X=$X\"");
    assert_eq!(result["stdout"], "X=1\n");
}

#[test]
fn calls_on_one_session_take_turns() {
    let h = Harness::new();
    let s = h.session("turns", json!({}));
    h.run(&s, "n=0");
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let result = h.run(&s, "n=$((n+1)); sleep 0.1; echo $n");
                assert_eq!(result["return_code"], 0);
            });
        }
    });
    assert_eq!(h.run(&s, "echo $n")["stdout"], "4\n");
}

#[test]
fn bad_params_are_refused_by_name() {
    let h = Harness::new();
    let s = h.session("params", json!({}));
    let err = h
        .call(&s, "run", json!({"command": "true", "timeout": -1}))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidParams);
    assert!(err.message.contains("timeout"), "{}", err.message);
    let err = h
        .call(&s, "run", json!({"command": "echo \u{0}"}))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidParams);
    assert!(err.message.contains("command"), "{}", err.message);
}
