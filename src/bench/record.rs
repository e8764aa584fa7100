//! The benchmark record `bench --json` writes and `bench compare` reads: one JSON document per
//! run, schema `padnet-bench/1`, every field described in docs/benchmarks.md. Fields are only
//! added within a schema version; a reader refuses another major version by name.

use super::timing::{Method, Stats};
use crate::error::{Error, Result};
use crate::gpu::{tuning::Precision, Gpu};
use crate::nn::dynamic::DyForm;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const SCHEMA: &str = "padnet-bench/1";
/// The wgpu this binary is built with (Cargo.toml pins it exactly; a test keeps the two equal).
pub const WGPU_VERSION: &str = "30.0.2";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub schema: String,
    /// When the run started, RFC 3339 UTC.
    pub created: String,
    pub tool: Tool,
    pub adapter: Adapter,
    pub system: System,
    /// The limits the device was opened with (portable, the same on every adapter) and the
    /// optional features it was given.
    pub limits: BTreeMap<String, u64>,
    pub features: Vec<String>,
    /// How plain GEMMs picked their kernel: `registers`, `tiled` or `subgroup` (fixed), or
    /// `auto` (timed per shape class; each workload's `kernels` says what ran). Absent in
    /// records made before it was kept, and in PyTorch's.
    #[serde(default)]
    pub gemm_policy: Option<String>,
    /// The precision GEMMs multiplied in: `f32`, or `f16` (`--precision f16`). Absent in
    /// records made before it was kept (all f32), and in PyTorch's.
    #[serde(default)]
    pub precision: Option<String>,
    /// With `precision` f16: whether GEMMs and convolutions read their weights stored as f16
    /// (the f16 copy of the parameters, per-sample kernels assembled as f16; false with
    /// `PADNET_HALF_WEIGHTS=0`). Absent with
    /// f32, in records made before it was kept, and in PyTorch's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_weights: Option<bool>,
    /// On GPUs: whether convolutions with few workgroups split their reduction over channels
    /// (docs/architecture.md "Split reductions on GPUs"; false with `PADNET_SPLIT_K=0`).
    /// Absent on CPU adapters (which never split), in records made before it was kept, and
    /// in PyTorch's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_k: Option<bool>,
    /// On GPUs: how convolutions' forward and input gradient picked their kernels, `auto`
    /// (per class by the autotune), `registers` or `tiled` (docs/architecture.md "Tiled
    /// convolutions"; `PADNET_CONV`). Absent on CPU adapters (always `registers` there), in
    /// records made before it was kept, and in PyTorch's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv_kernel: Option<String>,
    /// The runtime checks wgpu wrote into the shaders: `bounds` (index clamps) and `loops`
    /// (loop counters); both with `PADNET_SHADER_CHECKS=1` (docs/architecture.md "Shader
    /// runtime checks"). Absent in records made before it was kept (which had both), and in
    /// PyTorch's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shader_checks: Option<Vec<String>>,
    /// How DY-Conv layers ran: `per-sample`, or `mixed` / `mixed:N` outputs of batched
    /// convolutions (`PADNET_DY_FORM`, docs/architecture.md "Two forms of DY-Conv"). Absent
    /// in records made before it was kept (per sample), and in PyTorch's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dy_form: Option<String>,
    /// Measured throughput ceilings of this adapter; absent when `--no-peaks`.
    pub peaks: Option<Peaks>,
    pub workloads: Vec<Workload>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
    /// `git describe`-style revision of the source tree the binary was built from, with
    /// `-dirty` when it had uncommitted changes; null outside a git checkout.
    pub git_revision: Option<String>,
    pub wgpu_version: String,
    /// Cargo profile of the binary ("release" or "debug").
    pub profile: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Adapter {
    pub name: String,
    /// PCI vendor and device ids (0 where the backend reports none).
    pub vendor_id: u32,
    pub device_id: u32,
    /// discrete-gpu, integrated-gpu, virtual-gpu, cpu or other.
    pub device_type: String,
    /// vulkan, metal, dx12, gl or browser-webgpu.
    pub backend: String,
    pub driver: String,
    pub driver_info: String,
    /// Fewest and most lanes of a subgroup, where the device was given subgroup operations.
    #[serde(default)]
    pub subgroup_lanes: Option<[u32; 2]>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct System {
    /// e.g. "linux", from the target the binary was built for.
    pub os: String,
    /// The distribution's name and version (/etc/os-release), where known.
    pub os_version: Option<String>,
    pub arch: String,
    pub cpu: Option<String>,
    pub cpu_threads: usize,
    pub hostname: Option<String>,
}

/// Ceilings measured by small probe kernels (docs/benchmarks.md, "Peaks").
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Peaks {
    /// f32 fused multiply-adds, counted as 2 FLOPs each.
    pub fma_gflops: f64,
    /// Bytes read plus written per second by a streaming copy kernel.
    pub bandwidth_gbs: f64,
    /// Microseconds per small dispatch that waits for the one before (the floor under every
    /// kernel of a graph); absent from records made before it was measured.
    #[serde(default)]
    pub dispatch_us: Option<f64>,
}

impl std::fmt::Display for Peaks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} GFLOP/s FMA, {:.1} GB/s copy",
            self.fma_gflops, self.bandwidth_gbs
        )?;
        match self.dispatch_us {
            Some(us) => write!(f, ", {us:.1} µs per dependent dispatch"),
            None => Ok(()),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Workload {
    /// kernels, layers, train or infer.
    pub suite: String,
    /// Unique within a record; `compare` matches workloads across records by it.
    pub name: String,
    /// Named shapes of the inputs (and, for models, the configuration).
    pub shapes: BTreeMap<String, Vec<usize>>,
    pub dtype: String,
    pub timing: Timing,
    /// Milliseconds per repetition of every sample.
    pub samples_ms: Vec<f64>,
    #[serde(flatten)]
    pub stats: Stats,
    /// Work per repetition, where it is defined (kernels and layers).
    pub flops: Option<f64>,
    pub bytes: Option<f64>,
    pub gflops: Option<f64>,
    pub gbs: Option<f64>,
    /// `gflops` and `gbs` as percentages of the adapter's measured peaks.
    pub pct_peak_flops: Option<f64>,
    pub pct_peak_bandwidth: Option<f64>,
    /// Items per second (images, tokens) of model workloads, with their unit.
    pub throughput: Option<f64>,
    pub throughput_unit: Option<String>,
    /// Peak GPU memory of the workload's buffers, where known.
    pub memory_bytes: Option<u64>,
    /// The kernels it ran ("shader:entry", each once): e.g. which GEMM kernel this adapter's
    /// autotune chose. Empty for the train suite (whole training sessions) and in records
    /// made before it was kept.
    #[serde(default)]
    pub kernels: Vec<String>,
    pub check: Check,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Timing {
    pub method: Method,
    /// Untimed submits before the samples.
    pub warmup: usize,
    pub samples: usize,
    /// Repetitions per sample (each sample is their total time divided by this).
    pub reps: usize,
}

/// Whether the workload computed the right result, and how that was established.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Check {
    pub correct: bool,
    /// What was compared, e.g. "all outputs vs the f64 CPU reference" or "loss finite".
    pub method: String,
    /// Normwise relative error max|gpu − cpu| / max|cpu| where a reference was compared.
    pub error: Option<f64>,
    pub tolerance: Option<f64>,
}

impl Workload {
    /// The rate it is read by, with its unit: items per second for model workloads, else
    /// GFLOP/s, else GB/s.
    pub fn rate(&self) -> Option<(f64, &str)> {
        match (self.throughput, &self.throughput_unit) {
            (Some(t), Some(unit)) => Some((t, unit.as_str())),
            _ => self
                .gflops
                .map(|g| (g, "GFLOP/s"))
                .or(self.gbs.map(|b| (b, "GB/s"))),
        }
    }

    /// Fills the derived rates from `flops`, `bytes` and `peaks`.
    pub fn derive_rates(&mut self, peaks: Option<&Peaks>) {
        let s = self.stats.median_ms * 1e-3;
        self.gflops = self.flops.map(|f| f / s / 1e9);
        self.gbs = self.bytes.map(|b| b / s / 1e9);
        if let Some(p) = peaks {
            self.pct_peak_flops = self.gflops.map(|g| 100.0 * g / p.fma_gflops);
            self.pct_peak_bandwidth = self.gbs.map(|g| 100.0 * g / p.bandwidth_gbs);
        }
    }
}

impl Record {
    /// A record for `gpu`, without peaks or workloads yet.
    pub fn new(gpu: &Gpu) -> Record {
        let info = &gpu.info;
        let on_gpu = info.device_type != wgpu::DeviceType::Cpu;
        let l = &gpu.limits;
        let limits = BTreeMap::from([
            ("max_buffer_size".to_string(), l.max_buffer_size),
            (
                "max_storage_buffer_binding_size".to_string(),
                l.max_storage_buffer_binding_size,
            ),
            (
                "max_storage_buffers_per_shader_stage".to_string(),
                l.max_storage_buffers_per_shader_stage as u64,
            ),
            (
                "max_compute_invocations_per_workgroup".to_string(),
                l.max_compute_invocations_per_workgroup as u64,
            ),
            (
                "max_compute_workgroup_storage_size".to_string(),
                l.max_compute_workgroup_storage_size as u64,
            ),
        ]);
        Record {
            schema: SCHEMA.to_string(),
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            tool: Tool {
                name: env!("CARGO_PKG_NAME").to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                git_revision: git_revision(),
                wgpu_version: WGPU_VERSION.to_string(),
                profile: if cfg!(debug_assertions) {
                    "debug"
                } else {
                    "release"
                }
                .to_string(),
            },
            adapter: Adapter {
                name: info.name.clone(),
                vendor_id: info.vendor,
                device_id: info.device,
                device_type: kebab(&format!("{:?}", info.device_type)),
                backend: info.backend.to_str().to_string(),
                driver: info.driver.clone(),
                driver_info: info.driver_info.clone(),
                subgroup_lanes: gpu.subgroup_lanes(),
            },
            system: System::current(),
            limits,
            features: gpu
                .features
                .iter_names()
                .map(|(name, _)| name.to_string())
                .collect(),
            gemm_policy: Some(gpu.gemm.name().to_string()),
            precision: Some(gpu.precision.name().to_string()),
            half_weights: (gpu.precision == Precision::F16).then_some(gpu.half_weights),
            split_k: on_gpu.then_some(gpu.split_k),
            conv_kernel: on_gpu.then(|| gpu.conv.name().to_string()),
            shader_checks: Some(crate::gpu::shaders::check_names(gpu.shader_checks)),
            dy_form: DyForm::from_env().ok().map(DyForm::name),
            peaks: None,
            workloads: vec![],
        }
    }

    /// Writes the record as pretty JSON, atomically (never a half-written file).
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("records serialise");
        crate::checkpoint::write_atomic(path, format!("{json}\n").as_bytes())
    }

    pub fn load(path: &Path) -> Result<Record> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::data(path, format!("not JSON: {e}")))?;
        match value.get("schema").and_then(|s| s.as_str()) {
            Some(SCHEMA) => {}
            Some(other) => {
                return Err(Error::data(
                    path,
                    format!("schema '{other}'; this build reads '{SCHEMA}'"),
                ))
            }
            None => return Err(Error::data(path, "no \"schema\" field: not a bench record")),
        }
        serde_json::from_value(value).map_err(|e| Error::data(path, format!("bad record: {e}")))
    }

    /// How `compare` labels a record's column: "adapter (backend, settings…)".
    pub fn label(&self) -> String {
        let mut parts = vec![self.adapter.backend.clone()];
        parts.extend(self.settings());
        format!("{} ({})", self.adapter.name, parts.join(", "))
    }

    /// The settings the record ran with that are not the defaults (`bench` prints them under
    /// the adapter): the precision where it is not f32, "f32 weights" where f16 kernels read
    /// f32 weights, "whole reductions" where a GPU's convolutions did not split theirs, "tiled
    /// convolutions" or "registers convolutions" where a GPU's convolution kernels were fixed
    /// (not autotuned), "checked shaders" where the shaders had all of wgpu's runtime checks,
    /// "DY-Conv mixed…" where DY-Conv and PAD-Conv layers ran as mixed outputs.
    pub fn settings(&self) -> Vec<String> {
        let mut settings = vec![];
        match self.precision.as_deref() {
            Some(p) if p != "f32" => settings.push(p.to_string()),
            _ => {}
        }
        if self.half_weights == Some(false) {
            settings.push("f32 weights".into());
        }
        if self.split_k == Some(false) {
            settings.push("whole reductions".into());
        }
        match self.conv_kernel.as_deref() {
            Some(k) if k != "auto" => settings.push(format!("{k} convolutions")),
            _ => {}
        }
        let checks = self.shader_checks.as_ref();
        if checks.is_some_and(|c| c.iter().any(|c| c == "loops")) {
            settings.push("checked shaders".into());
        }
        match self.dy_form.as_deref() {
            Some(form) if form != "per-sample" => settings.push(format!("DY-Conv {form}")),
            _ => {}
        }
        settings
    }
}

