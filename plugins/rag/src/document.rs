//! A document as the engine stores it, and the rules shared by the corpus
//! reader and the `index` tool: where the text is, what the id is.

use serde_json::{Map, Value};

/// One passage: an id unique in the index, an optional title and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Unique key; indexing a document with an existing id replaces it.
    pub id: String,
    /// Title, empty when the passage has none.
    pub title: String,
    /// The passage text (never empty).
    pub text: String,
}

impl Document {
    /// Builds a document; a missing id is derived from the content, so
    /// indexing the same passage twice keeps one copy.
    pub fn new(id: Option<String>, title: String, text: String) -> Self {
        let id = id.unwrap_or_else(|| generated_id(&title, &text));
        Self { id, title, text }
    }

    /// What the embedding model reads: the title (when there is one) then the text.
    pub fn embedding_text(&self) -> String {
        if self.title.is_empty() {
            self.text.clone()
        } else {
            format!("{}\n{}", self.title, self.text)
        }
    }
}

/// `auto-` followed by the 64-bit FNV-1a hash of title and text: stable across
/// runs and platforms (std's hasher makes no such promise).
pub fn generated_id(title: &str, text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in title.bytes().chain([0u8]).chain(text.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("auto-{hash:016x}")
}

/// Reads an id given as a string or an integer; other JSON types are rejected.
pub fn id_from_json(value: &Value) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Err("id is an empty string".into()),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        other => Err(format!("id must be a string or an integer, got {other}")),
    }
}

/// Turns one JSON object of a corpus (`{id?, contents|content|text, title?}`)
/// into a document, or says why it cannot.
pub fn document_from_object(object: &Map<String, Value>) -> Result<Document, String> {
    let id = id_from_json(object.get("id").unwrap_or(&Value::Null))?;
    let title = match object.get("title") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(other) => return Err(format!("title must be a string, got {other}")),
    };
    let text = ["contents", "content", "text"]
        .iter()
        .find_map(|key| object.get(*key).and_then(Value::as_str))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or("no text: expected a non-empty string in 'contents', 'content' or 'text'")?;
    let (title, text) = if title.is_empty() {
        split_quoted_title(text)
    } else {
        (title, text.to_string())
    };
    Ok(Document::new(id, title, text))
}

/// FlashRAG/DPR-style corpora put the title on the first line of `contents`
/// in double quotes (`"Paris"\nParis is ...`); split it off so results and
/// `context` show it as a title.
fn split_quoted_title(contents: &str) -> (String, String) {
    if let Some((first, rest)) = contents.split_once('\n') {
        let first = first.trim();
        let rest = rest.trim();
        if first.len() >= 2 && first.starts_with('"') && first.ends_with('"') && !rest.is_empty() {
            return (
                first[1..first.len() - 1].trim().to_string(),
                rest.to_string(),
            );
        }
    }
    (String::new(), contents.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn reads_contents_text_and_numeric_ids() {
        let d = document_from_object(&obj(json!({"id": 7, "contents": " hello "}))).unwrap();
        assert_eq!(
            (d.id.as_str(), d.title.as_str(), d.text.as_str()),
            ("7", "", "hello")
        );
        let d = document_from_object(&obj(json!({"id": "a", "title": "T", "text": "x"}))).unwrap();
        assert_eq!(
            (d.id.as_str(), d.title.as_str(), d.text.as_str()),
            ("a", "T", "x")
        );
    }

    #[test]
    fn splits_flashrag_quoted_title() {
        let d = document_from_object(&obj(
            json!({"id": "1", "contents": "\"Paris\"\nParis is a city."}),
        ))
        .unwrap();
        assert_eq!(d.title, "Paris");
        assert_eq!(d.text, "Paris is a city.");
    }

    #[test]
    fn rejects_missing_text_and_bad_ids() {
        assert!(document_from_object(&obj(json!({"id": "1", "contents": "  "}))).is_err());
        assert!(document_from_object(&obj(json!({"id": [1], "text": "x"}))).is_err());
    }

    #[test]
    fn generated_ids_are_stable_and_content_based() {
        assert_eq!(generated_id("t", "x"), generated_id("t", "x"));
        assert_ne!(generated_id("t", "x"), generated_id("", "tx"));
        assert!(generated_id("", "x").starts_with("auto-"));
    }
}
