//! Reverse-mode differentiation over the graph, from hand-written per-op gradient rules.

use super::{Graph, Op, Role, TensorId};
use crate::error::{Error, Result};
use std::collections::{HashMap, HashSet};

/// Appends the backward pass of `y` seeded with `dy` (same shape as `y`), and records in
/// `g.grads` the gradient of every parameter (and of every input marked `requires_grad`).
/// Returns the map tensor → gradient for every tensor that received one.
pub fn backward(g: &mut Graph, y: TensorId, dy: TensorId) -> Result<HashMap<TensorId, TensorId>> {
    if g.shape(y) != g.shape(dy) {
        return Err(Error::shape(
            "backward",
            format!("seed gradient {:?} vs output {:?}", g.shape(dy), g.shape(y)),
        ));
    }
    // Partial gradients per tensor, summed when a tensor feeds several consumers.
    let mut partial: HashMap<TensorId, Vec<TensorId>> = HashMap::new();
    partial.insert(y, vec![dy]);
    let mut total: HashMap<TensorId, TensorId> = HashMap::new();
    let forward_nodes = g.nodes.len();
    g.backward_from.get_or_insert(forward_nodes);

    for n in (0..forward_nodes).rev() {
        let node = g.nodes[n].clone();
        if !node.inputs.iter().any(|&i| g.tensors[i].requires_grad) {
            continue;
        }
        let mut douts = Vec::with_capacity(node.outputs.len());
        let mut any = false;
        for &o in &node.outputs {
            let d = sum_partials(g, &mut partial, o)?;
            if let Some(d) = d {
                total.insert(o, d);
                any = true;
            }
            douts.push(d);
        }
        if !any {
            continue;
        }
        let dins = node.op.grad(g, &node.inputs, &node.outputs, &douts)?;
        for (&inp, d) in node.inputs.iter().zip(dins) {
            if let Some(d) = d {
                if g.tensors[inp].requires_grad {
                    partial.entry(inp).or_default().push(d);
                }
            }
        }
    }
    // Leaves: parameters and inputs that asked for gradients.
    let mut leaves: Vec<TensorId> = partial.keys().copied().collect();
    leaves.sort_unstable();
    let mut claimed: HashSet<TensorId> = HashSet::new();
    for t in leaves {
        if let Some(d) = sum_partials(g, &mut partial, t)? {
            let d = if matches!(g.tensors[t].role, Role::Param(_)) {
                // A parameter's gradient lands in its slot of the gradient arena, so it needs
                // storage of its own: copy when it is a view or shared with another gradient.
                let base = g.storage_of(d);
                let owned = base == d
                    && matches!(g.tensors[d].role, Role::Activation)
                    && !claimed.contains(&d)
                    && !g.grads.values().any(|&v| v == d);
                let d = if owned {
                    d
                } else {
                    g.push1(Op::Scale(1.0), &[d])?
                };
                claimed.insert(d);
                g.grads.insert(t, d);
                d
            } else {
                d
            };
            total.insert(t, d);
        }
    }
    Ok(total)
}

fn sum_partials(
    g: &mut Graph,
    partial: &mut HashMap<TensorId, Vec<TensorId>>,
    t: TensorId,
) -> Result<Option<TensorId>> {
    let Some(parts) = partial.remove(&t) else {
        return Ok(None);
    };
    // Parts of t's shape add up; smaller (broadcastable) parts, from the gradient of a sum
    // over some axes, join by a broadcast add, or are expanded when nothing else is there.
    let shape = g.shape(t).to_vec();
    let (full, small): (Vec<TensorId>, Vec<TensorId>) =
        parts.into_iter().partition(|&p| g.shape(p) == shape);
    let mut acc = match full.first() {
        Some(&first) => first,
        None => expand_to(g, small[0], &shape)?,
    };
    for &p in full.iter().skip(1) {
        acc = g.push1(Op::Add, &[acc, p])?;
    }
    for &p in small.iter().skip(full.is_empty() as usize) {
        acc = g.push1(Op::Add, &[acc, p])?;
    }
    partial.insert(t, vec![acc]);
    Ok(Some(acc))
}

/// `d`, whose shape is `shape` with a run of axes set to 1, repeated along that run.
fn expand_to(g: &mut Graph, d: TensorId, shape: &[usize]) -> Result<TensorId> {
    let small = g.shape(d).to_vec();
    let differs = |k: &usize| small[*k] != shape[*k];
    let start = (0..shape.len()).find(differs).unwrap_or(0);
    let end = (0..shape.len()).rfind(differs).map_or(start, |k| k + 1);
    let squeezed: Vec<usize> = [&shape[..start], &shape[end..]].concat();
    let d = g.reshape(d, &squeezed)?;
    g.push1(
        Op::Expand {
            shape: shape.to_vec(),
            start,
            end,
            mean: false,
        },
        &[d],
    )
}
