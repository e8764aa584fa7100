//! Reductions by the definitions: sums over axes and their broadcast back, per-channel sums.

use crate::kernels::reduce::reduce_view;

pub fn bias_grad(dy: &[f64], shape: &[usize]) -> Vec<f64> {
    let inner: usize = shape[2..].iter().product();
    let mut out = vec![0.0; shape[1]];
    for (i, v) in dy.iter().enumerate() {
        out[(i / inner) % shape[1]] += v;
    }
    out
}

pub fn sum(x: &[f64], shape: &[usize], start: usize, end: usize, mean: bool) -> Vec<f64> {
    let (outer, r, inner) = reduce_view(shape, start, end);
    let scale = if mean { 1.0 / r as f64 } else { 1.0 };
    let mut out = vec![0.0; outer * inner];
    for o in 0..outer {
        for k in 0..r {
            for i in 0..inner {
                out[o * inner + i] += x[(o * r + k) * inner + i];
            }
        }
    }
    out.iter().map(|v| v * scale).collect()
}

pub fn expand(x: &[f64], shape: &[usize], start: usize, end: usize, mean: bool) -> Vec<f64> {
    let (outer, r, inner) = reduce_view(shape, start, end);
    let scale = if mean { 1.0 / r as f64 } else { 1.0 };
    let mut out = vec![0.0; outer * r * inner];
    for o in 0..outer {
        for k in 0..r {
            for i in 0..inner {
                out[(o * r + k) * inner + i] = scale * x[o * inner + i];
            }
        }
    }
    out
}
