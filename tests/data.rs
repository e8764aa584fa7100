//! Data loading: ImageFolder (decode, skip or reject corrupt files, augmentation shapes,
//! ordered parallel batching) and an end-to-end run on a generated folder dataset.

use padnet_wgpu::data::{self, folder};
use padnet_wgpu::rng::Rng;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// ROOT/{train,val}/{red,blue}/*.png|jpg of random sizes; class = dominant colour.
fn make_folder(root: &Path, per_class: usize, corrupt: bool) {
    let mut rng = Rng::new(1);
    for split in ["train", "val"] {
        for (ci, class) in ["blue", "red"].iter().enumerate() {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..per_class {
                let (w, h) = (20 + rng.below(30) as u32, 20 + rng.below(30) as u32);
                let img = image::RgbImage::from_fn(w, h, |_, _| {
                    let n = rng.below(40) as u8;
                    if ci == 1 {
                        image::Rgb([200 + n, n, n])
                    } else {
                        image::Rgb([n, n, 200 + n])
                    }
                });
                let ext = if i % 2 == 0 { "png" } else { "jpg" };
                img.save(dir.join(format!("{i}.{ext}"))).unwrap();
            }
        }
    }
    if corrupt {
        std::fs::write(root.join("train/red/broken.jpg"), b"not a jpeg at all").unwrap();
    }
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("padnet-data-{name}-{}", std::process::id()))
}

#[test]
fn folder_dataset_loads_skips_and_rejects() {
    let root = tmp("folder");
    make_folder(&root, 6, true);
    let set = folder::load(&root, "train", 16, false).unwrap();
    assert_eq!(
        (set.len(), set.classes),
        (12, 2),
        "the corrupt file is skipped"
    );
    assert_eq!(set.labels.iter().filter(|&&l| l == 1).count(), 6);
    let e = folder::load(&root, "train", 16, true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("broken.jpg") && e.contains("decode"), "{e}");

    // Batches arrive in dataset order for evaluation, with normalised 3x16x16 samples.
    let set = Arc::new(set);
    let batches: Vec<_> = data::batches(set.clone(), 5, None, 0, 2)
        .into_iter()
        .collect();
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[2].valid, 2);
    let labels: Vec<u32> = batches
        .iter()
        .flat_map(|b| b.labels[..b.valid].to_vec())
        .collect();
    assert_eq!(labels, set.labels);
    assert!(batches
        .iter()
        .all(|b| b.images.len() == 5 * 3 * 16 * 16 && b.error.is_none()));
    // Red images: channel 0 well above the ImageNet mean, channel 2 well below.
    let b = &batches[2];
    let plane = 16 * 16;
    let red0: f32 = b.images[..plane].iter().sum::<f32>() / plane as f32;
    let red2: f32 = b.images[2 * plane..3 * plane].iter().sum::<f32>() / plane as f32;
    assert!(red0 > 1.0 && red2 < -1.0, "{red0} {red2}");

    // Training batches are augmented, shuffled deterministically, and complete.
    let t1: Vec<_> = data::batches(set.clone(), 4, Some(9), 0, 2)
        .into_iter()
        .collect();
    let t2: Vec<_> = data::batches(set.clone(), 4, Some(9), 0, 2)
        .into_iter()
        .collect();
    assert_eq!(t1.len(), 3);
    let same = |a: &[data::Batch], b: &[data::Batch]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(a, b)| a.images == b.images && a.labels == b.labels)
    };
    assert!(same(&t1, &t2));
    // A run resumed within an epoch starts at its batch and sees the same batches.
    let rest: Vec<_> = data::batches(set, 4, Some(9), 1, 2).into_iter().collect();
    assert!(same(&t1[1..], &rest), "batches from 1 differ");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn trains_on_a_folder_dataset() {
    let root = tmp("train");
    make_folder(&root, 8, false);
    let out = root.join("run");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_padnet-wgpu"))
        .args([
            "train",
            "--model",
            "resnet10",
            "--width",
            "0.125",
            "--stem",
            "cifar",
            "--input-size",
            "16",
        ])
        .args([
            "--dataset",
            &format!("folder:{}", root.display()),
            "--epochs",
            "2",
            "--batch-size",
            "8",
        ])
        .args([
            "--eval-batch-size",
            "8",
            "--quiet",
            "--lr",
            "0.02",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        stdout.contains("16 train / 16 test images, 3x16x16"),
        "{stdout}"
    );
    assert!(out.join("model.safetensors").exists());

    // A dataset with a class more than the model has is one clear error, not a panic.
    let wider = tmp("wider");
    make_folder(&wider, 2, false);
    for split in ["train", "val"] {
        let green = wider.join(split).join("green");
        std::fs::create_dir_all(&green).unwrap();
        std::fs::copy(wider.join(split).join("red/0.png"), green.join("0.png")).unwrap();
    }
    let eval = std::process::Command::new(env!("CARGO_BIN_EXE_padnet-wgpu"))
        .args([
            "eval",
            "--checkpoint",
            out.join("model.safetensors").to_str().unwrap(),
        ])
        .args([
            "--dataset",
            &format!("folder:{}", wider.display()),
            "--input-size",
            "16",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&eval.stderr);
    assert_eq!(eval.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the model has 2 classes") && err.contains("label 2"),
        "{err}"
    );
    std::fs::remove_dir_all(&root).ok();
    std::fs::remove_dir_all(&wider).ok();
}
