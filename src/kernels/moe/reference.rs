//! MoE router math in f64 (docs/method.md §1.3): noise, the smooth load estimate and cv².

use crate::kernels::reference::elementwise::erf;

/// Standard normal noise from the kernel's hashes (Box–Muller).
pub fn random_normal(n: usize, step_seed: [u32; 2], salt: u32) -> Vec<f64> {
    let [seed, rank] = step_seed;
    let first = rank.wrapping_mul(n as u32);
    (0..n as u32)
        .map(|i| {
            let i = first.wrapping_add(i);
            let (u1, u2) = crate::kernels::moe::normal_uniforms(seed, salt, i);
            (-2.0 * (u1 as f64).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2 as f64).cos()
        })
        .collect()
}

fn phi(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

fn cdf(z: f64) -> f64 {
    0.5 * (1.0 + erf(z / std::f64::consts::SQRT_2))
}

/// Per row of `noisy`: (index of the k-th largest, index of the (k+1)-th largest); ties to
/// the lower index.
fn thresholds(noisy: &[f64], k: usize) -> (usize, usize) {
    let mut order: Vec<usize> = (0..noisy.len()).collect();
    order.sort_by(|&a, &b| noisy[b].total_cmp(&noisy[a]));
    (order[k - 1], order[k])
}

/// θ's index for element e of a row: the (k+1)-th largest if ĥ_e is above it, else the k-th.
fn theta_index(noisy: &[f64], e: usize, k: usize) -> usize {
    let (kth, next) = thresholds(noisy, k);
    if noisy[e] > noisy[next] {
        next
    } else {
        kth
    }
}

pub fn load_prob(h: &[f64], noisy: &[f64], sigma: &[f64], e: usize, k: usize) -> Vec<f64> {
    let mut out = vec![0.0; h.len()];
    for r in 0..h.len() / e {
        let row = r * e..(r + 1) * e;
        let nz = &noisy[row.clone()];
        for j in 0..e {
            let i = r * e + j;
            let theta = nz[theta_index(nz, j, k)];
            out[i] = cdf((h[i] - theta) / sigma[i]);
        }
    }
    out
}

/// `(dh, dĥ, dσ)` of [`load_prob`].
pub fn load_prob_grad(
    h: &[f64],
    noisy: &[f64],
    sigma: &[f64],
    dp: &[f64],
    e: usize,
    k: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut dh, mut dn, mut ds) = (vec![0.0; h.len()], vec![0.0; h.len()], vec![0.0; h.len()]);
    for r in 0..h.len() / e {
        let nz = &noisy[r * e..(r + 1) * e];
        for j in 0..e {
            let i = r * e + j;
            let t = theta_index(nz, j, k);
            let z = (h[i] - nz[t]) / sigma[i];
            let g = dp[i] * phi(z) / sigma[i];
            dh[i] += g;
            ds[i] -= g * z;
            dn[r * e + t] -= g;
        }
    }
    (dh, dn, ds)
}

pub fn cv_squared(v: &[f64]) -> f64 {
    let n = v.len();
    if n < 2 {
        return 0.0;
    }
    let m = v.iter().sum::<f64>() / n as f64;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
    var / (m * m + 1e-10)
}

pub fn cv_squared_grad(v: &[f64], dy: f64) -> Vec<f64> {
    let n = v.len();
    if n < 2 {
        return vec![0.0; n];
    }
    let m = v.iter().sum::<f64>() / n as f64;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
    let d = m * m + 1e-10;
    v.iter()
        .map(|x| dy * (2.0 * (x - m) / (n - 1) as f64 / d - var * (2.0 * m / n as f64) / (d * d)))
        .collect()
}

/// `Op::MoeRoute`: (order, slot_expert, token_slots, groups) as f64.
pub fn route(gates: &[f64], n: usize, e: usize, k: usize, capacity: usize) -> [Vec<f64>; 4] {
    let slots = n * k;
    let (mut order, mut expert) = (vec![], vec![]);
    let mut token_slots = vec![slots as f64; slots];
    let mut groups = vec![0.0];
    for j in 0..e {
        let mut taken = 0;
        for t in 0..n {
            if gates[t * e + j] > 0.0 && taken < capacity {
                let rank = (0..j).filter(|&f| gates[t * e + f] > 0.0).count();
                if rank < k {
                    token_slots[t * k + rank] = order.len() as f64;
                }
                order.push(t as f64);
                expert.push(j as f64);
                taken += 1;
            }
        }
        groups.push(order.len() as f64);
    }
    order.resize(slots, n as f64);
    expert.resize(slots, e as f64);
    [order, expert, token_slots, groups]
}

