//! The parameter store: parameters, their gradients and persistent state, each packed into
//! one GPU arena that every compiled graph of a model binds.

use crate::dist::Comm;
use crate::error::{Error, Result};
use crate::gpu::{memory, Gpu};
use crate::graph::{Graph, Init, Role};
use crate::rng::Rng;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Arena offsets are multiples of this many floats: 512 bytes, so that both a slot of the
/// arena and its slot in the f16 copy (half the offset; `compile::HalfWeights`) meet the
/// 256-byte binding-offset alignment.
const ALIGN_FLOATS: usize = 128;

/// What to change when a model does not fit.
const SMALLER_MODEL: &str = "choose a smaller model (--width, --kernels, --experts)";

#[derive(Clone, Debug)]
pub struct Slot {
    /// Offset in floats inside its arena.
    pub offset: usize,
    pub shape: Vec<usize>,
}

impl Slot {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Values per gradient bucket of a data-parallel step (16 MiB of f32): each is averaged over
/// the ranks, through a bounded host copy, as soon as the backward is done with it.
pub const GRAD_BUCKET: usize = 1 << 22;

/// Parameters, their gradients and persistent state (running statistics, metric counters),
/// each packed into one arena so that the optimizer is a single dispatch and several compiled
/// graphs (train, eval) share the same weights.
pub struct ParamStore {
    pub gpu: Arc<Gpu>,
    pub params: wgpu::Buffer,
    pub grads: wgpu::Buffer,
    pub state: wgpu::Buffer,
    pub param_len: usize,
    /// Floats of the gradient arena: `param_len`, or a placeholder's where the graph the store
    /// was made for has no gradients (evaluation: no memory for gradients nothing computes).
    pub grad_len: usize,
    pub state_len: usize,
    /// Trainable tensors by name, in graph order.
    pub param_slots: BTreeMap<String, Slot>,
    pub state_slots: BTreeMap<String, Slot>,
    /// Names in declaration order (for checkpoints and reports).
    pub param_order: Vec<String>,
    pub state_order: Vec<String>,
}

fn align(n: usize) -> usize {
    n.div_ceil(ALIGN_FLOATS) * ALIGN_FLOATS
}

/// `n` values drawn from `init` (a parameter's initial values; the benchmarks' too).
pub(crate) fn init_values(init: &Init, n: usize, rng: &mut Rng) -> Vec<f32> {
    match init {
        Init::Zeros => vec![0.0; n],
        Init::Ones => vec![1.0; n],
        Init::Normal(std) => (0..n).map(|_| rng.normal() * std).collect(),
        Init::Uniform(b) => (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) * b).collect(),
    }
}

impl ParamStore {
    /// Lays out and initialises (with `seed`) every parameter and state tensor of `g`, with a
    /// gradient arena if `g` has gradients.
    pub fn new(gpu: Arc<Gpu>, g: &Graph, seed: u64) -> Result<Self> {
        Self::with_gradients(gpu, g, seed, !g.grads.is_empty())
    }

    /// [`new`](Self::new), with a gradient arena or not whatever `g` has: for a store made
    /// from an evaluation graph that later graphs with gradients share (IMP's scores).
    pub fn with_gradients(gpu: Arc<Gpu>, g: &Graph, seed: u64, gradients: bool) -> Result<Self> {
        // Sizes first: a model too large for the device or the memory budget fails here,
        // before its initial values take host memory.
        let arena_bytes = |is: fn(&Role) -> bool| -> u64 {
            let floats: usize = g
                .tensors
                .iter()
                .filter(|t| is(&t.role))
                .map(|t| align(t.numel()))
                .sum();
            floats.max(ALIGN_FLOATS) as u64 * 4
        };
        let param_bytes = arena_bytes(|r| matches!(r, Role::Param(_)));
        let state_bytes = arena_bytes(|r| matches!(r, Role::State(_)));
        let grad_bytes = match gradients {
            true => param_bytes,
            false => ALIGN_FLOATS as u64 * 4,
        };
        for (what, bytes) in [("parameters", param_bytes), ("state", state_bytes)] {
            if bytes > gpu.limits.max_buffer_size {
                return Err(Error::Invalid(format!(
                    "the model's {what} take {}, over this adapter's buffer limit of {}; {SMALLER_MODEL}",
                    memory::size(bytes),
                    memory::size(gpu.limits.max_buffer_size)
                )));
            }
        }
        memory::check(
            "the model's initial values",
            &[("parameters", param_bytes), ("state", state_bytes)],
            memory::host_memory_budget()?,
            SMALLER_MODEL,
        )?;
        memory::check(
            "the model's arenas",
            &[
                ("parameters", param_bytes),
                ("gradients", grad_bytes),
                ("state", state_bytes),
            ],
            gpu.memory_budget()?,
            SMALLER_MODEL,
        )?;
        let mut rng = Rng::new(seed);
        let (mut param_slots, mut state_slots) = (BTreeMap::new(), BTreeMap::new());
        let (mut param_order, mut state_order) = (vec![], vec![]);
        let (mut pdata, mut sdata) = (Vec::new(), Vec::new());
        for t in &g.tensors {
            let (slots, order, data, init) = match &t.role {
                Role::Param(i) => (&mut param_slots, &mut param_order, &mut pdata, i),
                Role::State(i) => (&mut state_slots, &mut state_order, &mut sdata, i),
                _ => continue,
            };
            if slots.contains_key(&t.name) {
                return Err(Error::Invalid(format!("two parameters named '{}'", t.name)));
            }
            let offset = data.len();
            data.extend(init_values(init, t.numel(), &mut rng));
            data.resize(align(data.len()), 0.0);
            slots.insert(
                t.name.clone(),
                Slot {
                    offset,
                    shape: t.shape.clone(),
                },
            );
            order.push(t.name.clone());
        }
        let (param_len, state_len) = (pdata.len().max(ALIGN_FLOATS), sdata.len().max(ALIGN_FLOATS));
        let grad_len = match gradients {
            true => param_len,
            false => ALIGN_FLOATS,
        };
        let params = gpu.storage_buffer("params", (param_len * 4) as u64)?;
        let grads = gpu.storage_buffer("grads", (grad_len * 4) as u64)?;
        let state = gpu.storage_buffer("state", (state_len * 4) as u64)?;
        gpu.queue
            .write_buffer(&params, 0, bytemuck::cast_slice(&pdata));
        gpu.queue
            .write_buffer(&state, 0, bytemuck::cast_slice(&sdata));
        Ok(ParamStore {
            gpu,
            params,
            grads,
            state,
            param_len,
            grad_len,
            state_len,
            param_slots,
            state_slots,
            param_order,
            state_order,
        })
    }

