//! A compiled graph run as one rank of a data-parallel group (docs/distributed.md): the run
//! stops at its rank sums (SyncBN), and in a training step each bucket of the gradient arena
//! is averaged over the ranks as soon as the backward has finished with it, while the GPU
//! runs the rest of the backward.

use super::compile::Buf;
use super::store::{ParamStore, GRAD_BUCKET};
use super::Executable;
use crate::dist::Comm;
use crate::error::Result;
use std::collections::BTreeMap;

/// A gradient bucket on its way to the host: copied into `staging` by the submission
/// `index`, `floats` values at float `start` of the gradient arena.
struct InFlight {
    start: usize,
    floats: usize,
    staging: wgpu::Buffer,
    index: wgpu::SubmissionIndex,
}

impl Executable {
    /// Submits one run as this rank of `comm`: up to each rank sum, then the sum on the host
    /// (read back, summed or gathered over the ranks, written back), then on. No wait after
    /// the last part.
    pub fn run_ranks(&self, comm: &Comm) -> Result<()> {
        self.run_ranks_with(comm, None)
    }

    /// [`run_ranks`](Self::run_ranks) of a training step that also replaces every gradient in
    /// `store` by its mean over the ranks. Each bucket of [`GRAD_BUCKET`] values is copied
    /// out with the part of the run after which no dispatch binds it, and summed while the
    /// next part runs (wgpu has no GPU-direct path: host staging). No wait after the last part.
    pub fn run_ranks_averaging(&self, comm: &Comm, store: &ParamStore) -> Result<()> {
        self.run_ranks_with(comm, Some(store))
    }

    fn run_ranks_with(&self, comm: &Comm, store: Option<&ParamStore>) -> Result<()> {
        let ready = store.map_or_else(BTreeMap::new, |s| self.bucket_points(s.param_len));
        let mut in_flight: Vec<InFlight> = vec![];
        let mut start = 0;
        let last = self.dispatches.len().saturating_sub(1);
        for (i, d) in self.dispatches.iter().enumerate() {
            let buckets = ready.get(&i);
            if d.then.is_none() && buckets.is_none() && i != last {
                continue;
            }
            let mut enc = self.encode_dispatches(&self.dispatches[start..=i]);
            start = i + 1;
            let mut copies = vec![];
            for &(first, floats) in buckets.into_iter().flatten() {
                let store = store.expect("buckets come from the store");
                let staging = self.gpu.staging_buffer((floats * 4) as u64);
                enc.copy_buffer_to_buffer(
                    &store.grads,
                    (first * 4) as u64,
                    &staging,
                    0,
                    (floats * 4) as u64,
                );
                copies.push((first, floats, staging));
            }
            let index = self.gpu.queue.submit([enc.finish()]);
            // The GPU runs this part: meanwhile, average the buckets earlier parts copied.
            for bucket in in_flight.drain(..) {
                self.average_bucket(comm, store.expect("in flight"), bucket)?;
            }
            in_flight.extend(copies.into_iter().map(|(start, floats, staging)| InFlight {
                start,
                floats,
                staging,
                index: index.clone(),
            }));
            if let Some(sum) = &d.then {
                let Buf::Own(b) = sum.storage.buf else {
                    unreachable!("rank sums use scratch buffers")
                };
                let buffer = &self.buffers[b];
                let mut data = self.gpu.read_f32(buffer, sum.storage.offset, sum.floats)?;
                if sum.gather {
                    data = comm.gather(&data)?;
                } else {
                    comm.sum(&mut data)?;
                }
                self.gpu.queue.write_buffer(
                    buffer,
                    sum.storage.offset,
                    bytemuck::cast_slice(&data),
                );
            }
        }
        for bucket in in_flight {
            self.average_bucket(comm, store.expect("in flight"), bucket)?;
        }
        Ok(())
    }

    /// Per dispatch index, the gradient buckets (first float, floats) whose last binding
    /// dispatch it is; buckets no dispatch binds go with the last one.
    fn bucket_points(&self, param_len: usize) -> BTreeMap<usize, Vec<(usize, usize)>> {
        let buckets: Vec<(usize, usize)> = (0..param_len)
            .step_by(GRAD_BUCKET)
            .map(|first| (first, GRAD_BUCKET.min(param_len - first)))
            .collect();
        let mut last = vec![self.dispatches.len().saturating_sub(1); buckets.len()];
        for (i, d) in self.dispatches.iter().enumerate() {
            let Some((from, to)) = d.grads else { continue };
            let (from, to) = ((from / 4) as usize, (to / 4) as usize);
            for (k, &(first, floats)) in buckets.iter().enumerate() {
                if from < first + floats && first < to {
                    last[k] = i;
                }
            }
        }
        let mut points: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
        for (at, bucket) in last.into_iter().zip(buckets) {
            points.entry(at).or_default().push(bucket);
        }
        points
    }

    /// Reads a copied bucket back (waiting for its own submission only), sums it over the
    /// ranks, divides by their number and writes the mean back into the gradient arena.
    fn average_bucket(&self, comm: &Comm, store: &ParamStore, b: InFlight) -> Result<()> {
        let bytes = b.floats * 4;
        let raw = self
            .gpu
            .map_and_copy_after(&b.staging, bytes as u64, bytes, Some(b.index))?;
        let mut g: Vec<f32> = bytemuck::pod_collect_to_vec(&raw);
        comm.sum(&mut g)?;
        let scale = 1.0 / comm.size() as f32;
        g.iter_mut().for_each(|v| *v *= scale);
        self.gpu
            .queue
            .write_buffer(&store.grads, (b.start * 4) as u64, bytemuck::cast_slice(&g));
        Ok(())
    }
}
