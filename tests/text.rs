//! The language path on the real pretrained all-MiniLM-L6-v2 (fetched by
//! scripts/fetch-minilm.sh, which the README's test command runs): our tokenization equals
//! Hugging Face's, and the encoder's last hidden state on real sentences equals transformers'
//! `BertModel` (float64) to ≤ 1e-4 (fixture by tests/golden/make_minilm_fixture.py), and
//! fine-tuning fits a batch. Also TSV tasks, metrics, length bucketing, and the errors for
//! broken tokenizer, config and TSV files.

mod common;
use common::{gpu, rel_err, FWD_TOL};
use padnet_wgpu::checkpoint;
use padnet_wgpu::data::tokenize::TextTokenizer;
use padnet_wgpu::data::tsv::{load_task, TsvColumns};
use padnet_wgpu::executor::{Executable, ParamStore};
use padnet_wgpu::graph::Graph;
use padnet_wgpu::models::bert::{self, BertConfig, BertInputs};
use padnet_wgpu::nn::Builder;
use padnet_wgpu::rng::Rng;
use padnet_wgpu::text::{epoch_batches, f1_and_mcc, StaticInit, TextSession, TextTrainConfig};
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
    let (feed, len) = tok.pad(&refs, 1);
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

#[test]
fn macro_f1_and_mcc_match_scikit_learn() {
    // Reference values from sklearn.metrics f1_score(average="macro") / matthews_corrcoef.
    let (f1, mcc) = f1_and_mcc(
        &[0, 2, 2, 2, 1, 1, 3, 0, 1, 2],
        &[0, 1, 2, 2, 1, 0, 3, 3, 1, 2],
        4,
    );
    assert!((f1 - 0.6726190476190476).abs() < 1e-12, "{f1}");
    assert!((mcc - 0.597452765454983).abs() < 1e-12, "{mcc}");
    let (f1, mcc) = f1_and_mcc(&[0, 1, 0, 0, 1, 1, 1, 0], &[0, 1, 1, 0, 1, 1, 0, 0], 2);
    assert!(
        (f1 - 0.75).abs() < 1e-12 && (mcc - 0.5).abs() < 1e-12,
        "{f1} {mcc}"
    );
}

#[test]
fn pearson_and_spearman_match_scipy() {
    use padnet_wgpu::text::{pearson, spearman};
    // scipy.stats.pearsonr / spearmanr (ties take their mean rank).
    let x = [0.5, 2.0, 2.0, 3.5, 1.0, 4.0, 2.0, 0.0];
    let y = [1.0, 1.5, 2.5, 3.0, 1.0, 5.0, 2.5, 0.2];
    let (p, r) = (pearson(&x, &y), spearman(&x, &y));
    assert!((p - 0.9377485229826923).abs() < 1e-12, "{p}");
    assert!((r - 0.9753829766914698).abs() < 1e-12, "{r}");
    assert_eq!(pearson(&[1.0, 1.0], &[0.0, 2.0]), 0.0, "constant side");
}

