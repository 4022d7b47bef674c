//! The `context` string AgentFlow agents and result formatters already read.

use crate::engine::Hit;

/// Hits in rank order, each `"[<title>]\n<text>"` (just the text when
/// untitled), joined by `"\n---\n"`.
pub fn format_context(hits: &[Hit]) -> String {
    hits.iter()
        .map(|hit| {
            if hit.title.is_empty() {
                hit.content.clone()
            } else {
                format!("[{}]\n{}", hit.title, hit.content)
            }
        })
        .collect::<Vec<_>>()
        .join("\n---\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(title: &str, content: &str) -> Hit {
        Hit {
            id: "x".into(),
            title: title.into(),
            content: content.into(),
            score: 1.0,
        }
    }

    #[test]
    fn titled_and_untitled_hits() {
        let context = format_context(&[hit("Paris", "Capital."), hit("", "Plain.")]);
        assert_eq!(context, "[Paris]\nCapital.\n---\nPlain.");
        assert_eq!(format_context(&[]), "");
    }
}
