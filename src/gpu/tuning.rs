//! Which GEMM kernel runs on this adapter (docs/architecture.md, "GEMM kernels and autotune"):
//! the register-blocked kernel (`matmul.wgsl`, lavapipe's), the workgroup-tiled one
//! (`matmul_tiled.wgsl`, with 64×64 or 128×128 tiles) or the subgroup one
//! (`matmul_subgroup.wgsl`, on adapters with subgroup operations), fixed or chosen per shape
//! class by a short timing that is kept on disk per adapter and driver, so it runs once per
//! machine.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GemmKernel {
    /// `matmul.wgsl` `main`: each invocation's block read straight from global memory.
    Registers,
    /// `matmul_tiled.wgsl`: tiles of A and B staged in workgroup memory; 4×4 blocks in
    /// 16×16 invocations (64×64 tiles).
    Tiled,
    /// `matmul_tiled.wgsl` with 8×8 blocks (128×128 tiles, 16 KiB of workgroup memory): twice
    /// the FMAs per workgroup-memory load, for large GEMMs on GPUs.
    TiledLarge,
    /// `matmul_subgroup.wgsl`: A read once per row of invocations and passed around by
    /// subgroup shuffles. Devices without subgroup operations run `Registers` in its place.
    Subgroup,
}

/// How this device picks GEMM kernels: `PADNET_GEMM=registers|tiled|tiled-large|subgroup|auto`
/// overrides the default, which is `subgroup` on CPU adapters (lavapipe: its shuffles are cheap, so
/// sharing A's loads pays, while barriers are costly and there is no cache hierarchy for
/// tiles; `registers` where there are no subgroups) and `auto` on GPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmPolicy {
    Fixed(GemmKernel),
    /// Time every kernel the device has on each new shape class and keep the fastest (see
    /// `TuneTable`).
    Autotune,
}

impl GemmKernel {
    /// Its name in `PADNET_GEMM` and in tables and records.
    pub fn name(self) -> &'static str {
        match self {
            GemmKernel::Registers => "registers",
            GemmKernel::Tiled => "tiled",
            GemmKernel::TiledLarge => "tiled-large",
            GemmKernel::Subgroup => "subgroup",
        }
    }
}

impl GemmPolicy {
    /// Its name in `PADNET_GEMM` (`auto` for the autotune).
    pub fn name(self) -> &'static str {
        match self {
            GemmPolicy::Fixed(k) => k.name(),
            GemmPolicy::Autotune => "auto",
        }
    }

    pub fn for_device(device_type: wgpu::DeviceType) -> crate::Result<GemmPolicy> {
        let kernels = [
            GemmKernel::Registers,
            GemmKernel::Tiled,
            GemmKernel::TiledLarge,
            GemmKernel::Subgroup,
        ];
        match std::env::var("PADNET_GEMM").as_deref() {
            Ok("auto") => Ok(GemmPolicy::Autotune),
            Ok(name) => kernels
                .into_iter()
                .find(|k| k.name() == name)
                .map(GemmPolicy::Fixed)
                .ok_or_else(|| {
                    crate::Error::Invalid(format!(
                        "PADNET_GEMM={name}: expected registers, tiled, tiled-large, subgroup or auto"
                    ))
                }),
            // The subgroup kernel (the register kernel where the device has no subgroups).
            Err(_) if device_type == wgpu::DeviceType::Cpu => {
                Ok(GemmPolicy::Fixed(GemmKernel::Subgroup))
            }
            Err(_) => Ok(GemmPolicy::Autotune),
        }
    }
}

/// The kernels a GPU convolution's forward or input gradient runs (docs/architecture.md,
/// "Tiled convolutions"): conv.wgsl's register-blocked ones or conv_tiled.wgsl's
/// workgroup-tiled ones. CPU adapters always run `Registers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvKernel {
    Registers,
    Tiled,
}

