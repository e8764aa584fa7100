//! Dynamic / PAD convolution by the definitions of docs/method.md §1.1–1.2: per-sample kernels,
//! per-sample convolutions, and the gradients written per sample (no A_k/S shortcuts), so the
//! GPU's chunked contraction is checked against the plain formulas.

use crate::kernels::conv::ConvGeom;
use crate::kernels::dynconv::{DynSpec, MixSpec};
use crate::kernels::reference::conv;

fn one_sample(g: &ConvGeom) -> ConvGeom {
    ConvGeom { n: 1, ..*g }
}

/// (λ_d, λ_s, dλ_d/dφ, dλ_s/dφ, mask, static) of a spec's inputs; DY-Conv: M = 1, λ = 1.
fn pad_parts(s: &DynSpec, ins: &[&[f64]]) -> ((f64, f64, f64, f64), Vec<f64>, Vec<f64>) {
    let n = s.n();
    if s.pad {
        (s.lambda.eval(ins[5][0]), ins[4].to_vec(), ins[3].to_vec())
    } else {
        ((1.0, 1.0, 0.0, 0.0), vec![1.0; n], vec![0.0; n])
    }
}

/// Per-sample kernels [B, N].
fn kernels(s: &DynSpec, ins: &[&[f64]]) -> Vec<f64> {
    let (g, n, k) = (&s.geom, s.n(), s.k);
    let ((ld, ls, _, _), m, ws) = pad_parts(s, ins);
    let (alpha, wk) = (ins[1], ins[2]);
    let mut wt = vec![0.0; g.n * n];
    for b in 0..g.n {
        for j in 0..n {
            let d: f64 = (0..k).map(|kk| alpha[b * k + kk] * wk[kk * n + j]).sum();
            wt[b * n + j] = ld * m[j] * d + ls * (1.0 - m[j]) * ws[j];
        }
    }
    wt
}

/// `(x, alpha, kernels[, static, mask, phi]) → y`.
pub fn forward(s: &DynSpec, ins: &[&[f64]]) -> Vec<Vec<f64>> {
    let (g, n) = (&s.geom, s.n());
    let wt = kernels(s, ins);
    let g1 = one_sample(g);
    let (xs, ys) = (g.c * g.h * g.w, g.o * g.oh * g.ow);
    let mut y = vec![0.0; g.n * ys];
    for b in 0..g.n {
        let xb = &ins[0][b * xs..(b + 1) * xs];
        y[b * ys..(b + 1) * ys].copy_from_slice(&conv::forward(&g1, xb, &wt[b * n..(b + 1) * n]));
    }
    vec![y]
}

/// `Op::SplitDynConv2d`: the static filters' convolution with W_S and the dynamic filters'
/// DY-Conv `s`, their channels put in filter order by `row_of` = order[0] (the definition of
/// §5's split).
pub fn split_forward(s: &DynSpec, statics: usize, ins: &[&[f64]]) -> Vec<f64> {
    let g = &s.geom;
    let static_geom = ConvGeom { o: statics, ..*g };
    let y_static = conv::forward(&static_geom, ins[0], ins[3]);
    let y_dynamic = forward(s, &ins[..3]).remove(0);
    crate::kernels::reference::gather::merge_channels(
        &y_static,
        &[g.n, statics, g.oh, g.ow],
        &y_dynamic,
        &[g.n, g.o, g.oh, g.ow],
        &ins[4][..statics + g.o],
    )
}

