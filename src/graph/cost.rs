//! What an inference graph costs: its parameters and the multiply-accumulates of one run.
//! `export` prints both for a deploy file and its static and fully dynamic equivalents
//! (docs/method.md §5).

use super::op::Op;
use super::{numel, Graph};

/// Multiply-accumulates of one run of a forward graph: matrix products, convolutions, the
/// per-sample kernel assembly of DY-Conv and PAD-Conv (K kernels mixed, plus the static one;
/// split layers: of their dynamic filters only) and PAD-MoE's expert mix. Elementwise ops,
/// normalisation and pooling are not counted (they are a few percent of a convolution
/// network's arithmetic), nor are backward ops. Grouped
/// (MoE) products count every routing slot, dropped ones included: an upper bound.
pub fn forward_macs(g: &Graph) -> u64 {
    g.nodes
        .iter()
        .map(|node| {
            let shape = |i: usize| g.shape(node.inputs[i]);
            let out = g.shape(node.outputs[0]);
            match &node.op {
                Op::MatMul { trans_a, .. } => {
                    let a = shape(0);
                    let k = a[a.len() - if *trans_a { 2 } else { 1 }];
                    (numel(out) * k) as u64
                }
                // Row-grouped: C [R, N] from A [R, K]; K-grouped: C [E, M, N] over A's R rows.
                Op::GroupedMatMul { by_k: false, .. } => (numel(out) * shape(0)[1]) as u64,
                Op::GroupedMatMul { by_k: true, .. } => {
                    (shape(0)[0] * out[1..].iter().product::<usize>()) as u64
                }
                Op::Conv2d(geom) => geom.macs(),
                Op::DynConv2d(s) => {
                    let mixed = s.k + usize::from(s.pad);
                    s.geom.macs() + (s.geom.n * mixed * s.n()) as u64
                }
                // Every filter's convolution, and the dynamic filters' assembly.
                Op::SplitDynConv2d { spec, statics } => {
                    spec.split_geom(*statics).macs() + (spec.geom.n * spec.k * spec.n()) as u64
                }
                Op::PadMix(s) => (s.experts * s.n) as u64,
                _ => 0,
            }
        })
        .sum()
}

/// Trainable parameters of a graph (BatchNorm's running statistics and masks excluded).
pub fn param_count(g: &Graph) -> usize {
    g.params().map(|t| numel(g.shape(t))).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::params::{ConvGeom, ConvOpts};
    use crate::graph::{DType, Init};

    #[test]
    fn counts_matmul_and_convolution_multiply_accumulates_and_parameters() {
        let mut g = Graph::new();
        // [2, 3] · [3, 4]: 2·4 outputs of 3 products each; with trans_a, Aᵀ of [3, 2].
        let a = g.input("a", &[2, 3], DType::F32);
        let at = g.input("at", &[3, 2], DType::F32);
        let b = g.param("b", &[3, 4], Init::Zeros);
        let mm = |trans_a| Op::MatMul {
            trans_a,
            trans_b: false,
            accumulate: false,
        };
        g.push1(mm(false), &[a, b]).unwrap();
        g.push1(mm(true), &[at, b]).unwrap();
        // 3×3 conv, 2 → 5 channels, 2 samples of 4×4, padding 1: 2·5·4·4 outputs of 2·9.
        let x = g.input("x", &[2, 2, 4, 4], DType::F32);
        let geom = ConvGeom::new(g.shape(x), 5, ConvOpts::k(3).pad(1)).unwrap();
        let w = g.param("w", &geom.w_shape(), Init::Zeros);
        let y = g.push1(Op::Conv2d(geom), &[x, w]).unwrap();
        g.push1(Op::Unary(crate::graph::op::Act::Relu), &[y])
            .unwrap();
        assert_eq!(forward_macs(&g), 2 * 24 + 2 * 5 * 16 * 18);
        assert_eq!(param_count(&g), 12 + 5 * 2 * 9);
    }
}
