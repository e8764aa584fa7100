//! CIFAR-10 / CIFAR-100 binary batches (the "binary version" of the datasets).

use super::ImageSet;
use crate::error::{Error, Result};
use std::path::Path;

pub const CIFAR_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
pub const CIFAR_STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// Loads a split from `dir`: CIFAR-10 `data_batch_1..5.bin` / `test_batch.bin` (1 label byte
/// per record), CIFAR-100 `train.bin` / `test.bin` (coarse + fine label bytes; fine is used).
pub fn load(dir: &Path, hundred: bool, train: bool) -> Result<ImageSet> {
    let files: Vec<String> = match (hundred, train) {
        (false, true) => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        (false, false) => vec!["test_batch.bin".into()],
        (true, true) => vec!["train.bin".into()],
        (true, false) => vec!["test.bin".into()],
    };
    let label_bytes = if hundred { 2 } else { 1 };
    let record = label_bytes + 3072;
    let classes = if hundred { 100 } else { 10 };
    let (mut images, mut labels) = (vec![], vec![]);
    for f in files {
        let path = dir.join(&f);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        if bytes.is_empty() || bytes.len() % record != 0 {
            return Err(Error::data(
                &path,
                format!(
                    "{} bytes is not a whole number of {record}-byte CIFAR records",
                    bytes.len()
                ),
            ));
        }
        for (i, r) in bytes.chunks(record).enumerate() {
            let label = r[label_bytes - 1] as usize;
            if label >= classes {
                return Err(Error::data(
                    &path,
                    format!("record {i}: label {label} ≥ {classes} classes"),
                ));
            }
            labels.push(label as u32);
            images.extend_from_slice(&r[label_bytes..]);
        }
    }
    Ok(ImageSet {
        name: if hundred { "cifar100" } else { "cifar10" }.into(),
        images,
        labels,
        channels: 3,
        height: 32,
        width: 32,
        classes,
        mean: CIFAR_MEAN.to_vec(),
        std: CIFAR_STD.to_vec(),
        augment: Some(super::Augment {
            crop_pad: 4,
            flip: true,
        }),
        files: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_records_and_rejects_truncation() {
        let dir = std::env::temp_dir().join(format!("padnet-cifar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut rec = vec![7u8];
        rec.extend((0..3072).map(|i| (i % 251) as u8));
        let two: Vec<u8> = rec.iter().chain(&rec).cloned().collect();
        std::fs::write(dir.join("test_batch.bin"), &two).unwrap();
        let s = load(&dir, false, false).unwrap();
        assert_eq!((s.len(), s.labels[1], s.images.len()), (2, 7, 2 * 3072));
        std::fs::write(dir.join("test_batch.bin"), &two[..5000]).unwrap();
        let e = load(&dir, false, false).unwrap_err().to_string();
        assert!(
            e.contains("test_batch.bin") && e.contains("3073-byte"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
