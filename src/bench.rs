//! `padnet-wgpu bench`: GFLOP/s of the GEMM and convolution kernels (medians of timed batches;
//! pipeline creation and the first, JIT-compiling, dispatch are excluded).

use crate::error::Result;
use crate::executor::{Executable, ParamStore};
use crate::gpu::Gpu;
use crate::graph::{DType, Graph, Op};
use crate::kernels::conv::{ConvGeom, ConvOpts};
use std::sync::Arc;
use std::time::Instant;

pub struct BenchResult {
    pub name: String,
    pub gflops: f64,
    pub ms: f64,
}

/// Times `exe` replayed `reps` times per submit; returns the median over `batches` of ms/rep.
fn time_exe(exe: &Executable, reps: usize, batches: usize) -> Result<f64> {
    let gpu = &exe.gpu;
    let run = |n: usize| -> Result<f64> {
        let t = Instant::now();
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for _ in 0..n {
                exe.encode(&mut pass);
            }
        }
        gpu.queue.submit([enc.finish()]);
        gpu.wait()?;
        Ok(t.elapsed().as_secs_f64() * 1e3 / n as f64)
    };
    run(1)?; // warm-up: JIT compilation of every pipeline
    let mut times: Vec<f64> = (0..batches).map(|_| run(reps)).collect::<Result<_>>()?;
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[times.len() / 2])
}

/// Builds a one-op graph over random inputs and times it.
fn bench_graph(
    gpu: &Arc<Gpu>,
    name: String,
    flops: f64,
    build: impl FnOnce(&mut Graph) -> Result<()>,
) -> Result<BenchResult> {
    let mut g = Graph::new();
    build(&mut g)?;
    let store = ParamStore::new(gpu.clone(), &g, 1)?;
    let inputs: Vec<usize> = (0..g.tensors.len())
        .filter(|&t| g.tensors[t].role == crate::graph::Role::Input)
        .collect();
    let exe = Executable::compile(gpu.clone(), g, &store)?;
    let mut rng = crate::rng::Rng::new(3);
    for t in inputs {
        let n = exe.graph.tensors[t].numel();
        exe.write(t, &(0..n).map(|_| rng.normal()).collect::<Vec<_>>())?;
    }
    // About 1.5 s of work per measurement on this device, at least one repetition.
    let probe = time_exe(&exe, 1, 1)?;
    let reps = ((300.0 / probe.max(1e-3)) as usize).clamp(1, 200);
    let ms = time_exe(&exe, reps, 5)?;
    Ok(BenchResult {
        name,
        gflops: flops / (ms * 1e-3) / 1e9,
        ms,
    })
}

pub fn run_all(gpu: &Arc<Gpu>) -> Result<Vec<BenchResult>> {
    let mut out = vec![];
    for (m, n, k) in [
        (256usize, 256usize, 256usize),
        (512, 512, 512),
        (1024, 1024, 1024),
        (64, 32768, 576),
    ] {
        let flops = 2.0 * (m * n * k) as f64;
        out.push(bench_graph(gpu, format!("gemm {m}x{n}x{k}"), flops, |g| {
            let a = g.input("a", &[m, k], DType::F32);
            let b = g.input("b", &[k, n], DType::F32);
            g.matmul(a, b, false, false)?;
            Ok(())
        })?);
    }
    let geom = ConvGeom::new(&[32, 64, 32, 32], 64, ConvOpts::k(3).pad(1))?;
    let flops = 2.0 * geom.macs() as f64;
    let label = "conv 3x3 64->64 32x32 b32";
    out.push(bench_graph(gpu, format!("{label} forward"), flops, |g| {
        let x = g.input("x", &geom.x_shape(), DType::F32);
        let w = g.input("w", &geom.w_shape(), DType::F32);
        g.push1(Op::Conv2d(geom), &[x, w])?;
        Ok(())
    })?);
    out.push(bench_graph(
        gpu,
        format!("{label} grad-input"),
        flops,
        |g| {
            let dy = g.input("dy", &geom.y_shape(), DType::F32);
            let w = g.input("w", &geom.w_shape(), DType::F32);
            g.push1(Op::Conv2dGradInput(geom), &[dy, w])?;
            Ok(())
        },
    )?);
    out.push(bench_graph(
        gpu,
        format!("{label} grad-weight"),
        flops,
        |g| {
            let x = g.input("x", &geom.x_shape(), DType::F32);
            let dy = g.input("dy", &geom.y_shape(), DType::F32);
            g.push1(Op::Conv2dGradWeight(geom), &[x, dy])?;
            Ok(())
        },
    )?);
    Ok(out)
}

