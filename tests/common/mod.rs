//! Shared test harness: one GPU per test binary, and `OpCase`, which runs a graph (forward +
//! backward) on the GPU and in the f64 CPU interpreter, compares every tensor, and checks the
//! CPU gradients against central finite differences.
#![allow(dead_code)]

use padnet_wgpu::executor::interp::{run_nodes, Values};
use padnet_wgpu::executor::{Executable, ParamStore};
use padnet_wgpu::gpu::tuning::{ConvKernel, ConvPolicy};
use padnet_wgpu::gpu::Gpu;
use padnet_wgpu::graph::autodiff::backward;
use padnet_wgpu::graph::{DType, Graph, Role, TensorId};
use padnet_wgpu::rng::Rng;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Forward tolerance (normwise relative: max|gpu − cpu| / max|cpu|).
pub const FWD_TOL: f64 = 1e-4;
/// Backward tolerance, same measure.
pub const BWD_TOL: f64 = 1e-3;
/// Finite differences (f64, h = 1e-6) vs the CPU backward, same measure.
pub const FD_TOL: f64 = 1e-5;

/// The backend tests must run on: `PADNET_EXPECT_BACKEND` (vulkan, metal, dx12, gl), default
/// Metal on macOS and Vulkan elsewhere, so a missing driver can't silently switch to GL.
pub fn expected_backend() -> wgpu::Backend {
    match std::env::var("PADNET_EXPECT_BACKEND")
        .unwrap_or_default()
        .to_lowercase()
        .as_str()
    {
        "metal" => wgpu::Backend::Metal,
        "dx12" => wgpu::Backend::Dx12,
        "gl" => wgpu::Backend::Gl,
        "vulkan" => wgpu::Backend::Vulkan,
        _ if cfg!(target_os = "macos") => wgpu::Backend::Metal,
        _ => wgpu::Backend::Vulkan,
    }
}

pub fn gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| {
        let gpu = Gpu::new(None).unwrap_or_else(|e| panic!("tests need a GPU adapter: {e}"));
        eprintln!("test adapter: {}", gpu.describe());
        Arc::new(gpu)
    })
    .clone()
}

/// A second device handle configured by `set` (its blocking, GEMM policy, subgroup width), so
/// kernel variants are tested on whatever adapter runs the tests.
pub fn gpu_with(set: impl FnOnce(&mut Gpu)) -> Arc<Gpu> {
    let mut gpu = Gpu::new(None).expect("GPU adapter");
    set(&mut gpu);
    Arc::new(gpu)
}

/// Makes `gpu` plan as a discrete GPU does (`PlanCtx::is_cpu` false), its convolutions
/// picking their kernels by `conv` (the tests choose, rather than a default autotune).
pub fn plan_as_gpu(gpu: &mut Gpu, conv: ConvPolicy) {
    gpu.info.device_type = wgpu::DeviceType::DiscreteGpu;
    gpu.conv = conv;
}

/// A second device handle that plans as a discrete GPU does, so the GPU forms of kernels that
/// CPU adapters replace are tested on whatever adapter runs the tests. Its convolutions run
/// the register-blocked kernels (`gpu_tiled_conv` the tiled ones).
pub fn gpu_planned_as_gpu() -> Arc<Gpu> {
    gpu_with(|gpu| plan_as_gpu(gpu, ConvPolicy::Fixed(ConvKernel::Registers)))
}

/// A second device handle that plans as a discrete GPU does and with its register blocking:
/// the kernel shapes a GPU runs, tested on whatever adapter runs the tests.
#[allow(dead_code)] // not every test binary uses it
pub fn gpu_planned_as_gpu_blocked() -> Arc<Gpu> {
    gpu_with(|gpu| {
        plan_as_gpu(gpu, ConvPolicy::Fixed(ConvKernel::Registers));
        gpu.blocking = padnet_wgpu::kernels::Blocking::GPU;
    })
}

/// A second device handle that plans as a discrete GPU does, with its blocking, and runs
/// convolutions on the workgroup-tiled kernels (`PADNET_CONV=tiled`, conv_tiled.wgsl).
#[allow(dead_code)] // not every test binary uses it
pub fn gpu_tiled_conv() -> Arc<Gpu> {
    gpu_with(|gpu| {
        plan_as_gpu(gpu, ConvPolicy::Fixed(ConvKernel::Tiled));
        gpu.blocking = padnet_wgpu::kernels::Blocking::GPU;
    })
}

