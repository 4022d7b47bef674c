//! The plugin the README shows (README.md, "Writing a plugin"), kept here so
//! that `cargo test` builds it: if the API changes, this stops compiling.

use plugin_api::{
    export_plugin, log, CallContext, Plugin, PluginError, PluginInfo, SessionModel, Tools,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, JsonSchema)]
struct GreetParams {
    /// Who to greet.
    name: String,
}

struct Greeter {
    punctuation: String,
}

struct GreeterSession {
    greeting: String,
}

impl Plugin for Greeter {
    type Session = GreeterSession;

    fn info() -> PluginInfo {
        PluginInfo::new(
            "greet",
            env!("CARGO_PKG_VERSION"),
            "Greets people",
            SessionModel::PerWorker,
        )
    }

    fn tools() -> Tools<Self> {
        Tools::new()
            .tool("hello", "Greet someone", |p: &Greeter, cx: &CallContext<'_, GreeterSession>, a: GreetParams| {
                cx.check()?; // stop when the host cancels or the deadline passed
                log::debug!("greeting {}", a.name); // reaches the host's log with the request id
                Ok(json!({ "text": format!("{} {}{}", cx.session()?.greeting, a.name, p.punctuation) }))
            })
            .read_only()
    }

    fn warmup(config: &Value) -> Result<Self, PluginError> {
        let punctuation = config
            .get("punctuation")
            .and_then(Value::as_str)
            .unwrap_or("!")
            .to_string();
        Ok(Greeter { punctuation })
    }

    fn initialize(&self, _session_id: &str, config: &Value) -> Result<GreeterSession, PluginError> {
        let greeting = config
            .get("greeting")
            .and_then(Value::as_str)
            .unwrap_or("Hello")
            .to_string();
        Ok(GreeterSession { greeting })
    }
}

export_plugin!(Greeter);

fn main() {}
