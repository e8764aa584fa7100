//! Graph IR. Model code builds a graph with static shapes; `autodiff::backward` appends the
//! gradient nodes from per-op rules; `compile` orders, plans memory and prepares dispatches.

pub mod autodiff;
pub mod cost;
pub mod dims;
mod grad;
pub mod op;
pub mod params;
pub mod shape;

use crate::error::{Error, Result};
pub use op::Op;
use std::collections::HashMap;

pub type TensorId = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    U32,
}

/// Where a tensor's data comes from and how long it lives.
#[derive(Clone, Debug, PartialEq)]
pub enum Role {
    /// Written by the host before each run (a batch of images, labels).
    Input,
    /// Trained weights: live in the parameter arena, get a gradient slot and optimizer state.
    Param(Init),
    /// Persistent, not trained (BatchNorm running statistics, metric accumulators).
    State(Init),
    /// Fixed data uploaded once at compile time.
    Constant(Vec<f32>),
    /// Produced by a node.
    Activation,
}

/// Parameter / state initialisers (drawn on the host from the store's seeded RNG).
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    Zeros,
    Ones,
    /// N(0, std²)
    Normal(f32),
    /// U(-bound, bound)
    Uniform(f32),
}

#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub role: Role,
    /// Reshape views alias the storage of their base tensor.
    pub view_of: Option<TensorId>,
    pub requires_grad: bool,
}

impl Tensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub tensors: Vec<Tensor>,
    pub nodes: Vec<Node>,
    /// Parameter -> its (final, accumulated) gradient, filled by `autodiff::backward`.
    pub grads: HashMap<TensorId, TensorId>,
    /// Tensors the host wants to read after a run (kept alive by the memory planner).
    pub outputs: Vec<TensorId>,
    /// PAD mask → ∂L/∂M (summed over the batch), filled by the backward of PAD convolutions.
    pub mask_grads: HashMap<TensorId, TensorId>,
    /// The first node `autodiff::backward` appended: gradients multiply in f32 whatever the
    /// device's precision (docs/architecture.md, "Half precision").
    pub backward_from: Option<usize>,
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    fn add_tensor(
        &mut self,
        name: String,
        shape: Vec<usize>,
        dtype: DType,
        role: Role,
    ) -> TensorId {
        let requires_grad = matches!(role, Role::Param(_));
        self.tensors.push(Tensor {
            name,
            shape,
            dtype,
            role,
            view_of: None,
            requires_grad,
        });
        self.tensors.len() - 1
    }

    pub fn input(&mut self, name: &str, shape: &[usize], dtype: DType) -> TensorId {
        self.add_tensor(name.into(), shape.to_vec(), dtype, Role::Input)
    }

    pub fn param(&mut self, name: &str, shape: &[usize], init: Init) -> TensorId {
        self.add_tensor(name.into(), shape.to_vec(), DType::F32, Role::Param(init))
    }

    pub fn state(&mut self, name: &str, shape: &[usize], init: Init) -> TensorId {
        self.add_tensor(name.into(), shape.to_vec(), DType::F32, Role::State(init))
    }

    pub fn constant(&mut self, name: &str, shape: &[usize], data: Vec<f32>) -> Result<TensorId> {
        if data.len() != numel(shape) {
            return Err(Error::shape(
                "constant",
                format!("{name}: {} values for shape {shape:?}", data.len()),
            ));
        }
        Ok(self.add_tensor(
            name.into(),
            shape.to_vec(),
            DType::F32,
            Role::Constant(data),
        ))
    }

    pub fn shape(&self, t: TensorId) -> &[usize] {
        &self.tensors[t].shape
    }

    /// The tensor whose storage `t` uses (follows reshape views).
    pub fn storage_of(&self, mut t: TensorId) -> TensorId {
        while let Some(b) = self.tensors[t].view_of {
            t = b;
        }
        t
    }

    /// Appends a node after checking shapes; returns its output tensors.
    pub fn push(&mut self, op: Op, inputs: &[TensorId]) -> Result<Vec<TensorId>> {
        let in_tensors: Vec<&Tensor> = inputs.iter().map(|&i| &self.tensors[i]).collect();
        let out_specs = op.infer(&in_tensors)?;
        let requires_grad = in_tensors.iter().any(|t| t.requires_grad);
        let name = op.name();
        let view_base = if matches!(op, Op::Reshape { .. }) {
            Some(inputs[0])
        } else {
            None
        };
        let mut outputs = Vec::with_capacity(out_specs.len());
        for (k, (shape, dtype)) in out_specs.into_iter().enumerate() {
            let id = self.add_tensor(
                format!("{name}#{}.{k}", self.nodes.len()),
                shape,
                dtype,
                Role::Activation,
            );
            self.tensors[id].requires_grad = requires_grad && dtype == DType::F32;
            self.tensors[id].view_of = view_base;
            outputs.push(id);
        }
        self.nodes.push(Node {
            op,
            inputs: inputs.to_vec(),
            outputs: outputs.clone(),
        });
        Ok(outputs)
    }

    /// Like `push` for single-output ops.
    pub fn push1(&mut self, op: Op, inputs: &[TensorId]) -> Result<TensorId> {
        Ok(self.push(op, inputs)?[0])
    }

    pub fn mark_output(&mut self, t: TensorId) {
        if !self.outputs.contains(&t) {
            self.outputs.push(t);
        }
    }

    pub fn params(&self) -> impl Iterator<Item = TensorId> + '_ {
        (0..self.tensors.len()).filter(|&t| matches!(self.tensors[t].role, Role::Param(_)))
    }

    pub fn states(&self) -> impl Iterator<Item = TensorId> + '_ {
        (0..self.tensors.len()).filter(|&t| matches!(self.tensors[t].role, Role::State(_)))
    }

    pub fn find(&self, name: &str) -> Option<TensorId> {
        self.tensors.iter().position(|t| t.name == name)
    }

    // ---- builder helpers: one per op, so model code reads like PyTorch ----

    pub fn matmul(
        &mut self,
        a: TensorId,
        b: TensorId,
        trans_a: bool,
        trans_b: bool,
    ) -> Result<TensorId> {
        self.push1(
            Op::MatMul {
                trans_a,
                trans_b,
                accumulate: false,
            },
            &[a, b],
        )
    }

    pub fn reshape(&mut self, x: TensorId, shape: &[usize]) -> Result<TensorId> {
        self.push1(
            Op::Reshape {
                shape: shape.to_vec(),
            },
            &[x],
        )
    }
}
