//! The command line as a user meets it: exit codes and messages for bad input, help text, and a
//! short real training run that writes its metrics and a loadable checkpoint.

use std::path::Path;
use std::process::Command;

fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_padnet-wgpu"));
    c.env_remove("PADNET_ADAPTER");
    c
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = cli().args(args).output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_adapter_exits_2_and_lists_adapters() {
    let (code, _, err) = run(&["--adapter", "no-such-gpu-xyz", "info"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no-such-gpu-xyz") && err.contains("available adapters"),
        "{err}"
    );
}

#[test]
fn unknown_names_list_the_valid_ones() {
    let (code, _, err) = run(&[
        "train",
        "--model",
        "resnet-9000",
        "--out",
        "/tmp/padnet-cli-never",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("resnet-9000") && err.contains("simple-cnn"),
        "{err}"
    );
    let (code, _, err) = run(&[
        "train",
        "--optimizer",
        "lion",
        "--out",
        "/tmp/padnet-cli-never",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("lion") && err.contains("adamw"), "{err}");
    assert!(
        !Path::new("/tmp/padnet-cli-never").exists(),
        "nothing is written for bad arguments"
    );
}

#[test]
fn corrupt_and_missing_data_name_the_file() {
    let dir = std::env::temp_dir().join(format!("padnet-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let subset = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist-subset");
    for f in std::fs::read_dir(&subset).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
    }
    let images = dir.join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&images).unwrap();
    std::fs::write(&images, &bytes[..bytes.len() / 2]).unwrap();
    let out = dir.join("run");
    let (code, _, err) = run(&[
        "train",
        "--data-dir",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("train-images-idx3-ubyte.gz") && err.contains("corrupt"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let (code, _, err) = run(&[
        "train",
        "--data-dir",
        "/nonexistent/fmnist",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("/nonexistent/fmnist/train-images-idx3-ubyte") && err.contains("not found"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn help_has_examples() {
    let (code, out, _) = run(&["train", "--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Examples") && out.contains("--batch-size") && out.contains("--data-dir"),
        "{out}"
    );
}

#[test]
fn short_training_run_writes_metrics_and_checkpoint() {
    let out = std::env::temp_dir().join(format!("padnet-cli-run-{}", std::process::id()));
    let subset = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist-subset");
    let (code, stdout, err) = run(&[
        "train",
        "--data-dir",
        subset.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--limit-train",
        "320",
        "--limit-test",
        "200",
        "--eval-batch-size",
        "64",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    assert!(
        stdout.contains("epoch 1/1") && stdout.contains("test accuracy"),
        "{stdout}"
    );
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert_eq!(line["epoch"], 1);
    let acc = line["test_acc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    let (tensors, meta) = padnet_wgpu::checkpoint::load(&out.join("model.safetensors")).unwrap();
    assert_eq!(tensors["conv1.weight"].0, vec![32, 1, 3, 3]);
    assert_eq!(tensors["bn1.running_var"].0, vec![32]);
    assert_eq!(tensors["fc2.weight"].0, vec![10, 128]);
    assert!(
        !tensors.keys().any(|k| k.starts_with('_')),
        "bookkeeping state leaked: {:?}",
        tensors.keys()
    );
    assert_eq!(meta["model"], "simple-cnn");
    assert_eq!(meta["epoch"], "1");
    assert!(out.join("optimizer.safetensors").exists() && out.join("config.json").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.contains("tmp").then_some(n)
        })
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    std::fs::remove_dir_all(&out).ok();
}
