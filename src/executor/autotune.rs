//! The autotune (docs/architecture.md, "GEMM kernels and autotune", "Tiled convolutions"):
//! before a graph is planned on a device whose GEMM or convolution policy is `auto`, every
//! plain GEMM class, and on GPUs every convolution class, the graph has that the adapter's
//! table lacks is timed with every kernel the device has, at the shape that first needs it,
//! and the fastest goes into the table (kept on disk, so this runs once per adapter and
//! driver).

use crate::error::Result;
use crate::gpu::dispatch::Dispatch;
use crate::gpu::tuning::{
    ConvKernel, ConvPolicy, ConvTuneEntry, GemmKernel, GemmPolicy, TuneEntry,
};
use crate::gpu::Gpu;
use crate::graph::{Graph, Op, Tensor};
use crate::kernels::matmul::Gemm;
use crate::kernels::{self, Arg, KernelCall, PlanCtx};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Timed runs of each kernel per class (the best counts: the first touches memory).
const RUNS: usize = 3;

/// Tunes the GEMM and convolution classes of `graph` that `ctx`'s table lacks (nothing
/// unless a policy is `auto`).
pub fn tune_graph(gpu: &Gpu, graph: &Graph, ctx: &PlanCtx) -> Result<()> {
    tune_gemms(gpu, graph, ctx)?;
    tune_convs(gpu, graph, ctx)
}

/// Logs a tuning decision (`PADNET_LOG_PIPELINES`) and keeps it: a table that cannot be
/// written still serves this process; only the cache is lost.
fn keep(class: &str, entry: &dyn std::fmt::Debug, saved: Result<()>) {
    if std::env::var_os("PADNET_LOG_PIPELINES").is_some() {
        eprintln!("autotune {class}: {entry:?}");
    }
    if let Err(e) = saved {
        eprintln!("warning: autotune table not saved: {e}");
    }
}

/// The convolution classes: the graph is planned once with `PlanCtx::conv_requests` set, so
/// every convolution call a class the table lacks asks for timing with both its kernels
/// (conv/tiled.rs); then each class's calls are timed and the faster kept.
fn tune_convs(gpu: &Gpu, graph: &Graph, ctx: &PlanCtx) -> Result<()> {
    if ctx.conv != ConvPolicy::Autotune || ctx.is_cpu {
        return Ok(());
    }
    let requests = Arc::new(Mutex::new(vec![]));
    let probe = PlanCtx {
        conv_requests: Some(requests.clone()),
        ..ctx.clone()
    };
    for (i, node) in graph.nodes.iter().enumerate() {
        let tensors =
            |ids: &[usize]| -> Vec<&Tensor> { ids.iter().map(|&t| &graph.tensors[t]).collect() };
        let (ins, outs) = (tensors(&node.inputs), tensors(&node.outputs));
        kernels::plan(&node.op, &ins, &outs, &probe.for_node(graph, i));
    }
    let requests = std::mem::take(&mut *requests.lock().expect("planning does not panic"));
    for request in requests {
        if ctx.tuning.get_conv(&request.class).is_some() {
            continue; // a class asked for twice (another node, chunk or direction)
        }
        let (mut registers_ms, mut tiled_ms) = (f64::NAN, None);
        for (kernel, call, lens) in &request.candidates {
            let ms = time_call(gpu, call, *lens);
            match kernel {
                ConvKernel::Registers => registers_ms = ms?,
                // A driver that cannot build or run the tiled kernels keeps the register ones
                // (whose failure is the graph's own).
                ConvKernel::Tiled => {
                    tiled_ms = ms
                        .map_err(|e| {
                            let class = &request.class;
                            eprintln!("warning: autotune {class}: tiled kernels skipped: {e}")
                        })
                        .ok()
                }
            }
        }
        // The faster; a tie keeps the register-blocked kernels.
        let kernel = match tiled_ms.is_some_and(|t| t < registers_ms) {
            true => ConvKernel::Tiled,
            false => ConvKernel::Registers,
        };
        let entry = ConvTuneEntry {
            kernel,
            registers_ms,
            tiled_ms,
        };
        let saved = ctx.tuning.insert_conv(&request.class, entry.clone());
        keep(&request.class, &entry, saved);
    }
    Ok(())
}