/// A second device handle that uses the GPU register blocking, so both kernel variants are
/// tested on whatever adapter runs the tests.
pub fn gpu_with_blocking(b: padnet_wgpu::kernels::Blocking) -> Arc<Gpu> {
    gpu_with(|gpu| gpu.blocking = b)
}

/// A second device handle whose plain GEMMs follow `policy` (with a table at `table`, or in
/// memory), so the GPU-class GEMM kernel and the autotune are tested on any adapter.
pub fn gpu_with_gemm(
    policy: padnet_wgpu::gpu::tuning::GemmPolicy,
    table: Option<std::path::PathBuf>,
) -> Arc<Gpu> {
    gpu_with(|gpu| {
        gpu.gemm = policy;
        gpu.tuning = Arc::new(padnet_wgpu::gpu::tuning::TuneTable::at(table, &gpu.info));
    })
}

/// Whether the test adapter has f16 arithmetic (`--precision f16`); says so when it has not.
pub fn has_f16() -> bool {
    let gpu = gpu();
    let has = gpu.features.contains(wgpu::Features::SHADER_F16);
    if !has {
        eprintln!("SKIPPED: {} has no shader-f16", gpu.describe());
    }
    has
}

/// Logits computed with f16 multiplication (`half`) are within f16's tolerance of the f32
/// ones (normwise), and not bit for bit the same (the f16 path really ran).
pub fn assert_f16_close(f32_logits: &[f32], half: &[f32]) {
    let scale = f32_logits.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = f32_logits
        .iter()
        .zip(half)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    let tol = padnet_wgpu::bench::TOLERANCE_F16 as f32;
    assert!(
        diff > 0.0 && diff <= tol * scale,
        "f16 logits differ by {diff} (scale {scale})"
    );
}

pub fn rel_err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-6);
    got.iter()
        .zip(want)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

pub struct OpCase {
    pub name: String,
    pub g: Graph,
    pub y: TensorId,
    pub dy: TensorId,
    pub forward_nodes: usize,
    /// Gradient of each differentiable leaf (inputs with requires_grad, params).
    pub grads: Vec<(TensorId, TensorId)>,
    pub values: HashMap<TensorId, Vec<f32>>,
}

impl OpCase {
    /// `build` creates inputs/params and returns the output to differentiate. Every F32 input
    /// is marked requires_grad (so its gradient is checked); U32 inputs need `set` values.
    pub fn new(name: &str, build: impl FnOnce(&mut Graph) -> TensorId) -> Self {
        Self::build(name, build, true)
    }

    /// A case without gradients (ops that have no gradient rule, such as eval-mode BatchNorm).
    pub fn forward_only(name: &str, build: impl FnOnce(&mut Graph) -> TensorId) -> Self {
        Self::build(name, build, false)
    }

    fn build(name: &str, build: impl FnOnce(&mut Graph) -> TensorId, differentiate: bool) -> Self {
        let mut g = Graph::new();
        let y = build(&mut g);
        if !differentiate {
            g.mark_output(y);
            let forward_nodes = g.nodes.len();
            let shape_of_y = g.shape(y).to_vec();
            let dy = g.input("seed_grad", &shape_of_y, DType::F32);
            return OpCase {
                name: name.into(),
                g,
                y,
                dy,
                forward_nodes,
                grads: vec![],
                values: HashMap::new(),
            };
        }
        for t in g.tensors.iter_mut() {
            if t.role == Role::Input && t.dtype == DType::F32 {
                t.requires_grad = true;
            }
        }
        // Re-propagate requires_grad to the outputs built before the flags were set.
        for n in 0..g.nodes.len() {
            let rg = g.nodes[n]
                .inputs
                .iter()
                .any(|&i| g.tensors[i].requires_grad);
            for &o in &g.nodes[n].outputs.clone() {
                g.tensors[o].requires_grad = rg && g.tensors[o].dtype == DType::F32;
            }
        }
        let forward_nodes = g.nodes.len();
        let shape_of_y = g.shape(y).to_vec();
        let dy = g.input("seed_grad", &shape_of_y, DType::F32);
        let all = backward(&mut g, y, dy).expect("backward");
        let mut grads: Vec<(TensorId, TensorId)> = all
            .into_iter()
            .filter(|(t, _)| {
                let t = &g.tensors[*t];
                matches!(t.role, Role::Param(_)) || (t.role == Role::Input && t.name != "seed_grad")
            })
            .collect();
        // PAD masks are not trained, but their gradient (IMP's score) is checked like one.
        grads.extend(g.mask_grads.iter().map(|(&m, &d)| (m, d)));
        grads.sort();
        g.mark_output(y);
        for &(_, d) in &grads {
            g.mark_output(d);
        }
        OpCase {
            name: name.into(),
            g,
            y,
            dy,
            forward_nodes,
            grads,
            values: HashMap::new(),
        }
    }

