//! What the host and a plugin runner say to each other: one JSON object per
//! line on the runner's stdin (requests) and stdout (the greeting, then
//! replies in any order, matched by `id`).

use plugin_api::{ErrorKind, PluginError, PluginInfo, ToolInfo};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Host to runner.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    #[serde(flatten)]
    pub op: Op,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Warmup {
        config: Value,
    },
    Shutdown,
    Initialize {
        session: String,
        config: Value,
    },
    Cleanup {
        session: String,
    },
    Call {
        session: Option<String>,
        worker: String,
        tool: String,
        params: Value,
        /// Milliseconds since the Unix epoch.
        deadline_ms: u64,
        /// Send the chunks the tool emits as `chunk` replies before its result.
        #[serde(default)]
        stream: bool,
    },
    Snapshot {
        session: String,
        snapshot: String,
    },
    Restore {
        session: String,
        snapshot: String,
        config: Value,
    },
    DropSnapshot {
        snapshot: String,
    },
    /// Sets the cancel flag of the call with this request id.
    Cancel {
        call: u64,
    },
}

/// The `stream` of the chunks a warmup sends before its result: each is the
/// latest line the plugin logged while warming up.
pub const PROGRESS: &str = "progress";

/// The runner's first line: the library loaded, or why not.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Greeting {
    Loaded {
        info: PluginInfo,
        tools: Vec<ToolInfo>,
    },
    LoadFailed {
        message: String,
    },
}

/// Runner to host: the answer to request `id`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub id: u64,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The result as JSON text (empty for operations without one).
    Ok(String),
    Err {
        kind: u32,
        message: String,
    },
    /// A chunk of output of a streaming call, sent before its result.
    Chunk {
        stream: String,
        text: String,
    },
    /// A log record the plugin made while serving request `id` (0: on a
    /// thread of its own), for the host to log (plugin-api levels).
    Log {
        level: u8,
        module: String,
        message: String,
    },
}

impl Outcome {
    pub fn from_result(r: Result<String, PluginError>) -> Self {
        match r {
            Ok(text) => Outcome::Ok(text),
            Err(e) => Outcome::Err {
                kind: e.kind.code(),
                message: e.message,
            },
        }
    }

    pub fn into_result(self) -> Result<String, PluginError> {
        match self {
            Outcome::Ok(text) => Ok(text),
            Outcome::Err { kind, message } => {
                Err(PluginError::new(ErrorKind::from_code(kind), message))
            }
            Outcome::Chunk { .. } | Outcome::Log { .. } => Err(PluginError::internal(
                "the plugin process sent a chunk where a result was due",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_and_its_reply_survive_a_round_trip_as_one_line() {
        let req = Request {
            id: 7,
            op: Op::Call {
                session: Some("s".into()),
                worker: "w".into(),
                tool: "echo".into(),
                params: serde_json::json!({"text": "a\nb"}),
                deadline_ms: 1,
                stream: false,
            },
        };
        let line = serde_json::to_string(&req).unwrap();
        assert!(!line.contains('\n'));
        let back: Request = serde_json::from_str(&line).unwrap();
        assert!(matches!(back.op, Op::Call { ref tool, .. } if tool == "echo"));
        let reply = Reply {
            id: 7,
            outcome: Outcome::from_result(Err(PluginError::new(ErrorKind::SessionBroken, "gone"))),
        };
        let back: Reply = serde_json::from_str(&serde_json::to_string(&reply).unwrap()).unwrap();
        let err = back.outcome.into_result().unwrap_err();
        assert_eq!(
            (err.kind, err.message.as_str()),
            (ErrorKind::SessionBroken, "gone")
        );
    }
}
