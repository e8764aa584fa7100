//! An adapter's measured ceilings, so every benchmark also reads as a fraction of them
//! (docs/benchmarks.md, "Peaks"): f32 FMA throughput from independent FMA chains, memory
//! bandwidth from a streaming copy of two 128 MiB buffers (larger than any GPU's last-level
//! cache), and the floor under every kernel: the time of one small dispatch that waits for
//! the one before.

use super::record::Peaks;
use super::timing::{Stats, Timer};
use crate::error::{Error, Result};
use crate::gpu::dispatch::Dispatch;
use crate::gpu::{grid_1d, Gpu};
use std::sync::Arc;

/// Invocations of the FMA probe (enough to fill the largest GPUs).
const FMA_INVOCATIONS: u32 = 1 << 20;
/// Scalar FMAs per loop iteration of one invocation (four chains of vec4s, eight steps each).
const FMAS_PER_ITER: f64 = 4.0 * 4.0 * 8.0;
/// Bytes of each buffer of the copy probe.
const COPY_BYTES: u64 = 128 << 20;

/// One probe: a pipeline of `peaks.wgsl` bound to a source and a destination buffer.
struct Probe {
    dispatch: Dispatch,
    params: wgpu::Buffer,
}

impl Probe {
    fn new(
        gpu: &Gpu,
        entry: &'static str,
        src_bytes: u64,
        dst_bytes: u64,
        groups: u32,
    ) -> Result<Probe> {
        let pipeline = gpu.pipeline("peaks", &[], entry, &[])?;
        let params = gpu.uniform_buffer("peak params", 16);
        let src = gpu.storage_buffer("peak src", src_bytes)?;
        let dst = gpu.storage_buffer("peak dst", dst_bytes)?;
        let ones = vec![1.0f32; (src_bytes / 4) as usize];
        gpu.queue.write_buffer(&src, 0, bytemuck::cast_slice(&ones));
        let dispatch = Dispatch::new(
            gpu,
            entry,
            pipeline,
            &params,
            &[&src, &dst],
            grid_1d(groups),
        )?;
        Ok(Probe { dispatch, params })
    }

    fn set(&self, gpu: &Gpu, x: u32) {
        gpu.queue
            .write_buffer(&self.params, 0, bytemuck::cast_slice(&[x, 0, 0, 0]));
    }

    /// Median ms per dispatch over `samples` samples of about 100 ms each.
    fn median_ms(&self, timer: &Timer, samples: usize) -> Result<f64> {
        let record = |pass: &mut wgpu::ComputePass<'_>| self.dispatch.record(pass);
        let (times, _) = timer.samples(samples, 100.0, 100, &record)?;
        Ok(Stats::of(&times).median_ms)
    }
}

/// Measures the FMA and bandwidth ceilings and the dependent-dispatch cost of `gpu` (median of
/// 5 samples each).
pub fn measure(gpu: &Arc<Gpu>, timer: &Timer) -> Result<Peaks> {
    let fma = Probe::new(
        gpu,
        "fma_chains",
        1 << 16,
        FMA_INVOCATIONS as u64 * 16,
        FMA_INVOCATIONS / 64,
    )?;
    // Iterations for about 20 ms per dispatch, from a short first run.
    let mut iters = 16u32;
    fma.set(gpu, iters);
    let probe_ms = fma.median_ms(timer, 1)?;
    iters = ((iters as f64 * 20.0 / probe_ms.max(1e-3)) as u32).clamp(16, 1 << 16);
    fma.set(gpu, iters);
    let fma_ms = fma.median_ms(timer, 5)?;
    let flops = FMA_INVOCATIONS as f64 * iters as f64 * FMAS_PER_ITER * 2.0;

    let vec4s = (COPY_BYTES / 16) as u32;
    let copy = Probe::new(gpu, "copy", COPY_BYTES, COPY_BYTES, vec4s.div_ceil(64))?;
    copy.set(gpu, vec4s);
    let copy_ms = copy.median_ms(timer, 5)?;
    let step = Probe::new(gpu, "step", 64 * 16, 64 * 16, 1)?;
    step.set(gpu, 64);
    let step_ms = step.median_ms(timer, 5)?;
    let peaks = Peaks {
        fma_gflops: flops / (fma_ms * 1e-3) / 1e9,
        bandwidth_gbs: 2.0 * COPY_BYTES as f64 / (copy_ms * 1e-3) / 1e9,
        dispatch_us: Some(step_ms * 1e3),
    };
    let usable = [fma_ms, copy_ms, step_ms]
        .iter()
        .all(|ms| ms.is_finite() && *ms > 0.0);
    if !usable {
        return Err(Error::Device(format!(
            "peak probes gave no usable time ({fma_ms} ms, {copy_ms} ms, {step_ms} ms)"
        )));
    }
    Ok(peaks)
}
