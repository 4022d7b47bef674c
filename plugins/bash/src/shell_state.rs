//! A shell's state as a script of builtins, for snapshots: captured by
//! running builtins in the session's shell (what they print is the script),
//! restored by running that script in a new session's shell.
//!
//! Carried: the working directory; variables, exported or not, with their
//! attributes (arrays, integers, read-only, ...); functions (and which are
//! exported); aliases; the umask; shell options (`shopt`, `set -o`). Not
//! carried: what bash sets itself or keeps read-only ([`SKIPPED`]: `BASH*`,
//! `PPID`, `RANDOM`, ...), traps (the plugin's protocol owns `USR1`), the
//! directory stack, jobs and history. The files move to a new session
//! directory, so paths under the old one are rewritten to the new one.
//!
//! Neither script forks: a fork costs milliseconds in a sandbox, and a
//! snapshot must not find helpers of its own running. The order of the
//! restore script matters: the working directory first
//! (`cd` sets `OLDPWD`, restored after), then the fresh shell's variables
//! are dropped and the captured ones declared, then aliases and the umask,
//! then functions (none exists before, so none can shadow a builtin the
//! script runs), then shell options last (`set -e` or `set -u` apply from
//! there on, to nothing of the script).

use std::collections::BTreeMap;
use std::path::Path;

use crate::protocol::single_quote;

/// Variables never captured, nor dropped from the new shell: bash's own
/// (read-only, dynamic, or describing this very shell), `PWD` (the `cd`
/// sets it), and the plugin's protocol variables. `case` patterns.
const SKIPPED: &[&str] = &[
    "BASH*",
    "COLUMNS",
    "COMP_WORDBREAKS",
    "DIRSTACK",
    "EPOCHREALTIME",
    "EPOCHSECONDS",
    "EUID",
    "FUNCNAME",
    "GROUPS",
    "HISTCMD",
    "HOSTNAME",
    "HOSTTYPE",
    "LINENO",
    "LINES",
    "MACHTYPE",
    "OPTERR",
    "OPTIND",
    "OSTYPE",
    "PIPESTATUS",
    "PPID",
    "PWD",
    "RANDOM",
    "SECONDS",
    "SHELLOPTS",
    "SHLVL",
    "SRANDOM",
    "UID",
    "_",
    "__af_*",
];

/// `shopt` options that cannot be set (`shopt -p` lists them all the same).
const READ_ONLY_SHOPT: [&str; 2] = [" login_shell", " restricted_shell"];

/// The line the capture prints between the definitions (variables,
/// aliases, functions: multi-line) and the options (one per line).
const OPTIONS_MARK: &str = "#agentflow-shell-options";

/// A captured shell state.
#[derive(Debug, Clone)]
pub struct ShellState {
    /// Builtins that recreate the state, but for the working directory.
    script: String,
    /// The working directory.
    cwd: String,
    /// The session directory it was captured in.
    dir: String,
}

/// What a restored session's config changes after the state is restored.
#[derive(Debug, Default)]
pub struct Then<'a> {
    /// Variables to export.
    pub env: BTreeMap<&'a str, &'a str>,
    /// A directory to change to.
    pub cwd: Option<&'a Path>,
}

/// A loop over the names of every variable but the [`SKIPPED`] ones,
/// running `body` with the name in `$__af_v`. The names come from
/// `${!a@}`-style expansions (one per letter a name can start with), so
/// the shell forks nothing (each fork costs milliseconds in a sandbox).
fn for_each_variable(body: &str) -> String {
    let names: Vec<String> = ('a'..='z')
        .chain('A'..='Z')
        .chain(['_'])
        .map(|c| format!("\"${{!{c}@}}\""))
        .collect();
    format!(
        "for __af_v in {}; do case $__af_v in {}) ;; *) {body};; esac; done; \
         builtin unset -v __af_v",
        names.join(" "),
        SKIPPED.join("|")
    )
}

impl ShellState {
    /// The command that prints the state of the shell it runs in (changing
    /// nothing of it: its loop variable is unset at the end).
    pub fn capture_command() -> String {
        [
            for_each_variable("builtin declare -p -- \"$__af_v\" 2>/dev/null || :"),
            "builtin alias -p".to_string(),
            // Definitions, then `declare -fx name` for exported ones.
            "builtin declare -f".to_string(),
            format!("builtin printf '%s\\n' '{OPTIONS_MARK}'"),
            "builtin umask -p".to_string(),
            "builtin shopt -p".to_string(),
            "builtin set +o".to_string(),
        ]
        .join("\n")
    }

    /// The state from what the capture command printed in a shell whose
    /// working directory was `cwd`, in session directory `dir`.
    pub fn new(printed: &str, cwd: String, dir: &Path) -> Result<Self, String> {
        // The last mark: a function's here-document may hold the same line.
        let at = printed
            .rmatch_indices(OPTIONS_MARK)
            .map(|(at, _)| at)
            .find(|&at| {
                (at == 0 || printed[..at].ends_with('\n'))
                    && printed[at + OPTIONS_MARK.len()..].starts_with('\n')
            })
            .ok_or("the shell printed no options (its state was cut short)")?;
        let definitions = &printed[..at];
        let options = printed[at + OPTIONS_MARK.len()..]
            .lines()
            .filter(|line| !line.is_empty())
            .filter(|line| !READ_ONLY_SHOPT.iter().any(|name| line.ends_with(name)))
            .map(|line| format!("builtin {line}\n"));
        let mut script = definitions.to_string();
        script.extend(options);
        Ok(Self {
            script,
            cwd,
            dir: dir.to_string_lossy().into_owned(),
        })
    }

