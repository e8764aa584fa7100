//! `padnet-wgpu bench`: benchmark suites whose every workload is timed (GPU timestamps where
//! the adapter has them), checked for correctness, and written as a versioned record
//! (docs/benchmarks.md).
//!
//! - `kernels`: single ops (GEMM, convolution and its gradients, DY-Conv, PAD mix, attention,
//!   LayerNorm, MoE routing) against the f64 CPU reference;
//! - `layers`: one layer's forward and backward in each mode (static, DY-Conv and PAD-Conv
//!   convolutions; dense, MoE and PAD-MoE FFN projections), against the same reference;
//! - `train`: training steps of whole models in each mode, interleaved;
//! - `infer`: whole-model inference in each mode and as a deploy file;
//! - the adapter's peaks (FMA throughput, bandwidth), so every rate is also a fraction of them.

pub mod compare;
pub mod kernels;
pub mod models;
pub mod peaks;
pub mod record;
pub mod timing;

use crate::error::{Error, Result};
use crate::executor::interp::{self, Values};
use crate::executor::{Executable, ParamStore};
use crate::gpu::tuning::Precision;
use crate::gpu::Gpu;
use crate::graph::{DType, Graph, Init, Role};
use crate::names::Named;
use crate::rng::Rng;
use kernels::Case;
use record::{Check, Peaks, Record, Timing, Workload};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use timing::{Stats, Timer};

/// Tolerance of a GPU result against the f64 reference: normwise relative error
/// max|gpu − cpu| / max|cpu| (the op tests' forward tolerance, docs/numerics.md).
pub const TOLERANCE: f64 = 1e-4;
/// The same where GEMMs multiply in f16: each operand alone carries a relative rounding of
/// 2^-11 ≈ 4.9e-4, so 1e-4 cannot hold; random products of length k err by about
/// 2^-11·√k·E|ab| against a largest output of about 4√k, some 1e-4 normwise (docs/numerics.md,
/// "Half precision").
pub const TOLERANCE_F16: f64 = 1e-2;

/// The check tolerance of results computed in `precision`.
pub fn tolerance(precision: Precision) -> f64 {
    match precision {
        Precision::F32 => TOLERANCE,
        Precision::F16 => TOLERANCE_F16,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Suite {
    Kernels,
    Layers,
    Train,
    Infer,
    All,
}

impl Named for Suite {
    const WHAT: &'static str = "suite";
}

impl Suite {
    fn includes(self, s: Suite) -> bool {
        self == s || self == Suite::All
    }
}

/// How a suite is run.
#[derive(Clone, Debug)]
pub struct Options {
    pub suite: Suite,
    /// Timed samples per workload (the median is reported).
    pub samples: usize,
    /// Target milliseconds per sample: fast kernels repeat until a sample takes about this.
    pub sample_ms: f64,
    /// Small shapes only (a smoke run; the numbers mean little).
    pub quick: bool,
    /// Only workloads whose name contains this.
    pub filter: Option<String>,
    /// Time with the wall clock even where GPU timestamps exist.
    pub wall_clock: bool,
    /// Measure the adapter's peaks.
    pub peaks: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            suite: Suite::Kernels,
            samples: 5,
            sample_ms: 200.0,
            quick: false,
            filter: None,
            wall_clock: false,
            peaks: true,
        }
    }
}

/// Runs `opts.suite` on `gpu`, calling `progress` with each finished workload.
pub fn run(gpu: &Arc<Gpu>, opts: &Options, progress: &mut dyn FnMut(&Workload)) -> Result<Record> {
    let timer = Timer::new(gpu.clone(), opts.wall_clock);
    let mut record = Record::new(gpu);
    if opts.peaks {
        record.peaks = Some(peaks::measure(gpu, &timer)?);
    }
    let wanted = |name: &str| opts.filter.as_deref().is_none_or(|f| name.contains(f));
    let graph_suites = [
        (Suite::Kernels, kernels::kernel_cases(opts.quick)?),
        (Suite::Layers, kernels::layer_cases(opts.quick)?),
        (Suite::Infer, {
            let mut cases = kernels::infer_cases(opts.quick);
            cases.extend(kernels::split_cases(opts.quick)?);
            cases
        }),
    ];
    for (suite, cases) in graph_suites {
        if !opts.suite.includes(suite) {
            continue;
        }
        for case in cases.iter().filter(|c| wanted(&c.name)) {
            let peaks = record.peaks.as_ref();
            let w = graph_workload(gpu, &timer, opts, peaks, suite, case)?;
            progress(&w);
            record.workloads.push(w);
        }
    }
    if opts.suite.includes(Suite::Train) {
        for w in models::train_suite(gpu, opts)? {
            if wanted(&w.name) {
                progress(&w);
                record.workloads.push(w);
            }
        }
    }
    if record.workloads.is_empty() {
        return Err(Error::Invalid(format!(
            "no workload of suite {} matches --filter {:?}",
            opts.suite.name(),
            opts.filter.as_deref().unwrap_or("")
        )));
    }
    Ok(record)
}

