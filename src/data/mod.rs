//! Datasets and batching. Images are kept as bytes and normalised while a batch is assembled,
//! on a background thread, so the GPU never waits for the host.

pub mod cifar;
pub mod folder;
pub mod idx;
pub mod tokenize;
pub mod tsv;

use crate::error::{Error, Result};
use crate::rng::Rng;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// An image classification split: pixels held in memory (NCHW, u8), or files decoded when
/// a batch is assembled.
#[derive(Clone, Debug)]
pub struct ImageSet {
    pub name: String,
    pub images: Vec<u8>,
    pub labels: Vec<u32>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
    /// Per-channel normalisation applied to x/255.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Training-time augmentation (random crop from a zero-padded image, horizontal flip).
    pub augment: Option<Augment>,
    /// Image files (ImageFolder) instead of in-memory pixels.
    pub files: Option<std::sync::Arc<folder::Files>>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augment {
    /// Pad each side by this many pixels, then crop back to the original size at random.
    pub crop_pad: usize,
    pub flip: bool,
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn sample_len(&self) -> usize {
        self.channels * self.height * self.width
    }
    /// Keeps the first `n` samples.
    pub fn truncate(&mut self, n: usize) {
        if n < self.len() {
            self.labels.truncate(n);
            self.images.truncate(n * self.sample_len());
            if let Some(f) = &self.files {
                let mut paths = f.paths.clone();
                paths.truncate(n);
                let files = folder::Files {
                    paths,
                    size: f.size,
                    strict: f.strict,
                    failures: Default::default(),
                };
                self.files = Some(std::sync::Arc::new(files));
            }
        }
    }
    /// Normalised pixels of sample `i`, appended to `out`; augmented when `rng` is given and
    /// the set has an augmentation (padding is 0 after normalisation: the mean colour).
    fn push_sample(&self, i: usize, out: &mut Vec<f32>, mut rng: Option<&mut Rng>) -> Result<()> {
        let s = self.sample_len();
        let (h, w) = (self.height, self.width);
        let decoded;
        let img = match &self.files {
            Some(f) => {
                decoded = f.decode(i, rng.as_deref_mut())?;
                &decoded[..]
            }
            None => &self.images[i * s..(i + 1) * s],
        };
        let (dy, dx, flip) = match (self.augment, rng) {
            (Some(a), Some(r)) => {
                let p = a.crop_pad as isize;
                let dy = r.below(2 * a.crop_pad + 1) as isize - p;
                let dx = r.below(2 * a.crop_pad + 1) as isize - p;
                (dy, dx, a.flip && r.below(2) == 1)
            }
            _ => (0, 0, false),
        };
        for c in 0..self.channels {
            for y in 0..h {
                for x in 0..w {
                    let sx = if flip { w - 1 - x } else { x } as isize + dx;
                    let sy = y as isize + dy;
                    let v = if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                        (img[(c * h + sy as usize) * w + sx as usize] as f32 / 255.0 - self.mean[c])
                            / self.std[c]
                    } else {
                        0.0
                    };
                    out.push(v);
                }
            }
        }
        Ok(())
    }
}

/// Fashion-MNIST normalisation (mean/std of the training pixels).
pub const FASHION_MNIST_MEAN: f32 = 0.2860;
pub const FASHION_MNIST_STD: f32 = 0.3530;
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Default location of the Debian package `dataset-fashion-mnist`.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

const SUBSET: [(&str, &[u8]); 4] = [
    (
        "train-images-idx3-ubyte",
        include_bytes!("../../data/fashion-mnist-subset/train-images-idx3-ubyte.gz"),
    ),
    (
        "train-labels-idx1-ubyte",
        include_bytes!("../../data/fashion-mnist-subset/train-labels-idx1-ubyte.gz"),
    ),
    (
        "t10k-images-idx3-ubyte",
        include_bytes!("../../data/fashion-mnist-subset/t10k-images-idx3-ubyte.gz"),
    ),
    (
        "t10k-labels-idx1-ubyte",
        include_bytes!("../../data/fashion-mnist-subset/t10k-labels-idx1-ubyte.gz"),
    ),
];

/// Where a MNIST-format dataset comes from.
#[derive(Clone, Debug)]
pub enum Source {
    Dir(PathBuf),
    /// The 2000/1000-image subset compiled into the binary.
    Embedded,
}

