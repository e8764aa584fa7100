//! BatchNorm (train with batch statistics and running-stat update; eval) and its gradient.

use crate::graph::op::Act;
use crate::kernels::reference::elementwise::act as apply_act;
use crate::kernels::reference::Eval;

/// Gradient mask of a fused activation, from its output.
fn act_mask(act: Option<Act>, y: f64) -> f64 {
    match act {
        Some(Act::Relu) => (y > 0.0) as u8 as f64,
        Some(Act::Relu6) => (y > 0.0 && y < 6.0) as u8 as f64,
        _ => 1.0,
    }
}

/// ins: x, gamma, beta, running_mean, running_var; y = act(bn(x)).
pub fn batchnorm(
    ins: &[&[f64]],
    shape: &[usize],
    eps: f64,
    momentum: f64,
    train: bool,
    act: Option<Act>,
) -> Eval {
    let (n, c) = (shape[0], shape[1]);
    let inner: usize = shape[2..].iter().product();
    let cnt = (n * inner) as f64;
    let x = ins[0];
    let at =
        |ch: usize| (0..n).flat_map(move |b| (0..inner).map(move |i| (b * c + ch) * inner + i));
    let mut y = vec![0.0; x.len()];
    let (mut mean, mut inv_std) = (vec![0.0; c], vec![0.0; c]);
    let (mut rm, mut rv) = (ins[3].to_vec(), ins[4].to_vec());
    for ch in 0..c {
        let (m, is) = if train {
            let m = at(ch).map(|i| x[i]).sum::<f64>() / cnt;
            let v = at(ch).map(|i| (x[i] - m).powi(2)).sum::<f64>() / cnt;
            rm[ch] = (1.0 - momentum) * rm[ch] + momentum * m;
            rv[ch] = (1.0 - momentum) * rv[ch] + momentum * v * cnt / (cnt - 1.0).max(1.0);
            (m, 1.0 / (v + eps).sqrt())
        } else {
            (ins[3][ch], 1.0 / (ins[4][ch] + eps).sqrt())
        };
        for i in at(ch) {
            let v = (x[i] - m) * is * ins[1][ch] + ins[2][ch];
            y[i] = act.map_or(v, |a| apply_act(a, v));
        }
        mean[ch] = m;
        inv_std[ch] = is;
    }
    if train {
        Eval {
            outputs: vec![y, mean, inv_std],
            updates: vec![(3, rm), (4, rv)],
        }
    } else {
        Eval {
            outputs: vec![y],
            updates: vec![],
        }
    }
}

/// ins: x, gamma, mean, inv_std, dy, y → (dx, dgamma, dbeta), dy masked by act'(y).
/// `eval_eps`: eval-mode BatchNorm; ins 2, 3 are the running mean and variance, which do not
/// depend on x.
pub fn batchnorm_grad(
    ins: &[&[f64]],
    shape: &[usize],
    act: Option<Act>,
    eval_eps: Option<f64>,
) -> Vec<Vec<f64>> {
    let (n, c) = (shape[0], shape[1]);
    let inner: usize = shape[2..].iter().product();
    let cnt = (n * inner) as f64;
    let (x, gamma, mean) = (ins[0], ins[1], ins[2]);
    let inv_std: Vec<f64> = match eval_eps {
        Some(eps) => ins[3].iter().map(|v| 1.0 / (v + eps).sqrt()).collect(),
        None => ins[3].to_vec(),
    };
    let dy: Vec<f64> = ins[4]
        .iter()
        .zip(ins[5])
        .map(|(&d, &y)| d * act_mask(act, y))
        .collect();
    let mut dx = vec![0.0; x.len()];
    let (mut dg, mut db) = (vec![0.0; c], vec![0.0; c]);
    for ch in 0..c {
        let idx: Vec<usize> = (0..n)
            .flat_map(|b| (0..inner).map(move |i| (b * c + ch) * inner + i))
            .collect();
        let xhat = |i: usize| (x[i] - mean[ch]) * inv_std[ch];
        db[ch] = idx.iter().map(|&i| dy[i]).sum();
        dg[ch] = idx.iter().map(|&i| dy[i] * xhat(i)).sum();
        for &i in &idx {
            dx[i] = match eval_eps {
                Some(_) => gamma[ch] * inv_std[ch] * dy[i],
                None => gamma[ch] * inv_std[ch] * (dy[i] - db[ch] / cnt - xhat(i) * dg[ch] / cnt),
            };
        }
    }
    vec![dx, dg, db]
}