#[test]
fn batches_cover_the_epoch_and_pad_little() {
    let lengths: Vec<usize> = (0..1000).map(|i| 5 + (i * 7919) % 60).collect();
    let mut rng = Rng::new(3);
    let batches = epoch_batches(&lengths, 32, &mut rng);
    assert_eq!(batches.len(), 1000 / 32);
    let mut seen: Vec<usize> = batches.concat();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 31 * 32, "no example twice");
    let padded: usize = batches
        .iter()
        .map(|b| b.iter().map(|&i| lengths[i]).max().unwrap() * b.len())
        .sum();
    let real: usize = batches.iter().flatten().map(|&i| lengths[i]).sum();
    assert!(
        (padded as f64) < 1.15 * real as f64,
        "bucketing pads {padded} tokens for {real}"
    );
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn tsv_tasks_follow_glue_columns_and_name_bad_lines() {
    let dir = std::env::temp_dir().join(format!("padnet-tsv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cols = TsvColumns::default();
    // RTE-style pairs: index, sentence1, sentence2, label.
    write(&dir, "train.tsv", "index\tsentence1\tsentence2\tlabel\n0\tA cat.\tAn animal.\tentailment\n1\tA.\tB.\tnot_entailment\n");
    write(
        &dir,
        "dev.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\tX.\tY.\tnot_entailment\n",
    );
    let (train, dev) = load_task("rte", Some(&dir), &cols).unwrap();
    assert_eq!(train.classes, ["entailment", "not_entailment"]);
    assert_eq!(
        train.texts[0],
        ("A cat.".to_string(), Some("An animal.".to_string()))
    );
    assert_eq!(
        (train.labels.clone(), dev.labels.clone()),
        (vec![0, 1], vec![1])
    );
    // An unknown dev label and a short row are reported with their line.
    write(
        &dir,
        "dev.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\tX.\tY.\tneutral\n",
    );
    let e = load_task("rte", Some(&dir), &cols).unwrap_err().to_string();
    assert!(
        e.contains("dev.tsv") && e.contains("line 2") && e.contains("unknown label 'neutral'"),
        "{e}"
    );
    write(
        &dir,
        "dev.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\tX.\tY.\tentailment\n1\tonly two\n",
    );
    let e = load_task("rte", Some(&dir), &cols).unwrap_err().to_string();
    assert!(
        e.contains("line 3") && e.contains("2 tab-separated columns"),
        "{e}"
    );
    // Generic tsv:DIR with named columns.
    write(
        &dir,
        "train.tsv",
        "id\ttext\ttopic\n1\thello\tgreet\n2\tbye\tleave\n",
    );
    write(&dir, "dev.tsv", "id\ttext\ttopic\n1\thi\tgreet\n");
    let named = TsvColumns {
        text: "text".into(),
        pair: None,
        label: "topic".into(),
    };
    let (train, _) = load_task(&format!("tsv:{}", dir.display()), None, &named).unwrap();
    assert_eq!((train.texts[1].0.as_str(), train.labels[1]), ("bye", 1));
    let e = load_task(&format!("tsv:{}", dir.display()), None, &cols)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no column 'sentence'"), "{e}");
    let e = load_task("nope", Some(&dir), &cols)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown task 'nope'") && e.contains("sst2"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Ten AdamW steps on one batch of real debian-sections examples halve the loss of a
/// pretrained MiniLM classifier (the whole backward through attention, LayerNorm, embeddings,
/// dropout and the new head is in use). The fitting tests use MiniLM's first two layers
/// (`common::minilm_l2`): the depth adds time, not code paths.
#[test]
fn fine_tuning_minilm_fits_a_batch() {
    let dir = common::minilm_l2();
    let (train, _) = load_task("debian-sections", None, &TsvColumns::default()).unwrap();
    let tok = TextTokenizer::load(&dir.join("tokenizer.json"), 32).unwrap();
    let cfg = TextTrainConfig {
        batch_size: 8,
        eval_batch_size: 8,
        ..Default::default()
    };
    let bert = BertConfig::load(&dir.join("config.json")).unwrap();
    let filler = tok.encode("", None).unwrap();
    let mut s = TextSession::new(gpu(), bert, train.classes.len(), &cfg, filler).unwrap();
    let fresh = s.load_pretrained(&dir.join("model.safetensors")).unwrap();
    assert_eq!(fresh, ["classifier.bias", "classifier.weight"]);
    let enc: Vec<_> = train.texts[..8]
        .iter()
        .map(|(a, _)| tok.encode(a, None).unwrap())
        .collect();
    let refs: Vec<_> = enc.iter().collect();
    let labels = &train.targets[..8];
    let mut losses = vec![];
    for _ in 0..10 {
        padnet_wgpu::trainer::reset_train_metrics(&s.store).unwrap();
        s.step(&tok, &refs, labels, 1e-3).unwrap();
        losses.push(s.train_metrics().unwrap().0);
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[9] < 0.5 * losses[0], "loss did not fall: {losses:?}");
    let logits = s.logits(&tok, &enc).unwrap();
    assert_eq!(logits.len(), 8 * train.classes.len());
}

/// STS-B, the regression task: GLUE's columns (sentence pair, real-valued score), a bad score
/// named by its line, and a MiniLM regression head whose MSE falls over ten AdamW steps on
/// one batch of pairs; dev scores are Pearson and Spearman, not accuracy.
#[test]
fn stsb_regression_reads_scores_and_fits_a_batch() {
    let data = std::env::temp_dir().join(format!("padnet-stsb-{}", std::process::id()));
    std::fs::create_dir_all(&data).unwrap();
    let header =
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n";
    let pairs = [
        ("A man is playing a guitar.", "A man plays the guitar.", 4.8),
        ("A cat sleeps.", "The stock market fell.", 0.0),
        ("Two dogs run in a park.", "Dogs are running outside.", 3.8),
        (
            "A woman slices onions.",
            "Someone is cutting an onion.",
            4.2,
        ),
        ("The sky is blue.", "A child eats rice.", 0.2),
        ("A boy rides a bike.", "A boy is riding a bicycle.", 5.0),
        ("Rain falls on the city.", "It is raining in town.", 4.0),
        ("He reads a book.", "The car is red.", 0.4),
    ];
    let rows: String = pairs
        .iter()
        .enumerate()
        .map(|(i, (a, b, y))| format!("{i}\tmain\tf\t2012\t{i}\tnone\tnone\t{a}\t{b}\t{y}\n"))
        .collect();
    write(&data, "train.tsv", &format!("{header}{rows}"));
    write(&data, "dev.tsv", &format!("{header}{rows}"));
    let (train, dev) = load_task("stsb", Some(&data), &TsvColumns::default()).unwrap();
    assert!(train.is_regression() && dev.is_regression());
    assert_eq!(train.targets[5], 5.0);
    assert_eq!(train.texts[1].1.as_deref(), Some("The stock market fell."));
    write(
        &data,
        "dev.tsv",
        &format!("{header}0\tmain\tf\t2012\t0\tnone\tnone\ta\tb\tsimilar\n"),
    );
    let e = load_task("stsb", Some(&data), &TsvColumns::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2") && e.contains("not a number"), "{e}");
    std::fs::remove_dir_all(&data).ok();

    let dir = common::minilm_l2();
    let tok = TextTokenizer::load(&dir.join("tokenizer.json"), 32).unwrap();
    let cfg = TextTrainConfig {
        task: "stsb".into(),
        batch_size: 8,
        eval_batch_size: 8,
        ..Default::default()
    };
    let bert = BertConfig::load(&dir.join("config.json")).unwrap();
    let filler = tok.encode("", None).unwrap();
    let mut s = TextSession::new(gpu(), bert, 0, &cfg, filler).unwrap();
    assert!(s.regression && s.classes == 1);
    s.load_pretrained(&dir.join("model.safetensors")).unwrap();
    let enc: Vec<_> = train
        .texts
        .iter()
        .map(|(a, b)| tok.encode(a, b.as_deref()).unwrap())
        .collect();
    let refs: Vec<_> = enc.iter().collect();
    let mut losses = vec![];
    for _ in 0..10 {
        padnet_wgpu::trainer::reset_train_metrics(&s.store).unwrap();
        s.step(&tok, &refs, &train.targets, 3e-4).unwrap();
        losses.push(s.train_metrics().unwrap().0);
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[9] < 0.5 * losses[0], "MSE did not fall: {losses:?}");
    let out = s.logits(&tok, &enc).unwrap();
    let (mse, scores) = padnet_wgpu::text::dev_scores(&out, &train);
    assert_eq!(out.len(), 8);
    assert!(mse.is_finite() && scores.accuracy.is_none(), "{scores:?}");
    assert!(scores.pearson.unwrap() > 0.5, "{scores:?}");
    // An evaluation session gives the same outputs from the same weights and cannot train.
    let bert = BertConfig::load(&dir.join("config.json")).unwrap();
    let filler = tok.encode("", None).unwrap();
    let mut e = TextSession::for_eval(gpu(), bert, 0, &cfg, filler, None, false).unwrap();
    let weights = padnet_wgpu::checkpoint::from_store(&s.store).unwrap();
    padnet_wgpu::checkpoint::into_store(&e.store, &weights, Path::new("memory")).unwrap();
    assert_eq!(e.logits(&tok, &enc).unwrap(), out);
    let err = e
        .step(&tok, &refs, &train.targets, 1e-4)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not train"), "{err}");
}

/// MoE mode: the experts of every FFN output projection start as copies of the pretrained
/// dense layer (upcycling) with zero routers, the checkpoint names them per expert, and AdamW
/// steps on one batch halve the loss (router, grouped expert GEMMs and balance penalty in the
/// backward pass).
#[test]
fn moe_fine_tuning_upcycles_and_fits_a_batch() {
    let dir = common::minilm_l2();
    let (train, _) = load_task("debian-sections", None, &TsvColumns::default()).unwrap();
    let tok = TextTokenizer::load(&dir.join("tokenizer.json"), 32).unwrap();
    let cfg = TextTrainConfig {
        mode: padnet_wgpu::text::TextMode::Moe,
        batch_size: 8,
        eval_batch_size: 8,
        ..Default::default()
    };
    let bert = BertConfig::load(&dir.join("config.json")).unwrap();
    let filler = tok.encode("", None).unwrap();
    let mut s = TextSession::new(gpu(), bert, train.classes.len(), &cfg, filler).unwrap();
    let weights = dir.join("model.safetensors");
    let fresh = s.load_pretrained(&weights).unwrap();
    assert_eq!(fresh.len(), 2 + 2 * 2, "classifier + 2 routers: {fresh:?}");
    let (pretrained, _) = checkpoint::load(&weights).unwrap();
    let dense = &pretrained["encoder.layer.1.output.dense.weight"].1;
    let experts = s
        .store
        .read("encoder.layer.1.output.dense.experts.weight")
        .unwrap();
    assert_eq!(experts.len(), 8 * dense.len());
    assert!(experts.chunks(dense.len()).all(|e| e == &dense[..]));
    let enc: Vec<_> = train.texts[..8]
        .iter()
        .map(|(a, _)| tok.encode(a, None).unwrap())
        .collect();
    let refs: Vec<_> = enc.iter().collect();
    let mut losses = vec![];
    for _ in 0..10 {
        padnet_wgpu::trainer::reset_train_metrics(&s.store).unwrap();
        s.step(&tok, &refs, &train.targets[..8], 1e-3).unwrap();
        losses.push(s.train_metrics().unwrap().0);
    }
    assert!(losses[9] < 0.5 * losses[0], "loss did not fall: {losses:?}");
    // Per-expert names in checkpoints, and back.
    let saved = checkpoint::from_store(&s.store).unwrap();
    assert!(saved.contains_key("encoder.layer.1.output.dense.experts.7.weight"));
    assert!(!saved.contains_key("encoder.layer.1.output.dense.experts.weight"));
    let before = s
        .store
        .read("encoder.layer.1.output.dense.experts.bias")
        .unwrap();
    checkpoint::into_store(&s.store, &saved, Path::new("roundtrip")).unwrap();
    let after = s
        .store
        .read("encoder.layer.1.output.dense.experts.bias")
        .unwrap();
    assert_eq!(before, after);
}

/// PAD-MoE on MiniLM (docs/method.md §1.4, §2): the static weight starts from the pretrained
/// FFN weight when asked (and IMP then refuses: every score is 0), IMP keeps exactly
/// round(κ·N) positions dynamic globally and per layer, the deploy count is (1−κ)N + EκN per
/// layer, and checkpoints carry `…output.dense.{weight,mask,phi_d}`.
#[test]
fn pad_moe_imp_partitions_exactly() {
    const LAYERS: usize = common::MINILM_L2_LAYERS;
    use padnet_wgpu::imp::{ImpOptions, Scope};
    let dir = common::minilm_l2();
    let (train, _) = load_task("debian-sections", None, &TsvColumns::default()).unwrap();
    let tok = TextTokenizer::load(&dir.join("tokenizer.json"), 24).unwrap();
    let bert = BertConfig::load(&dir.join("config.json")).unwrap();
    let weights = dir.join("model.safetensors");
    let enc: Vec<_> = train.texts[..16]
        .iter()
        .map(|(a, _)| tok.encode(a, None).unwrap())
        .collect();
    let refs: Vec<_> = enc.iter().collect();
    let labels = &train.targets[..16];
    let session = |static_init: StaticInit| {
        let cfg = TextTrainConfig {
            mode: padnet_wgpu::text::TextMode::Pad,
            experts: 4,
            static_init,
            batch_size: 8,
            eval_batch_size: 8,
            ..Default::default()
        };
        let filler = tok.encode("", None).unwrap();
        let s = TextSession::new(gpu(), bert.clone(), train.classes.len(), &cfg, filler).unwrap();
        s.load_pretrained(&weights).unwrap();
        s
    };
    let layer = "encoder.layer.1.output.dense";
    let (pretrained, _) = checkpoint::load(&weights).unwrap();
    let dense = &pretrained[&format!("{layer}.weight")].1;

    let mut s = session(StaticInit::Pretrained);
    assert_eq!(&s.store.read(&format!("{layer}.weight")).unwrap(), dense);
    let cfg = ImpOptions::default().config(0.3, 0).unwrap();
    let err = s.imp(&tok, &refs, labels, &cfg, 0).unwrap_err().to_string();
    assert!(err.contains("every snip score is 0"), "{err}");

    let mut s = session(StaticInit::Independent);
    assert_ne!(&s.store.read(&format!("{layer}.weight")).unwrap(), dense);
    let n = dense.len();
    for (scope, kappa) in [(Scope::Local, 0.5), (Scope::Global, 0.3)] {
        let opts = ImpOptions {
            scope,
            ..Default::default()
        };
        let cfg = opts.config(kappa, 0).unwrap();
        let rep = s.imp(&tok, &refs, labels, &cfg, 0).unwrap();
        assert_eq!(rep.layers.len(), LAYERS);
        let want = (kappa * n as f64).round() as usize;
        if scope == Scope::Local {
            assert!(rep.layers.iter().all(|l| l.dynamic == want), "{rep:?}");
        } else {
            assert_eq!(
                rep.layers.iter().map(|l| l.dynamic).sum::<usize>(),
                (kappa * (LAYERS * n) as f64).round() as usize
            );
        }
        let mask = s.store.read(&format!("{layer}.mask")).unwrap();
        let dynamic = mask.iter().filter(|&&m| m == 1.0).count();
        assert_eq!(
            dynamic + mask.iter().filter(|&&m| m == 0.0).count(),
            n,
            "binary mask"
        );
        assert_eq!(
            rep.dynamic_params + rep.static_params,
            rep.layers
                .iter()
                .map(|l| (l.positions - l.dynamic) + 4 * l.dynamic)
                .sum::<usize>()
        );
    }
    // Three monotone rounds (the shared IMP driver) from all-dynamic masks: exact κ_r every
    // round, nothing revived.
    for l in 0..LAYERS {
        let mask = format!("encoder.layer.{l}.output.dense.mask");
        s.store.write(&mask, &vec![1.0; n]).unwrap();
    }
    let opts = ImpOptions {
        rounds: 3,
        monotone: true,
        ..Default::default()
    };
    let rep = s
        .imp(&tok, &refs, labels, &opts.config(0.2, 0).unwrap(), 0)
        .unwrap();
    assert_eq!(rep.rounds.len(), 3);
    assert!(
        rep.rounds
            .iter()
            .all(|r| r.dynamic == r.expected && r.revived == 0),
        "{:?}",
        rep.rounds
    );
    assert_eq!(
        rep.layers.iter().map(|l| l.dynamic).sum::<usize>(),
        (0.2 * (LAYERS * n) as f64).round() as usize
    );
    let saved = checkpoint::from_store(&s.store).unwrap();
    for leaf in ["weight", "mask", "phi_d", "experts.3.weight", "w_gate"] {
        assert!(saved.contains_key(&format!("{layer}.{leaf}")), "{leaf}");
    }

    // The variance scorer, as for DY-Conv: Var over tokens of Σ_e g_te W_e. Upcycled experts
    // are identical, so every score is 0 (one clear error); once the experts of layer 1
    // differ at the first half of their positions only, and a router spreads the tokens,
    // local IMP at κ = 0.5 keeps exactly those positions dynamic in that layer.
    let mut s = session(StaticInit::Independent);
    let opts = ImpOptions {
        scorer: padnet_wgpu::imp::Scorer::Variance,
        scope: Scope::Local,
        ..Default::default()
    };
    let cfg = opts.config(0.5, 0).unwrap();
    let err = s.imp(&tok, &refs, labels, &cfg, 0).unwrap_err().to_string();
    assert!(err.contains("every variance score is 0"), "{err}");
    let mut rng = Rng::new(7);
    let experts_name = format!("{layer}.experts.weight");
    let mut experts = s.store.read(&experts_name).unwrap();
    for e in 0..4 {
        for j in 0..n / 2 {
            experts[e * n + j] += 0.1 * rng.normal();
        }
    }
    s.store.write(&experts_name, &experts).unwrap();
    let gate_name = format!("{layer}.w_gate");
    let gate: Vec<f32> = (0..s.store.read(&gate_name).unwrap().len())
        .map(|_| rng.normal())
        .collect();
    s.store.write(&gate_name, &gate).unwrap();
    s.imp(&tok, &refs, labels, &cfg, 0).unwrap();
    let mask = s.store.read(&format!("{layer}.mask")).unwrap();
    let (first, second) = mask.split_at(n / 2);
    assert!(
        first.iter().all(|&m| m == 1.0),
        "perturbed positions stay dynamic"
    );
    assert!(
        second.iter().all(|&m| m == 0.0),
        "identical experts become static"
    );
}