/// The used slots of token `t` in `token_slots` [N, k].
fn slots_of(token_slots: &[f64], k: usize, t: usize) -> impl Iterator<Item = usize> + '_ {
    let s_total = token_slots.len();
    token_slots[t * k..(t + 1) * k]
        .iter()
        .map(|&s| s as usize)
        .filter(move |&s| s < s_total)
}

/// The weights of a weighted `Op::MoeCombine`: gates [N, E], slot_expert [S], bias [E, d].
#[derive(Clone, Copy)]
pub struct CombineWeights<'a> {
    pub gates: &'a [f64],
    pub experts: usize,
    pub slot_expert: &'a [f64],
    pub bias: &'a [f64],
}

/// `Op::MoeCombine`: per token the sum of its slots' rows of `ys` [S, d]; weighted, of
/// gates[t, e] · (ys[s] + bias[e]).
pub fn combine(
    ys: &[f64],
    d: usize,
    token_slots: &[f64],
    k: usize,
    weights: Option<CombineWeights>,
) -> Vec<f64> {
    let n = token_slots.len() / k;
    let mut out = vec![0.0; n * d];
    for t in 0..n {
        for s in slots_of(token_slots, k, t) {
            for c in 0..d {
                out[t * d + c] += match weights {
                    None => ys[s * d + c],
                    Some(w) => {
                        let x = w.slot_expert[s] as usize;
                        w.gates[t * w.experts + x] * (ys[s * d + c] + w.bias[x * d + c])
                    }
                };
            }
        }
    }
    out
}

/// `Op::MoeCombineGrad`: (dys [S, d], dgates [N, E], dbias [E, d]).
pub fn combine_grad(
    ys: &[f64],
    d: usize,
    token_slots: &[f64],
    k: usize,
    w: CombineWeights,
    dy: &[f64],
) -> [Vec<f64>; 3] {
    let (n, e) = (token_slots.len() / k, w.experts);
    let mut dys = vec![0.0; ys.len()];
    let mut dgates = vec![0.0; n * e];
    let mut dbias = vec![0.0; e * d];
    for t in 0..n {
        for s in slots_of(token_slots, k, t) {
            let x = w.slot_expert[s] as usize;
            let g = w.gates[t * e + x];
            for c in 0..d {
                let dv = dy[t * d + c];
                dys[s * d + c] = g * dv;
                dbias[x * d + c] += g * dv;
                dgates[t * e + x] += dv * (ys[s * d + c] + w.bias[x * d + c]);
            }
        }
    }
    [dys, dgates, dbias]
}

/// `Op::GroupedMatMul` (see its doc), with `groups` as f64 boundaries.
pub fn grouped_matmul(
    trans_b: bool,
    by_k: bool,
    a: &[f64],
    a_shape: &[usize],
    b: &[f64],
    b_shape: &[usize],
    groups: &[f64],
) -> Vec<f64> {
    let e = groups.len() - 1;
    let range = |g: usize| groups[g] as usize..groups[g + 1] as usize;
    if by_k {
        let (m, n) = (a_shape[1], b_shape[1]);
        let mut c = vec![0.0; e * m * n];
        for g in 0..e {
            for r in range(g) {
                for i in 0..m {
                    for j in 0..n {
                        c[(g * m + i) * n + j] += a[r * m + i] * b[r * n + j];
                    }
                }
            }
        }
        c
    } else {
        let (rows, kk) = (a_shape[0], a_shape[1]);
        let n = if trans_b { b_shape[1] } else { b_shape[2] };
        let mut c = vec![0.0; rows * n];
        for g in 0..e {
            let w = &b[g * kk * n..(g + 1) * kk * n];
            for r in range(g) {
                for j in 0..n {
                    c[r * n + j] = (0..kk)
                        .map(|q| a[r * kk + q] * if trans_b { w[j * kk + q] } else { w[q * n + j] })
                        .sum();
                }
            }
        }
        c
    }
}
