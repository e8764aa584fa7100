//! Row gather by index (embedding lookup, MoE dispatch) and its gradient, and the channel
//! merge of split PAD-Conv layers, by the definitions.

pub fn gather(table: &[f64], d: usize, ids: &[f64]) -> Vec<f64> {
    let vocab = table.len() / d;
    ids.iter()
        .flat_map(|&id| {
            let id = id as usize;
            (0..d).map(move |j| if id < vocab { table[id * d + j] } else { 0.0 })
        })
        .collect()
}

pub fn scatter_grad(dy: &[f64], d: usize, ids: &[f64], vocab: usize) -> Vec<f64> {
    let mut out = vec![0.0; vocab * d];
    for (t, &id) in ids.iter().enumerate() {
        let id = id as usize;
        if id < vocab {
            for j in 0..d {
                out[id * d + j] += dy[t * d + j];
            }
        }
    }
    out
}

/// `Op::MergeChannels`: output channel c of sample n is a's channel from[c] if from[c] < Ca,
/// else b's channel from[c] − Ca.
pub fn merge_channels(
    a: &[f64],
    a_shape: &[usize],
    b: &[f64],
    b_shape: &[usize],
    from: &[f64],
) -> Vec<f64> {
    let (n, ca, cb) = (a_shape[0], a_shape[1], b_shape[1]);
    let hw = a_shape[2] * a_shape[3];
    let mut out = Vec::with_capacity(n * from.len() * hw);
    for s in 0..n {
        for &f in from {
            let f = f as usize;
            let plane = if f < ca {
                &a[(s * ca + f) * hw..][..hw]
            } else {
                &b[(s * cb + f - ca) * hw..][..hw]
            };
            out.extend_from_slice(plane);
        }
    }
    out
}