impl Source {
    /// `--data-dir` if given; else the Debian package location if present; else the embedded
    /// subset (with a notice, since accuracy on 2000 images is not comparable).
    pub fn fashion_mnist(data_dir: Option<&Path>) -> Self {
        match data_dir {
            Some(d) => Source::Dir(d.to_path_buf()),
            None if Path::new(FASHION_MNIST_DIR).is_dir() => Source::Dir(FASHION_MNIST_DIR.into()),
            None => Source::Embedded,
        }
    }

    fn read(&self, stem: &str) -> Result<idx::Idx> {
        match self {
            Source::Dir(d) => idx::read(d, stem),
            Source::Embedded => {
                let (_, bytes) = SUBSET
                    .iter()
                    .find(|(n, _)| *n == stem)
                    .expect("embedded file");
                idx::decode(bytes, Path::new(&format!("<embedded>/{stem}.gz")))
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Dir(d) => d.display().to_string(),
            Source::Embedded => "embedded subset (2000 train / 1000 test images)".into(),
        }
    }
}

/// Loads a MNIST-format split (`train` or `t10k`): images [N, rows, cols] and labels [N].
pub fn load_mnist_format(
    src: &Source,
    split: &str,
    name: &str,
    classes: usize,
    mean: f32,
    std: f32,
) -> Result<ImageSet> {
    let images = src.read(&format!("{split}-images-idx3-ubyte"))?;
    let labels = src.read(&format!("{split}-labels-idx1-ubyte"))?;
    let where_ = || PathBuf::from(format!("{}/{split}", src.describe()));
    if images.dims.len() != 3 {
        return Err(Error::data(
            where_(),
            format!(
                "images have dims {:?}, expected [N, rows, cols]",
                images.dims
            ),
        ));
    }
    if labels.dims.len() != 1 || labels.dims[0] != images.dims[0] {
        return Err(Error::data(
            where_(),
            format!(
                "{} labels for {} images",
                labels.dims.first().copied().unwrap_or(0),
                images.dims[0]
            ),
        ));
    }
    if let Some((i, &l)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= classes)
    {
        return Err(Error::data(
            where_(),
            format!("label {l} of sample {i} is not below {classes} classes"),
        ));
    }
    Ok(ImageSet {
        name: name.into(),
        images: images.data,
        labels: labels.data.iter().map(|&l| l as u32).collect(),
        channels: 1,
        height: images.dims[1],
        width: images.dims[2],
        classes,
        mean: vec![mean],
        std: vec![std],
        augment: None,
        files: None,
    })
}

pub fn fashion_mnist(src: &Source, train: bool) -> Result<ImageSet> {
    let split = if train { "train" } else { "t10k" };
    load_mnist_format(
        src,
        split,
        "fashion-mnist",
        10,
        FASHION_MNIST_MEAN,
        FASHION_MNIST_STD,
    )
}

/// One batch: normalised images [B, C, H, W], labels [B], and how many rows are real (the
/// last evaluation batch is padded with copies of sample 0 to the compiled batch size).
/// `error` reports an image that could not be decoded in strict mode.
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    pub valid: usize,
    pub error: Option<String>,
}

/// Assembles batches of `batch` samples on background threads, `ahead` batches in advance
/// (file datasets decode on up to 4 workers; batches still arrive in order). Training order
/// is shuffled with `seed` and the last partial batch dropped; evaluation order is the
/// dataset order, with the last batch padded. Batches start at number `first` (a run resumed
/// within an epoch); each is the same as when all are drawn.
pub fn batches(
    set: std::sync::Arc<ImageSet>,
    batch: usize,
    shuffle: Option<u64>,
    first: usize,
    ahead: usize,
) -> mpsc::Receiver<Batch> {
    shard_batches(set, batch, shuffle, first, ahead, Shard::WHOLE)
}

/// One data-parallel rank's part of every global batch.
#[derive(Clone, Copy, Debug)]
pub struct Shard {
    pub rank: usize,
    pub ranks: usize,
}

impl Shard {
    pub const WHOLE: Shard = Shard { rank: 0, ranks: 1 };
}

