//! Tool name resolution: `resource:action`, the forms LLMs tend to emit
//! (`vm.screenshot`, `vm_screenshot`, `vm-key_down`) and unique simple names.

use super::error::CoreError;

/// Resolves `action` to a registered full tool name.
///
/// Without a `:`, the separators `.`, `_`, `-` are tried in that order, split at
/// their first occurrence, and `prefix:rest` is accepted when registered. Then
/// the exact full name; a prefixed name that is not registered is not found;
/// otherwise a unique simple (action-only) name.
pub fn resolve<'a>(
    action: &str,
    full_names: impl Iterator<Item = &'a str> + Clone,
) -> Result<String, CoreError> {
    let exists = |name: &str| full_names.clone().any(|n| n == name);
    if !action.contains(':') {
        for sep in ['.', '_', '-'] {
            if let Some((prefix, rest)) = action.split_once(sep) {
                let candidate = format!("{prefix}:{rest}");
                if exists(&candidate) {
                    return Ok(candidate);
                }
            }
        }
    }
    if exists(action) {
        return Ok(action.to_string());
    }
    if action.contains(':') {
        return Err(CoreError::ToolNotFound(action.to_string()));
    }
    let matches: Vec<String> = full_names
        .filter(|n| n.split_once(':').map(|(_, a)| a) == Some(action))
        .map(str::to_string)
        .collect();
    match matches.len() {
        0 => Err(CoreError::ToolNotFound(action.to_string())),
        1 => Ok(matches.into_iter().next().unwrap_or_default()),
        _ => Err(CoreError::AmbiguousTool {
            name: action.to_string(),
            candidates: matches,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOOLS: &[&str] = &[
        "vm:screenshot",
        "vm:key_down",
        "rag:search",
        "bash:run",
        "a:stats",
        "b:stats",
    ];

    fn r(action: &str) -> Result<String, CoreError> {
        resolve(action, TOOLS.iter().copied())
    }

    #[test]
    fn forms_llms_emit_resolve() {
        assert_eq!(r("vm:screenshot").unwrap(), "vm:screenshot");
        assert_eq!(r("vm.screenshot").unwrap(), "vm:screenshot");
        assert_eq!(r("vm_screenshot").unwrap(), "vm:screenshot");
        assert_eq!(r("vm-screenshot").unwrap(), "vm:screenshot");
        assert_eq!(r("vm-key_down").unwrap(), "vm:key_down");
        assert_eq!(r("rag_search").unwrap(), "rag:search");
        assert_eq!(r("key_down").unwrap(), "vm:key_down");
        assert_eq!(r("run").unwrap(), "bash:run");
    }

    #[test]
    fn unknown_and_ambiguous_names_fail() {
        assert!(matches!(r("vm:nope"), Err(CoreError::ToolNotFound(_))));
        assert!(matches!(r("nope"), Err(CoreError::ToolNotFound(_))));
        match r("stats") {
            Err(CoreError::AmbiguousTool { candidates, .. }) => {
                assert_eq!(candidates, vec!["a:stats", "b:stats"])
            }
            other => panic!("{other:?}"),
        }
    }
}