    /// Bytes of the captured script.
    pub fn len(&self) -> usize {
        self.script.len()
    }

    /// The command that recreates the state in a fresh shell of the session
    /// directory `dir`, then applies `then`.
    pub fn restore_command(&self, dir: &Path, then: &Then<'_>) -> String {
        let dir = dir.to_string_lossy();
        let moved = |text: &str| move_paths(text, &self.dir, &dir);
        let mut lines = vec![
            // A directory outside the files (the session's /tmp) is gone.
            format!(
                "builtin cd -- {} || builtin cd -- {}",
                single_quote(&moved(&self.cwd)),
                single_quote(&dir)
            ),
            for_each_variable("builtin unset -v -- \"$__af_v\" 2>/dev/null"),
            moved(&self.script),
        ];
        // `|| :`: a failure must not end a shell that restored `set -e`.
        for (name, value) in &then.env {
            lines.push(format!(
                "builtin export -- {} || :",
                single_quote(&format!("{name}={value}"))
            ));
        }
        if let Some(cwd) = then.cwd {
            lines.push(format!(
                "builtin cd -- {} || :",
                single_quote(&cwd.to_string_lossy())
            ));
        }
        lines.join("\n")
    }
}

/// `text` with every path under (or at) directory `from` moved under `to`:
/// occurrences of `from` that are whole path prefixes (not part of a longer
/// name or path: `/ws/1-s1` in `/ws/1-s10` or `/x/ws/1-s1` stays).
pub fn move_paths(text: &str, from: &str, to: &str) -> String {
    if from.is_empty() || from == to {
        return text.to_string();
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut before: Option<char> = None;
    while let Some(at) = rest.find(from) {
        let prev = rest[..at].chars().next_back().or(before);
        let next = rest[at + from.len()..].chars().next();
        let whole = !prev.is_some_and(|c| name_char(c) || c == '/') && !next.is_some_and(name_char);
        out.push_str(&rest[..at]);
        out.push_str(if whole { to } else { from });
        before = from.chars().next_back();
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_paths_move() {
        let from = "/ws/1-s1";
        let to = "/ws/1-s2";
        assert_eq!(move_paths("/ws/1-s1", from, to), "/ws/1-s2");
        assert_eq!(
            move_paths("declare -x HOME=\"/ws/1-s1\"", from, to),
            "declare -x HOME=\"/ws/1-s2\""
        );
        assert_eq!(
            move_paths("PATH=/ws/1-s1/bin:/usr/bin:/ws/1-s1", from, to),
            "PATH=/ws/1-s2/bin:/usr/bin:/ws/1-s2"
        );
        assert_eq!(move_paths("/ws/1-s10/x", from, to), "/ws/1-s10/x");
        assert_eq!(move_paths("/ws/1-s1-1/x", from, to), "/ws/1-s1-1/x");
        assert_eq!(move_paths("/x/ws/1-s1/y", from, to), "/x/ws/1-s1/y");
        assert_eq!(move_paths("a/ws/1-s1", from, to), "a/ws/1-s1");
        assert_eq!(
            move_paths("/ws/1-s1/ws/1-s1", from, to),
            "/ws/1-s2/ws/1-s1",
            "a second occurrence right after the first is part of its path"
        );
    }

    #[test]
    fn the_restore_script_moves_paths_and_ends_with_the_configs_changes() {
        let state = ShellState::new(
            &format!(
                "declare -x A=\"/ws/1-s1/a\"\nf () \n{{ \n    cat <<EOF\n{OPTIONS_MARK}\nEOF\n}}\n\
                 {OPTIONS_MARK}\numask 0022\nshopt -u login_shell\nshopt -s extglob\nset -o pipefail\n"
            ),
            "/ws/1-s1/sub".into(),
            Path::new("/ws/1-s1"),
        )
        .unwrap();
        let then = Then {
            env: BTreeMap::from([("SEED", "it's 7")]),
            cwd: Some(Path::new("/ws/1-s2/other")),
        };
        let script = state.restore_command(Path::new("/ws/1-s2"), &then);
        assert!(
            script.starts_with("builtin cd -- '/ws/1-s2/sub' || builtin cd -- '/ws/1-s2'\n"),
            "{script}"
        );
        assert!(script.contains("declare -x A=\"/ws/1-s2/a\""), "{script}");
        assert!(
            script.contains(&format!(
                "    cat <<EOF\n{OPTIONS_MARK}\nEOF\n}}\nbuiltin umask 0022\n\
                 builtin shopt -s extglob\nbuiltin set -o pipefail\n"
            )),
            "options after the last mark, read-only ones left out: {script}"
        );
        assert!(!script.contains("1-s1"), "{script}");
        assert!(
            script.ends_with(
                "builtin export -- 'SEED=it'\\''s 7' || :\nbuiltin cd -- '/ws/1-s2/other' || :"
            ),
            "{script}"
        );
    }

    #[test]
    fn capture_skips_bash_internals() {
        let command = ShellState::capture_command();
        for name in [
            "BASH*",
            "PPID",
            "EUID",
            "SHELLOPTS",
            "PIPESTATUS",
            "RANDOM",
            "__af_*",
        ] {
            assert!(command.contains(name), "{name}");
        }
        assert!(ShellState::new("declare -- A=1\n", String::new(), Path::new("/")).is_err());
    }
}