/// [`batches`] of one rank: global batch `b` is samples `b·G .. (b+1)·G` of the epoch's order
/// (G = `batch` × ranks), and this rank takes its `batch` of them, the `rank`-th. A sample's
/// augmentation depends on its place in the global batch only, so N ranks of batch B see the
/// same images as one rank of batch N·B (docs/distributed.md).
pub fn shard_batches(
    set: std::sync::Arc<ImageSet>,
    batch: usize,
    shuffle: Option<u64>,
    first: usize,
    ahead: usize,
    shard: Shard,
) -> mpsc::Receiver<Batch> {
    let mut order: Vec<usize> = (0..set.len()).collect();
    if let Some(seed) = shuffle {
        Rng::new(seed).shuffle(&mut order);
    }
    let global = batch * shard.ranks;
    let n_batches = if shuffle.is_some() {
        set.len() / global
    } else {
        set.len().div_ceil(global)
    };
    let workers = if set.files.is_some() {
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 4)
    } else {
        1
    };
    let order = std::sync::Arc::new(order);
    let mut lanes = vec![];
    for w in 0..workers {
        let (tx, rx) = mpsc::sync_channel::<Batch>(ahead.max(1));
        lanes.push(rx);
        let (set, order) = (set.clone(), order.clone());
        std::thread::spawn(move || {
            for b in (first + w..n_batches).step_by(workers) {
                let start = (b * global + shard.rank * batch).min(order.len());
                let idx = &order[start..(start + batch).min(order.len())];
                let mut out = Batch {
                    images: Vec::with_capacity(batch * set.sample_len()),
                    labels: vec![],
                    valid: idx.len(),
                    error: None,
                };
                for (k, &i) in idx
                    .iter()
                    .chain(std::iter::repeat_n(&0, batch - idx.len()))
                    .enumerate()
                {
                    // Augmentation randomness per sample of the global batch, so it depends
                    // on neither the worker count nor the sharding.
                    let mut rng = shuffle.filter(|_| k < idx.len()).map(|seed| {
                        let place = (b * global + shard.rank * batch + k) as u64;
                        Rng::new(seed ^ 0x5eed ^ place.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                    });
                    if let Err(e) = set.push_sample(i, &mut out.images, rng.as_mut()) {
                        out.error = Some(e.to_string());
                        let _ = tx.send(out);
                        return;
                    }
                    out.labels.push(set.labels[i]);
                }
                if tx.send(out).is_err() {
                    return; // receiver gone
                }
            }
        });
    }
    // Merge the lanes in batch order.
    let (tx, rx) = mpsc::sync_channel(ahead.max(1));
    std::thread::spawn(move || {
        for b in first..n_batches {
            match lanes[(b - first) % lanes.len()].recv() {
                Ok(batch) => {
                    let stop = batch.error.is_some();
                    if tx.send(batch).is_err() || stop {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    rx
}

/// `--dataset` names of the image path.
pub const DATASETS: [&str; 4] = [
    "fashion-mnist",
    "cifar10:PATH",
    "cifar100:PATH",
    "folder:PATH",
];

/// Options of folder datasets.
#[derive(Clone, Copy, Debug)]
pub struct FolderOpts {
    pub input_size: usize,
    /// Stop at the first undecodable image instead of skipping or blanking it.
    pub strict: bool,
}

impl Default for FolderOpts {
    fn default() -> Self {
        FolderOpts {
            input_size: 224,
            strict: false,
        }
    }
}

/// (train, test) splits of a dataset by name: `fashion-mnist`, `cifar10:PATH`,
/// `cifar100:PATH` or `folder:PATH` (ImageFolder with `train/` and `val/`).
pub fn load_dataset(
    name: &str,
    data_dir: Option<&Path>,
    folder: FolderOpts,
) -> Result<(ImageSet, ImageSet, String)> {
    let (kind, path) = match name.split_once(':') {
        Some((k, p)) => (k, Some(Path::new(p))),
        None => (name, None),
    };
    match (kind, path) {
        ("fashion-mnist", None) => {
            let src = Source::fashion_mnist(data_dir);
            Ok((
                fashion_mnist(&src, true)?,
                fashion_mnist(&src, false)?,
                src.describe(),
            ))
        }
        ("folder", Some(root)) => {
            let train = folder::load(root, "train", folder.input_size, folder.strict)?;
            let val = folder::load(root, "val", folder.input_size, folder.strict)?;
            Ok((train, val, root.display().to_string()))
        }
        ("cifar10" | "cifar100", Some(dir)) => {
            let hundred = kind == "cifar100";
            let (train, test) = (
                cifar::load(dir, hundred, true)?,
                cifar::load(dir, hundred, false)?,
            );
            Ok((train, test, dir.display().to_string()))
        }
        ("cifar10" | "cifar100" | "folder", None) => Err(Error::Invalid(format!(
            "--dataset {kind} needs the directory of its files: {kind}:PATH"
        ))),
        _ => Err(Error::Invalid(format!(
            "unknown dataset '{name}'; valid datasets: {}",
            DATASETS.join(", ")
        ))),
    }
}
