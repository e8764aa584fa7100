//! Softmax and label-smoothed cross-entropy (ε/(C−1) off-target mass).

pub fn softmax(x: &[f64], cols: usize) -> Vec<f64> {
    x.chunks(cols)
        .flat_map(|r| {
            let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = r.iter().map(|v| (v - m).exp()).sum();
            r.iter().map(move |v| (v - m).exp() / s).collect::<Vec<_>>()
        })
        .collect()
}

pub fn softmax_grad(y: &[f64], dy: &[f64], cols: usize) -> Vec<f64> {
    y.chunks(cols)
        .zip(dy.chunks(cols))
        .flat_map(|(y, d)| {
            let dot: f64 = y.iter().zip(d).map(|(a, b)| a * b).sum();
            y.iter()
                .zip(d)
                .map(move |(a, b)| a * (b - dot))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn target(j: usize, label: usize, cols: usize, eps: f64) -> f64 {
    if j == label {
        1.0 - eps
    } else {
        eps / (cols - 1) as f64
    }
}

/// (mean loss, probs, Σ loss, #correct); argmax ties go to the first index.
pub fn cross_entropy(
    logits: &[f64],
    labels: &[f64],
    cols: usize,
    eps: f64,
) -> (f64, Vec<f64>, f64, f64) {
    let probs = softmax(logits, cols);
    let (mut sum, mut correct) = (0.0, 0.0);
    for (r, (row, p)) in logits.chunks(cols).zip(probs.chunks(cols)).enumerate() {
        let label = labels[r] as usize;
        sum -= (0..cols)
            .map(|j| target(j, label, cols, eps) * p[j].ln())
            .sum::<f64>();
        let arg = (0..cols).fold(0, |a, j| if row[j] > row[a] { j } else { a });
        correct += (arg == label) as u8 as f64;
    }
    (sum / labels.len() as f64, probs, sum, correct)
}

pub fn cross_entropy_grad(
    probs: &[f64],
    labels: &[f64],
    dloss: f64,
    cols: usize,
    eps: f64,
) -> Vec<f64> {
    let rows = labels.len() as f64;
    probs
        .iter()
        .enumerate()
        .map(|(i, p)| (p - target(i % cols, labels[i / cols] as usize, cols, eps)) * dloss / rows)
        .collect()
}

/// MoE gates: per row, softmax over the k largest values (ties to the lower index), 0 elsewhere.
pub fn topk_gates(x: &[f64], cols: usize, k: usize) -> Vec<f64> {
    x.chunks(cols)
        .flat_map(|r| {
            let mut order: Vec<usize> = (0..cols).collect();
            // Stable sort: equal values keep index order.
            order.sort_by(|&a, &b| r[b].total_cmp(&r[a]));
            let chosen = &order[..k];
            let m = r[chosen[0]];
            let s: f64 = chosen.iter().map(|&j| (r[j] - m).exp()).sum();
            let mut out = vec![0.0; cols];
            for &j in chosen {
                out[j] = (r[j] - m).exp() / s;
            }
            out
        })
        .collect()
}
