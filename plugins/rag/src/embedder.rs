//! Sentence embeddings computed in-process: a BERT encoder (candle), then
//! the pooling, normalisation and prefixes of an [`EncoderSpec`] (for
//! all-MiniLM-L6-v2: mean pooling over the attention mask and L2
//! normalisation, as sentence-transformers runs it).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::bert::BertModel;
use tokenizers::{Tokenizer, TruncationParams};

use crate::config::RagConfig;
use crate::encoder_spec::{EncoderSpec, Pooling};
use crate::error::{RagError, RagResult};
use crate::model_files::{read_config, read_weights};

/// Average characters per word piece is ~4-5 in English; text past this many
/// characters per token of budget can never reach the model, so it is cut
/// before tokenizing (a 10 MB document must not be tokenized whole).
const CHARS_PER_TOKEN_BOUND: usize = 16;

/// A loaded embedding model.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    spec: EncoderSpec,
    dims: usize,
    max_tokens: usize,
    dir: PathBuf,
    weights_file: &'static str,
}

impl Embedder {
    /// Loads the model in `dir` (`config.json`, `tokenizer.json` and
    /// `model.safetensors` or `pytorch_model.bin`), encoding as `config`'s
    /// preset and overrides say (the preset inferred from the model's name
    /// when none is set).
    pub fn load(dir: &Path, config: &RagConfig) -> RagResult<Self> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            RagError::ModelUnavailable(format!(
                "model at '{}': cannot load {what}: {e}",
                dir.display()
            ))
        };
        let model_config = read_config(dir)?;
        let bert = &model_config.bert;
        let max_tokens = config.max_tokens.min(bert.max_position_embeddings);

        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| fail("tokenizer.json", &e))?;
        // The shipped tokenizer.json pads every input to 128 tokens and cuts
        // at 128; we pad per batch ourselves and cut at max_tokens.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| fail("tokenizer.json", &e))?;

        let (vb, weights_file) = read_weights(dir)?;
        let model = BertModel::load(vb, bert).map_err(|e| fail(weights_file, &e))?;
        Ok(Self {
            model,
            tokenizer,
            spec: EncoderSpec::resolve(config, dir, model_config.name_or_path.as_deref()),
            dims: bert.hidden_size,
            max_tokens,
            dir: dir.to_path_buf(),
            weights_file,
        })
    }

    /// Pooling, normalisation and prefixes, and why.
    pub fn spec(&self) -> &EncoderSpec {
        &self.spec
    }

    /// The file the weights were read from.
    pub fn weights_file(&self) -> &'static str {
        self.weights_file
    }

    /// Length of every embedding.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Tokens per text the model reads.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Embeds search queries (each with the query prefix), in input order,
    /// `batch_size` at a time; `check` runs before every batch so long work
    /// can be stopped.
    pub fn embed_queries(
        &self,
        texts: &[&str],
        batch_size: usize,
        check: &dyn Fn() -> RagResult<()>,
    ) -> RagResult<Vec<Vec<f32>>> {
        self.embed(texts, &self.spec.query_prefix, batch_size, check)
    }

    /// Embeds passages to index (each with the passage prefix), as
    /// [`Embedder::embed_queries`] does queries.
    pub fn embed_passages(
        &self,
        texts: &[&str],
        batch_size: usize,
        check: &dyn Fn() -> RagResult<()>,
    ) -> RagResult<Vec<Vec<f32>>> {
        self.embed(texts, &self.spec.passage_prefix, batch_size, check)
    }

    fn embed(
        &self,
        texts: &[&str],
        prefix: &str,
        batch_size: usize,
        check: &dyn Fn() -> RagResult<()>,
    ) -> RagResult<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let char_limit = self.max_tokens * CHARS_PER_TOKEN_BOUND;
        let inputs: Vec<String> = texts
            .iter()
            .map(|t| format!("{prefix}{}", prefix_chars(t, char_limit)))
            .collect();
        let encodings = self
            .tokenizer
            .encode_batch_fast(inputs, true)
            .map_err(|e| RagError::Embedding(format!("tokenizer: {e}")))?;
        // Batching texts of similar length wastes little work on padding.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());

        let mut vectors = vec![Vec::new(); texts.len()];
        for group in order.chunks(batch_size.max(1)) {
            check()?;
            let token_ids: Vec<&[u32]> = group.iter().map(|&i| encodings[i].get_ids()).collect();
            let embedded = self.embed_token_batch(&token_ids)?;
            for (&i, vector) in group.iter().zip(embedded) {
                vectors[i] = vector;
            }
        }
        Ok(vectors)
    }

    /// One forward pass over already tokenized texts, padded to the longest.
    fn embed_token_batch(&self, token_ids: &[&[u32]]) -> RagResult<Vec<Vec<f32>>> {
        let rows = token_ids.len();
        let width = token_ids.iter().map(|t| t.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0u32; rows * width];
        let mut mask = vec![0u32; rows * width];
        for (row, tokens) in token_ids.iter().enumerate() {
            ids[row * width..row * width + tokens.len()].copy_from_slice(tokens);
            mask[row * width..row * width + tokens.len()].fill(1);
        }
        let device = &Device::Cpu;
        let ids = Tensor::from_vec(ids, (rows, width), device)?;
        let mask = Tensor::from_vec(mask, (rows, width), device)?;
        let token_types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &token_types, Some(&mask))?;
        let pooled = match self.spec.pooling {
            Pooling::Mean => mean_pool(&hidden, &mask)?,
            // The tokenizer's template puts [CLS] first.
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
        };
        let pooled = if self.spec.normalize {
            l2_normalize(&pooled)?
        } else {
            pooled
        };
        pooled.to_vec2::<f32>().map_err(RagError::from)
    }
}

/// Mean of the token vectors where `mask` is 1.
fn mean_pool(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.maximum(1e-9)?;
    summed.broadcast_div(&counts)
}

/// Each row scaled to unit length, as torch.nn.functional.normalize does
/// (dividing by max(norm, 1e-12)).
fn l2_normalize(rows: &Tensor) -> candle_core::Result<Tensor> {
    let norms = rows.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
    rows.broadcast_div(&norms)
}

/// The first `max_chars` characters of `text`.
fn prefix_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((byte, _)) => &text[..byte],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_respects_char_boundaries() {
        assert_eq!(prefix_chars("héllo", 2), "hé");
        assert_eq!(prefix_chars("hi", 5), "hi");
    }
}
