//! The command line as a user meets it: exit codes and messages for bad input, help text, and a
//! short real training run that writes its metrics and a loadable checkpoint.

use std::path::Path;
use std::process::Command;

mod common;

fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_padnet-wgpu"));
    c.env_remove("PADNET_ADAPTER");
    c
}

fn run(args: &[&str]) -> (i32, String, String) {
    run_with_env(&[], args)
}

fn run_with_env(env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let out = cli()
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("binary runs");
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
    let subset = subset_dir();
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

/// The bundled Fashion-MNIST subset (data/fashion-mnist-subset).
fn subset_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist-subset")
}

/// `train`: the default simple CNN for one epoch of ten steps on the bundled subset (320
/// images; 200 test images), into `out`, with `extra` options.
fn train_simple_cnn(out: &Path, extra: &[&str]) -> (i32, String, String) {
    let subset = subset_dir();
    let args = [
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
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    run(&[&args[..], extra].concat())
}

#[test]
fn f16_training_follows_f32_training() {
    // `train --precision f16` (forward in f16, gradients in f32) on adapters with shader-f16:
    // the run says so in config.json, and ten steps end where the f32 run ends, to within what
    // f16's rounding moves them.
    if !common::has_f16() {
        return;
    }
    let base = std::env::temp_dir().join(format!("padnet-cli-f16-train-{}", std::process::id()));
    let train = |precision: &str| {
        let out = base.join(precision);
        let (code, stdout, err) = train_simple_cnn(&out, &["--precision", precision]);
        assert_eq!(code, 0, "{stdout}\n{err}");
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["precision"], precision);
        let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        let line: serde_json::Value =
            serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
        line["test_loss"].as_f64().unwrap()
    };
    let (full, half) = (train("f32"), train("f16"));
    assert!(
        (half - full).abs() <= 0.02 * full,
        "test loss after 10 steps: f16 {half}, f32 {full}"
    );
    // The precision changes the arithmetic, so a run resumes only in its own.
    let f16_run = base.join("f16");
    let resume = ["--resume", f16_run.to_str().unwrap(), "--epochs", "2"];
    let (code, _, err) = train_simple_cnn(&f16_run, &resume);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(r#"precision: saved "f16", now "f32""#),
        "{err}"
    );
    std::fs::remove_dir_all(&base).ok();
}

#[test]
fn short_training_run_writes_metrics_and_checkpoint() {
    let out = std::env::temp_dir().join(format!("padnet-cli-run-{}", std::process::id()));
    let subset = subset_dir();
    let (code, stdout, err) = train_simple_cnn(&out, &["--eval-batch-size", "64"]);
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
    let curves = std::fs::read(out.join("curves.png")).unwrap();
    assert_eq!(&curves[1..4], b"PNG");
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
    let latest = std::fs::read_to_string(out.join("checkpoints/latest")).unwrap();
    let committed = out.join("checkpoints").join(latest.trim());
    for f in [
        "model.safetensors",
        "optimizer.safetensors",
        "metrics.jsonl",
        "state.json",
    ] {
        assert!(committed.join(f).is_file(), "{f} missing in {committed:?}");
    }
    assert!(out.join("config.json").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .chain(std::fs::read_dir(out.join("checkpoints")).unwrap())
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            (n.contains("tmp") || n.contains("partial")).then_some(n)
        })
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    no_output_replaces_an_input(&out, &subset);
    std::fs::remove_dir_all(&out).ok();
}

/// Every file under `dir` but the lock, by path: what a refused command must leave as it was.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.ends_with(".lock") {
                files.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    files
}

