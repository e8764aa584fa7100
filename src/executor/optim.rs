//! Optimizers (SGD with momentum / Nesterov / weight decay, AdamW) that update the whole
//! parameter arena in one dispatch, and learning-rate schedules.

use crate::error::{Error, Result};
use crate::executor::ParamStore;
use crate::kernels::{f, u};

#[derive(Clone, Debug, PartialEq)]
pub enum OptimKind {
    Sgd { momentum: f32, nesterov: bool },
    AdamW { beta1: f32, beta2: f32, eps: f32 },
}

impl OptimKind {
    /// AdamW with PyTorch's defaults (β = 0.9, 0.999; ε = 1e-8).
    pub const ADAMW: OptimKind = OptimKind::AdamW {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
}

#[derive(Clone, Debug, PartialEq)]
pub struct OptimConfig {
    pub kind: OptimKind,
    pub weight_decay: f32,
}

pub struct Optimizer {
    pub config: OptimConfig,
    /// Steps taken (AdamW bias correction).
    pub step: u64,
    m: wgpu::Buffer,
    v: Option<wgpu::Buffer>,
    /// The first step whose update met a non-finite gradient or parameter (u32::MAX: none).
    first_bad: wgpu::Buffer,
    pipeline: wgpu::ComputePipeline,
    /// One dispatch per slice of the arenas: a storage binding may not exceed the device's
    /// binding limit (128 MiB on lavapipe), and a large model's arena does.
    slices: Vec<Slice>,
    len: usize,
}

struct Slice {
    uniform: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
    len: usize,
}

impl Optimizer {
    pub fn new(store: &ParamStore, config: OptimConfig) -> Result<Self> {
        store.require_grads("an optimizer")?;
        let gpu = &store.gpu;
        let len = store.param_len;
        let m = gpu.storage_buffer("optimizer m", (len * 4) as u64)?;
        let adam = matches!(config.kind, OptimKind::AdamW { .. });
        let v = if adam {
            Some(gpu.storage_buffer("optimizer v", (len * 4) as u64)?)
        } else {
            None
        };
        let first_bad = gpu.storage_buffer("optimizer non-finite guard", 4)?;
        gpu.queue
            .write_buffer(&first_bad, 0, bytemuck::bytes_of(&u32::MAX));
        let entry = if adam { "adamw" } else { "sgd" };
        let pipeline = gpu.pipeline("optim", &[], entry, &[])?;
        // Slices of at most the binding limit, in whole 256-byte (64-float) units.
        let max = (gpu.limits.max_storage_buffer_binding_size as usize / 4) / 64 * 64;
        let mut slices = vec![];
        let mut start = 0;
        while start < len {
            let n = max.min(len - start);
            let (offset, size) = ((start * 4) as u64, wgpu::BufferSize::new((n * 4) as u64));
            fn bind(
                buffer: &wgpu::Buffer,
                offset: u64,
                size: Option<wgpu::BufferSize>,
            ) -> wgpu::BindingResource<'_> {
                wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset,
                    size,
                })
            }
            let uniform = gpu.uniform_buffer("optimizer params", 48);
            let mut entries = vec![
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: uniform.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: bind(&store.params, offset, size),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: bind(&store.grads, offset, size),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: bind(&m, offset, size),
                },
                wgpu::BindGroupEntry {
                    binding: 5,
                    resource: first_bad.as_entire_binding(),
                },
            ];
            if let Some(v) = &v {
                entries.push(wgpu::BindGroupEntry {
                    binding: 4,
                    resource: bind(v, offset, size),
                });
            }
            let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("optimizer"),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            // A vec4 per invocation (optim.wgsl): slices are whole 64-float units.
            debug_assert!(n.is_multiple_of(4));
            let groups = crate::gpu::grid_1d((n / 4).div_ceil(256) as u32);
            slices.push(Slice {
                uniform,
                bind_group,
                groups,
                len: n,
            });
            start += n;
        }
        gpu.check()?;
        Ok(Optimizer {
            config,
            step: 0,
            m,
            v,
            first_bad,
            pipeline,
            slices,
            len,
        })
    }

    /// Advances the step counter and uploads this step's hyperparameters; call before the
    /// submit that contains `encode`.
    pub fn prepare(&mut self, store: &ParamStore, lr: f32) {
        self.step += 1;
        let step = self.step.min(u32::MAX as u64 - 1) as u32;
        let wd = self.config.weight_decay;
        for s in &self.slices {
            let p: [u32; 12] = match self.config.kind {
                OptimKind::Sgd { momentum, nesterov } => [
                    u(s.len),
                    nesterov as u32,
                    step,
                    0,
                    f(lr),
                    f(momentum),
                    f(wd),
                    0,
                    0,
                    0,
                    f(1.0),
                    f(1.0),
                ],
                OptimKind::AdamW { beta1, beta2, eps } => {
                    let t = self.step as i32;
                    let (c1, c2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
                    [
                        u(s.len),
                        0,
                        step,
                        0,
                        f(lr),
                        0,
                        f(wd),
                        f(beta1),
                        f(beta2),
                        f(eps),
                        f(c1),
                        f(c2),
                    ]
                }
            };
            store
                .gpu
                .queue
                .write_buffer(&s.uniform, 0, bytemuck::cast_slice(&p));
        }
    }

    /// Median milliseconds of one optimizer pass alone over `reps` submits (for
    /// `PADNET_PROFILE`; it updates the parameters with the prepared learning rate).
    pub fn profile(&self, gpu: &crate::gpu::Gpu, reps: usize) -> crate::Result<f64> {
        let mut times = vec![];
        for _ in 0..reps.max(1) {
            let t = std::time::Instant::now();
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                self.encode(&mut pass);
            }
            gpu.queue.submit([enc.finish()]);
            gpu.wait()?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(|a, b| a.total_cmp(b));
        Ok(times[times.len() / 2])
    }

    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        for s in &self.slices {
            pass.set_bind_group(0, &s.bind_group, &[]);
            pass.dispatch_workgroups(s.groups[0], s.groups[1], s.groups[2]);
        }
    }

    /// The first step (1-based, as `step` counts) whose update met a NaN or ±Inf gradient or
    /// produced one in a parameter; reads back 4 bytes (synchronises).
    pub fn first_non_finite(&self, gpu: &crate::gpu::Gpu) -> Result<Option<u64>> {
        let bytes = gpu.read_bytes(&self.first_bad, 0, 4)?;
        let step = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        Ok((step != u32::MAX).then_some(step as u64))
    }

    /// Optimizer state as named arenas (for checkpoints).
    pub fn state(&self, store: &ParamStore) -> Result<Vec<(String, Vec<f32>)>> {
        let mut out = vec![("m".to_string(), store.gpu.read_f32(&self.m, 0, self.len)?)];
        if let Some(v) = &self.v {
            out.push(("v".to_string(), store.gpu.read_f32(v, 0, self.len)?));
        }
        Ok(out)
    }

    pub fn load_state(
        &mut self,
        store: &ParamStore,
        state: &[(String, Vec<f32>)],
        step: u64,
    ) -> Result<()> {
        for (name, data) in state {
            let buf = match (name.as_str(), &self.v) {
                ("m", _) => &self.m,
                ("v", Some(v)) => v,
                _ => {
                    return Err(Error::Invalid(format!(
                        "optimizer state '{name}' does not fit {:?}",
                        self.config.kind
                    )))
                }
            };
            if data.len() != self.len {
                return Err(Error::Invalid(format!(
                    "optimizer state '{name}' has {} values, the model {}",
                    data.len(),
                    self.len
                )));
            }
            store
                .gpu
                .queue
                .write_buffer(buf, 0, bytemuck::cast_slice(data));
        }
        self.step = step;
        Ok(())
    }
}

