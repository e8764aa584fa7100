#![allow(dead_code)] // each fuzz target uses one of these functions
//! The bodies of the fuzz targets (fuzz/fuzz_targets/*.rs), shared with the corpus replay in
//! `cargo test` (tests/fuzz_corpus.rs): each feeds arbitrary bytes to one loader of
//! padnet-wgpu, which must return (an error is fine) and never panic, abort or allocate
//! without bound. Loaders that read files get the bytes through a file in a per-process
//! scratch directory.

use padnet_wgpu::data::{cifar, folder, idx, tokenize::TextTokenizer, tsv};
use padnet_wgpu::models::bert::BertConfig;
use padnet_wgpu::{checkpoint, export};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A fuzz target's body: arbitrary bytes in, nothing out.
pub type Target = fn(&[u8]);

/// The names of the targets, as fuzz/Cargo.toml and fuzz/seeds/ name them.
pub const TARGETS: [(&str, Target); 6] = [
    ("idx", idx_file),
    ("cifar", cifar_batch),
    ("image", image_file),
    ("tsv", tsv_file),
    ("bert_files", bert_files),
    ("safetensors", safetensors_file),
];

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("padnet-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("scratch directory");
    }
    std::fs::write(&path, data).expect("scratch file");
    path
}

/// IDX files, raw or gzip (Fashion-MNIST).
pub fn idx_file(data: &[u8]) {
    let _ = idx::decode(data, Path::new("fuzz.idx"));
}

/// CIFAR-10 and CIFAR-100 binary batches (the first byte picks which).
pub fn cifar_batch(data: &[u8]) {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let dir = scratch().join("cifar");
    let hundred = pick % 2 == 1;
    file(
        &dir,
        if hundred {
            "test.bin"
        } else {
            "test_batch.bin"
        },
        bytes,
    );
    let _ = cifar::load(&dir, hundred, false);
}

/// An ImageFolder image (PNG, JPEG, anything): decoded for training (random-resized crop,
/// flip) and for evaluation (resize, centre crop).
pub fn image_file(data: &[u8]) {
    let root = scratch().join("folder");
    // Classes are the folders of train/; the image to decode is in val/.
    std::fs::create_dir_all(root.join("train/class")).expect("scratch directory");
    file(&root, "val/class/image.jpg", data);
    let Ok(set) = folder::load(&root, "val", 16, true) else {
        return;
    };
    let files = set.files.as_ref().expect("a folder set has files");
    let mut rng = padnet_wgpu::rng::Rng::new(data.len() as u64);
    let _ = files.decode(0, Some(&mut rng));
    let _ = files.decode(0, None);
}

/// A task's TSV file, as a classification (SST-2) and a regression (STS-B) task.
pub fn tsv_file(data: &[u8]) {
    let path = file(&scratch(), "train.tsv", data);
    for task in ["sst2", "stsb", "mrpc"] {
        let format = tsv::TaskFormat::named(task).expect("a known task");
        let _ = tsv::read(&path, &format, None);
    }
}

/// A model directory's config.json and tokenizer.json (the first byte picks which); a
/// tokenizer that loads encodes a sentence pair.
pub fn bert_files(data: &[u8]) {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    if pick % 2 == 0 {
        let _ = BertConfig::parse(&String::from_utf8_lossy(bytes), Path::new("config.json"));
        return;
    }
    let path = file(&scratch(), "tokenizer.json", bytes);
    if let Ok(tok) = TextTokenizer::load(&path, 16) {
        let _ = tok.encode("a fuzzed sentence", Some("and its pair"));
    }
}

/// A checkpoint or deploy file: read whole and header only, then unpacked as a deploy file
/// of one PAD-Conv (dense and split by filters) and one PAD-MoE layer (folded and split by
/// rows).
pub fn safetensors_file(data: &[u8]) {
    let path = file(&scratch(), "model.safetensors", data);
    let _ = checkpoint::load_metadata(&path);
    let Ok((tensors, _)) = checkpoint::load(&path) else {
        return;
    };
    let conv = BTreeMap::from([("layer1.0.conv1".to_string(), vec![2, 4, 4, 3, 3])]);
    let _ = export::whole_filter_layers(&tensors, &conv);
    // Unpacked for the layer built split (no mask in the graph) and built dense.
    let mut dense = padnet_wgpu::graph::Graph::new();
    dense.state(
        "layer1.0.conv1.kernels_weights_mask",
        &[1, 4, 4, 3, 3],
        padnet_wgpu::graph::Init::Ones,
    );
    for graph in [padnet_wgpu::graph::Graph::new(), dense] {
        let _ = export::unpack(tensors.clone(), &conv, &graph, &path);
    }
    // The PAD-MoE layer folded, and split by whatever whole dynamic rows the file has.
    let moe = BTreeMap::from([("encoder.layer.0.output.dense".to_string(), vec![2, 4, 8])]);
    let rows = export::whole_filter_layers(&tensors, &moe);
    for split in [BTreeMap::new(), rows] {
        let _ = export::unpack_moe(tensors.clone(), &moe, &split, &path);
    }
}
