//! The f16 copy of the parameter arena that GEMMs and convolutions multiplying in f16 read
//! their weights from (docs/architecture.md, "Half precision").

use super::{Buf, BufferPlan, Storage};
use crate::executor::store::ParamStore;
use crate::gpu::Gpu;
use crate::kernels::{Arg, KernelCall};

/// The f16 copy of the parameter arena (docs/architecture.md, "Half precision"): a GEMM or
/// convolution that multiplies in f16 reads its weight operand from it when that operand is a
/// parameter, moving half the bytes. It is created when the first such call is planned, and
/// the first dispatches of every run refresh the weights it holds from the f32 arena, so it
/// is never stale (the optimizer and `ParamStore::write` change only the f32 arena). Off
/// where `Gpu::half_weights` is.
pub(super) struct HalfWeights {
    enabled: bool,
    /// The binding-offset alignment the f16 copy's slots must meet.
    align: u64,
    /// The most bytes one binding may span.
    max_binding: u64,
    /// Its buffer in the executable's plan, once created.
    buffer: Option<usize>,
    param_len: usize,
    /// The byte ranges of the f32 arena that calls read through the copy.
    ranges: Vec<(u64, u64)>,
}

impl HalfWeights {
    pub(super) fn new(gpu: &Gpu, store: &ParamStore) -> Self {
        HalfWeights {
            enabled: gpu.half_weights,
            align: gpu.limits.min_storage_buffer_offset_alignment as u64,
            max_binding: gpu.limits.max_storage_buffer_binding_size,
            buffer: None,
            param_len: store.param_len,
            ranges: vec![],
        }
    }

    /// Where `call` reads its weights in f16, if it can: it multiplies in f16 and binds a
    /// parameter (whose f16 slot is aligned for binding) as its weight operand, binding 2.
    pub(super) fn rebind(
        &mut self,
        call: &KernelCall,
        bound: &[Option<Storage>],
        buffers: &mut BufferPlan,
    ) -> Option<Storage> {
        let weights = bound.get(1).copied().flatten()?;
        if !self.enabled
            || !call.multiplies_in_f16()
            || weights.buf != Buf::Params
            || !(weights.offset / 2).is_multiple_of(self.align)
        {
            return None;
        }
        let param_len = self.param_len;
        let buffer = *self
            .buffer
            .get_or_insert_with(|| buffers.own(param_len as u64 * 2, "parameters as f16"));
        self.ranges
            .push((weights.offset, weights.offset + weights.bytes));
        Some(Storage {
            buf: Buf::Own(buffer),
            offset: weights.offset / 2,
            bytes: (weights.bytes / 2).next_multiple_of(4),
        })
    }

    /// The dispatches that refresh the copy's weights from the f32 arena (to_f16.wgsl): one
    /// per run of neighbouring weights, each within the binding-size limit.
    pub(super) fn refresh(&self) -> Vec<(KernelCall, Vec<Option<Storage>>, String, usize)> {
        let Some(buffer) = self.buffer else {
            return vec![];
        };
        let mut ranges = self.ranges.clone();
        ranges.sort_unstable();
        let mut runs: Vec<(u64, u64)> = vec![];
        for (start, end) in ranges {
            match runs.last_mut() {
                // Slots are 512-byte aligned: a gap under that is the previous slot's padding.
                Some(run)
                    if start <= run.1.next_multiple_of(512) && end - run.0 <= self.max_binding =>
                {
                    run.1 = run.1.max(end)
                }
                _ => runs.push((start, end)),
            }
        }
        runs.into_iter()
            .map(|(start, end)| {
                let len = (end - start).div_ceil(4) as usize;
                let call = KernelCall::new("to_f16", "main")
                    .args(&[Arg::Skip; 2])
                    .params(&[len as u32, 0, 0, 0])
                    .threads(len, 256);
                let bound = vec![
                    Some(Storage {
                        buf: Buf::Params,
                        offset: start,
                        bytes: len as u64 * 4,
                    }),
                    Some(Storage {
                        buf: Buf::Own(buffer),
                        offset: start / 2,
                        bytes: (len as u64 * 2).next_multiple_of(4),
                    }),
                ];
                // Grouped with node 0's dispatches (the first run and `run_checked` go by node).
                (call, bound, "parameters as f16 to_f16:main".into(), 0)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_copy_refreshes_neighbouring_weights_together_within_the_binding_limit() {
        let half = HalfWeights {
            enabled: true,
            align: 256,
            max_binding: 4096,
            buffer: Some(0),
            param_len: 1 << 12,
            // Byte ranges of the f32 arena, one read twice, out of order.
            ranges: vec![
                (2048, 4000),
                (0, 1000),
                (1024, 2048),
                (0, 1000),
                (4096, 4608),
                (8192, 8200),
            ],
        };
        let spans: Vec<[(u64, u64); 2]> = half
            .refresh()
            .iter()
            .map(|(_, bound, ..)| {
                bound
                    .iter()
                    .map(|s| s.unwrap())
                    .map(|s| (s.offset, s.bytes))
            })
            .map(|mut it| [it.next().unwrap(), it.next().unwrap()])
            .collect();
        // [(f32 offset, bytes), (f16 offset, bytes)] per dispatch: the first three ranges
        // (gaps under the 512-byte slot alignment) in one, the fourth would pass 4096 bytes.
        assert_eq!(
            spans,
            [
                [(0, 4000), (0, 2000)],
                [(4096, 512), (2048, 256)],
                [(8192, 8), (4096, 4)],
            ]
        );
        let off = HalfWeights {
            buffer: None,
            ranges: vec![],
            ..half
        };
        assert!(off.refresh().is_empty());
    }
}
