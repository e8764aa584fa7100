//! ImageFolder datasets: `ROOT/train/<class>/*.{jpg,jpeg,png}` and `ROOT/val/<class>/...`,
//! classes in sorted folder order (torchvision's convention). Images are decoded when a batch
//! is assembled (on worker threads): random-resized-crop + horizontal flip for training,
//! resize + centre crop for evaluation, ImageNet normalisation.

use super::{ImageSet, Rng};
use crate::error::{Error, Result};
use image::imageops::FilterType;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The files behind a folder dataset and how to turn them into `size`×`size` inputs.
#[derive(Debug)]
pub struct Files {
    pub paths: Vec<PathBuf>,
    pub size: usize,
    /// Stop at the first image that fails to decode instead of substituting a blank one.
    pub strict: bool,
    /// Images that failed to decode so far (each replaced by a blank image).
    pub failures: AtomicUsize,
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
}

fn sorted_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

/// Class names: the sub-folders of `root/train`.
pub fn classes(root: &Path) -> Result<Vec<String>> {
    let dirs: Vec<String> = sorted_dir(&root.join("train"))?
        .into_iter()
        .filter(|p| p.is_dir())
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(String::from))
        .collect();
    if dirs.is_empty() {
        return Err(Error::data(root.join("train"), "no class folders"));
    }
    Ok(dirs)
}

/// Loads the file list of `root/split` (`train` or `val`). Files whose header does not decode
/// are skipped with a counted warning, or are an error with `strict`.
pub fn load(root: &Path, split: &str, size: usize, strict: bool) -> Result<ImageSet> {
    let names = classes(root)?;
    let (mut paths, mut labels, mut skipped) = (vec![], vec![], vec![]);
    for (label, class) in names.iter().enumerate() {
        let dir = root.join(split).join(class);
        if !dir.is_dir() {
            return Err(Error::data(
                &dir,
                format!("class folder of '{class}' missing from {split}/"),
            ));
        }
        for p in sorted_dir(&dir)?.into_iter().filter(|p| is_image(p)) {
            let header = image::ImageReader::open(&p)
                .and_then(|r| r.with_guessed_format())
                .map_err(|e| e.to_string())
                .and_then(|r| r.into_dimensions().map_err(|e| e.to_string()));
            match header {
                Ok(_) => {
                    paths.push(p);
                    labels.push(label as u32);
                }
                Err(e) if strict => return Err(Error::data(&p, format!("cannot decode: {e}"))),
                Err(_) => skipped.push(p),
            }
        }
    }
    if !skipped.is_empty() {
        eprintln!(
            "warning: {} image(s) in {}/{split} could not be decoded and are skipped (first: {})",
            skipped.len(),
            root.display(),
            skipped[0].display()
        );
    }
    if paths.is_empty() {
        return Err(Error::data(
            root.join(split),
            "no decodable .jpg/.jpeg/.png images",
        ));
    }
    Ok(ImageSet {
        name: format!("folder:{}", root.display()),
        images: vec![],
        labels,
        channels: 3,
        height: size,
        width: size,
        classes: names.len(),
        mean: IMAGENET_MEAN.to_vec(),
        std: IMAGENET_STD.to_vec(),
        augment: None,
        files: Some(std::sync::Arc::new(Files {
            paths,
            size,
            strict,
            failures: AtomicUsize::new(0),
        })),
    })
}

impl Files {
    /// Sample `i` as CHW bytes: random-resized-crop (scale 0.08–1, ratio 3/4–4/3) and flip
    /// with `rng` (training), else resize the short side to size/0.875 and centre-crop.
    pub fn decode(&self, i: usize, rng: Option<&mut Rng>) -> Result<Vec<u8>> {
        let path = &self.paths[i];
        let img = match image::open(path) {
            Ok(img) => img.to_rgb8(),
            Err(e) => {
                if self.strict {
                    return Err(Error::data(path, format!("cannot decode: {e}")));
                }
                self.failures.fetch_add(1, Ordering::Relaxed);
                return Ok(vec![0; 3 * self.size * self.size]); // blank, counted
            }
        };
        let (w, h) = (img.width() as f32, img.height() as f32);
        let s = self.size as u32;
        let (crop, flip) = match rng {
            Some(r) => {
                let mut chosen = None;
                for _ in 0..10 {
                    let area = w * h * (0.08 + 0.92 * r.uniform());
                    let ratio = ((3.0f32 / 4.0).ln()
                        + r.uniform() * ((4.0f32 / 3.0).ln() - (3.0f32 / 4.0).ln()))
                    .exp();
                    let (cw, ch) = ((area * ratio).sqrt(), (area / ratio).sqrt());
                    if cw <= w && ch <= h && cw >= 1.0 && ch >= 1.0 {
                        let x = r.uniform() * (w - cw);
                        let y = r.uniform() * (h - ch);
                        chosen = Some((x as u32, y as u32, cw as u32, ch as u32));
                        break;
                    }
                }
                let side = w.min(h);
                let fallback = (
                    ((w - side) / 2.0) as u32,
                    ((h - side) / 2.0) as u32,
                    side as u32,
                    side as u32,
                );
                (chosen.unwrap_or(fallback), r.below(2) == 1)
            }
            None => {
                let scale = (self.size as f32 / 0.875) / w.min(h);
                let side = (self.size as f32 / scale).min(w.min(h));
                (
                    (
                        ((w - side) / 2.0) as u32,
                        ((h - side) / 2.0) as u32,
                        side as u32,
                        side as u32,
                    ),
                    false,
                )
            }
        };
        let (x, y, cw, ch) = crop;
        let cropped = image::imageops::crop_imm(&img, x, y, cw.max(1), ch.max(1)).to_image();
        let mut out_img = image::imageops::resize(&cropped, s, s, FilterType::Triangle);
        if flip {
            image::imageops::flip_horizontal_in_place(&mut out_img);
        }
        let plane = self.size * self.size;
        let mut chw = vec![0u8; 3 * plane];
        for (k, p) in out_img.pixels().enumerate() {
            for c in 0..3 {
                chw[c * plane + k] = p.0[c];
            }
        }
        Ok(chw)
    }
}
