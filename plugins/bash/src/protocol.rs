//! What the plugin and the shell say to each other.
//!
//! The shell runs `bash --noprofile --norc -s` with these descriptors:
//!
//! | fd | what | why |
//! |----|------|-----|
//! | 0 | script pipe (plugin → shell) | bash reads a script from stdin one byte at a time, so it runs each line as it arrives and never reads ahead |
//! | 1, 2 | stdout, stderr pipes | the command's output |
//! | 3 | status pipe (shell → plugin) | one status record after each command |
//!
//! For each command the plugin writes one line of script (see [`command_line`]):
//! the command runs through `eval` in the shell itself, so `cd`, variables and
//! functions persist; then the shell writes `<seq>\0<return code>\0<cwd>\0` to
//! fd 3. Output needs no framing: it has pipes of its own, and everything a
//! command wrote is in them before its status is written.
//!
//! Reading the script from stdin (rather than from a named file) keeps bash's
//! error messages as users know them (`bash: foo: command not found`); the
//! command itself gets `/dev/null` as stdin, so it cannot read the script.

/// The signal that interrupts a command running inside the shell itself (a
/// builtin loop): its trap breaks out of every loop, including the one-pass
/// loop around the command, so the shell reports a status and keeps its state.
pub const INTERRUPT_SIGNAL: libc::c_int = libc::SIGUSR1;

/// The shell's `argv`: no startup files, script from stdin.
pub const SHELL_ARGS: [&str; 4] = ["bash", "--noprofile", "--norc", "-s"];

/// The first lines of script. Job control (`set -m`) gives each pipeline its
/// own process group, which is what a timeout kills; the trap implements
/// [`INTERRUPT_SIGNAL`]. The status with sequence number 0 says "ready".
pub const BOOTSTRAP: &str = concat!(
    "set -m\n",
    "trap '[[ -n ${__af_running-} ]] && { __af_rc=130; break 1000; }' USR1\n",
    "builtin printf '%s\\0%s\\0%s\\0' 0 0 \"$PWD\" >&3\n",
);

/// The line of script that runs `command` and reports status `seq`.
///
/// * `builtin eval '<command>'`: the command, single-quoted (a `'` inside becomes `'\''`),
///   runs in the shell itself; `builtin` so a user function named `eval` cannot interfere.
/// * `</dev/null 3>&-`: the command and everything it starts read EOF instead
///   of the script, and cannot write status records (bash restores both
///   descriptors afterwards, whatever the command did with them).
/// * the one-pass `for` loop is what the interrupt trap's `break` leaves; a
///   stray `break` in the command merely ends the command.
/// * `__af_running` tells the trap whether a command is running.
pub fn command_line(seq: u64, command: &str) -> String {
    format!(
        "__af_running=1 __af_rc=130; for __af_once in 1; do builtin eval {} </dev/null 3>&-; __af_rc=$?; done; \
         __af_running=; builtin printf '%s\\0%s\\0%s\\0' {seq} \"$__af_rc\" \"$PWD\" >&3\n",
        single_quote(command)
    )
}

/// `text` as one single-quoted word of bash.
pub fn single_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// One status record: a command finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The sequence number of the command it belongs to.
    pub seq: u64,
    /// The command's return code (`$?`).
    pub return_code: i32,
    /// The shell's working directory afterwards.
    pub cwd: String,
}

/// Reassembles status records from the bytes of the status pipe.
#[derive(Debug, Default)]
pub struct StatusReader {
    pending: Vec<u8>,
}

impl StatusReader {
    /// Adds bytes read from the status pipe.
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The next complete record, if any. Malformed records (only possible if a
    /// command wrote to the shell's own status descriptor) are skipped.
    pub fn next_status(&mut self) -> Option<Status> {
        loop {
            let fields: Vec<usize> = self
                .pending
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == 0)
                .map(|(i, _)| i)
                .take(3)
                .collect();
            let [end_seq, end_code, end_cwd] = fields[..] else {
                return None;
            };
            let record: Vec<u8> = self.pending.drain(..=end_cwd).collect();
            let text =
                |from: usize, to: usize| String::from_utf8_lossy(&record[from..to]).into_owned();
            let seq = text(0, end_seq).parse();
            let code = text(end_seq + 1, end_code).parse();
            if let (Ok(seq), Ok(return_code)) = (seq, code) {
                return Some(Status {
                    seq,
                    return_code,
                    cwd: text(end_code + 1, end_cwd),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_quoted_for_eval() {
        let line = command_line(7, "echo 'a b'");
        assert!(
            line.contains(r"builtin eval 'echo '\''a b'\''' </dev/null 3>&-"),
            "{line}"
        );
        assert!(line.ends_with("printf '%s\\0%s\\0%s\\0' 7 \"$__af_rc\" \"$PWD\" >&3\n"));
        assert_eq!(line.matches('\n').count(), 1);
    }

    #[test]
    fn status_records_are_reassembled_from_pieces() {
        let mut reader = StatusReader::default();
        reader.push(b"3\x000\x00/tmp/a b");
        assert_eq!(reader.next_status(), None);
        reader.push(b"\x004\x00127\x00/\x00");
        assert_eq!(
            reader.next_status(),
            Some(Status {
                seq: 3,
                return_code: 0,
                cwd: "/tmp/a b".into()
            })
        );
        assert_eq!(
            reader.next_status().map(|s| (s.seq, s.return_code)),
            Some((4, 127))
        );
        assert_eq!(reader.next_status(), None);
    }

    #[test]
    fn malformed_records_are_skipped() {
        let mut reader = StatusReader::default();
        reader.push(b"x\x00y\x00z\x005\x001\x00/\x00");
        assert_eq!(reader.next_status().map(|s| s.seq), Some(5));
    }
}
