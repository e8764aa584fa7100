//! Activations, bias, reductions.

use crate::graph::op::Act;
use crate::ops::elementwise::reduce_view;

/// erf to ~1e-15: Taylor series below 3, continued fraction of erfc above.
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    let r = if z < 3.0 {
        let (mut sum, mut term, mut n) = (z, z, 0.0);
        loop {
            n += 1.0;
            term *= -z * z / n;
            let add = term / (2.0 * n + 1.0);
            sum += add;
            if add.abs() < 1e-17 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc(z) = e^{-z²}/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + ...))))
        let mut k = z;
        for n in (1..=80).rev() {
            k = z + (n as f64 / 2.0) / k;
        }
        1.0 - (-z * z).exp() / (std::f64::consts::PI.sqrt() * k)
    };
    r.copysign(x)
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

pub fn act(a: Act, x: f64) -> f64 {
    match a {
        Act::Relu => x.max(0.0),
        Act::Relu6 => x.clamp(0.0, 6.0),
        Act::Gelu => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
        Act::Sigmoid => sigmoid(x),
        Act::Tanh => x.tanh(),
        Act::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
    }
}

pub fn act_grad(a: Act, x: f64) -> f64 {
    match a {
        Act::Relu => (x > 0.0) as u8 as f64,
        Act::Relu6 => (x > 0.0 && x < 6.0) as u8 as f64,
        Act::Gelu => {
            0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2))
                + x * (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
        }
        Act::Sigmoid => sigmoid(x) * (1.0 - sigmoid(x)),
        Act::Tanh => 1.0 - x.tanh().powi(2),
        Act::Softplus => sigmoid(x),
    }
}

pub fn bias_add(x: &[f64], shape: &[usize], b: &[f64]) -> Vec<f64> {
    let inner: usize = shape[2..].iter().product();
    x.iter()
        .enumerate()
        .map(|(i, v)| v + b[(i / inner) % shape[1]])
        .collect()
}

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

/// Index into a right-aligned broadcast operand of shape `small` for each element of `full`.
fn broadcast_indices(full: &[usize], small: &[usize]) -> Vec<usize> {
    let pad = full.len() - small.len();
    let n: usize = full.iter().product();
    (0..n)
        .map(|mut i| {
            let (mut idx, mut stride) = (0, 1);
            for k in (0..full.len()).rev() {
                let c = i % full[k];
                i /= full[k];
                if k >= pad && small[k - pad] != 1 {
                    idx += c * stride;
                    stride *= small[k - pad];
                }
            }
            idx
        })
        .collect()
}

pub fn binary(
    a: &[f64],
    sa: &[usize],
    b: &[f64],
    sb: &[usize],
    f: impl Fn(f64, f64) -> f64,
) -> Vec<f64> {
    broadcast_indices(sa, sb)
        .into_iter()
        .enumerate()
        .map(|(i, j)| f(a[i], b[j]))
        .collect()
}

pub fn sum_to(x: &[f64], sx: &[usize], shape: &[usize]) -> Vec<f64> {
    let mut out = vec![0.0; shape.iter().product()];
    for (i, j) in broadcast_indices(sx, shape).into_iter().enumerate() {
        out[j] += x[i];
    }
    out
}

/// `x.permute(perm)`.
pub fn permute(x: &[f64], shape: &[usize], perm: &[usize]) -> Vec<f64> {
    let rank = shape.len();
    let mut strides = vec![1; rank];
    for k in (0..rank.saturating_sub(1)).rev() {
        strides[k] = strides[k + 1] * shape[k + 1];
    }
    let out_shape: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
    (0..x.len())
        .map(|mut i| {
            let mut src = 0;
            for k in (0..rank).rev() {
                src += (i % out_shape[k]) * strides[perm[k]];
                i /= out_shape[k];
            }
            x[src]
        })
        .collect()
}

/// Inverted dropout with the kernel's hash mask.
pub fn dropout(x: &[f64], seed: u32, salt: u32, p: f32) -> Vec<f64> {
    let (threshold, scale) = crate::ops::elementwise::dropout_constants(p);
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            if crate::ops::elementwise::dropout_keep(seed, salt, i as u32, threshold) {
                v * scale as f64
            } else {
                0.0
            }
        })
        .collect()
}
