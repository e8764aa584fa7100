//! Max / average pooling and their gradients.

use crate::kernels::pool::PoolGeom;

/// Calls `f(y_index, x_plane_offset, Some(in-plane index) | None for padding)` per window tap.
fn windows(g: &PoolGeom, mut f: impl FnMut(usize, usize, Option<usize>)) {
    for plane in 0..g.n * g.c {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let yi = (plane * g.oh + oy) * g.ow + ox;
                for ky in 0..g.k.0 {
                    for kx in 0..g.k.1 {
                        let iy = (oy * g.stride.0 + ky) as isize - g.pad.0 as isize;
                        let ix = (ox * g.stride.1 + kx) as isize - g.pad.1 as isize;
                        let inside =
                            iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w;
                        let at = inside.then(|| iy as usize * g.w + ix as usize);
                        f(yi, plane * g.h * g.w, at);
                    }
                }
            }
        }
    }
}

/// (y, argmax as in-plane index, stored as f64). First maximum wins ties.
pub fn max_forward(g: &PoolGeom, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let n = g.n * g.c * g.oh * g.ow;
    let (mut y, mut arg) = (vec![f64::NEG_INFINITY; n], vec![-1.0; n]);
    windows(g, |yi, base, at| {
        if let Some(at) = at {
            if arg[yi] < 0.0 || x[base + at] > y[yi] {
                y[yi] = x[base + at];
                arg[yi] = at as f64;
            }
        }
    });
    (y, arg)
}

pub fn max_backward(g: &PoolGeom, dy: &[f64], arg: &[f64]) -> Vec<f64> {
    let mut dx = vec![0.0; g.n * g.c * g.h * g.w];
    let ohw = g.oh * g.ow;
    for (yi, &a) in arg.iter().enumerate() {
        dx[(yi / ohw) * g.h * g.w + a as usize] += dy[yi];
    }
    dx
}

pub fn avg_forward(g: &PoolGeom, x: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; g.n * g.c * g.oh * g.ow];
    let area = (g.k.0 * g.k.1) as f64;
    windows(g, |yi, base, at| {
        if let Some(at) = at {
            y[yi] += x[base + at] / area;
        }
    });
    y
}

pub fn avg_backward(g: &PoolGeom, dy: &[f64]) -> Vec<f64> {
    let mut dx = vec![0.0; g.n * g.c * g.h * g.w];
    let area = (g.k.0 * g.k.1) as f64;
    windows(g, |yi, base, at| {
        if let Some(at) = at {
            dx[base + at] += dy[yi] / area;
        }
    });
    dx
}
