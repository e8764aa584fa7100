//! Compile a graph for a device: bind every tensor to storage (parameter / gradient / state
//! arenas, or pooled activation buffers reused once their last reader has run), create every
//! pipeline and bind group once, and keep a flat dispatch list that a step replays.

use crate::dist::Comm;
use crate::error::{Error, Result};
use crate::executor::store::{ParamStore, Slot};
use crate::gpu::{self, memory, Gpu};
use crate::graph::{DType, Graph, Role, Tensor, TensorId};
use crate::kernels::{self, Arg, PlanCtx};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mod half_weights;
use half_weights::HalfWeights;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Buf {
    Own(usize),
    Params,
    Grads,
    State,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Storage {
    pub(super) buf: Buf,
    pub(super) offset: u64,
    pub(super) bytes: u64,
}

pub(super) struct Dispatch {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
    label: String,
    /// "shader:entry" of the kernel it runs.
    kernel: String,
    /// The graph node this dispatch computes (a node may need several).
    node: usize,
    /// A sum over the data-parallel ranks that follows this dispatch (SyncBN).
    pub(super) then: Option<RankSum>,
    /// The byte span of the gradient arena this dispatch binds (reads or writes), if any:
    /// after the last dispatch that binds a bucket, the bucket's gradients are final.
    pub(super) grads: Option<(u64, u64)>,
}

/// [`kernels::RankSum`] bound to the buffer it reads and writes.
pub(super) struct RankSum {
    pub(super) storage: Storage,
    pub(super) floats: usize,
    pub(super) gather: bool,
}

impl Dispatch {
    pub(super) fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.groups[0], self.groups[1], self.groups[2]);
    }
}

/// A compiled graph: storage for every tensor, and the dispatch list of one run.
pub struct Executable {
    pub gpu: Arc<Gpu>,
    pub graph: Graph,
    storage: Vec<Option<Storage>>,
    pub(super) buffers: Vec<wgpu::Buffer>,
    pub(super) dispatches: Vec<Dispatch>,
    _uniforms: wgpu::Buffer,
    /// Bytes of the buffers this executable owns (inputs, constants, pooled activations,
    /// scratch), and of the shared arenas it binds.
    pub owned_bytes: u64,
    pub arena_bytes: u64,
    /// The first run goes dispatch by dispatch and logs the slow ones
    /// (`PADNET_LOG_PIPELINES`): on lavapipe that is where each pipeline is JIT-compiled.
    log_first_run: AtomicBool,
}

/// The buffers an executable owns, planned before any is created: inputs, constants, and
/// pooled activation and scratch buffers (released after their last reader and handed out
/// again: best fit, at most 2x too large). Planning first lets the whole graph's memory be
/// checked against the device's limits and memory budget before anything is allocated.
#[derive(Default)]
struct BufferPlan {
    /// (bytes as created, label) per buffer.
    sizes: Vec<(u64, String)>,
    pooled: HashSet<usize>,
    free: Vec<usize>,
    bytes: u64,
}

impl BufferPlan {
    fn own(&mut self, bytes: u64, label: &str) -> usize {
        let size = gpu::storage_size(bytes);
        self.bytes += size;
        self.sizes.push((size, label.to_string()));
        self.sizes.len() - 1
    }
    fn alloc(&mut self, bytes: u64, label: &str) -> usize {
        let best = self
            .free
            .iter()
            .enumerate()
            .filter(|(_, &b)| (bytes..=2 * bytes + 4096).contains(&self.sizes[b].0))
            .min_by_key(|(_, &b)| self.sizes[b].0)
            .map(|(pos, _)| pos);
        if let Some(pos) = best {
            return self.free.swap_remove(pos);
        }
        let idx = self.own(bytes, label);
        self.pooled.insert(idx);
        idx
    }
    fn release(&mut self, idx: usize) {
        if self.pooled.contains(&idx) && !self.free.contains(&idx) {
            self.free.push(idx);
        }
    }
    /// Checks the plan against the device (each buffer under its size limit; all of them,
    /// with the shared arenas, within the memory budget), then creates the buffers.
    fn create(&self, gpu: &Gpu, store: &ParamStore) -> Result<Vec<wgpu::Buffer>> {
        let max = gpu.limits.max_buffer_size;
        if let Some((size, label)) = self.sizes.iter().find(|(size, _)| *size > max) {
            return Err(Error::Device(format!(
                "buffer '{label}' needs {size} bytes, over the device limit of {max}; lower --batch-size or the model size"
            )));
        }
        memory::check(
            "the compiled graph's buffers",
            &[
                ("parameters, gradients and state", store.bytes()),
                ("activations, inputs and scratch", self.bytes),
            ],
            gpu.memory_budget()?,
            "lower --batch-size or the model size",
        )?;
        self.sizes
            .iter()
            .map(|(size, label)| gpu.storage_buffer(label, *size))
            .collect()
    }
}