/// Random values for every input, parameter and state of `g`: masks 0/1 with 30 % ones,
/// BatchNorm variances in [0.5, 1.5), the attention's 1/T at 1, the rest standard normal.
fn random_values(g: &Graph, rng: &mut Rng) -> Result<HashMap<String, Vec<f32>>> {
    let mut values = HashMap::new();
    for t in &g.tensors {
        if !matches!(t.role, Role::Input | Role::Param(_) | Role::State(_)) {
            continue;
        }
        if t.dtype != DType::F32 {
            return Err(Error::Invalid(format!(
                "bench graphs take f32 inputs only ('{}' is {:?})",
                t.name, t.dtype
            )));
        }
        let v = if t.name.ends_with("mask") {
            (0..t.numel())
                .map(|_| (rng.uniform() < 0.3) as u8 as f32)
                .collect()
        } else if t.name.ends_with("running_var") {
            (0..t.numel()).map(|_| 0.5 + rng.uniform()).collect()
        } else if t.name == crate::nn::dynamic::INV_TEMPERATURE {
            vec![1.0; t.numel()]
        } else if let Role::Param(init) = &t.role {
            // Parameters near the scale a model gives them, so that a whole network's
            // activations stay where trained ones are: with N(0, 1) weights an untrained
            // ResNet-10's grow past f16's range (3.8e5 in its last stage; --precision f16).
            let scaled = |scale: f32, shift: f32, rng: &mut Rng| -> Vec<f32> {
                (0..t.numel())
                    .map(|_| shift + scale * rng.normal())
                    .collect()
            };
            match *init {
                Init::Normal(_) | Init::Uniform(_) => {
                    crate::executor::init_values(init, t.numel(), rng)
                }
                // Scales (BatchNorm and LayerNorm γ) near 1.
                Init::Ones => scaled(0.1, 1.0, rng),
                // Weights filled from a file (deploy files' static weights, benchmarks'
                // operands): N(0, 1 / fan-in); biases and shifts N(0, 1).
                Init::Zeros if t.shape.len() >= 2 => {
                    let fan_in = (t.numel() / t.shape[0]).max(1) as f32;
                    scaled(fan_in.sqrt().recip(), 0.0, rng)
                }
                Init::Zeros => scaled(1.0, 0.0, rng),
            }
        } else {
            (0..t.numel()).map(|_| rng.normal()).collect()
        };
        values.insert(t.name.clone(), v);
    }
    Ok(values)
}