    pub fn bytes(&self) -> u64 {
        ((self.param_len + self.grad_len + self.state_len) * 4) as u64
    }

    /// Whether the store has a gradient arena: it was made for a graph with gradients.
    pub fn has_grads(&self) -> bool {
        self.grad_len == self.param_len
    }

    /// An error unless the store has a gradient arena (`what` needs one).
    pub fn require_grads(&self, what: &str) -> Result<()> {
        match self.has_grads() {
            true => Ok(()),
            false => Err(Error::Invalid(format!(
                "{what} needs gradients, but this parameter store was made for a graph without \
                 any (evaluation only)"
            ))),
        }
    }

    /// Number of trainable scalars (without alignment padding).
    pub fn num_params(&self) -> usize {
        self.param_slots.values().map(Slot::len).sum()
    }

    fn lookup(&self, name: &str) -> Result<(&wgpu::Buffer, &Slot)> {
        if let Some(s) = self.param_slots.get(name) {
            return Ok((&self.params, s));
        }
        if let Some(s) = self.state_slots.get(name) {
            return Ok((&self.state, s));
        }
        Err(Error::Invalid(format!(
            "no parameter or state tensor named '{name}'"
        )))
    }

    pub fn read(&self, name: &str) -> Result<Vec<f32>> {
        let (buf, s) = self.lookup(name)?;
        self.gpu.read_f32(buf, (s.offset * 4) as u64, s.len())
    }

    pub fn read_grad(&self, name: &str) -> Result<Vec<f32>> {
        self.require_grads("reading a gradient")?;
        let s = self
            .param_slots
            .get(name)
            .ok_or_else(|| Error::Invalid(format!("no parameter named '{name}'")))?;
        self.gpu
            .read_f32(&self.grads, (s.offset * 4) as u64, s.len())
    }

    pub fn write(&self, name: &str, data: &[f32]) -> Result<()> {
        let (buf, s) = self.lookup(name)?;
        if data.len() != s.len() {
            return Err(Error::shape(
                "write",
                format!("{name}: {} values for shape {:?}", data.len(), s.shape),
            ));
        }
        self.gpu
            .queue
            .write_buffer(buf, (s.offset * 4) as u64, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Copies rank 0's parameters and state to every rank of `comm` (so that the ranks start
    /// from the same weights whatever each initialised or loaded).
    pub fn broadcast_from_root(&self, comm: &Comm) -> Result<()> {
        if comm.size() == 1 {
            return Ok(());
        }
        self.broadcast_floats(comm, &self.params, 0, self.param_len)?;
        self.broadcast_floats(comm, &self.state, 0, self.state_len)
    }

    /// Copies rank 0's values of the state tensors whose names pass `keep` to every rank
    /// (BatchNorm running statistics when each rank keeps its own).
    pub fn broadcast_state_from_root(
        &self,
        comm: &Comm,
        keep: impl Fn(&str) -> bool,
    ) -> Result<()> {
        if comm.size() == 1 {
            return Ok(());
        }
        for (_, slot) in self.state_slots.iter().filter(|(name, _)| keep(name)) {
            self.broadcast_floats(comm, &self.state, slot.offset, slot.len())?;
        }
        Ok(())
    }

    /// Rank 0's `len` floats at float `offset` of `buf`, written on every rank (a sum of them
    /// and zeros: exact).
    fn broadcast_floats(
        &self,
        comm: &Comm,
        buf: &wgpu::Buffer,
        offset: usize,
        len: usize,
    ) -> Result<()> {
        let bytes = (offset * 4) as u64;
        let mut data = match comm.is_root() {
            true => self.gpu.read_f32(buf, bytes, len)?,
            false => vec![0.0; len],
        };
        comm.sum(&mut data)?;
        self.gpu
            .queue
            .write_buffer(buf, bytes, bytemuck::cast_slice(&data));
        Ok(())
    }

    /// Whole arenas, for checkpoints: (params, state).
    pub fn read_all(&self) -> Result<(Vec<f32>, Vec<f32>)> {
        Ok((
            self.gpu.read_f32(&self.params, 0, self.param_len)?,
            self.gpu.read_f32(&self.state, 0, self.state_len)?,
        ))
    }
}