impl System {
    fn current() -> System {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let os_version = read("/etc/os-release").and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        });
        let cpu = read("/proc/cpuinfo").and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        });
        System {
            os: std::env::consts::OS.to_string(),
            os_version,
            arch: std::env::consts::ARCH.to_string(),
            cpu,
            cpu_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            hostname: read("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()),
        }
    }
}

/// `DiscreteGpu` → `discrete-gpu`.
fn kebab(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The revision of the source tree this binary was built from, read with git from that tree
/// (its path is compiled in); None when git or the tree is not there.
fn git_revision() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let rev = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !rev.is_empty()).then_some(rev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wgpu_version_matches_the_pinned_dependency() {
        let manifest = include_str!("../../Cargo.toml");
        assert!(
            manifest.contains(&format!("wgpu = \"={WGPU_VERSION}\"")),
            "Cargo.toml pins another wgpu than WGPU_VERSION {WGPU_VERSION}"
        );
    }

    #[test]
    fn labels_name_every_setting_that_is_not_the_default() {
        let mut r: Record =
            serde_json::from_str(include_str!("../../results/lavapipe.json")).unwrap();
        (r.adapter.name, r.adapter.backend) = ("A".into(), "vulkan".into());
        r.precision = None;
        assert_eq!(r.label(), "A (vulkan)");
        r.precision = Some("f32".into());
        assert_eq!(r.label(), "A (vulkan)");
        (r.precision, r.half_weights) = (Some("f16".into()), Some(true));
        assert_eq!(r.label(), "A (vulkan, f16)");
        r.half_weights = Some(false);
        assert_eq!(r.label(), "A (vulkan, f16, f32 weights)");
        (r.precision, r.half_weights, r.split_k) = (None, None, Some(true));
        assert_eq!(r.label(), "A (vulkan)");
        r.split_k = Some(false);
        assert_eq!(r.label(), "A (vulkan, whole reductions)");
        (r.split_k, r.conv_kernel) = (Some(true), Some("auto".into()));
        assert_eq!(r.label(), "A (vulkan)");
        r.conv_kernel = Some("tiled".into());
        assert_eq!(r.label(), "A (vulkan, tiled convolutions)");
        r.conv_kernel = Some("registers".into());
        assert_eq!(r.label(), "A (vulkan, registers convolutions)");
        (r.conv_kernel, r.shader_checks) = (None, Some(vec![]));
        assert_eq!(r.label(), "A (vulkan)");
        r.shader_checks = Some(vec!["bounds".into()]);
        assert_eq!(r.label(), "A (vulkan)");
        r.shader_checks = Some(vec!["bounds".into(), "loops".into()]);
        assert_eq!(r.label(), "A (vulkan, checked shaders)");
        (r.shader_checks, r.dy_form) = (None, Some("per-sample".into()));
        assert_eq!(r.label(), "A (vulkan)");
        r.dy_form = Some("mixed:16".into());
        assert_eq!(r.label(), "A (vulkan, DY-Conv mixed:16)");
    }

    #[test]
    fn device_types_are_kebab_case() {
        assert_eq!(kebab("DiscreteGpu"), "discrete-gpu");
        assert_eq!(kebab("Cpu"), "cpu");
    }
}
