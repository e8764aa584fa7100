//! The language path on the real pretrained all-MiniLM-L6-v2 (fetched by
//! scripts/fetch-minilm.sh, which the README's test command runs): our tokenization equals
//! Hugging Face's, and the encoder's last hidden state on real sentences equals transformers'
//! `BertModel` (float64) to ≤ 1e-4 (fixture by tests/golden/make_minilm_fixture.py). Also the
//! errors for broken tokenizer and config files.

mod common;
use common::{gpu, rel_err, FWD_TOL};
use padnet_wgpu::checkpoint;
use padnet_wgpu::data::tokenize::TextTokenizer;
use padnet_wgpu::graph::compile::{Executable, ParamStore};
use padnet_wgpu::graph::Graph;
use padnet_wgpu::models::bert::{self, BertConfig, BertInputs};
use padnet_wgpu::nn::Builder;
use std::path::{Path, PathBuf};

fn minilm_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} lacks the pretrained MiniLM: run scripts/fetch-minilm.sh",
        dir.display()
    );
    dir
}

fn fixture() -> (checkpoint::Tensors, Vec<String>, (String, String)) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm_sentences.safetensors");
    let (fx, meta) = checkpoint::load(&path).unwrap();
    let single: Vec<String> = serde_json::from_str(&meta["single"]).unwrap();
    let pair: (String, String) = serde_json::from_str(&meta["pair"]).unwrap();
    (fx, single, pair)
}

fn u32s(v: &[f32]) -> Vec<u32> {
    v.iter().map(|&x| x as u32).collect()
}

#[test]
fn tokenization_matches_hugging_face() {
    let (fx, single, pair) = fixture();
    let tok = TextTokenizer::load(&minilm_dir().join("tokenizer.json"), 128).unwrap();
    assert_eq!(tok.vocab_size(), 30522);
    let mut enc: Vec<_> = single
        .iter()
        .map(|s| tok.encode(s, None).unwrap())
        .collect();
    enc.push(tok.encode(&pair.0, Some(&pair.1)).unwrap());
    let refs: Vec<_> = enc.iter().collect();
    let (feed, len) = tok.pad(&refs);
    assert_eq!(len, fx["input_ids"].0[1]);
    assert_eq!(feed.input_ids, u32s(&fx["input_ids"].1));
    assert_eq!(feed.token_type_ids, u32s(&fx["token_type_ids"].1));
    let mask: Vec<u32> = feed.mask_bias.iter().map(|&b| (b == 0.0) as u32).collect();
    assert_eq!(mask, u32s(&fx["attention_mask"].1));
    assert!(enc.iter().all(|e| !e.truncated));
}

#[test]
fn truncation_cuts_the_longer_text_first_and_reports_it() {
    let tok = TextTokenizer::load(&minilm_dir().join("tokenizer.json"), 8).unwrap();
    let long = "one two three four five six seven eight nine ten";
    let e = tok.encode(long, None).unwrap();
    assert_eq!(e.ids.len(), 8);
    assert!(e.truncated);
    assert_eq!((e.ids[0], e.ids[7]), (101, 102), "[CLS] … [SEP] kept");
    let p = tok.encode(long, Some("yes")).unwrap();
    assert_eq!(p.ids.len(), 8);
    assert_eq!(
        p.type_ids.iter().filter(|&&t| t == 1).count(),
        2,
        "'yes [SEP]' kept whole"
    );
    assert!(!tok.encode("short", None).unwrap().truncated);
}

#[test]
fn minilm_hidden_states_match_transformers() {
    let (fx, _, _) = fixture();
    let dir = minilm_dir();
    let cfg = BertConfig::load(&dir.join("config.json")).unwrap();
    let (batch, len) = (fx["input_ids"].0[0], fx["input_ids"].0[1]);
    let mut g = Graph::new();
    let mut b = Builder::new(&mut g, false);
    let inputs = BertInputs::new(&mut b, batch, len);
    let (hidden, _) = bert::build(&mut b, &cfg, &inputs).unwrap();
    g.mark_output(hidden);
    let gpu = gpu();
    let store = ParamStore::new(gpu.clone(), &g, 0).unwrap();
    let weights = dir.join("model.safetensors");
    let (tensors, _) = checkpoint::load(&weights).unwrap();
    checkpoint::into_store(&store, &tensors, &weights).unwrap();
    let exe = Executable::compile(gpu, g, &store).unwrap();
    let feed = bert::BertFeed::new(
        u32s(&fx["input_ids"].1),
        u32s(&fx["token_type_ids"].1),
        &u32s(&fx["attention_mask"].1),
        len,
    );
    feed.write(&inputs, &exe).unwrap();
    exe.run().unwrap();
    let got: Vec<f64> = exe
        .read(hidden, &store)
        .unwrap()
        .iter()
        .map(|&v| v as f64)
        .collect();
    let want: Vec<f64> = fx["last_hidden_state"]
        .1
        .iter()
        .map(|&v| v as f64)
        .collect();
    let e = rel_err(&got, &want);
    assert!(
        e <= FWD_TOL,
        "MiniLM last hidden state: relative error {e:.2e}"
    );
}

#[test]
fn broken_tokenizer_and_config_files_are_named() {
    let dir = std::env::temp_dir().join(format!("padnet-text-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("nope.json");
    let e = TextTokenizer::load(&missing, 128)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("nope.json") && e.contains("not found"), "{e}");
    let corrupt = dir.join("tokenizer.json");
    std::fs::write(&corrupt, "{\"model\": 3").unwrap();
    let e = TextTokenizer::load(&corrupt, 128)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("tokenizer.json") && e.contains("not a valid"),
        "{e}"
    );
    let config = dir.join("config.json");
    std::fs::write(&config, r#"{"vocab_size": 10, "hidden_size": 10}"#).unwrap();
    let e = BertConfig::load(&config).err().unwrap().to_string();
    assert!(
        e.contains("config.json") && e.contains("num_hidden_layers"),
        "{e}"
    );
    std::fs::write(
        &config,
        r#"{"vocab_size": 10, "hidden_size": 10, "num_hidden_layers": 1, "num_attention_heads": 3,
            "intermediate_size": 8, "max_position_embeddings": 8}"#,
    )
    .unwrap();
    let e = BertConfig::load(&config).err().unwrap().to_string();
    assert!(e.contains("multiple of num_attention_heads"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