/// The plain GEMM classes.
fn tune_gemms(gpu: &Gpu, graph: &Graph, ctx: &PlanCtx) -> Result<()> {
    if ctx.gemm != GemmPolicy::Autotune {
        return Ok(());
    }
    for (n, node) in graph.nodes.iter().enumerate() {
        let Op::MatMul {
            trans_a,
            trans_b,
            accumulate,
        } = node.op
        else {
            continue;
        };
        let ctx = &ctx.for_node(graph, n);
        let shape = |i: usize| graph.tensors[node.inputs[i]].shape.as_slice();
        let gemm = Gemm::of_matmul(trans_a, trans_b, accumulate, shape(0), shape(1));
        let class = gemm.tune_class(ctx);
        if ctx.tuning.get(&class).is_some() {
            continue;
        }
        let registers_ms = time_gemm(gpu, ctx, &gemm, GemmKernel::Registers)?;
        let tiled_ms = time_gemm(gpu, ctx, &gemm, GemmKernel::Tiled)?;
        let tiled_large_ms = time_gemm(gpu, ctx, &gemm, GemmKernel::TiledLarge)?;
        let subgroup_ms = ctx
            .subgroup_lanes
            .map(|_| time_gemm(gpu, ctx, &gemm, GemmKernel::Subgroup))
            .transpose()?;
        // The fastest; ties keep the earlier kernel.
        let mut best = (GemmKernel::Registers, registers_ms);
        for (k, ms) in [
            (GemmKernel::Tiled, Some(tiled_ms)),
            (GemmKernel::TiledLarge, Some(tiled_large_ms)),
            (GemmKernel::Subgroup, subgroup_ms),
        ] {
            if let Some(ms) = ms.filter(|&ms| ms < best.1) {
                best = (k, ms);
            }
        }
        let kernel = best.0;
        let entry = TuneEntry {
            kernel,
            registers_ms,
            tiled_ms,
            tiled_large_ms,
            subgroup_ms,
        };
        let saved = ctx.tuning.insert(&class, entry.clone());
        keep(&class, &entry, saved);
    }
    Ok(())
}

/// Best wall time of `RUNS` runs of `gemm` with `kernel`, on zeroed buffers of its size, in
/// milliseconds. Each kernel runs split along k where its plan would split; the small pass
/// that sums the splits is not timed.
fn time_gemm(gpu: &Gpu, ctx: &PlanCtx, gemm: &Gemm, kernel: GemmKernel) -> Result<f64> {
    let [a_len, b_len, c_len] = gemm.operand_lens();
    let splits = gemm.splits_with(ctx, kernel);
    let call = gemm.kernel_call(ctx, kernel, [Arg::In(0), Arg::In(1), Arg::Out(0)], splits);
    time_call(gpu, &call, [a_len, b_len, c_len * splits])
}

/// Best wall time of `RUNS` runs of `call` (three bindings) on zeroed buffers of `lens` f32
/// values, in milliseconds.
fn time_call(gpu: &Gpu, call: &KernelCall, lens: [usize; 3]) -> Result<f64> {
    let [a, b, c] = lens.map(|len| gpu.storage_buffer("autotune operand", 4 * len.max(1) as u64));
    let (a, b, c) = (a?, b?, c?);
    let pipeline = gpu.pipeline(call.shader, &call.template, call.entry, &call.constants)?;
    let params = gpu.uniform_buffer("autotune params", (4 * call.params.len()) as u64);
    gpu.queue
        .write_buffer(&params, 0, bytemuck::cast_slice(&call.params));
    let dispatch = Dispatch::new(
        gpu,
        "autotune",
        pipeline,
        &params,
        &[&a, &b, &c],
        call.workgroups,
    )?;
    dispatch.run(gpu)?; // pipeline creation, first touch
    let mut best = f64::INFINITY;
    for _ in 0..RUNS {
        let start = Instant::now();
        dispatch.run(gpu)?;
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(best)
}
