//! CPU interpreter of a graph in f64, node by node through `reference::eval`. Tests run the
//! same graph here and on the GPU and compare every tensor.

use crate::graph::{Graph, Role, TensorId};
use crate::kernels::reference;

/// Values of every tensor; `None` until set or computed.
pub struct Values(pub Vec<Option<Vec<f64>>>);

impl Values {
    pub fn new(g: &Graph) -> Self {
        Values(
            g.tensors
                .iter()
                .map(|t| match &t.role {
                    Role::Constant(d) => Some(d.iter().map(|&v| v as f64).collect()),
                    _ => None,
                })
                .collect(),
        )
    }
    pub fn set(&mut self, t: TensorId, v: Vec<f64>) {
        self.0[t] = Some(v);
    }
    pub fn get(&self, t: TensorId) -> &[f64] {
        self.0[t]
            .as_deref()
            .unwrap_or_else(|| panic!("tensor {t} has no value"))
    }
}

/// Evaluates nodes `range` in order (in-place state updates included).
pub fn run_nodes(g: &Graph, v: &mut Values, range: std::ops::Range<usize>) {
    for node in &g.nodes[range] {
        let ins: Vec<&[f64]> = node.inputs.iter().map(|&t| v.get(t)).collect();
        let in_t: Vec<_> = node.inputs.iter().map(|&t| &g.tensors[t]).collect();
        let out_t: Vec<_> = node.outputs.iter().map(|&t| &g.tensors[t]).collect();
        let r = reference::eval(&node.op, &ins, &in_t, &out_t);
        for (k, val) in r.updates {
            v.set(node.inputs[k], val);
        }
        for (&o, val) in node.outputs.iter().zip(r.outputs) {
            v.set(o, val);
        }
    }
}

pub fn run(g: &Graph, v: &mut Values) {
    run_nodes(g, v, 0..g.nodes.len());
}