/// `(forward inputs..., dy) → (dx, dalpha, dkernels[, dstatic, dphi, dmask])`.
pub fn backward(s: &DynSpec, ins: &[&[f64]]) -> Vec<Vec<f64>> {
    let (g, n, k) = (&s.geom, s.n(), s.k);
    let ((ld, ls, dld, dls), m, ws) = pad_parts(s, ins);
    let (x, alpha, wk) = (ins[0], ins[1], ins[2]);
    let dy = ins[ins.len() - 1];
    let wt = kernels(s, ins);
    let g1 = one_sample(g);
    let (xs, ys) = (g.c * g.h * g.w, g.o * g.oh * g.ow);
    let mut dx = vec![0.0; x.len()];
    let mut dalpha = vec![0.0; g.n * k];
    let mut a = vec![0.0; k * n];
    let mut sum = vec![0.0; n];
    for b in 0..g.n {
        let (xb, dyb) = (&x[b * xs..(b + 1) * xs], &dy[b * ys..(b + 1) * ys]);
        dx[b * xs..(b + 1) * xs].copy_from_slice(&conv::grad_input(
            &g1,
            dyb,
            &wt[b * n..(b + 1) * n],
        ));
        let gb = conv::grad_weight(&g1, xb, dyb); // dW~_b
        for kk in 0..k {
            dalpha[b * k + kk] = ld * (0..n).map(|j| m[j] * wk[kk * n + j] * gb[j]).sum::<f64>();
            for j in 0..n {
                a[kk * n + j] += alpha[b * k + kk] * gb[j];
            }
        }
        for j in 0..n {
            sum[j] += gb[j];
        }
    }
    let dwk: Vec<f64> = (0..k * n).map(|i| ld * m[i % n] * a[i]).collect();
    if !s.pad {
        return vec![dx, dalpha, dwk];
    }
    let dws: Vec<f64> = (0..n).map(|j| ls * (1.0 - m[j]) * sum[j]).collect();
    let wa = |j: usize| (0..k).map(|kk| wk[kk * n + j] * a[kk * n + j]).sum::<f64>();
    let dmask: Vec<f64> = (0..n).map(|j| ld * wa(j) - ls * ws[j] * sum[j]).collect();
    let dphi: f64 = (0..n)
        .map(|j| dld * m[j] * wa(j) + dls * (1.0 - m[j]) * ws[j] * sum[j])
        .sum();
    vec![dx, dalpha, dwk, dws, vec![dphi], dmask]
}

/// PAD-MoE's effective experts, `(experts, static, mask, phi) → W~`, by definition.
pub fn mix_forward(s: &MixSpec, ins: &[&[f64]]) -> Vec<Vec<f64>> {
    let (w, ws, m) = (ins[0], ins[1], ins[2]);
    let (ld, ls, _, _) = s.lambda.eval(ins[3][0]);
    let n = s.n;
    let out = (0..s.experts * n)
        .map(|i| {
            let j = i % n;
            ld * m[j] * w[i] + ls * (1.0 - m[j]) * ws[j]
        })
        .collect();
    vec![out]
}

/// `(forward inputs..., dW~) → (dexperts, dstatic, dphi, dmask)`, each from the chain rule
/// through W~_e = λ_d M⊙W_e + λ_s (1−M)⊙W_s element by element.
pub fn mix_backward(s: &MixSpec, ins: &[&[f64]]) -> Vec<Vec<f64>> {
    let (w, ws, m, dw) = (ins[0], ins[1], ins[2], ins[4]);
    let (ld, ls, dld, dls) = s.lambda.eval(ins[3][0]);
    let n = s.n;
    let mut dexperts = vec![0.0; s.experts * n];
    let mut dstatic = vec![0.0; n];
    let mut dmask = vec![0.0; n];
    let mut dphi = 0.0;
    for e in 0..s.experts {
        for j in 0..n {
            let (i, g) = (e * n + j, dw[e * n + j]);
            dexperts[i] = g * ld * m[j];
            dstatic[j] += g * ls * (1.0 - m[j]);
            dmask[j] += g * (ld * w[i] - ls * ws[j]);
            dphi += g * (dld * m[j] * w[i] + dls * (1.0 - m[j]) * ws[j]);
        }
    }
    vec![dexperts, dstatic, vec![dphi], dmask]
}
