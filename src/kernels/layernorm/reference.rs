//! LayerNorm, by the definition.

/// ins: x [rows, d], gamma, beta → (y, mean, inv_std).
pub fn forward(x: &[f64], gamma: &[f64], beta: &[f64], eps: f64) -> Vec<Vec<f64>> {
    let d = gamma.len();
    let rows = x.len() / d;
    let (mut y, mut mean, mut inv) = (vec![0.0; x.len()], vec![0.0; rows], vec![0.0; rows]);
    for r in 0..rows {
        let row = &x[r * d..(r + 1) * d];
        let m = row.iter().sum::<f64>() / d as f64;
        let v = row.iter().map(|v| (v - m).powi(2)).sum::<f64>() / d as f64;
        let is = 1.0 / (v + eps).sqrt();
        for j in 0..d {
            y[r * d + j] = (row[j] - m) * is * gamma[j] + beta[j];
        }
        mean[r] = m;
        inv[r] = is;
    }
    vec![y, mean, inv]
}

/// ins: x, gamma, mean, inv_std, dy → (dx, dgamma, dbeta).
pub fn backward(x: &[f64], gamma: &[f64], mean: &[f64], inv: &[f64], dy: &[f64]) -> Vec<Vec<f64>> {
    let d = gamma.len();
    let rows = x.len() / d;
    let (mut dx, mut dg, mut db) = (vec![0.0; x.len()], vec![0.0; d], vec![0.0; d]);
    for r in 0..rows {
        let xhat = |j: usize| (x[r * d + j] - mean[r]) * inv[r];
        let g = |j: usize| dy[r * d + j] * gamma[j];
        let sg: f64 = (0..d).map(g).sum();
        let sgx: f64 = (0..d).map(|j| g(j) * xhat(j)).sum();
        for j in 0..d {
            dx[r * d + j] = inv[r] * (g(j) - sg / d as f64 - xhat(j) * sgx / d as f64);
            dg[j] += dy[r * d + j] * xhat(j);
            db[j] += dy[r * d + j];
        }
    }
    vec![dx, dg, db]
}
