//! The GEMM autotune (docs/architecture.md, "GEMM kernels and autotune"): before a graph is
//! planned on a device whose policy is `auto`, every plain GEMM class the graph has that the
//! adapter's table lacks is timed with every kernel the device has, at the shape that first
//! needs it, and the fastest goes into the table (kept on disk, so this runs once per adapter
//! and driver).

use crate::error::Result;
use crate::gpu::dispatch::Dispatch;
use crate::gpu::tuning::{GemmKernel, GemmPolicy, TuneEntry};
use crate::gpu::Gpu;
use crate::graph::{Graph, Op};
use crate::kernels::matmul::Gemm;
use crate::kernels::{Arg, PlanCtx};
use std::time::Instant;

/// Timed runs of each kernel per class (the best counts: the first touches memory).
const RUNS: usize = 3;

/// Tunes the GEMM classes of `graph` that `ctx`'s table lacks (nothing unless the policy is
/// `auto`).
pub fn tune_graph(gpu: &Gpu, graph: &Graph, ctx: &PlanCtx) -> Result<()> {
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
        if std::env::var_os("PADNET_LOG_PIPELINES").is_some() {
            eprintln!("autotune {class}: {entry:?}");
        }
        if let Err(e) = ctx.tuning.insert(&gpu.info, &class, entry) {
            // The choice still holds for this process; only the cache is lost.
            eprintln!("warning: autotune table not saved: {e}");
        }
    }
    Ok(())
}

/// Best wall time of `RUNS` runs of `gemm` with `kernel`, on zeroed buffers of its size, in
/// milliseconds. Each kernel runs split along k where its plan would split; the small pass
/// that sums the splits is not timed.
fn time_gemm(gpu: &Gpu, ctx: &PlanCtx, gemm: &Gemm, kernel: GemmKernel) -> Result<f64> {
    let [a_len, b_len, c_len] = gemm.operand_lens();
    let splits = gemm.splits_with(ctx, kernel);
    let a = gpu.storage_buffer("autotune A", 4 * a_len as u64)?;
    let b = gpu.storage_buffer("autotune B", 4 * b_len as u64)?;
    let c = gpu.storage_buffer("autotune C", 4 * (c_len * splits) as u64)?;
    let call = gemm.kernel_call(ctx, kernel, [Arg::In(0), Arg::In(1), Arg::Out(0)], splits);
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