    pub fn set(mut self, t: TensorId, v: Vec<f32>) -> Self {
        self.values.insert(t, v);
        self
    }

    fn fill(&mut self) {
        let mut rng = Rng::new(7);
        for t in 0..self.g.tensors.len() {
            let tensor = &self.g.tensors[t];
            let leaf = matches!(tensor.role, Role::Input | Role::Param(_) | Role::State(_));
            if leaf && !self.values.contains_key(&t) {
                assert_eq!(
                    tensor.dtype,
                    DType::F32,
                    "set values of U32 input '{}'",
                    tensor.name
                );
                let v = (0..tensor.numel()).map(|_| rng.normal()).collect();
                self.values.insert(t, v);
            }
        }
    }

    fn cpu_values(&self, overrides: &HashMap<TensorId, Vec<f64>>) -> Values {
        let mut v = Values::new(&self.g);
        for (&t, d) in &self.values {
            v.set(t, d.iter().map(|&x| x as f64).collect());
        }
        for (&t, d) in overrides {
            v.set(t, d.clone());
        }
        v
    }

    /// Σ y ⊙ seed after the forward part only (the function whose gradient backward computes).
    fn objective(&self, overrides: &HashMap<TensorId, Vec<f64>>) -> f64 {
        let mut v = self.cpu_values(overrides);
        run_nodes(&self.g, &mut v, 0..self.forward_nodes);
        v.get(self.y)
            .iter()
            .zip(v.get(self.dy))
            .map(|(a, b)| a * b)
            .sum()
    }

    /// Runs everything; panics with the failing tensor and its error.
    pub fn check(self) {
        self.check_on(gpu());
    }

