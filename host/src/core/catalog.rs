//! The tool catalog clients list.

use serde_json::Value;

use super::Core;

/// One tool as listed.
#[derive(Debug, Clone)]
pub struct ToolEntry {
    pub full_name: String,
    pub action: String,
    pub resource_type: String,
    pub description: String,
    pub parameters: Value,
    pub hidden: bool,
    /// True for shared plugins (no session state).
    pub stateless: bool,
    /// The plugin declares the tool changes nothing.
    pub read_only: bool,
    /// The plugin declares the tool may overwrite or delete.
    pub destructive: bool,
}

impl Core {
    /// Every tool of every loaded plugin, sorted by full name.
    pub fn tool_list(&self, include_hidden: bool) -> Vec<ToolEntry> {
        let mut out: Vec<ToolEntry> = self
            .registry
            .backends()
            .iter()
            .flat_map(|b| {
                b.tools().iter().map(move |t| ToolEntry {
                    full_name: format!("{}:{}", b.name, t.name),
                    action: t.name.clone(),
                    resource_type: b.name.clone(),
                    description: t.description.clone(),
                    parameters: t.parameters.clone(),
                    hidden: t.hidden,
                    stateless: !b.per_session(),
                    read_only: t.read_only,
                    destructive: t.destructive,
                })
            })
            .filter(|t| include_hidden || !t.hidden)
            .collect();
        out.sort_by(|a, b| a.full_name.cmp(&b.full_name));
        out
    }
}
