//! `${VAR}` and `${VAR:-default}` expansion inside config strings.

use serde_json::Value;

/// Expands variables in one string; `key` names it in errors.
pub(super) fn expand_env(s: &str, key: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("key '{key}': unterminated '${{' in \"{s}\""))?;
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        match (std::env::var(name).ok().filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "key '{key}': environment variable {name} is not set (use ${{{name}:-default}} for a default)"
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Converts TOML to JSON, expanding every string on the way.
pub(super) fn expand_value(v: toml::Value, key: &str) -> Result<Value, String> {
    let child = |k: &str| {
        if key.is_empty() {
            k.to_string()
        } else {
            format!("{key}.{k}")
        }
    };
    Ok(match v {
        toml::Value::String(s) => Value::String(expand_env(&s, key)?),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => Value::from(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(
            a.into_iter()
                .enumerate()
                .map(|(i, v)| expand_value(v, &format!("{key}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(t) => Value::Object(
            t.into_iter()
                .map(|(k, v)| {
                    let path = child(&k);
                    expand_value(v, &path).map(|v| (k, v))
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}