/// Median milliseconds per mode of `step(i)` (one training step of mode i, waited for): two
/// warm-up steps of each, then `steps` rounds that run one step of every mode in turn, so a
/// machine whose speed drifts (turbo, other tenants) skews the modes' ratios less than timing
/// one mode after another.
fn interleaved_medians(
    modes: usize,
    steps: usize,
    mut step: impl FnMut(usize) -> Result<()>,
) -> Result<Vec<f64>> {
    let mut times = vec![vec![]; modes];
    for round in 0..steps.max(1) + 2 {
        for (i, t) in times.iter_mut().enumerate() {
            let start = Instant::now();
            step(i)?;
            if round >= 2 {
                t.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    Ok(times
        .into_iter()
        .map(|mut t| {
            t.sort_by(|a, b| a.total_cmp(b));
            t[t.len() / 2]
        })
        .collect())
}

/// Median milliseconds of one training step (forward, backward, optimizer; one submit) of
/// `cfg`'s model in each of `modes`, on random data of `sample` shape (modes interleaved,
/// see [`interleaved_medians`]). Returns (median ms, peak GPU memory bytes of the training
/// graph) per mode.
pub fn train_steps(
    gpu: &Arc<Gpu>,
    cfg: &crate::train::TrainConfig,
    modes: &[crate::nn::dynamic::ConvMode],
    sample: [usize; 3],
    classes: usize,
    steps: usize,
) -> Result<Vec<(f64, u64)>> {
    let mut rng = crate::rng::Rng::new(5);
    let n = cfg.batch_size * sample.iter().product::<usize>();
    let batch = crate::data::Batch {
        images: (0..n).map(|_| rng.normal()).collect(),
        labels: (0..cfg.batch_size)
            .map(|_| rng.below(classes) as u32)
            .collect(),
        valid: cfg.batch_size,
        error: None,
    };
    let mut sessions = vec![];
    for mode in modes {
        let c = crate::train::TrainConfig {
            mode: *mode,
            ..cfg.clone()
        };
        sessions.push(crate::train::Session::new(
            gpu.clone(),
            &c,
            sample,
            classes,
        )?);
    }
    let ms = interleaved_medians(modes.len(), steps, |i| {
        sessions[i].step(&batch, 0.01)?;
        sessions[i].last_loss().map(|_| ()) // waits for the step
    })?;
    let mut out = vec![];
    for (s, ms) in sessions.iter().zip(ms) {
        if std::env::var_os("PADNET_PROFILE").is_some() {
            s.print_profile(1)?;
        }
        out.push((ms, s.train.peak_bytes()));
    }
    Ok(out)
}

/// Median milliseconds of one BERT classifier training step (forward, backward, AdamW) at
/// `batch` sequences of `len` tokens (random ids, no padding) for each of `modes`, with
/// (median ms, peak GPU memory bytes of the training graph) per mode. `mode` is dense, moe or
/// pad (8 experts, top-2, on the FFN output projections; PAD-MoE with its mask as built, all
/// dynamic: the step costs the same at any κ). Modes interleaved, see
/// [`interleaved_medians`].
pub fn text_train_steps(
    gpu: &Arc<Gpu>,
    bert: &crate::models::bert::BertConfig,
    modes: &[crate::text::TextMode],
    batch: usize,
    len: usize,
    steps: usize,
) -> Result<Vec<(f64, u64)>> {
    use crate::data::tokenize::Encoded;
    use crate::models::bert::BertFeed;
    let classes = 8;
    let filler = Encoded {
        ids: vec![0; 2],
        type_ids: vec![0; 2],
        truncated: false,
    };
    let mut rng = crate::rng::Rng::new(5);
    let ids = (0..batch * len)
        .map(|_| rng.below(bert.vocab_size) as u32)
        .collect();
    let feed = BertFeed::new(ids, vec![0; batch * len], &vec![1; batch * len], len);
    let labels: Vec<f32> = (0..batch).map(|_| rng.below(classes) as f32).collect();
    let mut sessions = vec![];
    for mode in modes {
        let cfg = crate::text::TextTrainConfig {
            mode: *mode,
            batch_size: batch,
            eval_batch_size: batch,
            ..Default::default()
        };
        let s = crate::text::TextSession::new(
            gpu.clone(),
            bert.clone(),
            classes,
            &cfg,
            filler.clone(),
        )?;
        sessions.push(s);
    }
    let ms = interleaved_medians(modes.len(), steps, |i| {
        sessions[i].step_feed(&feed, len, &labels, 1e-5)?;
        sessions[i].train_metrics().map(|_| ()) // waits for the step
    })?;
    let mut out = vec![];
    for (s, ms) in sessions.iter().zip(ms) {
        if std::env::var_os("PADNET_PROFILE").is_some() {
            s.print_profile()?;
        }
        out.push((ms, s.peak_bytes(len)));
    }
    Ok(out)
}
