//! One compute dispatch outside the graph executor, for the short measurements that need
//! one kernel alone: the GEMM autotune (`executor::autotune`) and the peak probes
//! (`bench::peaks`).

use super::Gpu;
use crate::error::Result;

/// A pipeline bound to a uniform block (binding 0) and storage buffers (bindings 1, 2, …).
pub struct Dispatch {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
}

impl Dispatch {
    pub fn new(
        gpu: &Gpu,
        label: &str,
        pipeline: wgpu::ComputePipeline,
        uniform: &wgpu::Buffer,
        buffers: &[&wgpu::Buffer],
        groups: [u32; 3],
    ) -> Result<Dispatch> {
        let entries: Vec<wgpu::BindGroupEntry> = std::iter::once(uniform)
            .chain(buffers.iter().copied())
            .enumerate()
            .map(|(i, buf)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: buf.as_entire_binding(),
            })
            .collect();
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        gpu.check()?;
        Ok(Dispatch {
            pipeline,
            bind_group,
            groups,
        })
    }

    /// Records the dispatch into `pass`.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.groups;
        pass.dispatch_workgroups(x, y, z);
    }

    /// Submits the dispatch alone and waits for it.
    pub fn run(&self, gpu: &Gpu) -> Result<()> {
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        self.record(&mut enc.begin_compute_pass(&Default::default()));
        gpu.queue.submit([enc.finish()]);
        gpu.wait()
    }
}