/// How a GPU picks its convolution kernels: `PADNET_CONV=registers|tiled|auto` overrides the
/// default, `auto`: each convolution class (geometry, samples, direction) a graph has that the
/// adapter's table lacks is timed with both kernels, and the faster kept (`TuneTable`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPolicy {
    Fixed(ConvKernel),
    Autotune,
}

impl ConvKernel {
    /// Its name in `PADNET_CONV` and in tables and records.
    pub fn name(self) -> &'static str {
        match self {
            ConvKernel::Registers => "registers",
            ConvKernel::Tiled => "tiled",
        }
    }
}

impl ConvPolicy {
    /// Its name in `PADNET_CONV` and in records (`auto` for the autotune).
    pub fn name(self) -> &'static str {
        match self {
            ConvPolicy::Fixed(k) => k.name(),
            ConvPolicy::Autotune => "auto",
        }
    }

    /// `PADNET_CONV`, else `auto`; an unknown name is an error.
    pub fn from_env() -> crate::Result<ConvPolicy> {
        match std::env::var("PADNET_CONV").as_deref() {
            Err(_) | Ok("auto") => Ok(ConvPolicy::Autotune),
            Ok(name) => [ConvKernel::Registers, ConvKernel::Tiled]
                .into_iter()
                .find(|k| k.name() == name)
                .map(ConvPolicy::Fixed)
                .ok_or_else(|| {
                    crate::Error::Invalid(format!(
                        "PADNET_CONV={name}: expected registers, tiled or auto"
                    ))
                }),
        }
    }
}

/// The precision GEMMs and the convolution forward multiply in (docs/architecture.md, "Half
/// precision"), chosen by `--precision` of `eval`, `bench`, `train` and `experiment` (where
/// gradients still multiply in f32: `PlanCtx::for_node`). f16 rounds both operands to f16 and
/// sums products in f16 over chunks of under 16 steps of k, each chunk added to f32
/// accumulators. Parameter weights are read from an f16 copy (`Gpu::half_weights`); every
/// other tensor stays f32 in memory. It needs `Features::SHADER_F16`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    F16,
}

impl Precision {
    /// Its name on the command line and in records.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }

    /// The line `eval` and `bench` print where it is not f32.
    pub fn notice(self) -> Option<&'static str> {
        (self == Precision::F16).then_some(
            "GEMMs and convolutions multiply in f16 (--precision f16); other kernels in f32",
        )
    }
}

/// The autotune results of one adapter and driver: GEMM shape class or convolution class →
/// the fastest kernel, with the times measured. Loaded when the device opens; every new entry
/// is written back at once (to a temporary file, then renamed, so a crash never leaves a torn
/// file).
#[derive(Debug)]
pub struct TuneTable {
    path: Option<PathBuf>,
    /// The adapter and driver the file names (`driver_of`).
    adapter: String,
    driver: String,
    entries: Mutex<Entries>,
}

#[derive(Clone, Debug, Default)]
struct Entries {
    gemm: BTreeMap<String, TuneEntry>,
    conv: BTreeMap<String, ConvTuneEntry>,
}

/// A convolution class's kernel (`ConvPolicy::Autotune`), with the best of a few runs of
/// each at the first shape that needed it, ms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvTuneEntry {
    pub kernel: ConvKernel,
    pub registers_ms: f64,
    /// None where the tiled kernels could not be built or run on this adapter.
    pub tiled_ms: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TuneEntry {
    pub kernel: GemmKernel,
    /// Best of a few runs of each kernel at the shape that first needed this class, ms.
    pub registers_ms: f64,
    pub tiled_ms: f64,
    pub tiled_large_ms: f64,
    /// None where the device has no subgroup operations.
    pub subgroup_ms: Option<f64>,
}

/// The version of the table file; a file of another version is ignored and tuned afresh
/// (version 2 added the subgroup kernel, version 3 the large tiles, version 4 the subgroup
/// kernel's vec4 form).
const TABLE_VERSION: u32 = 4;

