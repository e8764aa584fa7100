//! Activations, bias, dropout.

use crate::graph::op::Act;

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

/// Inverted dropout with the kernel's hash mask.
pub fn dropout(x: &[f64], step_seed: [u32; 2], salt: u32, p: f32) -> Vec<f64> {
    let (threshold, scale) = crate::kernels::elementwise::dropout_constants(p);
    let [seed, rank] = step_seed;
    let first = rank.wrapping_mul(x.len() as u32);
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let i = first.wrapping_add(i as u32);
            if crate::kernels::elementwise::dropout_keep(seed, salt, i, threshold) {
                v * scale as f64
            } else {
                0.0
            }
        })
        .collect()
}