/// The finished run in `out` (simple-cnn on the subset in `data`) survives every attempt to
/// write over it: a second `train`, `export`/`imp`/`eval` outputs naming its files, and a
/// second writer while it is locked; `--overwrite` replaces it.
fn no_output_replaces_an_input(out: &Path, data: &Path) {
    let before = snapshot(out);
    let (o, d) = (out.to_str().unwrap(), data.to_str().unwrap());
    let ckpt = out.join("model.safetensors");
    let c = ckpt.to_str().unwrap();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data-dir",
            d,
            "--epochs",
            "1",
            "--limit-train",
            "64",
            "--limit-test",
            "32",
            "--quiet",
            "--out",
            o,
        ];
        args.extend(extra);
        run(&args)
    };
    let metrics = out.join("metrics.jsonl");
    let refused: [(Vec<&str>, &str); 6] = [
        (vec![], "already holds a run"),
        (
            vec!["export", "--checkpoint", c, "--out", c],
            "is the input",
        ),
        (
            vec!["imp", "--checkpoint", c, "--kappa", "0.5", "--out", c],
            "is the input",
        ),
        (
            vec![
                "eval",
                "--checkpoint",
                c,
                "--data-dir",
                d,
                "--logits-out",
                c,
            ],
            "is the input",
        ),
        (
            vec![
                "eval",
                "--checkpoint",
                c,
                "--logits-out",
                metrics.to_str().unwrap(),
            ],
            "exists; give --force",
        ),
        (
            vec!["train", "--resume", o, "--out", "/tmp/elsewhere"],
            "drop --out",
        ),
    ];
    for (args, message) in refused {
        let (code, _, err) = if args.is_empty() || args[0].starts_with("--") {
            train(&args)
        } else {
            run(&args)
        };
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{args:?}: not one line: {err}"
        );
    }
    // A second writer while the run directory is locked fails at once.
    let lock = std::fs::File::open(out.join(".lock")).unwrap();
    lock.try_lock().unwrap();
    let (code, _, err) = train(&["--resume", o]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("in use by another run (PID"), "{err}");
    drop(lock);
    // Resuming with other options names each one, and needs --force.
    let (code, _, err) = train(&["--resume", o, "--lr", "0.01"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("options differ") && err.contains("lr: saved 0.05, now 0.01"),
        "{err}"
    );
    // A run that diverges stops naming the step and commits nothing over the good checkpoint;
    // --detect-anomaly names the op and tensor where the first NaN/Inf appears.
    let (code, _, err) = run(&[
        "train",
        "--data-dir",
        d,
        "--limit-train",
        "64",
        "--limit-test",
        "32",
        "--quiet",
        "--epochs",
        "2",
        "--lr",
        "3e38",
        "--schedule",
        "constant",
        "--batch-size",
        "16",
        "--resume",
        o,
        "--force",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("training diverged at step"), "{err}");
    let anomaly = out.with_extension("anomaly");
    let a = anomaly.to_str().unwrap();
    let (code, _, err) = run(&[
        "train",
        "--data-dir",
        d,
        "--limit-train",
        "128",
        "--limit-test",
        "32",
        "--quiet",
        "--lr",
        "3e38",
        "--batch-size",
        "32",
        "--detect-anomaly",
        "--out",
        a,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--detect-anomaly: op ") && err.contains("its inputs"),
        "{err}"
    );
    assert!(
        !anomaly.exists(),
        "a run that never committed left its directory"
    );
    let after = snapshot(out);
    let changed: Vec<_> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .collect();
    assert!(changed.is_empty(), "refused commands changed {changed:?}");
    let (code, _, err) = train(&["--overwrite"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn pad_resnet_checkpoint_evaluates_to_the_training_accuracy() {
    let out = std::env::temp_dir().join(format!("padnet-cli-pad-{}", std::process::id()));
    let subset = subset_dir();
    let (code, stdout, err) = run(&[
        "train",
        "--model",
        "resnet10",
        "--mode",
        "pad",
        "--width",
        "0.125",
        "--stem",
        "cifar",
        "--data-dir",
        subset.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--limit-train",
        "64",
        "--limit-test",
        "40",
        // Still annealing at the end, so the checkpoint's temperature is a mid-way one.
        "--temp-epochs",
        "10",
        "--eval-batch-size",
        "16",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    let trained_acc = line["test_acc"].as_f64().unwrap();

    let ckpt = out.join("model.safetensors");
    let (tensors, meta) = padnet_wgpu::checkpoint::load(&ckpt).unwrap();
    for name in [
        "layer1.layers.0.conv1.kernels_weights",
        "layer1.layers.0.conv1.weight",
        "layer1.layers.0.conv1.kernels_weights_mask",
        "layer1.layers.0.conv1.phi_d",
        "layer1.layers.0.conv1.attention.fc1.weight",
        "layer1.layers.0.conv1.attention.fc2.bias",
        "layer2.layers.0.shortcut.layers.0.kernels_weights",
        "layer2.layers.0.shortcut.layers.1.running_mean",
        "linear.weight",
    ] {
        assert!(
            tensors.contains_key(name),
            "checkpoint lacks {name}: {:?}",
            tensors.keys()
        );
    }
    assert_eq!(
        tensors["layer1.layers.0.conv1.kernels_weights"].0,
        vec![4, 8, 8, 3, 3]
    );
    assert_eq!(
        tensors["layer1.layers.0.conv1.weight"].0,
        vec![1, 8, 8, 3, 3]
    );
    assert_eq!(tensors["linear.weight"].0, vec![10, 64, 1, 1]);
    assert_eq!(
        (
            meta["arch"].as_str(),
            meta["mode"].as_str(),
            meta["stem"].as_str()
        ),
        ("resnet10", "pad", "cifar")
    );
    let t: f32 = meta["temperature"].parse().unwrap();
    assert!(t > 1.0 && t < 31.0, "annealing temperature {t}");

    // Evaluating the checkpoint reproduces the training run's test accuracy.
    let eval = |ckpt: &Path, extra: &[&str], env: &[(&str, &str)]| {
        let dir = subset.to_str().unwrap();
        let base = [
            "eval",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--data-dir",
            dir,
        ];
        let args = [&base[..], &["--limit", "40", "--batch-size", "16"], extra].concat();
        let (code, stdout, err) = run_with_env(env, &args);
        assert_eq!(code, 0, "{stdout}\n{err}");
        assert!(
            stdout.contains(&format!("accuracy {:.2}%", 100.0 * trained_acc)),
            "{stdout} vs {trained_acc}"
        );
        stdout
    };
    let logits = out.join("logits.npy");
    // With the per-dispatch profile of one inference batch, which changes no result.
    let logits_arg = ["--logits-out", logits.to_str().unwrap()];
    let stdout = eval(&ckpt, &logits_arg, &[("PADNET_PROFILE", "1")]);
    assert!(
        stdout.contains("profile of one run") && stdout.contains("pad_conv2d dynconv:aggregate"),
        "{stdout}"
    );
    let npy = std::fs::read(&logits).unwrap();
    assert!(
        npy.starts_with(b"\x93NUMPY") && npy.len() == 128 + 40 * 10 * 4,
        "{}",
        npy.len()
    );
    // Multiplied in f16 (convolutions, per-sample ones among them, and GEMMs), the logits
    // stay within f16's tolerance of these, and are not bit for bit the same.
    if common::has_f16() {
        let half = out.join("logits-f16.npy");
        let args = [
            "eval",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--data-dir",
            subset.to_str().unwrap(),
            "--limit",
            "40",
            "--batch-size",
            "16",
            "--precision",
            "f16",
            "--logits-out",
            half.to_str().unwrap(),
        ];
        let (code, stdout, err) = run(&args);
        assert_eq!(code, 0, "{stdout}\n{err}");
        let floats = |b: &[u8]| -> Vec<f32> {
            b[128..]
                .chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        common::assert_f16_close(&floats(&npy), &floats(&std::fs::read(&half).unwrap()));
    }

    // Torchvision-style names (no `.layers.`) load too.
    let renamed: padnet_wgpu::checkpoint::Tensors = tensors
        .iter()
        .map(|(k, v)| (padnet_wgpu::checkpoint::torchvision_name(k), v.clone()))
        .collect();
    let tv = out.join("torchvision.safetensors");
    padnet_wgpu::checkpoint::save(&tv, &renamed, meta.clone()).unwrap();
    eval(&tv, &[], &[]);
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn resumed_run_equals_an_uninterrupted_one() {
    let base = std::env::temp_dir().join(format!("padnet-cli-resume-{}", std::process::id()));
    let subset = subset_dir();
    let args = |epochs: &str, out: &Path| -> Vec<String> {
        [
            "train",
            "--model",
            "resnet10",
            "--mode",
            "dynamic",
            "--width",
            "0.125",
            "--stem",
            "cifar",
            "--data-dir",
            subset.to_str().unwrap(),
            "--batch-size",
            "16",
            "--limit-train",
            "48",
            "--limit-test",
            "32",
            "--eval-batch-size",
            "16",
            "--temp-epochs",
            "2",
            "--quiet",
            "--schedule",
            "constant", // the LR schedule spans --epochs, which differs here
            "--epochs",
            epochs,
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let (a, b, _) = straight_and_resumed(&base, args);
    assert_eq!(a.len(), 2);
    assert_eq!(a, b, "resumed run differs");
    let data = ["--data-dir", subset.to_str().unwrap(), "--limit", "32"];
    let c = interrupted_and_resumed(&base, args, &data);
    assert_eq!(a, c, "run resumed after Ctrl-C differs");
    // The default anneal length is resolved when a run starts: extending --epochs on resume
    // keeps the saved one (else the option check would refuse the resume). This run has 3
    // steps, under twice the 100-step minimum, so it keeps a soft attention, annealing over
    // 10 times its length: 10 epochs.
    let default_temp = |epochs: &str, out: &Path| -> Vec<String> {
        let mut a = args(epochs, out);
        let at = a.iter().position(|s| s == "--temp-epochs").unwrap();
        a.drain(at..at + 2);
        a
    };
    let extended = base.join("extended");
    let runs = [default_temp("1", &extended), {
        let mut a = default_temp("3", &extended);
        a.extend(["--resume".into(), extended.to_str().unwrap().into()]);
        a
    }];
    for a in runs {
        let (code, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, 0, "{err}");
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(extended.join("config.json")).unwrap())
            .unwrap();
    assert!(
        (config["temp_epochs"].as_f64().unwrap() - 10.0).abs() < 1e-6,
        "{config}"
    );
    std::fs::remove_dir_all(&base).ok();
}

#[test]
fn imp_and_export_reject_bad_input() {
    let dir = std::env::temp_dir().join(format!("padnet-cli-imp-{}", std::process::id()));
    let subset = subset_dir();
    // κ outside (0, 1].
    for k in ["--kappa=0", "--kappa=1.5", "--kappa=-0.2"] {
        let (code, _, err) = run(&[
            "train",
            "--model",
            "resnet10",
            "--mode",
            "pad",
            k,
            "--out",
            dir.to_str().unwrap(),
        ]);
        assert_eq!(code, 1);
        assert!(
            err.contains("'--kappa <KAPPA>': must be in (0, 1]"),
            "{err}"
        );
    }
    let (code, _, err) = run(&[
        "train",
        "--model",
        "resnet10",
        "--mode",
        "dynamic",
        "--kappa",
        "0.3",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--kappa applies to --mode pad"), "{err}");
    // A static checkpoint given to imp and export.
    let (code, _, err) = run(&[
        "train",
        "--data-dir",
        subset.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--limit-train",
        "64",
        "--limit-test",
        "32",
        "--eval-batch-size",
        "32",
        "--quiet",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let ckpt = dir.join("model.safetensors");
    let out = dir.join("x.safetensors");
    let (code, _, err) = run(&[
        "imp",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--kappa",
        "0.3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("not a PAD checkpoint"), "{err}");
    let (code, _, err) = run(&[
        "export",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("not a PAD checkpoint"), "{err}");
    assert!(!out.exists(), "nothing written on error");
    std::fs::remove_dir_all(&dir).ok();
}

/// The cells of the row of `export`'s cost table that names `model` (index 1 is the name).
fn table_row(stdout: &str, model: &str) -> Vec<String> {
    let row = stdout
        .lines()
        .find(|l| l.starts_with(&format!("| {model} |")))
        .unwrap_or_else(|| panic!("no '{model}' row in {stdout}"));
    row.split('|').map(|c| c.trim().to_string()).collect()
}

/// Values a deploy file stores, in millions (its bit masks and BatchNorm statistics aside).
fn stored_values(deploy: &Path) -> f64 {
    let (tensors, _) = padnet_wgpu::checkpoint::load(deploy).unwrap();
    let buffers = ["running_mean", "running_var", "mask_bits"];
    tensors
        .iter()
        .filter(|(name, _)| !buffers.iter().any(|b| name.ends_with(b)))
        .map(|(_, (_, v))| v.len())
        .sum::<usize>() as f64
        / 1e6
}

#[test]
fn pad_training_with_imp_writes_report_and_deploys() {
    let dir = std::env::temp_dir().join(format!("padnet-cli-impt-{}", std::process::id()));
    let subset = subset_dir();
    let (code, stdout, err) = run(&[
        "train",
        "--model",
        "resnet10",
        "--mode",
        "pad",
        "--kappa",
        "0.3",
        "--imp-batches",
        "2",
        "--width",
        "0.125",
        "--stem",
        "cifar",
        "--data-dir",
        subset.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--limit-train",
        "64",
        "--limit-test",
        "32",
        "--eval-batch-size",
        "16",
        "--quiet",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    assert!(
        stdout.contains("κ = 0.3000 over all PAD positions"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("imp_report.json")).unwrap())
            .unwrap();
    assert!((report["kappa"].as_f64().unwrap() - 0.3).abs() < 1e-3);
    let png = std::fs::read(dir.join("imp_report.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let (_, meta) = padnet_wgpu::checkpoint::load(&dir.join("model.safetensors")).unwrap();
    assert!((meta["kappa"].parse::<f64>().unwrap() - 0.3).abs() < 1e-3);
    // Deploy, then a deploy file given to training is refused.
    let deploy = dir.join("deploy.safetensors");
    let (code, stdout, err) = run(&[
        "export",
        "--checkpoint",
        dir.join("model.safetensors").to_str().unwrap(),
        "--out",
        deploy.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("κ = 0.3000"), "{stdout}");
    // The deploy file against the same model fully dynamic: at most 55 % of its size.
    let share: f64 = stdout
        .split("the deploy file is ")
        .nth(1)
        .and_then(|r| r.split('%').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no DY-Conv comparison in {stdout}"));
    assert!(share <= 55.0, "{stdout}");
    let deployed = table_row(&stdout, "PAD deploy file");
    assert_eq!(
        deployed[2],
        format!("{:.3} M", stored_values(&deploy)),
        "{stdout}"
    );
    let macs = |model| -> f64 {
        let row = table_row(&stdout, model);
        row[4].trim_end_matches(" M").parse().unwrap()
    };
    assert!(macs("DY-Conv (K = 4)") > macs("static"), "{stdout}");
    // The deploy file evaluates and reports its inference throughput.
    let (code, stdout, err) = run(&[
        "eval",
        "--checkpoint",
        deploy.to_str().unwrap(),
        "--data-dir",
        subset.to_str().unwrap(),
        "--limit",
        "100",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("(deploy file")
            && stdout.contains("100 test images")
            && stdout.contains("img/s inference"),
        "{stdout}"
    );
    let resume_dir = dir.join("resume");
    std::fs::create_dir_all(&resume_dir).unwrap();
    std::fs::copy(&deploy, resume_dir.join("model.safetensors")).unwrap();
    let (code, _, err) = run(&[
        "train",
        "--model",
        "resnet10",
        "--mode",
        "pad",
        "--width",
        "0.125",
        "--stem",
        "cifar",
        "--data-dir",
        subset.to_str().unwrap(),
        "--epochs",
        "2",
        "--limit-train",
        "64",
        "--quiet",
        "--resume",
        resume_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("deploy file"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Text fine-tuning from the command line (pretrained MiniLM from scripts/fetch-minilm.sh):
/// a short MoE run writes metrics with dev accuracy, macro-F1 and MCC, a checkpoint with
/// per-expert names and the class names, and the tokenizer; bad options are one clear error.
#[test]
fn text_training_writes_metrics_and_checkpoint() {
    let l2 = common::minilm_l2();
    let l2 = l2.to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("padnet-cli-text-{}", std::process::id()));
    let out = dir.join("run");
    let common = [
        "train",
        "--model",
        "minilm-l6",
        "--model-dir",
        l2,
        "--limit-train",
        "32",
        "--limit-test",
        "16",
        "--batch-size",
        "16",
        "--max-len",
        "16",
        "--epochs",
        "1",
        "--quiet",
        "--out",
    ];
    let mut args = common.to_vec();
    // Capacity 1.0 drops the tokens over each expert's fair share.
    args.extend([
        out.to_str().unwrap(),
        "--mode",
        "moe",
        "--experts",
        "4",
        "--capacity-factor",
        "1",
    ]);
    let (code, stdout, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("dev accuracy") && stdout.contains("MCC"),
        "{stdout}"
    );
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"dev_macro_f1\""), "{metrics}");
    let (t, meta) = padnet_wgpu::checkpoint::load(&out.join("model.safetensors")).unwrap();
    assert!(t.contains_key("encoder.layer.1.output.dense.experts.3.weight"));
    assert!(t.contains_key("classifier.weight"));
    assert_eq!(meta["mode"], "moe");
    assert_eq!(meta["capacity_factor"], "1");
    assert!(meta["classes"].contains("\"games\""), "{}", meta["classes"]);
    assert!(out.join("tokenizer.json").is_file());
    for (extra, want) in [
        (
            &["--mode", "pad", "--static-init", "pretrained"][..],
            "add --imp-after",
        ),
        (
            &["--mode", "pad", "--kappa", "1.5"][..],
            "'--kappa <KAPPA>': must be in (0, 1]",
        ),
        (
            &["--mode", "pad", "--static-init", "copy"][..],
            "invalid value 'copy' for '--static-init",
        ),
        (
            &["--mode", "moe", "--top-k", "9"][..],
            "--top-k 9 of --experts 8",
        ),
        (&["--task", "nope"][..], "unknown task 'nope'"),
        (
            &["--mode", "dynamic"][..],
            "--mode dynamic is an image mode; text models take dense, moe or pad",
        ),
        (
            &["--mode", "moe", "--capacity-factor", "0"][..],
            "'--capacity-factor <CAPACITY_FACTOR>': must be > 0",
        ),
        (
            &["--mode", "moe", "--moe-position", "mid"][..],
            "[possible values: out, int, both]",
        ),
        // The first step's update makes the weights infinite; the second step's first op
        // that turns them into NaN/Inf is named.
        (
            &["--mode", "dense", "--lr", "3e38", "--detect-anomaly"][..],
            "--detect-anomaly: op add",
        ),
    ] {
        let mut args = common.to_vec();
        let bad = dir.join("bad");
        args.push(bad.to_str().unwrap());
        args.extend(extra);
        let (code, _, err) = run(&args);
        assert_eq!(code, 1, "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: {err}");
        assert!(!bad.exists(), "{extra:?} left {bad:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A PAD-MoE text run evaluates from its checkpoint to the dev metrics training printed, and
/// its deploy file (static part folded into one dense weight, experts stored sparse) gives
/// the same logits (≤ 1e-4 of their scale) from a smaller file than the fully dynamic MoE
/// would need, run split (whole dynamic rows, `eval`'s default: a static GEMM and expert
/// GEMMs over the dynamic rows) or folded into a plain MoE (`--no-split`); a checkpoint
/// without its tokenizer is one clear error.
#[test]
fn text_pad_moe_evaluates_and_deploys() {
    let l2 = common::minilm_l2();
    let l2 = l2.to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("padnet-cli-text-pad-{}", std::process::id()));
    let out = dir.join("run");
    let (code, stdout, err) = run(&[
        "train",
        "--model",
        "minilm-l6",
        "--model-dir",
        l2,
        "--mode",
        "pad",
        "--experts",
        "4",
        "--limit-train",
        "32",
        "--limit-test",
        "24",
        "--batch-size",
        "16",
        "--max-len",
        "16",
        "--epochs",
        "1",
        "--imp-samples",
        "16",
        "--mask-granularity",
        "filter",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let trained = stdout
        .lines()
        .find_map(|l| l.split("dev accuracy ").nth(1))
        .and_then(|r| r.split(',').next())
        .expect("training prints the dev accuracy")
        .to_string();
    let ckpt = out.join("model.safetensors");
    let deploy = out.join("deploy.safetensors");
    let eval_with = |path: &Path, logits: &Path, extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--checkpoint",
            path.to_str().unwrap(),
            "--limit",
            "24",
            "--logits-out",
            logits.to_str().unwrap(),
        ];
        args.extend(extra);
        let (code, stdout, err) = run(&args);
        assert_eq!(code, 0, "{err}");
        let (t, _) = padnet_wgpu::checkpoint::load(logits).unwrap();
        (stdout, t["logits"].1.clone())
    };
    let eval = |path: &Path, logits: &Path| eval_with(path, logits, &[]);
    let (text, a) = eval(&ckpt, &dir.join("a.safetensors"));
    assert!(
        text.contains(&format!("accuracy {trained}")) && text.contains("24 dev examples"),
        "eval: {text}\ntraining: {trained}"
    );
    // GEMMs multiplied in f16 (the experts' grouped GEMMs among them) give the same logits
    // to f16's tolerance, and not bit for bit.
    if common::has_f16() {
        let (text, h) = eval_with(&ckpt, &dir.join("h.safetensors"), &["--precision", "f16"]);
        assert!(text.contains("multiply in f16"), "{text}");
        common::assert_f16_close(&a, &h);
    }
    let (code, text, err) = run(&[
        "export",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--out",
        deploy.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("2 PAD layers"), "{text}");
    let deployed = table_row(&text, "PAD-MoE deploy file");
    assert_eq!(
        deployed[2],
        format!("{:.3} M", stored_values(&deploy)),
        "{text}"
    );
    assert!(text.contains("MACs per token"), "{text}");
    // W_S is folded into the experts at load: a token of the deploy file costs what it costs
    // in MoE.
    let moe = table_row(&text, "MoE (4 experts, top-2)");
    assert_eq!(deployed[4], moe[4], "MACs per token\n{text}");
    // Whole dynamic rows (filter granularity): split, the experts cover only those rows.
    let split = table_row(&text, padnet_wgpu::text::TEXT_DEPLOY_SPLIT_ROW);
    let macs = |row: &[String]| row[4].trim_end_matches(" M").parse::<f64>().unwrap();
    assert!(macs(&split) < macs(&moe), "MACs per token\n{text}");
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    for extra in [&[][..], &["--no-split"]] {
        let logits = dir.join(format!("b{}.safetensors", extra.len()));
        let (text, b) = eval_with(&deploy, &logits, extra);
        let ran = match extra.is_empty() {
            true => "(deploy file, 2 layers split by whole dynamic rows)",
            false => "(deploy file)",
        };
        assert!(text.contains(ran), "{extra:?}: {text}");
        let diff = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            diff <= 1e-4 * scale,
            "{extra:?}: deploy logits differ by {diff} (scale {scale})"
        );
    }
    // Sizes: the PAD checkpoint holds E experts + static weight + mask; the deploy file one
    // dense static weight + κ of each expert.
    let (t, _) = padnet_wgpu::checkpoint::load(&ckpt).unwrap();
    let moe_floats: usize = t
        .iter()
        .filter(|(n, _)| !n.ends_with(".mask") && !n.ends_with(".phi_d"))
        // The PAD static weights (the attention's output.dense stays).
        .filter(|(n, _)| n.contains("attention") || !n.ends_with("output.dense.weight"))
        .map(|(_, (_, v))| v.len())
        .sum();
    let size = std::fs::metadata(&deploy).unwrap().len() as usize;
    assert!(
        size < moe_floats * 4,
        "deploy {size} B vs MoE {} B",
        moe_floats * 4
    );

    std::fs::remove_file(out.join("tokenizer.json")).unwrap();
    let (code, _, err) = run(&["eval", "--checkpoint", ckpt.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("tokenizer.json"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Text through the shared trainer: a PAD-MoE run (IMP before training, dropout on) resumed
/// after epoch 1 of 2 ends with the uninterrupted run's metrics, bit for bit; its checkpoint
/// goes through the standalone `imp` (re-partitioned to a smaller κ, report written).
#[test]
fn text_resume_equals_an_uninterrupted_run_and_imp_accepts_it() {
    let l2 = common::minilm_l2();
    let l2 = l2.to_str().unwrap();
    let base = std::env::temp_dir().join(format!("padnet-cli-text-resume-{}", std::process::id()));
    let args = |epochs: &str, out: &Path| -> Vec<String> {
        [
            "train",
            "--model",
            "minilm-l6",
            "--model-dir",
            l2,
            "--mode",
            "pad",
            "--experts",
            "4",
            "--limit-train",
            "32",
            "--limit-test",
            "16",
            "--batch-size",
            "16",
            "--max-len",
            "16",
            "--imp-samples",
            "16",
            "--quiet",
            "--schedule",
            "constant", // the LR schedule spans --epochs, which differs here
            "--epochs",
            epochs,
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let (a, b, out) = straight_and_resumed(&base, args);
    assert!(
        !out.contains("IMP of the PAD-MoE masks"),
        "IMP ran again: {out}"
    );
    assert_eq!(a.len(), 2);
    assert_eq!(a, b, "resumed text run differs");
    let c = interrupted_and_resumed(&base, args, &["--limit", "16"]);
    assert_eq!(a, c, "text run resumed after Ctrl-C differs");

    let ckpt = base.join("split").join("model.safetensors");
    let out = base.join("imp").join("k03.safetensors");
    let (code, text, err) = run(&[
        "imp",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--kappa",
        "0.3",
        "--batch-size",
        "16",
        "--imp-batches",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("wrote"), "{text}");
    let (t, meta) = padnet_wgpu::checkpoint::load(&out).unwrap();
    let (kept, total) = t
        .iter()
        .filter(|(n, _)| n.ends_with(".mask"))
        .fold((0.0, 0usize), |(k, n), (_, (_, v))| {
            (k + v.iter().sum::<f32>() as f64, n + v.len())
        });
    assert_eq!(kept, (0.3 * total as f64).round(), "{kept} of {total}");
    // The metadata records the fraction reached: round(κN)/N.
    let kappa: f64 = meta["kappa"].parse().unwrap();
    assert!((kappa - kept / total as f64).abs() < 1e-12, "{kappa}");
    assert!(base.join("imp").join("imp_report.json").is_file());
    std::fs::remove_dir_all(&base).ok();
}

/// `experiment` on text: dense vs MoE vs PAD-MoE, the same three files as the image one.
#[test]
fn text_experiment_writes_table_json_and_chart() {
    let l2 = common::minilm_l2();
    let l2 = l2.to_str().unwrap();
    let out = std::env::temp_dir().join(format!("padnet-cli-text-exp-{}", std::process::id()));
    let (code, text, err) = run(&[
        "experiment",
        "--model",
        "minilm-l6",
        "--model-dir",
        l2,
        "--experts",
        "4",
        "--limit-train",
        "16",
        "--limit-test",
        "16",
        "--batch-size",
        "16",
        "--max-len",
        "16",
        "--imp-samples",
        "16",
        "--epochs",
        "1",
        "--kappas",
        "0.5",
        "--seeds",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    for label in ["| dense |", "| MoE |", "| PAD-MoE κ=0.5 |", "dev accuracy"] {
        assert!(md.contains(label), "{label} missing: {md}");
    }
    assert!(text.contains("PAD-MoE κ=0.5"), "{text}");
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 3);
    for chart in ["results.png", "results_params.png"] {
        let png = std::fs::read(out.join(chart)).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{chart}");
    }
    std::fs::remove_dir_all(&out).ok();
}

/// Trains `args(epochs, out)` for 2 epochs into `base/straight`, and for 1 epoch into
/// `base/split` then resumes it to 2; returns both metrics.jsonl without their timing fields,
/// and what the resumed run printed.
fn straight_and_resumed(
    base: &Path,
    args: impl Fn(&str, &Path) -> Vec<String>,
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>, String) {
    let (straight, split) = (base.join("straight"), base.join("split"));
    let run_args = |a: Vec<String>| run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, _, err) = run_args(args("2", &straight));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_args(args("1", &split));
    assert_eq!(code, 0, "{err}");
    let mut resume = args("2", &split);
    resume.extend(["--resume".to_string(), split.to_str().unwrap().to_string()]);
    let (code, out, err) = run_args(resume);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("resumed") && out.contains("epoch 2/2"),
        "{out}"
    );
    (timeless(&straight), timeless(&split), out)
}

/// A run's metrics.jsonl without its timing fields.
fn timeless(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let m = v.as_object_mut().unwrap();
            m.retain(|k, _| !k.ends_with("_per_s") && !k.ends_with("seconds"));
            v
        })
        .collect()
}

/// Trains `args("2", base/interrupted)` and interrupts it with SIGINT as soon as it has
/// named its run directory (the loop stops after its first step at the latest, within
/// epoch 1); checks that it exits 130 with its checkpoint committed and that `eval` (with
/// `eval_args`) reads that checkpoint, then resumes it to the end; returns its metrics
/// without timing fields.
fn interrupted_and_resumed(
    base: &Path,
    args: impl Fn(&str, &Path) -> Vec<String>,
    eval_args: &[&str],
) -> Vec<serde_json::Value> {
    use std::io::BufRead;
    let dir = base.join("interrupted");
    let mut child = cli()
        .args(args("2", &dir))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("run directory") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "ended before training"
        );
    }
    // SIGINT as a terminal's Ctrl-C sends it (libc: a minimal system may lack kill(1)).
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(sent, 0, "SIGINT not delivered");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{rest}\n{err}");
    assert!(err.contains("interrupted after step"), "{err}");
    let ckpt = dir.join("model.safetensors");
    let mut eval = vec!["eval", "--checkpoint", ckpt.to_str().unwrap()];
    eval.extend(eval_args);
    let (code, _, err) = run(&eval);
    assert_eq!(code, 0, "eval of the interrupted run: {err}");
    let mut resume = args("2", &dir);
    resume.extend(["--resume".to_string(), dir.to_str().unwrap().to_string()]);
    let (code, printed, err) = run(&resume.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    assert!(printed.contains("resumed"), "{printed}");
    timeless(&dir)
}

/// Bad numbers, model configs and dataset names, as a new user types them: each is one clear
/// error naming the option or file (exit 1), before any work, and leaves nothing behind.
#[test]
fn bad_values_and_configs_are_one_clear_error() {
    let dir = std::env::temp_dir().join(format!("padnet-cli-values-{}", std::process::id()));
    let minilm = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2/config.json");
    let mut model_dirs = vec![];
    for key in ["hidden_size", "vocab_size"] {
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&minilm).unwrap()).unwrap();
        cfg[key] = 0.into();
        let d = dir.join(format!("zero-{key}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
        model_dirs.push(d.to_str().unwrap().to_string());
    }
    let out = dir.join("run");
    let o = out.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["train", "--lr", "nan"],
            "'--lr <LR>': must be a finite number",
        ),
        (
            vec!["train", "--gamma", "nan"],
            "'--gamma <GAMMA>': must be a finite number",
        ),
        (
            vec!["train", "--momentum", "nan"],
            "'--momentum <MOMENTUM>': must be a finite",
        ),
        (vec!["train", "--weight-decay=-1e9"], "must be ≥ 0"),
        (
            vec!["train", "--epochs", "0"],
            "'--epochs <EPOCHS>': must be at least 1",
        ),
        (vec!["train", "--save-every", "0"], "must be at least 1"),
        (
            vec!["train", "--width", "0"],
            "'--width <WIDTH>': must be > 0",
        ),
        (
            vec!["eval", "--checkpoint", o, "--temperature", "0"],
            "must be > 0",
        ),
        (
            vec!["eval", "--checkpoint", o, "--temperature=-1"],
            "must be > 0",
        ),
        (
            vec!["eval", "--checkpoint", o, "--temperature", "nan"],
            "must be a finite",
        ),
        (
            vec!["eval", "--checkpoint", o, "--limit", "0"],
            "must be at least 1",
        ),
        (
            vec!["bench", "--model", "minilm-l6", "--seq-len", "0"],
            "must be at least 1",
        ),
        (
            vec!["experiment", "--kappas", "2", "--out", o],
            "must be in (0, 1]",
        ),
        (
            vec!["experiment", "--baselines", "static,moe", "--out", o],
            "unknown baseline 'moe'; valid baselines: static, dynamic",
        ),
        (
            vec![
                "bench",
                "--model",
                "minilm-l6",
                "--model-dir",
                &model_dirs[0],
            ],
            "hidden_size is 0",
        ),
        (
            vec![
                "bench",
                "--model",
                "minilm-l6",
                "--model-dir",
                &model_dirs[1],
            ],
            "vocab_size is 0",
        ),
        (
            vec!["train", "--dataset", "cifar10", "--out", o],
            "--dataset cifar10 needs the directory of its files: cifar10:PATH",
        ),
        (
            vec![
                "train", "--model", "resnet18", "--width", "100", "--quiet", "--out", o,
            ],
            "over this adapter's buffer limit",
        ),
        (
            vec![
                "train",
                "--model",
                "resnet10",
                "--mode",
                "dynamic",
                "--kernels",
                "100000",
                "--out",
                o,
            ],
            "over this adapter's buffer limit",
        ),
    ];
    for (args, want) in cases {
        let (code, _, err) = run(&args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(
            !err.contains("Some(") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
        assert!(!out.exists(), "{args:?} left {out:?}");
    }
    // An OS error is said once, with the file.
    let missing = dir.join("missing.safetensors");
    let (code, _, err) = run(&["eval", "--checkpoint", missing.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    assert!(err.contains("missing.safetensors"), "{err}");
    // With only Metal searched (none on Linux), the advice is Metal's, not Vulkan's.
    if cfg!(target_os = "linux") {
        let out = cli()
            .env("WGPU_BACKEND", "metal")
            .arg("info")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("backends searched (Metal") && !err.contains("Vulkan"),
            "{err}"
        );
    }
    // Memory is checked before anything is allocated: the arenas against the budget, then
    // the whole compiled graph (here the arenas fit 4 MiB, batch 64's activations do not).
    for (budget, want) in [
        ("1K", "the model's initial values take"),
        ("4M", "the compiled graph's buffers take"),
        ("lots", "PADNET_MEMORY_BUDGET=\"lots\" is not a size"),
    ] {
        let out_run = cli()
            .env("PADNET_MEMORY_BUDGET", budget)
            .args(["train", "--batch-size", "64", "--out", o])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out_run.stderr);
        assert_eq!(out_run.status.code(), Some(1), "{budget}: {err}");
        assert!(err.contains(want), "{budget}: {err}");
        if budget != "lots" {
            assert!(err.contains("over the memory budget of"), "{err}");
        }
        assert!(!out.exists(), "{budget} left {out:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `bench --suite all --quick` times and checks every workload and writes a record of the
/// documented schema; `bench compare` renders it as Markdown and PNG charts; a bad record is
/// one clear error.
#[test]
fn bench_in_f16_says_so_in_its_record() {
    // `--precision f16` where the adapter has shader-f16 (lavapipe does): the record says f16
    // and checks to f16's tolerance. Elsewhere the command refuses, naming the adapter.
    let dir = std::env::temp_dir().join(format!("padnet-cli-f16-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("f16.json");
    let (code, stdout, err) = run_with_env(
        &[("PADNET_PRECISION", "f16")],
        &[
            "bench",
            "--quick",
            "--no-peaks",
            "--filter",
            "gemm",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    if !common::gpu().features.contains(wgpu::Features::SHADER_F16) {
        assert_eq!(code, 1, "{stdout}{err}");
        assert!(err.contains("has no shader-f16"), "{err}");
        return;
    }
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("multiply in f16"), "{stdout}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(record["precision"], "f16");
    assert_eq!(record["half_weights"], true);
    let check = |record: &serde_json::Value| {
        let workloads = record["workloads"].as_array().unwrap();
        assert!(!workloads.is_empty());
        for w in workloads {
            assert_eq!(w["check"]["correct"], true, "{w}");
            assert_eq!(
                w["check"]["tolerance"],
                padnet_wgpu::bench::TOLERANCE_F16,
                "{w}"
            );
        }
    };
    check(&record);
    // A whole network in f16 stays within f16's range and tolerance: the deepest inference
    // workload, a filter-split PAD deploy file (its activations overflowed f16 when the
    // benchmark drew every weight from N(0, 1)).
    let (code, _, err) = run_with_env(
        &[("PADNET_PRECISION", "f16")],
        &[
            "bench",
            "--quick",
            "--no-peaks",
            "--suite",
            "infer",
            "--filter",
            "pad-deploy filters",
            "--json",
            json.to_str().unwrap(),
            "--force",
        ],
    );
    assert_eq!(code, 0, "{err}");
    check(&serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap());
    std::fs::remove_dir_all(&dir).ok();
}

/// `bench --model` times each mode's training step and says what it costs in memory and in
/// dispatches; DY-Conv's attention branches and per-sample kernels add dispatches.
#[test]
fn bench_model_reports_each_modes_step() {
    let (code, stdout, err) = run(&[
        "bench",
        "--model",
        "resnet10",
        "--width",
        "0.25",
        "--input-size",
        "8",
        "--channels",
        "1",
        "--batch-size",
        "2",
        "--steps",
        "1",
        "--modes",
        "static,dynamic",
    ]);
    assert_eq!(code, 0, "{err}");
    let dispatches = |mode: &str| -> usize {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(mode))
            .unwrap_or_else(|| panic!("no {mode} line in {stdout}"));
        assert!(line.contains("ms/step") && line.contains("MiB"), "{line}");
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "dispatches").expect(line);
        words[at - 1].parse().expect(line)
    };
    let (fixed, dynamic) = (dispatches("static"), dispatches("dynamic"));
    assert!(fixed > 0 && dynamic > fixed, "{stdout}");
}

#[test]
fn bench_suite_writes_a_record_that_compares() {
    let dir = std::env::temp_dir().join(format!("padnet-cli-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("quick.json");
    let (code, stdout, err) = run(&[
        "bench",
        "--suite",
        "all",
        "--quick",
        "--samples",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    let timing = stdout.lines().find(|l| l.starts_with("timing: ")).unwrap();
    for suite in ["kernels", "layers", "infer"] {
        assert!(
            timing.contains(&format!("{suite} by gpu-timestamp"))
                || timing.contains(&format!("{suite} by wall-clock")),
            "{stdout}"
        );
    }
    assert!(timing.contains("train by wall-clock"), "{stdout}");
    assert!(!stdout.contains("Some("), "{stdout}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(record["schema"], "padnet-bench/1");
    for key in ["tool", "adapter", "system", "limits", "features", "created"] {
        assert!(!record[key].is_null(), "record lacks {key}");
    }
    for peak in ["fma_gflops", "bandwidth_gbs", "dispatch_us"] {
        assert!(record["peaks"][peak].as_f64().unwrap() > 0.0, "{peak}");
    }
    let workloads = record["workloads"].as_array().unwrap();
    for suite in ["kernels", "layers", "train", "infer"] {
        assert!(
            workloads.iter().any(|w| w["suite"] == suite),
            "no {suite} workload"
        );
    }
    for w in workloads.iter().filter(|w| w["suite"] == "infer") {
        let name = w["name"].as_str().unwrap();
        let unit = if name.starts_with("infer ffn") {
            "tokens/s"
        } else {
            "img/s"
        };
        assert_eq!(w["throughput_unit"], unit, "{w}");
        assert!(w["check"]["error"].as_f64().unwrap() <= 1e-4, "{w}");
    }
    for w in workloads {
        assert_eq!(w["check"]["correct"], true, "{w}");
        assert!(w["median_ms"].as_f64().unwrap() > 0.0, "{w}");
        assert_eq!(w["samples_ms"].as_array().unwrap().len(), 1, "{w}");
    }
    let kernel = workloads.iter().find(|w| w["suite"] == "kernels").unwrap();
    assert!(
        kernel["check"]["error"].as_f64().unwrap() <= 1e-4,
        "{kernel}"
    );
    assert!(kernel["pct_peak_flops"].as_f64().is_some(), "{kernel}");
    // It names how GEMMs chose their kernel, and what each non-train workload ran.
    assert!(
        record["gemm_policy"].is_string(),
        "{}",
        record["gemm_policy"]
    );
    assert_eq!(record["precision"], "f32");
    for w in workloads.iter().filter(|w| w["suite"] != "train") {
        assert!(!w["kernels"].as_array().unwrap().is_empty(), "{w}");
    }
    // The record is not replaced without --force.
    let (code, _, err) = run(&["bench", "--quick", "--json", json.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("exists; give --force"), "{err}");
    let out = dir.join("compare");
    let (code, stdout, err) = run(&[
        "bench",
        "compare",
        json.to_str().unwrap(),
        json.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("| gemm 256x256x256 |") && stdout.contains("1.00x"),
        "{stdout}"
    );
    for png in ["speedup.png", "peak.png"] {
        assert!(std::fs::read(out.join(png))
            .unwrap()
            .starts_with(b"\x89PNG"));
    }
    assert!(out.join("compare.md").is_file());
    let not_a_record = dir.join("other.json");
    std::fs::write(&not_a_record, "{\"schema\": \"something/2\"}").unwrap();
    let (code, _, err) = run(&["bench", "compare", not_a_record.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("schema 'something/2'"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
