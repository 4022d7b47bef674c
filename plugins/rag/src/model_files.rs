//! Reading a model directory: `config.json` (which must describe a BERT
//! encoder) and the weights, from `model.safetensors` or PyTorch's
//! `pytorch_model.bin`, with or without the `bert.` prefix on tensor names
//! (sentence-transformers exports drop it; checkpoints saved from a
//! `Bert*For*` head model keep it).

use std::path::Path;

use candle_core::Device;
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, DTYPE};

use crate::encoder_spec::Pooling;
use crate::error::{RagError, RagResult};

/// Weight files, in the order they are looked for.
pub const WEIGHT_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

/// The `model_type`s candle's `BertModel` computes correctly. Others load
/// (or half-load) and give wrong vectors: RoBERTa and XLM-RoBERTa offset
/// their position ids, DistilBERT names its layers differently.
const BERT_FAMILY: [&str; 1] = ["bert"];

/// What `config.json` says.
pub struct ModelConfig {
    /// The architecture's sizes.
    pub bert: Config,
    /// `_name_or_path`: the hub name the files were saved from, if recorded.
    pub name_or_path: Option<String>,
}

/// Reads and checks `dir/config.json`.
pub fn read_config(dir: &Path) -> RagResult<ModelConfig> {
    let fail = |e: &dyn std::fmt::Display| unloadable(dir, "config.json", e);
    let text = std::fs::read_to_string(dir.join("config.json")).map_err(|e| fail(&e))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| fail(&e))?;
    // Configs written before `model_type` existed are BERT's.
    if let Some(model_type) = value.get("model_type").and_then(|t| t.as_str()) {
        if !BERT_FAMILY.contains(&model_type) {
            return Err(RagError::ModelUnavailable(format!(
                "model at '{}': config.json has model_type '{model_type}', which this server cannot run; \
                 it runs BERT encoders (model_type 'bert', as e5, bge and MiniLM models are) only",
                dir.display()
            )));
        }
    }
    let name_or_path = value
        .get("_name_or_path")
        .and_then(|n| n.as_str())
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let bert: Config = serde_json::from_value(value).map_err(|e| fail(&e))?;
    Ok(ModelConfig { bert, name_or_path })
}

/// The weights of `dir`, rooted where the `embeddings` and `encoder`
/// tensors are, and the file they came from.
pub fn read_weights(dir: &Path) -> RagResult<(VarBuilder<'static>, &'static str)> {
    let Some(file) = WEIGHT_FILES.into_iter().find(|f| dir.join(f).is_file()) else {
        return Err(unloadable(
            dir,
            "the weights",
            &"neither model.safetensors nor pytorch_model.bin is there",
        ));
    };
    let path = dir.join(file);
    let fail = |e: &dyn std::fmt::Display| unloadable(dir, file, e);
    let vb = if file == "model.safetensors" {
        let bytes = std::fs::read(&path).map_err(|e| fail(&e))?;
        VarBuilder::from_buffered_safetensors(bytes, DTYPE, &Device::Cpu).map_err(|e| fail(&e))?
    } else {
        // Only the zip format torch.save has written since PyTorch 1.6.
        VarBuilder::from_pth(&path, DTYPE, &Device::Cpu).map_err(|e| fail(&e))?
    };
    const PROBE: &str = "embeddings.word_embeddings.weight";
    if vb.contains_tensor(&format!("bert.{PROBE}")) {
        Ok((vb.pp("bert"), file))
    } else if vb.contains_tensor(PROBE) {
        Ok((vb, file))
    } else {
        Err(fail(&format!(
            "it has no tensor '{PROBE}' (nor 'bert.{PROBE}'): not the weights of a BERT encoder"
        )))
    }
}

/// The pooling a sentence-transformers export declares in
/// `1_Pooling/config.json`, if it has one and it is mean or CLS.
pub fn declared_pooling(dir: &Path) -> Option<Pooling> {
    let text = std::fs::read_to_string(dir.join("1_Pooling").join("config.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    let on = |key: &str| value.get(key).and_then(|v| v.as_bool()) == Some(true);
    match (on("pooling_mode_mean_tokens"), on("pooling_mode_cls_token")) {
        (true, false) => Some(Pooling::Mean),
        (false, true) => Some(Pooling::Cls),
        _ => None,
    }
}

fn unloadable(dir: &Path, what: &str, e: &dyn std::fmt::Display) -> RagError {
    RagError::ModelUnavailable(format!(
        "model at '{}': cannot load {what}: {e}",
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_declared_by_sentence_transformers_is_read() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(declared_pooling(dir.path()), None);
        std::fs::create_dir(dir.path().join("1_Pooling")).unwrap();
        let write = |mean: bool, cls: bool| {
            let config = serde_json::json!({"word_embedding_dimension": 384,
                "pooling_mode_mean_tokens": mean, "pooling_mode_cls_token": cls});
            std::fs::write(dir.path().join("1_Pooling/config.json"), config.to_string()).unwrap();
        };
        write(false, true);
        assert_eq!(declared_pooling(dir.path()), Some(Pooling::Cls));
        write(true, false);
        assert_eq!(declared_pooling(dir.path()), Some(Pooling::Mean));
        write(true, true);
        assert_eq!(declared_pooling(dir.path()), None);
    }

    #[test]
    fn other_architectures_are_refused_naming_model_type() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"model_type": "distilbert", "dim": 768}"#,
        )
        .unwrap();
        let e = read_config(dir.path()).err().unwrap().to_string();
        assert!(e.contains("model_type 'distilbert'"), "{e}");
    }
}
