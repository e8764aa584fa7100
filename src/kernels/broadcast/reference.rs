//! Broadcasting binary ops, their reduction back to an operand's shape, and permutes, by the
//! definitions.

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