/// `--optimizer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with (Nesterov) momentum.
    Sgd,
    Adamw,
}

impl crate::names::Named for OptimizerKind {
    const WHAT: &'static str = "optimizer";
}

impl crate::names::Named for ScheduleKind {
    const WHAT: &'static str = "schedule";
}

/// `--schedule`: how the learning rate decays after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    Cosine,
    Linear,
    Constant,
    /// Multiply by --gamma at each of --milestones (epochs).
    Milestones,
}

impl ScheduleKind {
    pub fn decay(self, milestones: &[usize], gamma: f32) -> Decay {
        match self {
            ScheduleKind::Cosine => Decay::Cosine,
            ScheduleKind::Linear => Decay::Linear,
            ScheduleKind::Constant => Decay::Constant,
            ScheduleKind::Milestones => Decay::Milestones {
                epochs: milestones.to_vec(),
                gamma,
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Decay {
    Constant,
    /// Cosine from the base rate to 0 over the steps after warm-up.
    Cosine,
    /// Linear from the base rate to 0 over the steps after warm-up.
    Linear,
    /// Multiply by `gamma` at each milestone epoch.
    Milestones {
        epochs: Vec<usize>,
        gamma: f32,
    },
}

#[derive(Clone, Debug)]
pub struct Schedule {
    pub base_lr: f32,
    pub warmup_steps: usize,
    pub total_steps: usize,
    pub steps_per_epoch: usize,
    pub decay: Decay,
}

impl Schedule {
    /// Learning rate for 0-based `step`.
    pub fn lr(&self, step: usize) -> f32 {
        if step < self.warmup_steps {
            return self.base_lr * (step + 1) as f32 / self.warmup_steps as f32;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f32;
        let done = ((step - self.warmup_steps) as f32 / span).min(1.0);
        match &self.decay {
            Decay::Constant => self.base_lr,
            Decay::Cosine => self.base_lr * 0.5 * (1.0 + (std::f32::consts::PI * done).cos()),
            Decay::Linear => self.base_lr * (1.0 - done),
            Decay::Milestones { epochs, gamma } => {
                let epoch = step / self.steps_per_epoch.max(1);
                self.base_lr * gamma.powi(epochs.iter().filter(|&&m| epoch >= m).count() as i32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        let s = |decay| Schedule {
            base_lr: 1.0,
            warmup_steps: 10,
            total_steps: 110,
            steps_per_epoch: 10,
            decay,
        };
        let c = s(Decay::Cosine);
        assert!((c.lr(0) - 0.1).abs() < 1e-6 && (c.lr(9) - 1.0).abs() < 1e-6);
        assert!((c.lr(60) - 0.5).abs() < 1e-6 && c.lr(110) < 1e-6);
        assert!((s(Decay::Linear).lr(60) - 0.5).abs() < 1e-6);
        let m = s(Decay::Milestones {
            epochs: vec![3, 6],
            gamma: 0.1,
        });
        assert!(
            (m.lr(29) - 1.0).abs() < 1e-6
                && (m.lr(30) - 0.1).abs() < 1e-6
                && (m.lr(65) - 0.01).abs() < 1e-6
        );
    }
}