/// Times `case` on the GPU and checks its outputs against the f64 interpreter.
fn graph_workload(
    gpu: &Arc<Gpu>,
    timer: &Timer,
    opts: &Options,
    peaks: Option<&Peaks>,
    suite: Suite,
    case: &Case,
) -> Result<Workload> {
    let mut g = Graph::new();
    let outs = (case.build)(&mut g, case.n)?;
    for &o in &outs {
        g.mark_output(o);
    }
    let values = random_values(&g, &mut Rng::new(7))?;
    let store = ParamStore::new(gpu.clone(), &g, 1)?;
    let mut shapes = BTreeMap::new();
    let mut bytes = 0usize;
    for (t, tensor) in g.tensors.iter().enumerate() {
        let Some(v) = values.get(&tensor.name) else {
            continue;
        };
        shapes.insert(tensor.name.clone(), tensor.shape.clone());
        bytes += 4 * v.len();
        if tensor.role == Role::Input {
            continue; // written after compiling
        }
        store
            .write(&tensor.name, v)
            .map_err(|e| Error::Invalid(format!("bench '{}': tensor {t}: {e}", case.name)))?;
    }
    bytes += outs
        .iter()
        .map(|&o| 4 * g.tensors[o].numel())
        .sum::<usize>();
    let exe = Executable::compile(gpu.clone(), g, &store)?;
    for (t, tensor) in exe.graph.tensors.iter().enumerate() {
        if tensor.role == Role::Input {
            exe.write(t, &values[&tensor.name])?;
        }
    }
    if crate::executor::profile::wanted() {
        println!("{}:", case.name);
        crate::executor::profile::print(&exe, 1)?;
    }
    let encode = |pass: &mut wgpu::ComputePass<'_>| exe.encode(pass);
    let (samples_ms, reps) = timer.samples(opts.samples, opts.sample_ms, 1000, &encode)?;
    let check = check_outputs(case, &exe, &store, &outs, &values)?;
    let stats = Stats::of(&samples_ms);
    let mut w = Workload {
        suite: suite.name(),
        name: case.name.clone(),
        shapes,
        dtype: "f32".into(),
        timing: Timing {
            method: timer.method(),
            warmup: timing::WARMUP_SUBMITS,
            samples: samples_ms.len(),
            reps,
        },
        throughput: case.items.map(|_| case.n as f64 / (stats.median_ms * 1e-3)),
        throughput_unit: case.items.map(String::from),
        stats,
        samples_ms,
        flops: case.flops,
        bytes: Some(bytes as f64),
        gflops: None,
        gbs: None,
        pct_peak_flops: None,
        pct_peak_bandwidth: None,
        memory_bytes: Some(exe.peak_bytes()),
        kernels: exe.kernels(),
        check,
    };
    w.derive_rates(peaks);
    Ok(w)
}

/// Compares the GPU outputs with the f64 interpreter of the case, rebuilt at `check_n` rows
/// where the case allows (inputs whose shape shrank give their first rows).
fn check_outputs(
    case: &Case,
    exe: &Executable,
    store: &ParamStore,
    outs: &[usize],
    values: &HashMap<String, Vec<f32>>,
) -> Result<Check> {
    let n = case.check_n.unwrap_or(case.n);
    let mut g = Graph::new();
    let ref_outs = (case.build)(&mut g, n)?;
    let mut v = Values::new(&g);
    for (t, tensor) in g.tensors.iter().enumerate() {
        if let Some(full) = values.get(&tensor.name) {
            let len = tensor.numel();
            v.set(t, full[..len].iter().map(|&x| x as f64).collect());
        }
    }
    interp::run(&g, &mut v);
    let mut error = 0.0f64;
    for (&o, &r) in outs.iter().zip(&ref_outs) {
        let want = v.get(r);
        let got = exe.read(o, store)?;
        if g.tensors[r].shape[1..] != exe.graph.tensors[o].shape[1..] {
            return Err(Error::Invalid(format!(
                "bench '{}': output {} changes shape beyond its leading axis at {n} rows",
                case.name, g.tensors[r].name
            )));
        }
        let got: Vec<f64> = got[..want.len()].iter().map(|&x| x as f64).collect();
        error = error.max(rel_err(&got, want));
    }
    let method = match case.check_n {
        Some(rows) if rows < case.n => {
            format!("first {rows} of {} rows vs the f64 CPU reference", case.n)
        }
        _ => "every output vs the f64 CPU reference".to_string(),
    };
    let tolerance = tolerance(exe.gpu.precision);
    Ok(Check {
        correct: error <= tolerance,
        method,
        error: Some(error),
        tolerance: Some(tolerance),
    })
}

/// Normwise relative error max|got − want| / max|want| (NaN anywhere counts as infinite).
pub fn rel_err(got: &[f64], want: &[f64]) -> f64 {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    let diff = got.iter().zip(want).fold(0.0f64, |m, (a, b)| {
        let d = (a - b).abs();
        if d.is_nan() {
            f64::INFINITY
        } else {
            m.max(d)
        }
    });
    diff / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_error_is_normwise_and_nan_fails() {
        assert_eq!(rel_err(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert!((rel_err(&[1.0, 2.1], &[1.0, 2.0]) - 0.05).abs() < 1e-12);
        assert_eq!(rel_err(&[f64::NAN, 2.0], &[1.0, 2.0]), f64::INFINITY);
    }
}