#[derive(Serialize, Deserialize)]
struct TuneFile {
    /// Absent in version-1 files.
    #[serde(default)]
    version: u32,
    adapter: String,
    driver: String,
    entries: BTreeMap<String, TuneEntry>,
    /// Convolution classes; absent in files written before they were tuned.
    #[serde(default)]
    conv: BTreeMap<String, ConvTuneEntry>,
}

/// Where tables live: `$PADNET_CACHE_DIR`, else `$XDG_CACHE_HOME/padnet-wgpu`, else
/// `~/.cache/padnet-wgpu`; none when no such directory can be named.
fn cache_dir() -> Option<PathBuf> {
    let var = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("PADNET_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("padnet-wgpu")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("padnet-wgpu")))
}

impl TuneTable {
    /// The table of this adapter, read from its file where one is there and readable (a
    /// corrupt or foreign file is ignored, and replaced on the first new entry).
    pub fn load(info: &wgpu::AdapterInfo) -> TuneTable {
        let name: String = format!(
            "autotune-{}-{:04x}-{:04x}-{:?}.json",
            info.name, info.vendor, info.device, info.backend
        )
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
        TuneTable::at(cache_dir().map(|d| d.join(name)), info)
    }

    /// The table kept in the file `path` (none: in memory only).
    pub fn at(path: Option<PathBuf>, info: &wgpu::AdapterInfo) -> TuneTable {
        let entries = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice::<TuneFile>(&bytes).ok())
            .filter(|f| f.version == TABLE_VERSION && f.driver == driver_of(info))
            .map(|f| Entries {
                gemm: f.entries,
                conv: f.conv,
            })
            .unwrap_or_default();
        TuneTable {
            path,
            adapter: info.name.clone(),
            driver: driver_of(info),
            entries: Mutex::new(entries),
        }
    }

    /// A table that is never written (devices with no autotune).
    pub fn in_memory() -> TuneTable {
        TuneTable {
            path: None,
            adapter: String::new(),
            driver: String::new(),
            entries: Mutex::new(Entries::default()),
        }
    }

    pub fn path(&self) -> Option<&PathBuf> {
        self.path.as_ref()
    }

    pub fn get(&self, class: &str) -> Option<TuneEntry> {
        self.entries.lock().ok()?.gemm.get(class).cloned()
    }

    pub fn get_conv(&self, class: &str) -> Option<ConvTuneEntry> {
        self.entries.lock().ok()?.conv.get(class).cloned()
    }

    /// Records `entry` for GEMM class `class` and writes the table back. A table that cannot
    /// be written (read-only home, full disk) still serves this process; the error says where.
    pub fn insert(&self, class: &str, entry: TuneEntry) -> crate::Result<()> {
        self.update(|e| {
            e.gemm.insert(class.to_string(), entry);
        })
    }

    /// Records `entry` for convolution class `class`, as [`insert`](Self::insert).
    pub fn insert_conv(&self, class: &str, entry: ConvTuneEntry) -> crate::Result<()> {
        self.update(|e| {
            e.conv.insert(class.to_string(), entry);
        })
    }

    /// Applies `change` to the entries and writes the table back.
    fn update(&self, change: impl FnOnce(&mut Entries)) -> crate::Result<()> {
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| crate::Error::Invalid("autotune table poisoned".into()))?;
        change(&mut entries);
        let Some(path) = &self.path else {
            return Ok(());
        };
        let file = TuneFile {
            version: TABLE_VERSION,
            adapter: self.adapter.clone(),
            driver: self.driver.clone(),
            entries: entries.gemm.clone(),
            conv: entries.conv.clone(),
        };
        let json = serde_json::to_vec_pretty(&file).expect("the table serialises");
        let tmp = path.with_extension("json.part");
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&tmp, &json)?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| crate::Error::io(path, e))
    }
}

/// Tables are per driver version too: a driver update can change which kernel is faster.
fn driver_of(info: &wgpu::AdapterInfo) -> String {
    format!("{} {}", info.driver, info.driver_info)
}