    pub fn check_on(mut self, gpu: Arc<Gpu>) {
        self.fill();
        // CPU reference.
        let mut cpu = self.cpu_values(&HashMap::new());
        padnet_wgpu::executor::interp::run(&self.g, &mut cpu);

        // GPU.
        let store = ParamStore::new(gpu.clone(), &self.g, 0).expect("store");
        for (&t, d) in &self.values {
            let tensor = &self.g.tensors[t];
            match tensor.role {
                Role::Param(_) | Role::State(_) => {
                    store.write(&tensor.name, d).expect("write param")
                }
                _ => {}
            }
        }
        let exe = Executable::compile(gpu.clone(), self.g.clone(), &store).expect("compile");
        for (&t, d) in &self.values {
            let tensor = &self.g.tensors[t];
            if tensor.role == Role::Input {
                match tensor.dtype {
                    DType::F32 => exe.write(t, d).expect("write input"),
                    DType::U32 => exe
                        .write_u32(t, &d.iter().map(|&x| x as u32).collect::<Vec<_>>())
                        .expect("write u32"),
                }
            }
        }
        exe.run().expect("run");
        let read = |t: TensorId| -> Vec<f64> {
            exe.read(t, &store)
                .expect("read")
                .into_iter()
                .map(|v| v as f64)
                .collect()
        };

        // A device that multiplies in f16 is held to f16's tolerance (docs/numerics.md).
        let fwd_tol = match gpu.precision {
            padnet_wgpu::gpu::tuning::Precision::F32 => FWD_TOL,
            padnet_wgpu::gpu::tuning::Precision::F16 => padnet_wgpu::bench::TOLERANCE_F16,
        };
        let e = rel_err(&read(self.y), cpu.get(self.y));
        assert!(
            e <= fwd_tol,
            "{}: forward GPU vs CPU relative error {e:.2e} > {fwd_tol:.0e}",
            self.name
        );
        for &(leaf, d) in &self.grads {
            let e = rel_err(&read(d), cpu.get(d));
            let name = &self.g.tensors[leaf].name;
            assert!(
                e <= BWD_TOL,
                "{}: grad of '{name}' GPU vs CPU relative error {e:.2e} > {BWD_TOL:.0e}",
                self.name
            );
        }
        // Mutated state (running statistics) must match too.
        for t in self.g.states().collect::<Vec<_>>() {
            let name = &self.g.tensors[t].name;
            let got: Vec<f64> = store
                .read(name)
                .unwrap()
                .into_iter()
                .map(|v| v as f64)
                .collect();
            let e = rel_err(&got, cpu.get(t));
            assert!(
                e <= FWD_TOL,
                "{}: state '{name}' relative error {e:.2e}",
                self.name
            );
        }

        // Finite differences of the CPU forward vs the CPU backward, up to 24 elements per leaf.
        let h = 1e-6;
        for &(leaf, d) in &self.grads {
            let base: Vec<f64> = self.values[&leaf].iter().map(|&x| x as f64).collect();
            let analytic = cpu.get(d);
            let n = base.len();
            let picks: Vec<usize> = if n <= 24 {
                (0..n).collect()
            } else {
                (0..24).map(|i| i * n / 24).collect()
            };
            let mut fd = vec![];
            let mut an = vec![];
            for &i in &picks {
                let mut plus = base.clone();
                plus[i] += h;
                let mut minus = base.clone();
                minus[i] -= h;
                let lp = self.objective(&HashMap::from([(leaf, plus)]));
                let lm = self.objective(&HashMap::from([(leaf, minus)]));
                fd.push((lp - lm) / (2.0 * h));
                an.push(analytic[i]);
            }
            let e = rel_err(&an, &fd);
            let name = &self.g.tensors[leaf].name;
            assert!(e <= FD_TOL, "{}: CPU grad of '{name}' vs finite differences: relative error {e:.2e} > {FD_TOL:.0e}\n analytic {an:?}\n fd {fd:?}", self.name);
        }
    }
}

/// Encoder layers of [`minilm_l2`].
pub const MINILM_L2_LAYERS: usize = 2;

/// all-MiniLM-L6-v2 (scripts/fetch-minilm.sh) cut to its first two encoder layers, with its
/// embeddings, config and tokenizer: for the tests of text paths that need a pretrained BERT
/// but not its depth (a third of the 6-layer model's work on lavapipe). The 6-layer model
/// stays what the golden tests check. Made once under the target's temporary folder; a
/// folder appears only complete (built aside, then renamed).
pub fn minilm_l2() -> std::path::PathBuf {
    use std::path::Path;
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
        let dst = Path::new(env!("CARGO_TARGET_TMPDIR")).join("minilm-l2");
        if dst.is_dir() {
            return dst;
        }
        let (tensors, meta) = padnet_wgpu::checkpoint::load(&src.join("model.safetensors"))
            .unwrap_or_else(|e| panic!("{e} (run scripts/fetch-minilm.sh)"));
        let kept: padnet_wgpu::checkpoint::Tensors = tensors
            .into_iter()
            .filter(|(name, _)| {
                let layer = name.split("encoder.layer.").nth(1);
                layer.is_none_or(|l| {
                    l.split('.').next().unwrap().parse::<usize>().unwrap() < MINILM_L2_LAYERS
                })
            })
            .collect();
        let part = dst.with_extension(format!("part{}", std::process::id()));
        std::fs::create_dir_all(&part).unwrap();
        padnet_wgpu::checkpoint::save(&part.join("model.safetensors"), &kept, meta).unwrap();
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap())
                .unwrap();
        config["num_hidden_layers"] = MINILM_L2_LAYERS.into();
        std::fs::write(part.join("config.json"), config.to_string()).unwrap();
        std::fs::copy(src.join("tokenizer.json"), part.join("tokenizer.json")).unwrap();
        // Another test process may have finished first: then its folder is kept.
        if std::fs::rename(&part, &dst).is_err() {
            std::fs::remove_dir_all(&part).ok();
        }
        dst
    })
    .clone()
}
