//! The tool catalog as MCP clients see it: `plugin_tool` names, schemas,
//! annotations and pages; and the way back from an MCP name to the plugin.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::Value;

use crate::core::backend::Backend;
use crate::core::catalog::ToolEntry;
use crate::core::Core;

/// Tools per `tools/list` page.
pub const PAGE: usize = 100;

/// The MCP name of a tool: `bash:run` is `bash_run`. Plugin and tool names
/// are `[A-Za-z0-9_-]{1,64}`, so this fits MCP's rule whenever it is at most
/// 64 characters long.
pub fn mcp_name(entry: &ToolEntry) -> String {
    format!("{}_{}", entry.resource_type, entry.action)
}

/// Valid for MCP clients: `^[a-zA-Z0-9_-]{1,64}$`.
fn valid_for_clients(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Every non-hidden tool a client may list, sorted by name. A tool whose name
/// would be too long for MCP is left out (and logged): clients refuse the
/// whole list over one bad name.
pub fn tools(core: &Core) -> Vec<Tool> {
    core.tool_list(false)
        .into_iter()
        .filter_map(|entry| {
            let name = mcp_name(&entry);
            if !valid_for_clients(&name) {
                tracing::warn!(tool = %entry.full_name, "left out of the MCP tool list: '{name}' is longer than MCP's 64 characters");
                return None;
            }
            Some(to_tool(name, entry))
        })
        .collect()
}

fn to_tool(name: String, entry: ToolEntry) -> Tool {
    let schema: JsonObject = match entry.parameters {
        Value::Object(map) => map,
        _ => {
            let mut map = JsonObject::new();
            map.insert("type".into(), Value::String("object".into()));
            map
        }
    };
    let mut tool = Tool::new(name, entry.description, Arc::new(schema));
    if entry.read_only || entry.destructive {
        let mut hints = ToolAnnotations::new();
        if entry.read_only {
            hints = hints.read_only(true);
        }
        if entry.destructive {
            hints = hints.destructive(true);
        }
        tool = tool.with_annotations(hints);
    }
    tool
}

/// One page of `tools`, from the opaque `cursor` a previous page gave.
pub fn page(all: Vec<Tool>, cursor: Option<&str>) -> Result<(Vec<Tool>, Option<String>), String> {
    let start = match cursor {
        None => 0,
        Some(c) => c
            .parse::<usize>()
            .ok()
            .filter(|&i| i <= all.len())
            .ok_or_else(|| format!("cursor '{c}' is not one this server gave"))?,
    };
    let end = (start + PAGE).min(all.len());
    let next = (end < all.len()).then(|| end.to_string());
    Ok((
        all.into_iter().skip(start).take(end - start).collect(),
        next,
    ))
}

/// The backend and action an MCP tool name stands for: `bash_run` is `run`
/// of plugin `bash`. Plugin names may contain `_`, so each split is tried.
pub fn resolve(core: &Core, name: &str) -> Option<(Arc<Backend>, String)> {
    name.match_indices('_').find_map(|(i, _)| {
        let (plugin, tool) = (&name[..i], &name[i + 1..]);
        core.registry
            .backend(plugin)
            .filter(|b| b.has_tool(tool))
            .map(|b| (b, tool.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(n: usize) -> Tool {
        Tool::new(format!("t{n}"), "", Arc::new(JsonObject::new()))
    }

    #[test]
    fn pages_follow_the_cursor_to_the_end() {
        let all: Vec<Tool> = (0..PAGE + 5).map(tool).collect();
        let (first, next) = page(all.clone(), None).unwrap();
        assert_eq!(first.len(), PAGE);
        let (second, last) = page(all, next.as_deref()).unwrap();
        assert_eq!(second.len(), 5);
        assert_eq!(second[0].name, format!("t{PAGE}"));
        assert!(last.is_none());
    }

    #[test]
    fn a_foreign_cursor_is_refused_naming_it() {
        let e = page(vec![tool(0)], Some("x")).unwrap_err();
        assert!(e.contains("'x'"), "{e}");
        assert!(page(vec![tool(0)], Some("7")).is_err());
    }

    #[test]
    fn names_longer_than_mcp_allows_are_invalid() {
        assert!(valid_for_clients("bash_run"));
        assert!(!valid_for_clients(&"a".repeat(65)));
        assert!(!valid_for_clients("a:b"));
    }
}
