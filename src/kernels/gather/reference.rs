//! Row gather by index (embedding lookup, MoE dispatch) and its gradient, by the definitions.

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