impl Executable {
    pub fn compile(gpu: Arc<Gpu>, graph: Graph, store: &ParamStore) -> Result<Self> {
        Self::compile_ranks(gpu, graph, store, 1)
    }

    /// [`compile`](Self::compile) for one of `ranks` data-parallel ranks: a training graph's
    /// BatchNorm statistics then span every rank's batch (SyncBN), and it runs through
    /// [`run_ranks`](Self::run_ranks).
    pub fn compile_ranks(
        gpu: Arc<Gpu>,
        graph: Graph,
        store: &ParamStore,
        ranks: usize,
    ) -> Result<Self> {
        let ctx = PlanCtx {
            ranks,
            ..PlanCtx::for_gpu(&gpu)
        };
        if !graph.grads.is_empty() {
            store.require_grads("compiling a graph with gradients")?;
        }
        super::autotune::tune_graph(&gpu, &graph, &ctx)?;
        let g = &graph;
        let nt = g.tensors.len();
        let mut storage: Vec<Option<Storage>> = vec![None; nt];
        let mut buffers = BufferPlan::default();
        let mut constants = vec![];
        let max_binding = gpu.limits.max_storage_buffer_binding_size;

        let bytes_of = |t: TensorId| (g.tensors[t].numel() * 4) as u64;
        if let Some(t) = (0..nt).find(|&t| bytes_of(t) > max_binding) {
            return Err(Error::Device(format!(
                "tensor '{}' {:?} needs {} bytes, over the {max_binding} byte storage-binding limit",
                g.tensors[t].name,
                g.tensors[t].shape,
                bytes_of(t)
            )));
        }

        // Arena-backed tensors.
        let grad_of: HashMap<TensorId, TensorId> = g.grads.iter().map(|(&p, &d)| (d, p)).collect();
        for (t, tensor) in g.tensors.iter().enumerate() {
            let arena = |slots: &BTreeMap<String, Slot>, buf: Buf, what: &str| -> Result<Storage> {
                let s = slots.get(&tensor.name).ok_or_else(|| {
                    Error::Invalid(format!(
                        "{what} '{}' is not in the parameter store",
                        tensor.name
                    ))
                })?;
                if s.shape != tensor.shape {
                    return Err(Error::shape(
                        "compile",
                        format!(
                            "{what} '{}': graph {:?} vs store {:?}",
                            tensor.name, tensor.shape, s.shape
                        ),
                    ));
                }
                Ok(Storage {
                    buf,
                    offset: (s.offset * 4) as u64,
                    bytes: bytes_of(t),
                })
            };
            match &tensor.role {
                Role::Param(_) => {
                    storage[t] = Some(arena(&store.param_slots, Buf::Params, "parameter")?)
                }
                Role::State(_) => {
                    storage[t] = Some(arena(&store.state_slots, Buf::State, "state")?)
                }
                Role::Input | Role::Constant(_) => {
                    let b = buffers.own(bytes_of(t), &tensor.name);
                    if let Role::Constant(data) = &tensor.role {
                        constants.push((b, data));
                    }
                    storage[t] = Some(Storage {
                        buf: Buf::Own(b),
                        offset: 0,
                        bytes: bytes_of(t),
                    });
                }
                Role::Activation => {
                    if let Some(&p) = grad_of.get(&t) {
                        let ps = &g.tensors[p];
                        let s = &store.param_slots[&ps.name];
                        storage[t] = Some(Storage {
                            buf: Buf::Grads,
                            offset: (s.offset * 4) as u64,
                            bytes: bytes_of(t),
                        });
                    }
                }
            }
        }

        // Liveness of pooled activations: index of the last node touching each storage base.
        let mut last_use: HashMap<TensorId, usize> = HashMap::new();
        for (i, node) in g.nodes.iter().enumerate() {
            for &t in node.inputs.iter().chain(&node.outputs) {
                last_use.insert(g.storage_of(t), i);
            }
        }
        for &t in &g.outputs {
            last_use.insert(g.storage_of(t), usize::MAX);
        }

        let mut calls = vec![];
        let mut half_weights = HalfWeights::new(&gpu, store);
        for (i, node) in g.nodes.iter().enumerate() {
            for &o in &node.outputs {
                if storage[o].is_none() && g.tensors[o].view_of.is_none() {
                    let b = buffers.alloc(bytes_of(o), &g.tensors[o].name);
                    storage[o] = Some(Storage {
                        buf: Buf::Own(b),
                        offset: 0,
                        bytes: bytes_of(o),
                    });
                }
            }
            for &o in &node.outputs {
                if let Some(base) = g.tensors[o].view_of {
                    let base = g.storage_of(base);
                    storage[o] = storage[base].map(|s| Storage {
                        bytes: bytes_of(o),
                        ..s
                    });
                }
            }
            let ins: Vec<&Tensor> = node.inputs.iter().map(|&t| &g.tensors[t]).collect();
            let outs: Vec<&Tensor> = node.outputs.iter().map(|&t| &g.tensors[t]).collect();
            let plan = kernels::plan(&node.op, &ins, &outs, &ctx.for_node(g, i));
            let mut scratch = vec![];
            for (k, &bytes) in plan.scratch.iter().enumerate() {
                let label = format!("{}#{i}.scratch{k}", node.op.name());
                scratch.push((buffers.alloc(bytes, &label), bytes));
            }
            for mut call in plan.calls {
                let mut bound = vec![];
                for a in &call.args {
                    bound.push(match *a {
                        Arg::In(k) => {
                            Some(storage[node.inputs[k]].expect("input bound before use"))
                        }
                        Arg::Out(k) => Some(storage[node.outputs[k]].expect("output allocated")),
                        Arg::Scratch(k) => Some(Storage {
                            buf: Buf::Own(scratch[k].0),
                            offset: 0,
                            bytes: scratch[k].1,
                        }),
                        Arg::Skip => None,
                    });
                }
                if let Some(weights) = half_weights.rebind(&call, &bound, &mut buffers) {
                    bound[1] = Some(weights);
                    call = call.half_weights();
                }
                // The first input's shape tells the profile's dispatches of one op apart.
                let shape: Vec<String> = node.inputs.first().map_or(vec![], |&t| {
                    g.tensors[t].shape.iter().map(|d| d.to_string()).collect()
                });
                let label = format!(
                    "{}#{i} {}:{} {}",
                    node.op.name(),
                    call.shader,
                    call.entry,
                    shape.join("x")
                );
                calls.push((call, bound, label, i));
            }
            for (b, _) in scratch {
                buffers.release(b);
            }
            // Release storage whose last use was this node.
            for &t in node.inputs.iter().chain(&node.outputs) {
                let base = g.storage_of(t);
                if last_use.get(&base) == Some(&i)
                    && g.tensors[base].role == Role::Activation
                    && !grad_of.contains_key(&base)
                {
                    if let Some(Storage {
                        buf: Buf::Own(b), ..
                    }) = storage[base]
                    {
                        buffers.release(b);
                    }
                    last_use.remove(&base);
                }
            }
        }

        calls.splice(0..0, half_weights.refresh());
        let owned = buffers.create(&gpu, store)?;
        for (b, data) in constants {
            gpu.queue
                .write_buffer(&owned[b], 0, bytemuck::cast_slice(data));
        }

        // One uniform buffer for every dispatch's parameters, 256-byte aligned slices.
        let ualign = gpu.limits.min_uniform_buffer_offset_alignment as usize;
        let mut udata: Vec<u8> = vec![];
        let mut uoffs = vec![];
        for (call, ..) in &calls {
            let off = udata.len().div_ceil(ualign) * ualign;
            udata.resize(off, 0);
            uoffs.push(off as u64);
            udata.extend_from_slice(bytemuck::cast_slice(&call.params));
            udata.resize(off + (call.params.len() * 4).div_ceil(16).max(1) * 16, 0);
        }
        let uniforms = gpu.uniform_buffer("dispatch params", udata.len().max(16) as u64);
        gpu.queue.write_buffer(&uniforms, 0, &udata);

        let mut dispatches = Vec::with_capacity(calls.len());
        for ((call, bound, label, node), uoff) in calls.iter().zip(uoffs) {
            let pipeline =
                gpu.pipeline(call.shader, &call.template, call.entry, &call.constants)?;
            let layout = pipeline.get_bind_group_layout(0);
            let usize_ = (call.params.len() * 4).div_ceil(16).max(1) * 16;
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &uniforms,
                    offset: uoff,
                    size: wgpu::BufferSize::new(usize_ as u64),
                }),
            }];
            for (k, s) in bound.iter().enumerate() {
                let Some(s) = s else { continue };
                let buffer = match s.buf {
                    Buf::Own(b) => &owned[b],
                    Buf::Params => &store.params,
                    Buf::Grads => &store.grads,
                    Buf::State => &store.state,
                };
                entries.push(wgpu::BindGroupEntry {
                    binding: k as u32 + 1,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer,
                        offset: s.offset,
                        size: wgpu::BufferSize::new(s.bytes.max(4)),
                    }),
                });
            }
            let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
            let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(call.entry),
                layout: &layout,
                entries: &entries,
            });
            if let Some(e) = pollster::block_on(scope.pop()) {
                return Err(Error::Device(format!(
                    "bind group for {}:{}: {e}",
                    call.shader, call.entry
                )));
            }
            let then = call.then.map(|sum| {
                let k = bound_index(&call.args, sum.arg);
                RankSum {
                    storage: bound[k].expect("a rank sum's buffer is bound"),
                    floats: sum.floats,
                    gather: sum.gather,
                }
            });
            let grads = bound
                .iter()
                .flatten()
                .filter(|s| s.buf == Buf::Grads)
                .map(|s| (s.offset, s.offset + s.bytes))
                .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)));
            dispatches.push(Dispatch {
                pipeline,
                bind_group,
                groups: call.workgroups,
                label: label.clone(),
                kernel: format!("{}:{}", call.shader, call.entry),
                node: *node,
                then,
                grads,
            });
        }
        gpu.check()?;
        Ok(Executable {
            arena_bytes: store.bytes(),
            gpu,
            graph,
            storage,
            owned_bytes: buffers.bytes,
            buffers: owned,
            dispatches,
            _uniforms: uniforms,
            log_first_run: AtomicBool::new(std::env::var_os("PADNET_LOG_PIPELINES").is_some()),
        })
    }

    /// Peak GPU memory of this graph: its own buffers plus the shared arenas.
    pub fn peak_bytes(&self) -> u64 {
        self.owned_bytes + self.arena_bytes
    }

    pub fn num_dispatches(&self) -> usize {
        self.dispatches.len()
    }

    /// Dispatch labels in order (for profiling and debugging).
    pub fn dispatch_labels(&self) -> Vec<&str> {
        self.dispatches.iter().map(|d| d.label.as_str()).collect()
    }

    /// The kernels the graph runs ("shader:entry"), each once, in order of first use: which
    /// GEMM kernel the autotune chose, for one.
    pub fn kernels(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for d in &self.dispatches {
            if !seen.contains(&d.kernel) {
                seen.push(d.kernel.clone());
            }
        }
        seen
    }

    /// Times every dispatch on its own: runs the graph `reps` times, submitting each dispatch
    /// alone and waiting for it, and returns (label, median milliseconds) in execution order.
    /// Each dispatch sees the buffers exactly as in a normal run (replaying a dispatch after
    /// the run would read buffers that later nodes reused, e.g. MoE routing tables).
    /// For profiling, not training.
    pub fn profile(&self, reps: usize) -> Result<Vec<(String, f64)>> {
        self.run()?; // warm-up: JIT compilation of every pipeline
        let mut times = vec![vec![]; self.dispatches.len()];
        for _ in 0..reps.max(1) {
            for (t, ms) in times.iter_mut().zip(self.run_each_timed()?) {
                t.push(ms);
            }
        }
        Ok(self
            .dispatches
            .iter()
            .zip(times)
            .map(|(d, mut t)| {
                t.sort_by(|a, b| a.total_cmp(b));
                (d.label.clone(), t[t.len() / 2])
            })
            .collect())
    }

    /// Records every dispatch of one run into `pass` (a graph without rank sums).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        debug_assert!(!self.has_rank_sums(), "use run_ranks");
        for d in &self.dispatches {
            d.record(pass);
        }
    }

    /// Runs the graph once as this rank of `comm` ([`run`](Self::run) where it has no rank
    /// sums, [`run_ranks`](Self::run_ranks) where it has) and waits for it.
    pub fn run_as(&self, comm: &Comm) -> Result<()> {
        if !self.has_rank_sums() {
            return self.run();
        }
        self.run_ranks(comm)?;
        self.gpu.wait()
    }

    /// Whether a run stops for sums over the data-parallel ranks (SyncBN).
    pub fn has_rank_sums(&self) -> bool {
        self.dispatches.iter().any(|d| d.then.is_some())
    }

    /// Submits `dispatches` in one encoder (no wait).
    pub(super) fn submit(&self, dispatches: &[Dispatch]) -> Result<()> {
        let enc = self.encode_dispatches(dispatches);
        self.gpu.queue.submit([enc.finish()]);
        Ok(())
    }

    /// An encoder with `dispatches` recorded in one compute pass.
    pub(super) fn encode_dispatches(&self, dispatches: &[Dispatch]) -> wgpu::CommandEncoder {
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for d in dispatches {
                d.record(&mut pass);
            }
        }
        enc
    }

    /// Runs the graph once (one encoder, one submit) and waits for it.
    pub fn run(&self) -> Result<()> {
        if self.take_first_run_log() {
            return self.run_logging_slow_dispatches();
        }
        self.submit(&self.dispatches)?;
        self.gpu.wait()
    }

    /// Whether this run should be [`run_logging_slow_dispatches`](Self::run_logging_slow_dispatches)
    /// (the first, under `PADNET_LOG_PIPELINES`).
    pub fn take_first_run_log(&self) -> bool {
        self.log_first_run.swap(false, Ordering::Relaxed)
    }

    /// Runs the graph once, submitting and waiting for each dispatch alone, and prints those
    /// that took over 0.1 s: on a first run, the driver's compile time (lavapipe JIT-compiles a
    /// pipeline at its first dispatch; docs/architecture.md, "Compile time on lavapipe").
    pub fn run_logging_slow_dispatches(&self) -> Result<()> {
        let times = self.run_each_timed()?;
        for (d, ms) in self.dispatches.iter().zip(&times) {
            if *ms > 100.0 {
                eprintln!("first dispatch of {} took {:.1} s", d.label, ms / 1e3);
            }
        }
        eprintln!(
            "first run of {} dispatches took {:.1} s",
            self.dispatches.len(),
            times.iter().sum::<f64>() / 1e3
        );
        Ok(())
    }

    /// Runs the graph once, submitting each dispatch alone and waiting for it; returns each
    /// dispatch's milliseconds in execution order.
    fn run_each_timed(&self) -> Result<Vec<f64>> {
        let mut times = Vec::with_capacity(self.dispatches.len());
        for d in &self.dispatches {
            let start = std::time::Instant::now();
            self.submit(std::slice::from_ref(d))?;
            self.gpu.wait()?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        Ok(times)
    }

    /// Runs the graph once node by node, reading each node's outputs back: the first output
    /// holding a NaN or ±Inf is an error naming its op, tensor and inputs (`--detect-anomaly`;
    /// one submit and read-back per node, so many times slower than [`run`](Self::run)).
    pub fn run_checked(&self, store: &ParamStore) -> Result<()> {
        for group in self.dispatches.chunk_by(|a, b| a.node == b.node) {
            self.submit(group)?;
            let node = &self.graph.nodes[group[0].node];
            for &t in &node.outputs {
                let tensor = &self.graph.tensors[t];
                if tensor.dtype != DType::F32 {
                    continue;
                }
                let values = self.read(t, store)?;
                if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                    let inputs: Vec<&str> = node
                        .inputs
                        .iter()
                        .map(|&t| self.graph.tensors[t].name.as_str())
                        .collect();
                    return Err(Error::Invalid(format!(
                        "--detect-anomaly: op {} (node {}) wrote {} into '{}' {:?} at index {i}; its inputs: {}",
                        node.op.name(),
                        group[0].node,
                        values[i],
                        tensor.name,
                        tensor.shape,
                        inputs.join(", ")
                    )));
                }
            }
        }
        Ok(())
    }

    fn storage(&self, t: TensorId) -> Result<Storage> {
        self.storage
            .get(t)
            .copied()
            .flatten()
            .ok_or_else(|| Error::Invalid(format!("tensor {t} has no storage (dead or unknown)")))
    }

    /// Uploads host data into an input tensor.
    pub fn write(&self, t: TensorId, data: &[f32]) -> Result<()> {
        self.write_bytes(t, bytemuck::cast_slice(data), data.len(), DType::F32)
    }

    pub fn write_u32(&self, t: TensorId, data: &[u32]) -> Result<()> {
        self.write_bytes(t, bytemuck::cast_slice(data), data.len(), DType::U32)
    }

    fn write_bytes(&self, t: TensorId, bytes: &[u8], len: usize, dtype: DType) -> Result<()> {
        let tensor = &self.graph.tensors[t];
        if len != tensor.numel() || dtype != tensor.dtype {
            return Err(Error::shape(
                "write",
                format!(
                    "'{}' is {:?} {:?}; got {len} {dtype:?} values",
                    tensor.name, tensor.shape, tensor.dtype
                ),
            ));
        }
        let s = self.storage(t)?;
        let Buf::Own(b) = s.buf else {
            return Err(Error::Invalid(format!(
                "'{}' lives in the parameter store; write it there",
                tensor.name
            )));
        };
        self.gpu
            .queue
            .write_buffer(&self.buffers[b], s.offset, bytes);
        Ok(())
    }

    /// Reads any live tensor (inputs, outputs, kept activations) back as f32.
    pub fn read(&self, t: TensorId, store: &ParamStore) -> Result<Vec<f32>> {
        let s = self.storage(t)?;
        let buf = match s.buf {
            Buf::Own(b) => &self.buffers[b],
            Buf::Params => &store.params,
            Buf::Grads => &store.grads,
            Buf::State => &store.state,
        };
        let bytes = self.gpu.read_bytes(buf, s.offset, s.bytes)?;
        Ok(match self.graph.tensors[t].dtype {
            DType::F32 => bytemuck::pod_collect_to_vec(&bytes),
            DType::U32 => bytemuck::pod_collect_to_vec::<u8, u32>(&bytes)
                .into_iter()
                .map(|v| v as f32)
                .collect(),
        })
    }
}

/// Position of `arg` among a call's bound arguments.
fn bound_index(args: &[Arg], arg: Arg) -> usize {
    args.iter()
        .position(|&a| a == arg)
        .expect("a rank sum names one of its call's arguments")
}
