//! Split reductions on GPUs (split-K): a convolution forward or input gradient with few
//! workgroups splits its reduction over channels into parts, each writing partial outputs
//! that a second call adds up (docs/architecture.md, "Split reductions on GPUs").

use crate::kernels::{reduce, Arg, KernelCall, Plan, PlanCtx};

/// GPUs: the workgroups a convolution forward or input gradient should have at least; one
/// with fewer has its reduction over channels split (split-K, `reduction_splits`). On an
/// H200 the 512-filter layers at 4×4 ran 128–512 workgroups whose invocations each walked a
/// 4 608-long reduction of dependent loads (docs/benchmarks.md, "What the H200 showed").
const GPU_CONV_WORKGROUPS: usize = 1024;
/// The fewest channels a part of a split reduction keeps, so that each part still does
/// more work than its partial output costs to write and add up.
const SPLIT_MIN_CHANNELS: usize = 16;

/// Into how many parts a GPU convolution of `workgroups` workgroups splits its reduction over
/// `channels` (input channels of the forward, output channels of the input gradient) to give
/// the device about `GPU_CONV_WORKGROUPS`, each part at least `SPLIT_MIN_CHANNELS` and all
/// the parts' `outputs` within a chunk's bytes (`PlanCtx::chunk_bytes`). 1 (not split) on CPU
/// adapters, which want few, fat workgroups, and with `PADNET_SPLIT_K=0`.
pub(super) fn reduction_splits(
    ctx: &PlanCtx,
    workgroups: usize,
    channels: usize,
    outputs: usize,
) -> usize {
    if ctx.is_cpu || !ctx.split_k {
        return 1;
    }
    GPU_CONV_WORKGROUPS
        .div_ceil(workgroups.max(1))
        .min(channels / SPLIT_MIN_CHANNELS)
        .min(ctx.chunk_bytes / (4 * outputs).max(1))
        .max(1)
}

/// A forward or input-gradient call, its reduction perhaps split (`reduction_splits`): the
/// call then writes its parts' partial outputs `[parts, samples of the call, ...]` into
/// the scratch its caller named, and `sum` adds them into the output.
pub struct ConvCall {
    pub call: KernelCall,
    pub sum: Option<KernelCall>,
    /// Bytes of the partial outputs (0 where the reduction is whole).
    pub partial_bytes: u64,
}

impl ConvCall {
    pub(super) fn whole(call: KernelCall) -> Self {
        ConvCall {
            call,
            sum: None,
            partial_bytes: 0,
        }
    }

    /// `call` (output its third argument) in `parts` parts over the samples
    /// `n_offset .. n_offset + n_count` of `per_sample` outputs each.
    pub(super) fn in_parts(
        mut call: KernelCall,
        parts: usize,
        per_sample: usize,
        (n_offset, n_count): (usize, usize),
        partials: Arg,
    ) -> Self {
        if parts == 1 {
            return ConvCall::whole(call);
        }
        let len = n_count * per_sample;
        let out = std::mem::replace(&mut call.args[2], partials);
        ConvCall {
            call,
            sum: Some(reduce::sum_splits_at(
                len,
                parts,
                partials,
                out,
                n_offset * per_sample,
            )),
            partial_bytes: (parts * len * 4) as u64,
        }
    }

    /// Appends the calls to `plan`, whose scratch `partials` (the one the call was planned
    /// with) grows to hold the partial outputs.
    pub fn append(self, plan: &mut Plan, partials: usize) {
        plan.calls.push(self.call);
        if let Some(sum) = self.sum {
            if plan.scratch.len() <= partials {
                plan.scratch.resize(partials + 1, 0);
            }
            plan.scratch[partials] = plan.scratch[partials].max(self.partial_bytes);
            plan.calls.push(sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{plan_forward, plan_grad_input, ConvGeom, ConvOpts, SLOT_K_SPLITS};
    use super::*;
    use crate::kernels::Blocking;

    /// A GPU splits the reduction of ResNet-18's 512→512 layer at 4×4 (128 workgroups at
    /// batch 64): forward and input gradient in parts summed after, their partial outputs
    /// within a chunk's bytes. Not on CPU adapters, nor with `split_k` off, nor where the
    /// device is full (64→64 at 32×32) or a part would keep under 16 channels (depthwise).
    #[test]
    fn gpu_plans_split_reductions_where_workgroups_are_few() {
        let gpu = PlanCtx {
            blocking: Blocking::GPU,
            ..PlanCtx::for_device(wgpu::DeviceType::DiscreteGpu)
        };
        let parts = |x: [usize; 4], o: usize, opts: ConvOpts, ctx: &PlanCtx| {
            let g = ConvGeom::new(&x, o, opts).unwrap();
            [plan_forward(&g, ctx), plan_grad_input(&g, ctx)].map(|plan| {
                let k = plan.calls[0].params[SLOT_K_SPLITS].max(1) as usize;
                assert_eq!(plan.calls.len(), if k > 1 { 2 } else { 1 }, "{x:?}");
                for &bytes in &plan.scratch {
                    assert!(bytes as usize <= ctx.chunk_bytes, "{x:?}: {bytes}");
                }
                k
            })
        };
        let late = ([64, 512, 4, 4], 512, ConvOpts::k(3).pad(1));
        let [forward, input] = parts(late.0, late.1, late.2, &gpu);
        assert!(forward > 1 && input > 1, "{forward}, {input}");
        let cpu = PlanCtx::for_device(wgpu::DeviceType::Cpu);
        let off = PlanCtx {
            split_k: false,
            ..gpu.clone()
        };
        for ctx in [&cpu, &off] {
            assert_eq!(parts(late.0, late.1, late.2, ctx), [1, 1]);
        }
        let full = ([64, 64, 32, 32], 64, ConvOpts::k(3).pad(1));
        assert_eq!(parts(full.0, full.1, full.2, &gpu), [1, 1]);
        let depthwise = ([64, 512, 4, 4], 512, ConvOpts::k(3).pad(1).groups(512));
        assert_eq!(parts(depthwise.0, depthwise.1, depthwise.2, &gpu), [1, 1]);
    }
}
